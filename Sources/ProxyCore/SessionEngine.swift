import NIOCore
import PGWire
import ShardMap
import SQLRouting

/// The leases of a source: one lease, or a group's members. One lease is held without an array (the
/// commonest case, on every extended-protocol message).
struct LeaseIDs: RandomAccessCollection {
    private let single: SessionEngine.LeaseID
    private let members: [SessionEngine.LeaseID]?

    init(_ id: SessionEngine.LeaseID) {
        self.single = id
        self.members = nil
    }

    init(_ members: [SessionEngine.LeaseID]) {
        self.single = 0
        self.members = members
    }

    var startIndex: Int { 0 }
    var endIndex: Int { self.members?.count ?? 1 }
    subscript(position: Int) -> SessionEngine.LeaseID {
        if let members = self.members { return members[position] }
        precondition(position == 0, "index out of range")
        return self.single
    }
}

/// The query-time logic of one client session after login: where each client message goes, which
/// backends the session leases, and how their answers become the client's answers.
///
/// Routing (DESIGN §4): every statement is analyzed with PostgreSQL's parser (through the loop's cached
/// `SQLRouter`) and planned against the shard map. A statement for one shard runs on a lease of that
/// shard's primary, or for a read outside a transaction on an in-rotation replica that has replayed the
/// session's own writes (`ReadFence`); a statement for several shards runs on a lease of each (a *group*)
/// and their answers are combined (`ScatterCombiner`).
///
/// Ordering: the client must get answers in the order of its messages. At any time one source — a lease,
/// or the group — has answers in flight; a message for another source waits (`waiting`) until those
/// answers are in. Within an extended-protocol batch, switching to another backend first ends the batch on
/// the old one with a Sync whose ReadyForQuery is swallowed.
///
/// Transactions start lazily: `BEGIN` is answered by ShardGate and replayed on each shard the transaction
/// then touches (its *participants*), each on its primary (replicas for `BEGIN READ ONLY`).
///
/// The engine is a value type without sockets or timers: events go in, `Action`s come out (collected in
/// order; the caller drains them with `nextAction()` after each event).
public struct SessionEngine {
    public typealias LeaseID = Int

    public enum Action {
        /// Lease a backend of `target`; answer with `leaseGranted` or `leaseFailed`.
        case acquire(LeaseID, BackendTarget, BackendClaim)
        /// Give up a lease that is still being acquired.
        case cancelAcquire(LeaseID)
        /// The lease is over and its backend is clean: back to the pool.
        case release(LeaseID)
        /// The lease is over and its backend must not serve anyone else: close it.
        case discard(LeaseID)
        /// Write the client frame being processed, unchanged, to the lease's backend.
        case forward(LeaseID)
        /// Write these bytes to the lease's backend.
        case write(LeaseID, ByteBuffer)
        /// Send these bytes to the client.
        case send(ByteBuffer)
        /// Stop or resume reading from the lease's backend (its combined answer is ahead of the others').
        case pauseReading(LeaseID)
        case resumeReading(LeaseID)
        /// Close the client connection (after sending the error, if any); every lease was disposed of before.
        case closeClient(ErrorNoticeFields?)
        /// Write the decision to commit these prepared transactions durably, then call `decisionLogged`.
        case logCommitDecision(TwoPhaseDecision)
        /// The two-phase commit `id` is over; `complete`: committed on every shard (or rolled back), so the
        /// log may mark it done (else recovery completes it).
        case twoPhaseFinished(String, complete: Bool)
        /// A statement waits for paused slots: call `clientFrame`-free `resume(context:)` when the pause ends.
        case waitForPause
    }

    /// What the caller does with one backend message.
    public struct BackendStep: Equatable {
        public var disposition: ResponseTracker.Disposition
        /// Until the next call, DataRow and CopyData messages may be relayed without asking (the answer in
        /// progress is relayed and they end nothing).
        public var relayRows: Bool
    }

    // MARK: state

    enum Source: Equatable {
        case lease(LeaseID)
        case group
    }

    /// A write to a lease, kept until the lease is attached (or performed at once when it is).
    enum Queued {
        /// A client frame, answered per `expected` (nil: answered by nothing, e.g. Flush, CopyData).
        case frame(PGFrame, ResponseTracker.Expected?)
        /// Prepared statement `id` must exist on the backend (a Parse is injected when it does not).
        case statement(Int, StatementCatalog.Key)
        /// The backend's unnamed statement must be this client's (a Parse is injected when it is not).
        case unnamed(StatementCatalog.Key)
        /// Ready-made bytes with their answers.
        case bytes(ByteBuffer, [ResponseTracker.Expected])
        /// The client's Parse of named statement `id`: a Parse of `sg_<id>` answered per `disposition`, or,
        /// when the backend has it already, a ParseComplete from ShardGate in its place.
        case prepare(Int, StatementCatalog.Key, ResponseTracker.Disposition)
        /// An answer ShardGate gives itself, in order after what was written before it.
        case local(ByteBuffer)
        /// The statement written before deallocated every prepared statement of the backend (DISCARD ALL).
        case forgetStatements
    }

