import PGWire

/// What one backend connection still owes the proxy, message by message, in the order the messages were sent.
///
/// Every message the proxy writes to a backend that PostgreSQL answers (Query, Parse, Bind, Describe,
/// Execute, Close, Sync, FunctionCall) becomes one `Expected` entry; Flush and copy messages are answered
/// by nothing of their own. Reading the backend's output, the tracker finds where each answer ends, so that
/// answers to messages ShardGate injected (a Parse of a statement the backend lacks, the parameter sync, a
/// BEGIN, a Sync that closes a batch) are swallowed while the client's own answers are relayed, and so that
/// the session knows when a backend has nothing in flight.
///
/// Protocol rules followed (PostgreSQL's postgres.c): an ErrorResponse to an extended-protocol message ends it
/// and the server discards every message up to the next Sync; inside a Query, an ErrorResponse ends nothing
/// (ReadyForQuery does); ParameterStatus, NoticeResponse and NotificationResponse may come at any time.
public struct ResponseTracker: Sendable {
    /// A message sent to the backend whose answer is still due.
    public struct Expected: Sendable, Equatable {
        public enum Kind: UInt8, Sendable {
            case query, sync, functionCall, parse, bind, describeStatement, describePortal, execute, close
            /// An answer ShardGate gives itself at this point of the stream (no backend message).
            case local
            /// A Describe of a portal ShardGate injected so that a merge learns the columns before the rows.
            case mergeDescribe
        }

        public var kind: Kind
        /// What to do with the answer's messages.
        public var disposition: Disposition
        /// The text the backend runs is not the client's (EXECUTE substituted): an error's cursor position
        /// would point into text the client never wrote, so it is dropped. (Before `statement`: the entry
        /// stays 16 bytes.)
        public var hidesPosition: Bool
        /// For a Parse ShardGate injected: the catalog id of the statement it prepares (-1 otherwise), so
        /// that a failed Parse is forgotten by the backend's statement cache.
        public var statement: Int

        public init(_ kind: Kind, _ disposition: Disposition, statement: Int = -1, hidesPosition: Bool = false) {
            self.kind = kind
            self.disposition = disposition
            self.statement = statement
            self.hidesPosition = hidesPosition
        }

        public var isExtended: Bool {
            switch self.kind {
            case .parse, .bind, .describeStatement, .describePortal, .execute, .close, .mergeDescribe: return true
            case .query, .sync, .functionCall, .local: return false
            }
        }
    }

    /// Where an answer's messages go.
    public enum Disposition: UInt8, Sendable {
        /// To the client, unchanged.
        case relay
        /// Nowhere (the answer to something ShardGate injected).
        case swallow
        /// To the session's combiner (one of several shards answering the same client message).
        case combine
        /// To the session itself: the answer to a question ShardGate asked (its rows are read, not shown).
        case capture
    }

    /// What a backend message means for the session.
    public struct Step: Sendable, Equatable {
        /// Where this message goes.
        public var disposition: Disposition
        /// The entry this message ended, if it ended one.
        public var completed: Expected?
        /// Entries that will get no answer because an error made the backend skip to Sync (extended protocol).
        public var skipped: Int = 0
    }

    /// Ring buffer of entries; `head` is the next to be answered.
    private var entries: [Expected] = []
    private var head = 0

    public init() {}

    /// Nothing is in flight.
    public var isEmpty: Bool { self.head == self.entries.count }

    /// Entries in flight.
    public var count: Int { self.entries.count - self.head }

    /// The next entry to be answered.
    public var first: Expected? { self.isEmpty ? nil : self.entries[self.head] }

    /// The entries in flight, oldest first.
    public var pending: ArraySlice<Expected> { self.entries[self.head...] }

    /// Whether an entry of `kind` is in flight (e.g. a Sync that will end the open batch).
    public func contains(_ kind: Expected.Kind) -> Bool {
        self.pending.contains { $0.kind == kind }
    }

    /// Records a message written to the backend.
    public mutating func append(_ expected: Expected) {
        if self.head > 0, self.head == self.entries.count {
            self.entries.removeAll(keepingCapacity: true)
            self.head = 0
        }
        self.entries.append(expected)
    }

    /// Drops the next entry (a `.local` one, answered without the backend).
    public mutating func removeFirst() {
        if self.head < self.entries.count { self.head += 1 }
    }

    /// Forgets everything (the connection is gone).
    public mutating func removeAll() {
        self.entries.removeAll(keepingCapacity: true)
        self.head = 0
    }

    /// Classifies one backend message by its type byte. Messages that end no entry take the disposition of
    /// the entry being answered; with nothing in flight (an idle pinned backend) only asynchronous messages
    /// are expected, and they are relayed.
    public mutating func receive(_ id: UInt8) -> Step {
        guard self.head < self.entries.count else {
            return Step(disposition: .relay, completed: nil)
        }
        let current = self.entries[self.head]
        let ends: Bool
        switch id {
        case BackendMessageID.readyForQuery.rawValue:
            ends = current.kind == .query || current.kind == .sync || current.kind == .functionCall
        case BackendMessageID.errorResponse.rawValue:
            if current.isExtended {
                self.head += 1
                // The server discards everything up to the next Sync.
                var skipped = 0
                while self.head < self.entries.count, self.entries[self.head].kind != .sync {
                    self.head += 1
                    skipped += 1
                }
                return Step(disposition: current.disposition, completed: current, skipped: skipped)
            }
            ends = false
        case BackendMessageID.parseComplete.rawValue:
            ends = current.kind == .parse
        case BackendMessageID.bindComplete.rawValue:
            ends = current.kind == .bind
        case BackendMessageID.closeComplete.rawValue:
            ends = current.kind == .close
        case BackendMessageID.noData.rawValue, BackendMessageID.rowDescription.rawValue:
            ends = current.kind == .describeStatement || current.kind == .describePortal || current.kind == .mergeDescribe
        case BackendMessageID.commandComplete.rawValue, BackendMessageID.emptyQueryResponse.rawValue,
             BackendMessageID.portalSuspended.rawValue:
            ends = current.kind == .execute
        default:
            ends = false
        }
        guard ends else {
            return Step(disposition: current.disposition, completed: nil)
        }
        self.head += 1
        return Step(disposition: current.disposition, completed: current)
    }
}
