import SQLRouting

/// What a statement does to the client's session beyond its result: a setting to record, text a new
/// participant of the open transaction must replay, or state that pins its backend.
struct SessionEffect: Equatable {
    /// A session-level setting, recorded when the statement succeeds (at COMMIT inside a transaction).
    var change: SettingChange?
    /// Replayed on each backend that joins the open transaction afterwards (SET LOCAL, SET TRANSACTION, and
    /// session-level SETs done inside it).
    var replay: String?
    /// The statement leaves state on its backend that cannot follow the client (see `SessionStateEffect`).
    var pins = false

    /// The statement's ReadyForQuery must be the next one from its backend (its effect is recorded then).
    var needsOwnReadyForQuery: Bool { self.change != nil }
    /// Settings may run on any backend, replicas included.
    var needsPrimary: Bool { false }

    init(change: SettingChange? = nil, replay: String? = nil, pins: Bool = false) {
        self.change = change
        self.replay = replay
        self.pins = pins
    }

    init(analysis: SQLAnalysis, sql: String, inTransaction: Bool) {
        guard analysis.statements.count == 1, let statement = analysis.statements.first else {
            // Several statements: their texts cannot be told apart here, so unreported settings pin.
            self.init(pins: SessionStateEffect.pinsBackend(analysis))
            return
        }
        let others = statement.callsSetConfig || statement.createsSessionObject
        switch statement.kind {
        case .set(let name, let isLocal):
            let text = Self.statementText(sql)
            if isLocal || name == "transaction" {
                self.init(replay: inTransaction ? text : nil, pins: others)
            } else if SessionStateEffect.trackedParameters.contains(name) {
                // Reported by ParameterStatus: SessionParameters follows it.
                self.init(pins: others)
            } else {
                self.init(change: .set(name: name, sql: text), replay: inTransaction ? text : nil, pins: others)
            }
        case .reset(let name):
            if let name, SessionStateEffect.trackedParameters.contains(name) {
                self.init(pins: others)
            } else {
                let text = Self.statementText(sql)
                self.init(change: name.map { .reset(name: $0) } ?? .resetAll, replay: inTransaction ? text : nil,
                          pins: others)
            }
        case .utility(let type):
            self.init(pins: others || SessionStateEffect.sessionUtilities.contains(type))
        case .read, .write, .ddl, .transaction, .show, .empty:
            self.init(pins: others)
        }
    }

    /// The statement without trailing semicolons and white space, so that it can be joined with others.
    static func statementText(_ sql: String) -> String {
        var text = Substring(sql)
        while let last = text.last, last == ";" || last == " " || last == "\n" || last == "\t" || last == "\r" {
            text = text.dropLast()
        }
        return String(text)
    }
}
