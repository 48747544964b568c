import Foundation

/// Where one move of a rebalance is. Phases only go forward; each is written to the journal once its
/// step has completed (`pausing` and `flipping` are written *before* their step, so that a crash in the
/// middle is known).
public enum MovePhase: String, Sendable, Codable, CaseIterable, Comparable {
    /// Nothing done yet.
    case planned
    /// The tables exist on the target (missing ones copied from the source's schema).
    case schemaReady = "schema_ready"
    /// The publication exists on the source.
    case published
    /// The subscription exists on the target: PostgreSQL copies the rows and streams changes.
    case subscribed
    /// Every table is copied and the subscription streams with small lag.
    case caughtUp = "caught_up"
    /// The slots are being (or are) paused on the proxies; no new map was sent yet.
    case pausing
    /// The new map is being pushed; it may be live on some proxies.
    case flipping
    /// The new map is live on every proxy and the slots are resumed.
    case flipped
    /// Subscription, publication and slot dropped, moved rows deleted from the source.
    case done
    /// Undone by `--abort` (or never started because an earlier move was aborted).
    case aborted

    static let order: [MovePhase] = [.planned, .schemaReady, .published, .subscribed, .caughtUp, .pausing,
                                     .flipping, .flipped, .done, .aborted]

    public static func < (lhs: MovePhase, rhs: MovePhase) -> Bool {
        order.firstIndex(of: lhs)! < order.firstIndex(of: rhs)!
    }
}

/// The journal of one `shardctl rebalance` run (a JSON file, `./shardgate-rebalance.journal` unless
/// `--journal` says otherwise): the plan, the names of what it created and the phase of each move.
public struct RebalanceJournal: Sendable, Equatable, Codable {
    /// The state of the whole run.
    public enum State: String, Sendable, Codable {
        case running, done, aborted
    }

    /// One move and what it created.
    public struct Move: Sendable, Equatable, Codable {
        public var source: String
        public var target: String
        /// Slot list notation.
        public var slots: String
        public var phase: MovePhase
        /// Publication on the source; also the name of the subscription on the target and of its
        /// replication slot on the source.
        public var name: String
        /// Tables the rebalance created on the target (`"schema"."table"`), dropped again by `--abort`.
        public var createdTables: [String] = []
        /// The sharded tables this move carries (those that exist on the source).
        public var tables: [Table] = []
        /// The subscription's oid on the target (names its table-sync slots on the source).
        public var subscriptionOid: String?
        /// The map version this move's cutover pushes (set when the flip starts).
        public var newVersion: Int?
        /// The target primary's WAL position sent as the read fence.
        public var fence: String?
        /// How long the slots were paused, in milliseconds.
        public var pauseMs: Double?
        /// Rows deleted from the source (cleanup) or from the target (abort).
        public var rowsDeleted: Int?
        /// Milliseconds spent in each cutover step (pause, sync, flip, resume), for the report.
        public var cutoverSteps: [String: Double]?

        public init(_ move: RebalanceMove, name: String) {
            self.source = move.source
            self.target = move.target
            self.slots = move.slotList
            self.phase = .planned
            self.name = name
        }
    }

    /// A sharded table of a move: its name and key in the map, and its relation on the source.
    public struct Table: Sendable, Equatable, Codable {
        public var mapName: String
        public var key: String
        public var type: String
        public var relation: String

        public init(mapName: String, key: String, type: String, relation: String) {
            self.mapName = mapName
            self.key = key
            self.type = type
            self.relation = relation
        }
    }

    /// A timestamped line of what happened, for the operator.
    public struct Event: Sendable, Equatable, Codable {
        public var at: String
        public var text: String
    }

    public static let currentFormat = 1

    public var format: Int = RebalanceJournal.currentFormat
    /// Short unique id, part of every object name (`shardgate_rb_<id>_<n>`).
    public var id: String
    public var createdAt: String
    public var updatedAt: String
    /// The `--proxy` URLs of the run; `--resume` and `--abort` use the same ones.
    public var proxies: [String]
    /// The map version the plan was made from.
    public var baseVersion: Int
    public var state: State
    public var moves: [Move]
    public var lastError: String?
    public var events: [Event] = []

    /// A fresh journal for `plan` (every move `planned`).
    public init(id: String = RebalanceJournal.makeID(), plan: RebalancePlan, proxies: [String], now: Date = Date()) {
        self.id = id
        self.createdAt = Self.timestamp(now)
        self.updatedAt = self.createdAt
        self.proxies = proxies
        self.baseVersion = plan.baseVersion
        self.state = .running
        self.moves = plan.moves.enumerated().map { Move($0.element, name: "shardgate_rb_\(id)_\($0.offset + 1)") }
    }

    /// Eight lowercase hex digits.
    public static func makeID() -> String {
        String(UInt32.random(in: .min ... .max), radix: 16).leftPadded(to: 8)
    }

    /// The prefix of every object a rebalance creates.
    public static let objectPrefix = "shardgate_rb_"

    static func timestamp(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
    }

    /// Appends an event (keeps the last 200).
    public mutating func record(_ text: String, now: Date = Date()) {
        self.events.append(Event(at: Self.timestamp(now), text: text))
        if self.events.count > 200 { self.events.removeFirst(self.events.count - 200) }
        self.updatedAt = Self.timestamp(now)
    }

    // MARK: JSON

    public static func decode(_ data: Data) throws -> RebalanceJournal {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let journal = try decoder.decode(RebalanceJournal.self, from: data)
        guard journal.format == currentFormat else {
            throw RebalanceError.journal("", "format \(journal.format) is not the \(currentFormat) this shardctl writes")
        }
        return journal
    }

    public func encoded() throws -> Data {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(self) + Data("\n".utf8)
    }
}

extension String {
    func leftPadded(to width: Int, with pad: Character = "0") -> String {
        self.count >= width ? self : String(repeating: pad, count: width - self.count) + self
    }
}