    /// How the client's transaction-ending statement on a participant ends it.
    enum Ending: Equatable {
        case commit
        case rollback
    }

    struct Lease {
        let id: LeaseID
        let target: BackendTarget
        /// Set once attached.
        var backend: BackendState?
        var queued: [Queued] = []
        var tracker = ResponseTracker()
        /// Transaction status of the backend's last ReadyForQuery.
        var status: BackendMessage.TransactionStatus = .idle
        /// Extended-protocol messages were written since the last Sync.
        var batchOpen = false
        /// Extended-protocol messages were written since the last Sync or Flush (their answers are held
        /// by the server until one of them).
        var unflushed = false
        /// Holds session state that cannot follow the client: stays with it, closed afterwards.
        var pinned = false
        /// Takes part in the client's explicit transaction.
        var participant = false
        /// The backend's unnamed statement is this client's current one.
        var unnamedValid = false
        /// Member of the current group.
        var member: Int?
        /// A COPY FROM STDIN is running here.
        var copyIn = false
        /// Something a client saw failed since the last ReadyForQuery.
        var sawError = false
        /// Notifications that arrived while another source was answering.
        var deferred: ByteBuffer?
        /// The setting the statement in flight makes, recorded at its ReadyForQuery if it succeeded.
        var pendingChange: SettingChange?
        /// Text the open transaction's later participants must replay, recorded likewise.
        var pendingReplay: String?
        /// A write ran here since the last ReadyForQuery outside a transaction (a read fence is due).
        var wrote = false
        /// The client's COMMIT/ROLLBACK is in flight here.
        var ending: Ending?
        /// Answers ShardGate gives itself, for the `.local` entries of `tracker`, in order.
        var localAnswers: [ByteBuffer] = []
        /// Writes wait (in `queued`) until lease `after` has answered everything: a write over several
        /// shards takes them one after another in shard order (`orderWrites`).
        var after: LeaseID?
        /// The first member of such a write waits (in `queued`) until these members are attached too: it
        /// takes no row lock while the session still waits for a pool slot of another shard.
        var gate: [LeaseID] = []
        /// Not asked of its pool yet: a member of a group over several shards that waits until the session
        /// holds a backend (`acquireDeferred`).
        var acquireLater = false
        /// `queued[index]` holds the frame that was being handled when it was queued (serial `frame`).
        var queuedCurrent: (frame: UInt64, index: Int)?

        var isAttached: Bool { self.backend != nil }
        var isBusy: Bool { !self.tracker.isEmpty || self.queued.contains(where: \.isAnswered) }
    }

    /// A COPY FROM STDIN into a sharded table: first (without a column list) ShardGate asks where the key
    /// is among the table's columns, then the rows are split by key over every shard.
    enum CopyIn {
        case lookingUp(frame: PGFrame, format: CopyInFormat, lease: LeaseID, found: Int?, failed: Bool)
        case splitting(CopySplitter)
    }

    struct Group {
        var members: [LeaseID]
        var combiner: ScatterCombiner
    }

    /// A client's prepared statement (named, or the unnamed one).
    struct ClientStatement {
        var key: StatementCatalog.Key
        var analysis: SQLAnalysis
        /// Catalog id (named statements).
        var id: Int?
    }

    struct Transaction {
        /// What starts it on a new participant.
        var begin: String
        var readOnly: Bool
        /// Shards written in it: with two or more, COMMIT is a two-phase commit.
        var writers: Set<Int> = []
        /// Opened by ShardGate around one statement on several shards (autocommit for the client): it
        /// commits (two-phase) or rolls back as soon as that statement's answer is complete.
        var implicit = false
        /// An implicit transaction of an extended-protocol batch that moves on to another backend before the
        /// client's Sync: it ends there, and its ReadyForQuery is not the client's (that comes at the Sync).
        var endsMidBatch = false
        /// ShardGate refused a statement: the transaction is failed for the client (25P02 until it ends),
        /// although no participant knows it.
        var failedLocally = false
        /// Statements since BEGIN a new participant must run to reach the same point (SET LOCAL,
        /// SET TRANSACTION, savepoints).
        var replay: [String] = []
        var savepoints: [String] = []
        /// Session-level SET/RESET done inside: they take effect at COMMIT.
        var pendingSettings: [SettingChange] = []
        /// BEGIN was answered by ShardGate (no participant has it yet).
        var answeredLocally: Bool
    }

