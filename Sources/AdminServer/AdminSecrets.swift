import ProxyCore
import ShardMap

/// `GET /shardmap` shows passwords as `***`. So that a client can fetch the map, change it and `PUT` it
/// back (what a rebalance does), a `***` password in the new map means "keep the live one": the
/// password of the live server with the same host, port, user and database, or of the live `auth` user
/// with the same name. A `***` with nothing live to take it from is refused.
enum AdminSecrets {
    static let placeholder = "***"

    static func restore(_ map: ShardMap, from live: ShardMap) throws -> ShardMap {
        var map = map
        let liveURLs = live.shards.flatMap { [$0.primary] + $0.replicas }
        func restored(_ url: PostgresURL, field: String) throws -> PostgresURL {
            guard url.password == placeholder else { return url }
            guard let match = liveURLs.first(where: {
                $0.host == url.host && $0.port == url.port && $0.user == url.user && $0.database == url.database
            }) else {
                throw AdminError.invalid("""
                    \(field): the password is the redaction placeholder \(placeholder) but no live server \
                    \(url.user)@\(url.endpoint)/\(url.database) has one to keep; send the real password
                    """)
            }
            var url = url
            url.password = match.password
            return url
        }
        for index in map.shards.indices {
            map.shards[index].primary = try restored(map.shards[index].primary, field: "shards[\(index)].primary")
            for replica in map.shards[index].replicas.indices {
                map.shards[index].replicas[replica] = try restored(map.shards[index].replicas[replica],
                                                                   field: "shards[\(index)].replicas[\(replica)]")
            }
        }
        if var auth = map.auth {
            for index in auth.users.indices where auth.users[index].password == placeholder {
                guard let match = live.auth?.users.first(where: { $0.name == auth.users[index].name }) else {
                    throw AdminError.invalid("""
                        auth.users[\(index)].password: the password is the redaction placeholder \(placeholder) \
                        but the live map has no user "\(auth.users[index].name)"; send the real password
                        """)
                }
                auth.users[index].password = match.password
            }
            map.auth = auth
        }
        return map
    }
}
