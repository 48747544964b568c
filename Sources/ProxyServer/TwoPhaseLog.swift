import Foundation
import NIOConcurrencyHelpers
import ProxyCore

/// The durable record of commit decisions for transactions prepared on several shards (DESIGN §6).
///
/// One line per record, appended: `instance <id>` first (which names this proxy's gids, kept across
/// restarts), `boot <n>` each time a proxy opens the log (so that commit ids never repeat across restarts),
/// then `commit <id> <shard>=<gid> ...` — written and fsynced before any COMMIT PREPARED is sent — and
/// `done <id>` once every shard committed. On restart, and every few seconds, recovery commits the prepared
/// transactions of decisions not done, and rolls back this instance's prepared transactions that have no
/// decision (they were never decided: presumed abort). When the file passes `compactBytes` it is rewritten
/// with only what is still needed (instance, boot, decisions not done), fsynced and renamed into place.
///
/// One proxy per log: two proxies sharing a file would resolve each other's transactions.
public final class TwoPhaseLog: Sendable {
    public let path: String
    public let instance: String
    /// How many times a proxy opened this log, this one included.
    public let boot: Int
    let compactBytes: Int
    private let state: NIOLockedValueBox<State>

    private struct State {
        var fd: Int32
        /// Decided, not yet known committed everywhere: id → the decision's line.
        var pending: [String: String]
        var bytes: Int
    }

    /// Opens (or creates) the log at `path`, compacting it.
    public init(path: String, compactBytes: Int = 16 << 20) throws {
        self.path = path
        self.compactBytes = compactBytes
        var instance: String?
        var boot = 0
        var pending: [String: String] = [:]
        if let text = try? String(contentsOfFile: path, encoding: .utf8) {
            for line in text.split(separator: "\n") {
                let words = line.split(separator: " ").map(String.init)
                guard let kind = words.first else { continue }
                switch kind {
                case "instance" where words.count == 2: instance = words[1]
                case "boot" where words.count == 2: boot = max(boot, Int(words[1]) ?? 0)
                case "commit" where words.count >= 2: pending[words[1]] = String(line)
                case "done" where words.count == 2: pending[words[1]] = nil
                default: continue
                }
            }
        }
        let id = instance ?? String(UInt32.random(in: 0 ... .max), radix: 16)
        self.instance = id
        self.boot = boot + 1
        let fd = try Self.rewrite(path, instance: id, boot: self.boot, pending: pending)
        self.state = NIOLockedValueBox(State(fd: fd, pending: pending, bytes: 0))
    }

    /// Writes the log's still-needed lines to a new file, fsynced and renamed over `path`; returns it open
    /// for appending.
    private static func rewrite(_ path: String, instance: String, boot: Int, pending: [String: String]) throws -> Int32 {
        let temporary = path + ".new"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0o600)
        guard fd >= 0 else { throw POSIXFailure(call: "open \(temporary)", code: errno) }
        let text = "instance \(instance)\nboot \(boot)\n" + pending.values.sorted().map { $0 + "\n" }.joined()
        do {
            try Self.write(Array(text.utf8), to: fd, path: temporary)
            guard fsync(fd) == 0 else { throw POSIXFailure(call: "fsync \(temporary)", code: errno) }
            guard rename(temporary, path) == 0 else { throw POSIXFailure(call: "rename \(temporary)", code: errno) }
        } catch {
            close(fd)
            throw error
        }
        // The rename itself is durable once the directory is.
        let directory = open((path as NSString).deletingLastPathComponent.isEmpty ? "." : (path as NSString).deletingLastPathComponent,
                             O_RDONLY)
        if directory >= 0 {
            _ = fsync(directory)
            close(directory)
        }
        return fd
    }

    private static func write(_ bytes: [UInt8], to fd: Int32, path: String) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { Foundation.write(fd, $0.baseAddress! + offset, bytes.count - offset) }
            guard n > 0 else { throw POSIXFailure(call: "write \(path)", code: errno) }
            offset += n
        }
    }

    deinit {
        self.state.withLockedValue { close($0.fd) }
    }

    /// Decisions written and not yet done: id → gids.
    public var pending: [String: [String]] {
        self.state.withLockedValue { state in
            state.pending.mapValues { line in
                line.split(separator: " ").dropFirst(2).compactMap { $0.split(separator: "=", maxSplits: 1).last.map(String.init) }
            }
        }
    }

    public func isDecided(_ id: String) -> Bool { self.state.withLockedValue { $0.pending[id] != nil } }

    /// Records the decision durably (blocking: call it off the event loops). Compacts the file first when
    /// it has grown past `compactBytes`.
    public func recordCommit(_ decision: TwoPhaseDecision) throws {
        let line = "commit \(decision.id) " + decision.participants.map { "\($0.shard)=\($0.gid)" }.joined(separator: " ")
        try self.state.withLockedValue { state in
            if state.bytes > self.compactBytes {
                let fd = try Self.rewrite(self.path, instance: self.instance, boot: self.boot, pending: state.pending)
                close(state.fd)
                state.fd = fd
                state.bytes = 0
            }
            try self.append(line + "\n", sync: true, state: &state)
            state.pending[decision.id] = line
        }
    }

    /// Every shard committed `id` (no fsync: losing this line only makes recovery look again).
    public func recordDone(_ id: String) {
        self.state.withLockedValue { state in
            guard state.pending.removeValue(forKey: id) != nil else { return }
            try? self.append("done \(id)\n", sync: false, state: &state)
        }
    }

    private func append(_ line: String, sync: Bool, state: inout State) throws {
        let bytes = Array(line.utf8)
        try Self.write(bytes, to: state.fd, path: self.path)
        state.bytes += bytes.count
        if sync, fsync(state.fd) != 0 { throw POSIXFailure(call: "fsync \(self.path)", code: errno) }
    }
}
