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
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
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
        // Session, backend and pool state machines. No sockets.
        .target(
            name: "ProxyCore",
            dependencies: [
                "PGWire", "ShardMap", "PGAuth", "SQLRouting",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: hotPath
        ),
        // NIO bootstraps, channel handlers, per-event-loop pools, TLS.
        .target(
            name: "ProxyServer",
            dependencies: [
                "ProxyCore", "PGWire", "ShardMap", "PGAuth", "SQLRouting",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: hotPath
        ),
        .executableTarget(
            name: "shardgate",
            dependencies: [
                "ProxyServer", "ShardMap",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
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
        .testTarget(name: "ProxyCoreTests", dependencies: ["ProxyCore"], swiftSettings: strict),
        .testTarget(name: "SQLRoutingTests", dependencies: ["SQLRouting", "ShardMap"], swiftSettings: strict),
        // Needs the test cluster that scripts/test starts; without it these tests fail and say so (never skip).
        .testTarget(
            name: "IntegrationTests",
            dependencies: [
                "ShardMap",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
    ]
)
