/// The run-time parameter values of one backend connection: the server's defaults (what it reported at
/// connection start) and the entries that differ from them. Keeping the differences apart makes the
/// per-lease check "does this backend already match the client?" look at a handful of entries, not all.
public struct BackendParameters: Sendable, Equatable {
    /// Values reported when the connection started: what RESET returns to.
    public let defaults: [String: String]
    /// Values that differ from `defaults`, including parameters the server never reports that the proxy
    /// set (those have no default entry).
    public private(set) var changed: [String: String] = [:]
    /// Settings PostgreSQL does not report that a session's SET statements made here, by name (see
    /// `SessionSettings`): what the next session must reset or may reuse.
    public var replayed: [String: String] = [:]

    public init(defaults: [String: String]) {
        self.defaults = defaults
    }

    /// Builds the state from a full map of current values.
    public init(defaults: [String: String], current: [String: String]) {
        self.defaults = defaults
        for (name, value) in current where defaults[name] != value {
            self.changed[name] = value
        }
    }

    public subscript(name: String) -> String? {
        self.changed[name] ?? self.defaults[name]
    }

    /// Records a value (from ParameterStatus, or one the proxy set); nil means back to the default.
    public mutating func set(_ name: String, _ value: String?) {
        if let value, self.defaults[name] != value {
            self.changed[name] = value
        } else {
            self.changed[name] = nil
        }
    }

    /// All current values.
    public var current: [String: String] {
        self.defaults.merging(self.changed) { _, changed in changed }
    }
}
