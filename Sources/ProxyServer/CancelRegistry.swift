import NIOConcurrencyHelpers
import NIOCore
import PGWire

/// Maps the BackendKeyData ShardGate gave each client to that client's session, across event loops.
final class CancelRegistry: Sendable {
    /// Strong on purpose: a weak reference would give every client handler a refcount side table, which
    /// slows each retain and release on the hot path. The entry is removed when the client closes.
    struct Entry: Sendable {
        var session: NIOLoopBound<ClientChannelHandler>
    }

    private let entries = NIOLockedValueBox<[BackendKey: Entry]>([:])

    /// Registers `client` under a fresh random key and returns the key.
    func register(_ client: ClientChannelHandler, on eventLoop: any EventLoop) -> BackendKey {
        let entry = Entry(session: NIOLoopBound(client, eventLoop: eventLoop))
        return self.entries.withLockedValue { entries in
            while true {
                let key = BackendKey(processID: Int32.random(in: 1 ... .max), secretKey: Int32.random(in: .min ... .max))
                if entries[key] == nil {
                    entries[key] = entry
                    return key
                }
            }
        }
    }

    func unregister(_ key: BackendKey) {
        _ = self.entries.withLockedValue { $0.removeValue(forKey: key) }
    }

    /// Asks the session holding `key` to cancel what its backend is running. Unknown keys are ignored,
    /// as PostgreSQL ignores them, so that a client cannot probe for keys.
    func cancel(_ key: BackendKey) {
        guard let entry = self.entries.withLockedValue({ $0[key] }) else { return }
        let bound = entry.session
        bound.eventLoop.execute {
            bound.value.cancelRunningStatement()
        }
    }
}
