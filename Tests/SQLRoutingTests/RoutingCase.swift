import SQLRouting
import Testing

/// One row of the routing table: SQL (and bind parameters) → expected route or error.
struct RoutingCase: Sendable, CustomTestStringConvertible {
    enum Expectation: Sendable {
        case route(RoutePlan.Target, primary: Bool, write: Bool, rows: [Int: [Int]]?)
        case error(sqlState: String)
    }

    var sql: String
    var parameters: BindParameters
    var expectation: Expectation

    var testDescription: String {
        parameters.values.isEmpty ? sql : "\(sql) with \(parameters.values.count) parameter(s)"
    }
}

/// A read that may use a replica.
func read(_ sql: String, _ target: RoutePlan.Target, _ parameters: BindParameter...) -> RoutingCase {
    RoutingCase(sql: sql, parameters: BindParameters(parameters),
                expectation: .route(target, primary: false, write: false, rows: nil))
}

/// A read that must run on primaries (row locks, utility statements, transaction control).
func primary(_ sql: String, _ target: RoutePlan.Target, _ parameters: BindParameter...) -> RoutingCase {
    RoutingCase(sql: sql, parameters: BindParameters(parameters),
                expectation: .route(target, primary: true, write: false, rows: nil))
}

/// A write (or DDL): primaries, `isWrite`.
func write(
    _ sql: String, _ target: RoutePlan.Target, rows: [Int: [Int]]? = nil, _ parameters: BindParameter...
) -> RoutingCase {
    RoutingCase(sql: sql, parameters: BindParameters(parameters),
                expectation: .route(target, primary: true, write: true, rows: rows))
}

/// A statement refused with `sqlState` before any backend is asked.
func refused(_ sql: String, _ sqlState: String, _ parameters: BindParameter...) -> RoutingCase {
    RoutingCase(sql: sql, parameters: BindParameters(parameters), expectation: .error(sqlState: sqlState))
}
