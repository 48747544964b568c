import CLibPQ
import Foundation
import ShardMap

/// A blocking libpq connection to one PostgreSQL server, for shardctl's SQL on shard primaries.
///
/// Calls block the calling thread until the server answers, which is what a CLI wants: shardctl runs
/// one step at a time. A connection is used by one task at a time (it is not `Sendable`).
///
/// ```swift
/// let db = try PGConnection.connect(to: shard.primary, label: "s0 primary")
/// let lsn = try db.query("SELECT pg_current_wal_lsn()::text").value()
/// ```
public final class PGConnection {
    private var handle: OpaquePointer?
    private let noticeBox = NoticeBox()

    /// What messages say about this connection, e.g. `s0 primary 127.0.0.1:5500`.
    public let label: String

    /// Opens a connection from libpq keyword/value parameters (`host`, `port`, `user`, `dbname`, …).
    ///
    /// What is left out is found the way libpq finds it: `PGPASSWORD`, `PGPASSFILE` / `~/.pgpass`, …
    public init(parameters: [(key: String, value: String)], label: String) throws {
        self.label = label
        let keys = parameters.map { strdup($0.key) } + [nil]
        let values = parameters.map { strdup($0.value) } + [nil]
        defer {
            keys.forEach { free($0) }
            values.forEach { free($0) }
        }
        let connection = keys.map { UnsafePointer($0) }.withUnsafeBufferPointer { keyPointers in
            values.map { UnsafePointer($0) }.withUnsafeBufferPointer { valuePointers in
                PQconnectdbParams(keyPointers.baseAddress, valuePointers.baseAddress, 0)
            }
        }
        guard let connection else {
            throw PGError(connection: label, message: "libpq could not allocate a connection")
        }
        guard PQstatus(connection) == CONNECTION_OK else {
            let message = Self.trimmed(PQerrorMessage(connection))
            PQfinish(connection)
            throw PGError(connection: label, message: "cannot connect: \(message)")
        }
        self.handle = connection
        let box = Unmanaged.passUnretained(self.noticeBox).toOpaque()
        PQsetNoticeReceiver(connection, { argument, result in
            guard let argument, let result else { return }
            let box = Unmanaged<NoticeBox>.fromOpaque(argument).takeUnretainedValue()
            box.receive(PGNotice(result: result))
        }, box)
    }

    /// Connects to `url` (a shard's primary from the map). A password of `***` (the admin port's
    /// redaction) or none means "let libpq find it" (`PGPASSWORD`, `PGPASSFILE`, `~/.pgpass`).
    public static func connect(to url: PostgresURL, label: String, applicationName: String = "shardctl",
                               connectTimeoutSeconds: Int = 10) throws -> PGConnection {
        try PGConnection(parameters: PGConnectionInfo.parameters(for: url, applicationName: applicationName,
                                                                 connectTimeoutSeconds: connectTimeoutSeconds),
                         label: label)
    }

    deinit {
        if let handle { PQfinish(handle) }
    }

    /// Closes the connection; later calls throw.
    public func close() {
        if let handle { PQfinish(handle) }
        self.handle = nil
    }

    /// Whether the server took a password from this side (the URL, `PGPASSWORD` or a password file).
    public var usedPassword: Bool {
        guard let handle else { return false }
        return PQconnectionUsedPassword(handle) == 1
    }

    /// The password libpq sent, if it sent one (so that a subscription can connect the same way).
    public var password: String? {
        guard let handle, self.usedPassword, let text = PQpass(handle) else { return nil }
        let password = String(cString: text)
        return password.isEmpty ? nil : password
    }

    /// The server's version as a number, e.g. 150018 for 15.18.
    public var serverVersion: Int {
        guard let handle else { return 0 }
        return Int(PQserverVersion(handle))
    }

    /// Notices (and warnings) the server sent since the last `takeNotices()`.
    public func takeNotices() -> [PGNotice] {
        self.noticeBox.take()
    }

    /// Called for each notice as it arrives (in addition to collecting it).
    public var onNotice: ((PGNotice) -> Void)? {
        get { self.noticeBox.handler }
        set { self.noticeBox.handler = newValue }
    }

    /// Runs `sql` with the simple query protocol. Several statements separated by `;` are allowed; the
    /// result is the last one's. Throws `PGError` for an ErrorResponse.
    @discardableResult
    public func execute(_ sql: String) throws -> PGResult {
        let handle = try self.open()
        return try self.result(of: PQexec(handle, sql), handle: handle)
    }

    /// Runs one statement with `$1…` parameters, sent as text (`nil` is SQL NULL).
    @discardableResult
    public func query(_ sql: String, _ parameters: [String?] = []) throws -> PGResult {
        let handle = try self.open()
        guard !parameters.isEmpty else {
            return try self.result(of: PQexecParams(handle, sql, 0, nil, nil, nil, nil, 0), handle: handle)
        }
        let copies = parameters.map { $0.map { strdup($0) } ?? nil }
        defer { copies.forEach { free($0) } }
        let result = copies.map { UnsafePointer($0) }.withUnsafeBufferPointer { values in
            PQexecParams(handle, sql, Int32(parameters.count), nil, values.baseAddress, nil, nil, 0)
        }
        return try self.result(of: result, handle: handle)
    }

