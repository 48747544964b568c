/// The named prepared statements of every client on one event loop, by text and parameter types.
///
/// Two clients that prepare the same text with the same parameter types share one id, so a backend
/// connection that prepared `sg_<id>` for one of them serves the other without a new Parse (as PgBouncer's
/// prepared-statement support does). Ids are never reused, so a backend can never run another statement
/// under a name it was given for this one. Entries live while some client holds the statement.
public struct StatementCatalog: Sendable {
    public struct Key: Hashable, Sendable {
        public var sql: String
        public var parameterTypes: [UInt32]

        public init(sql: String, parameterTypes: [UInt32]) {
            self.sql = sql
            self.parameterTypes = parameterTypes
        }
    }

    private var ids: [Key: (id: Int, references: Int)] = [:]
    private var nextID = 1

    public init() {}

    /// Distinct statements held by clients.
    public var count: Int { self.ids.count }

    /// The id of `key`, registering one more holder.
    public mutating func retain(_ key: Key) -> Int {
        if let entry = self.ids[key] {
            self.ids[key] = (entry.id, entry.references + 1)
            return entry.id
        }
        let id = self.nextID
        self.nextID += 1
        self.ids[key] = (id, 1)
        return id
    }

    /// One holder of `key` let go of it.
    public mutating func release(_ key: Key) {
        guard let entry = self.ids[key] else { return }
        if entry.references <= 1 {
            self.ids[key] = nil
        } else {
            self.ids[key] = (entry.id, entry.references - 1)
        }
    }
}
