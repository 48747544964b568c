// swift-tools-version:6.1
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

/// The proxy's hot path crosses PGWire, ProxyCore and ProxyServer; let the optimizer specialize and
/// inline across them (generic pool state, message enums) in release builds. Dynamic exclusivity checks
/// are off there in release builds (debug builds and tests keep them): they showed up in profiles on
/// every handler property access.
let hotPath: [SwiftSetting] = strict + [
    .unsafeFlags(["-cross-module-optimization", "-enforce-exclusivity=unchecked"], .when(configuration: .release)),
]

let package = Package(
    name: "shardgate",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "shardgate", targets: ["shardgate"]),
        .executable(name: "shardctl", targets: ["shardctl"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
    ],
    targets: [
        // PostgreSQL v3 wire protocol: frames, typed messages, decoders and encoders.
        .target(
            name: "PGWire",
            dependencies: [.product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: hotPath
        ),
        // shardmap.json: model, validation, slot hash, slot ranges, connection URLs.
        .target(name: "ShardMap", swiftSettings: strict),
        // SCRAM-SHA-256 (server and client side) and md5 password authentication.
        .target(
            name: "PGAuth",
            dependencies: [.product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strict
        ),
        // Cross-shard result merging: PostgreSQL value ordering, k-way merge, aggregates, group/distinct/limit.
        .target(
            name: "ResultMerge",
            dependencies: ["PGWire", .product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: hotPath
        ),
        // Session, backend and pool state machines; lag model; metrics. No sockets.
        .target(
            name: "ProxyCore",
            dependencies: [
                "PGWire", "ShardMap", "PGAuth", "SQLRouting", "ResultMerge",
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: hotPath
        ),
        // NIO bootstraps, channel handlers, per-event-loop pools, TLS.
        .target(
            name: "ProxyServer",
            dependencies: [
                "ProxyCore", "PGWire", "ShardMap", "PGAuth", "SQLRouting", "ResultMerge",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                // The lag monitor's dedicated connections to primaries and replicas.
                .product(name: "PostgresNIO", package: "postgres-nio"),
            ],
            swiftSettings: hotPath
        ),
        // The HTTP admin port (DESIGN §7): health, lag, status, metrics, shard map, slot pause, dashboard.
        .target(
            name: "AdminServer",
            dependencies: [
                "ProxyCore", "ShardMap",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "shardgate",
            dependencies: [
                "ProxyServer", "AdminServer", "ShardMap",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: strict
        ),
        // libpq (Debian libpq-dev), for shardctl's SQL on shard primaries.
        .systemLibrary(name: "CLibPQ", providers: [.apt(["libpq-dev"])]),
        // shardctl's library: admin-port client, status tables, rebalance orchestration, verify.
        .target(
            name: "ShardCtlKit",
            dependencies: [
                "ShardMap", "CLibPQ",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "shardctl",
            dependencies: [
                "ShardCtlKit", "ShardMap",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict
        ),
        // libpg_query (PostgreSQL's parser as a C library) from Debian's libpg-query-dev.
        .systemLibrary(name: "CPgQuery", providers: [.apt(["libpg-query-dev"])]),
        // SQL → statement analysis (kind, tables, shard-key predicates) → route plan; analysis cache.
        .target(name: "SQLRouting", dependencies: ["CPgQuery", "ShardMap"], swiftSettings: hotPath),
        // Microbenchmark of cached and uncached routing (`swift run -c release route-bench`).
        .executableTarget(name: "route-bench", dependencies: ["SQLRouting", "ShardMap"], swiftSettings: strict),
        .testTarget(name: "PGWireTests", dependencies: ["PGWire"], swiftSettings: strict),
        .testTarget(name: "ShardMapTests", dependencies: ["ShardMap"], swiftSettings: strict),
        .testTarget(name: "PGAuthTests", dependencies: ["PGAuth"], swiftSettings: strict),
        .testTarget(name: "ProxyCoreTests", dependencies: ["ProxyCore", "PGWire", "ShardMap", "SQLRouting"], swiftSettings: strict),
        .testTarget(name: "SQLRoutingTests", dependencies: ["SQLRouting", "ShardMap"], swiftSettings: strict),
        .testTarget(name: "ResultMergeTests", dependencies: ["ResultMerge", "PGWire"], swiftSettings: strict),
        .testTarget(
            name: "AdminServerTests",
            dependencies: [
                "AdminServer", "ProxyCore", "ShardMap",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: strict
        ),
        .testTarget(name: "ShardCtlKitTests", dependencies: ["ShardCtlKit", "ShardMap"], swiftSettings: strict),
        // Needs the test cluster that scripts/test starts; without it these tests fail and say so (never skip).
        .testTarget(
            name: "IntegrationTests",
            dependencies: [
                "ShardMap", "ProxyCore", "ProxyServer",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
    ]
)