    let shardNames: [String]
    var leases: [Lease] = []
    var nextLeaseID = 1
    /// The queue and tracker storage of the last lease released, emptied, for the next new lease: an
    /// autocommit statement then allocates neither.
    var spareQueue: [Queued] = []
    var spareTracker = ResponseTracker()
    /// Counts the client frames given to `clientFrame`.
    var frameSerial: UInt64 = 0
    /// `frameSerial` while the caller still holds that frame's bytes (`clientFrame` until
    /// `clientFrameHandled`), else 0: a lease granted meanwhile forwards them instead of copying them.
    var handlingFrame: UInt64 = 0
    var group: Group?
    /// The current group's combined ReadyForQuery was counted.
    var groupAnswered = false
    /// The source with an open extended-protocol batch (messages written since the last Sync).
    var batch: Source?
    /// An error ended the current batch: client messages up to Sync are dropped, as PostgreSQL does.
    var skipping = false
    /// Parse messages that wait for the message that decides where they go.
    var held: [PGFrame] = []
    /// Client frames waiting for the answers in flight to finish.
    var waiting: [PGFrame] = []
    var waitingHead = 0
    var statements: [String: ClientStatement] = [:]
    /// SQL-level prepared statements (PREPARE), by name.
    var sqlStatements: [String: SQLPrepared] = [:]
    var portals: [String: Source] = [:]
    var localPortals: [String: LocalPortal] = [:]
    /// Portals over several shards executed with a row limit (they cannot be fetched from again).
    var limitedPortals: Set<String> = []
    var transaction: Transaction?
    /// A COPY FROM STDIN into a sharded table in progress.
    var copyIn: CopyIn?
    /// A commit over several shards in progress.
    var twoPhase: TwoPhaseCommit?
    var fences: [Int: ReadFence] = [:]
    public internal(set) var parameters: SessionParameters
    public internal(set) var settings = SessionSettings()
    /// The next statement pins the backend that runs it.
    var pinNext = false
    /// Slots of sharded tables the open transaction (or the statement in flight) touched; nil: any slot.
    var touched: Set<Int>? = []
    /// Client-visible ReadyForQuery answers owed for statements sent to backends, oldest first (metrics).
    var units: [Unit] = []
    var unitsHead = 0

    struct Unit {
        var start: NIODeadline
        var route: RouteKind
        var role: ServerRole
    }
    var actions: [Action] = []
    var actionHead = 0
    var closed = false
    /// Proxy shutdown: close once nothing is in flight.
    var draining = false
    let allocator = ByteBufferAllocator()

    public init(parameters: SessionParameters, shardNames: [String]) {
        self.parameters = parameters
        self.shardNames = shardNames
    }

    // MARK: actions

    /// The next action to perform, in order; nil when all were taken.
    public mutating func nextAction() -> Action? {
        guard self.actionHead < self.actions.count else {
            if self.actionHead > 0 {
                self.actions.removeAll(keepingCapacity: true)
                self.actionHead = 0
            }
            return nil
        }
        defer { self.actionHead += 1 }
        return self.actions[self.actionHead]
    }

    public var hasActions: Bool { self.actionHead < self.actions.count }

    mutating func emit(_ action: Action) {
        self.actions.append(action)
    }

    mutating func sendToClient(_ messages: [BackendMessage]) {
        var out = self.allocator.buffer(capacity: 64)
        for message in messages { message.encode(into: &out) }
        self.emit(.send(out))
    }

    // MARK: queries for the caller

    /// Nothing is in flight and no lease is held except pinned ones.
    public var isIdle: Bool {
        self.leases.allSatisfy { $0.pinned && !$0.isBusy } && self.waitingHead == self.waiting.count
    }

    /// The lease's backend is attached and serving this session.
    public func isAttached(_ id: LeaseID) -> Bool {
        self.leases.first { $0.id == id }?.isAttached ?? false
    }

    /// Whether the session has an open transaction or a statement in flight that touched any of `slots`
    /// (a pause waits for those to finish).
    public func touches(_ slots: Set<Int>) -> Bool {
        guard self.transaction != nil || self.inFlight != nil || self.waitingHead < self.waiting.count else { return false }
        guard let touched = self.touched else { return true }
        return !touched.isDisjoint(with: slots)
    }

    /// The transaction status the client sees.
    var clientStatus: BackendMessage.TransactionStatus {
        guard let transaction else { return .idle }
        if transaction.failedLocally || self.leases.contains(where: { $0.participant && $0.status == .failedTransaction }) {
            return .failedTransaction
        }
        return .inTransaction
    }

    func index(of id: LeaseID) -> Int? {
        self.leases.firstIndex { $0.id == id }
    }

    /// The source with answers in flight, if any.
    var inFlight: Source? {
        if let group, group.members.contains(where: { id in self.leases.first { $0.id == id }?.isBusy ?? false }) {
            return .group
        }
        return self.leases.first(where: \.isBusy).map { .lease($0.id) }
    }
}

extension SessionEngine.Queued {
    /// Whether the backend will answer it.
    var isAnswered: Bool {
        switch self {
        case .frame(_, let expected): return expected != nil
        case .statement, .unnamed, .forgetStatements: return false
        case .bytes(_, let expected): return !expected.isEmpty
        case .prepare, .local: return true
        }
    }
}