    private func open() throws -> OpaquePointer {
        guard let handle else { throw PGError(connection: self.label, message: "the connection is closed") }
        return handle
    }

    private func result(of result: OpaquePointer?, handle: OpaquePointer) throws -> PGResult {
        guard let result else {
            throw PGError(connection: self.label, message: Self.trimmed(PQerrorMessage(handle)))
        }
        defer { PQclear(result) }
        switch PQresultStatus(result) {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_EMPTY_QUERY, PGRES_SINGLE_TUPLE:
            return PGResult(result)
        case PGRES_FATAL_ERROR, PGRES_NONFATAL_ERROR:
            throw PGError(connection: self.label, result: result)
        default:
            let status = String(cString: PQresStatus(PQresultStatus(result)))
            throw PGError(connection: self.label, message: "unexpected result status \(status)")
        }
    }

    static func trimmed(_ text: UnsafePointer<CChar>?) -> String {
        guard let text else { return "unknown error" }
        return String(cString: text).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

/// Collects the notices of one connection (libpq calls it on the thread running the query).
private final class NoticeBox {
    var notices: [PGNotice] = []
    var handler: ((PGNotice) -> Void)?

    func receive(_ notice: PGNotice) {
        self.notices.append(notice)
        self.handler?(notice)
    }

    func take() -> [PGNotice] {
        defer { self.notices = [] }
        return self.notices
    }
}

/// The rows of a query, every value as text (`nil` for NULL).
public struct PGResult: Sendable, Equatable {
    /// Column names, in order.
    public var columns: [String]
    /// Rows, each with one value per column.
    public var rows: [[String?]]
    /// The command tag, e.g. `DELETE 10000`.
    public var commandTag: String
    /// The row count of INSERT/UPDATE/DELETE/SELECT/… (0 when the tag has none).
    public var affectedRows: Int

    /// A result from its parts (tests).
    public init(columns: [String], rows: [[String?]], commandTag: String = "", affectedRows: Int = 0) {
        self.columns = columns
        self.rows = rows
        self.commandTag = commandTag
        self.affectedRows = affectedRows
    }

    init(_ result: OpaquePointer) {
        let columnCount = Int(PQnfields(result))
        let rowCount = Int(PQntuples(result))
        self.columns = (0..<columnCount).map { String(cString: PQfname(result, Int32($0))) }
        self.rows = (0..<rowCount).map { row in
            (0..<columnCount).map { column in
                PQgetisnull(result, Int32(row), Int32(column)) == 1
                    ? nil : String(cString: PQgetvalue(result, Int32(row), Int32(column)))
            }
        }
        self.commandTag = String(cString: PQcmdStatus(result))
        self.affectedRows = Int(String(cString: PQcmdTuples(result))) ?? 0
    }

    /// The first column of the first row (`nil` when there is no row or it is NULL).
    public func value() -> String? {
        self.rows.first?.first ?? nil
    }

    /// The value in `column` of `row`, by column name.
    public func value(_ column: String, row: Int = 0) -> String? {
        guard let index = self.columns.firstIndex(of: column), row < self.rows.count else { return nil }
        return self.rows[row][index]
    }
}

/// A notice or warning sent by the server.
public struct PGNotice: Sendable, Equatable, CustomStringConvertible {
    /// `NOTICE`, `WARNING`, `INFO`, …
    public var severity: String
    /// The primary message.
    public var message: String

    init(result: OpaquePointer) {
        self.severity = PGError.field(result, "V") ?? PGError.field(result, "S") ?? "NOTICE"
        self.message = PGError.field(result, "M") ?? ""
    }

    public var description: String { "\(self.severity): \(self.message)" }
}

/// An error from libpq or an ErrorResponse from the server.
public struct PGError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The connection's label.
    public var connection: String
    /// SQLSTATE (`""` for client-side errors such as a failed connect).
    public var sqlState: String
    /// The primary message.
    public var message: String
    /// DETAIL, if any.
    public var detail: String?
    /// HINT, if any.
    public var hint: String?

    /// A client-side error (no SQLSTATE).
    public init(connection: String, message: String, sqlState: String = "", detail: String? = nil,
                hint: String? = nil) {
        self.connection = connection
        self.sqlState = sqlState
        self.message = message
        self.detail = detail
        self.hint = hint
    }

    init(connection: String, result: OpaquePointer) {
        self.connection = connection
        self.sqlState = Self.field(result, "C") ?? ""
        self.message = Self.field(result, "M") ?? PGConnection.trimmed(PQresultErrorMessage(result))
        self.detail = Self.field(result, "D")
        self.hint = Self.field(result, "H")
    }

    static func field(_ result: OpaquePointer, _ code: Character) -> String? {
        guard let ascii = code.asciiValue, let text = PQresultErrorField(result, Int32(ascii)) else { return nil }
        return String(cString: text)
    }

    public var description: String {
        var text = "\(self.connection): "
        if !self.sqlState.isEmpty { text += "ERROR \(self.sqlState): " }
        text += self.message
        if let detail = self.detail { text += " (\(detail))" }
        if let hint = self.hint { text += "; hint: \(hint)" }
        return text
    }
}
