import NIOCore
import PGWire
import SQLRouting

/// SQL-level PREPARE, EXECUTE and DEALLOCATE, kept by ShardGate per client (see `SQLPreparedCommand`).
///
/// PostgreSQL keeps SQL-level and protocol-level prepared statements under one set of names, and so does
/// ShardGate: PREPARE refuses a name that Parse took and DEALLOCATE drops either kind. DEALLOCATE ALL
/// drops every named statement of the client (not the unnamed one, as in PostgreSQL). None of them is
/// transactional, as in PostgreSQL.
extension SessionEngine {
    struct SQLPrepared {
        /// The statement text after AS, with `$n` placeholders.
        var statement: String
        /// The declared parameter types as written (may be fewer than the parameters).
        var types: [String]
        var parameterCount: Int
    }

    /// A simple-protocol query string holding only `command`.
    mutating func preparedCommand(_ command: SQLPreparedCommand, sql: String, context: inout RoutingContext) -> Bool {
        switch command {
        case .prepare(let name):
            guard self.isIdleForLocalCommand() else { return false }
            guard self.clientStatus != .failedTransaction else {
                return self.refuse(ProxyErrors.transactionAborted, simpleQuery: true)
            }
            guard self.sqlStatements[name] == nil, name.isEmpty || self.statements[name] == nil else {
                return self.refuse(ProxyErrors.error("42P05", "prepared statement \"\(name)\" already exists"), simpleQuery: true)
            }
            guard let (types, statement) = SQLPreparedText.prepare(sql) else {
                return self.refuse(ProxyErrors.unsupported("this form of PREPARE"), simpleQuery: true)
            }
            // What would make every EXECUTE fail is refused now (syntax was checked with the whole text).
            if let analysis = try? context.router.analyze(statement),
               let reason = analysis.statements.lazy.compactMap(\.unsupported).first {
                return self.refuse(ProxyErrors.unsupported(reason), simpleQuery: true)
            }
            let count = max(types.count, SQLPreparedText.parameterCount(statement))
            guard self.answer([.commandComplete("PREPARE"), .readyForQuery(self.clientStatus)]) else { return false }
            self.sqlStatements[name] = SQLPrepared(statement: statement, types: types, parameterCount: count)
            return true

        case .deallocate(let name):
            guard self.isIdleForLocalCommand() else { return false }
            guard self.clientStatus != .failedTransaction else {
                return self.refuse(ProxyErrors.transactionAborted, simpleQuery: true)
            }
            if let error = self.deallocationError(name) { return self.refuse(error, simpleQuery: true) }
            guard self.answer([.commandComplete(name == nil ? "DEALLOCATE ALL" : "DEALLOCATE"),
                               .readyForQuery(self.clientStatus)]) else { return false }
            self.deallocate(name, context: &context)
            return true

        case .execute(let name, let argumentCount, let problem):
            guard let prepared = self.sqlStatements[name] else {
                if self.statements[name] != nil, !name.isEmpty {
                    return self.refuse(ProxyErrors.unsupported("EXECUTE of a statement prepared with the extended query "
                        + "protocol", hint: "Bind and Execute it with the extended query protocol."), simpleQuery: true)
                }
                return self.refuse(ProxyErrors.error("26000", "prepared statement \"\(name)\" does not exist"), simpleQuery: true)
            }
            if let problem { return self.refuse(ProxyErrors.error("0A000", problem), simpleQuery: true) }
            guard argumentCount == prepared.parameterCount else {
                return self.refuse(ProxyErrors.error("42601", "wrong number of parameters for prepared statement \"\(name)\"",
                                                     detail: "Expected \(prepared.parameterCount) parameters but got \(argumentCount)."),
                                   simpleQuery: true)
            }
            guard let (leading, arguments) = SQLPreparedText.execute(sql), arguments.count == argumentCount else {
                return self.refuse(ProxyErrors.unsupported("this form of EXECUTE"), simpleQuery: true)
            }
            let text = leading + SQLPreparedText.substitute(prepared.statement, arguments: arguments, types: prepared.types)
            let analysis: SQLAnalysis
            do {
                analysis = try context.router.analyze(text)
            } catch {
                // Positions would point into the substituted text, which the client never wrote.
                return self.refuse(ErrorNoticeFields(severity: "ERROR", sqlState: error.sqlState, message: error.message),
                                   simpleQuery: true)
            }
            var payload = self.allocator.buffer(capacity: text.utf8.count + 1)
            payload.writeString(text)
            payload.writeInteger(UInt8(0))
            let frame = PGFrame(id: FrontendMessageID.query.rawValue, payload: payload)
            return self.route(frame, sql: text, analysis: analysis, hidesPosition: true, context: &context, current: false)
        }
    }

    /// Why `DEALLOCATE name` fails (no such statement), if it does.
    func deallocationError(_ name: String?) -> ErrorNoticeFields? {
        guard let name, self.sqlStatements[name] == nil, name.isEmpty || self.statements[name] == nil else { return nil }
        return ProxyErrors.error("26000", "prepared statement \"\(name)\" does not exist")
    }

    /// Drops statement `name` of either kind (every named statement for `nil`).
    mutating func deallocate(_ name: String?, context: inout RoutingContext) {
        guard let name else {
            self.sqlStatements.removeAll()
            for (name, statement) in self.statements where !name.isEmpty {
                if statement.id != nil { context.catalog.release(statement.key) }
                self.statements[name] = nil
            }
            return
        }
        if self.sqlStatements.removeValue(forKey: name) != nil { return }
        if !name.isEmpty, let statement = self.statements.removeValue(forKey: name), statement.id != nil {
            context.catalog.release(statement.key)
        }
    }

    /// Nothing in flight (else the answers in flight are asked for and false is returned).
    private mutating func isIdleForLocalCommand() -> Bool {
        if let busy = self.inFlight {
            self.flushOut(busy)
            return false
        }
        return true
    }
}
