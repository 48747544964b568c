import ShardMap
@testable import SQLRouting
import Testing

/// The table-driven routing test: every statement is planned three ways — uncached analysis, a router's
/// first sight (parse, then cache), and the router's cache hit — and all three must agree with the table.
@Suite("Routing table")
struct RoutingTableTests {
    static let cases = ReadCases.all + WriteCases.all + OtherCases.all

    @Test("the table holds at least 150 statements")
    func tableSize() {
        #expect(Self.cases.count >= 150)
    }

    @Test("SQL → route plan", arguments: Self.cases)
    func route(_ testCase: RoutingCase) {
        let map = RoutingFixtures.designMap
        var router = SQLRouter(map: map)
        let direct = Result { () throws(RouteError) -> RoutePlan in
            try RoutePlanner.plan(SQLAnalyzer.analyze(testCase.sql, tables: map.tables), map: map,
                                  parameters: testCase.parameters)
        }
        let first = Result { () throws(RouteError) -> RoutePlan in
            try router.route(testCase.sql, parameters: testCase.parameters)
        }
        let second = Result { () throws(RouteError) -> RoutePlan in
            try router.route(testCase.sql, parameters: testCase.parameters)
        }
        for (path, result) in [("uncached", direct), ("first", first), ("cached", second)] {
            switch (testCase.expectation, result) {
            case let (.route(target, primary, write, rows), .success(plan)):
                #expect(plan.target == target, "\(path)")
                #expect(plan.needsPrimary == primary, "\(path): needsPrimary")
                #expect(plan.isWrite == write, "\(path): isWrite")
                if let rows { #expect(plan.insertRowsByShard == rows, "\(path): rows") }
            case let (.error(state), .failure(error)):
                #expect(error.sqlState == state, "\(path): \(error)")
            case let (.route, .failure(error)):
                Issue.record("\(path): expected a route, got \(error)")
            case let (.error(state), .success(plan)):
                Issue.record("\(path): expected \(state), got \(plan.target)")
            }
        }
    }
}
