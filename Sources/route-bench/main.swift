// Microbenchmark of SQLRouting: median time of a cached route lookup and of an uncached
// parse + analysis + plan, for a pgbench-sized statement. Release build:
//
//     swift run -c release route-bench              # the benchmark
//     swift run -c release route-bench "SELECT ..." # show one statement's analysis and plan
//
// Targets (issue 3): cached ≤ 5 µs, uncached ≤ 50 µs median.
import Foundation
import SQLRouting
import ShardMap

let mapJSON = #"""
    {
      "version": 1,
      "shards": [
        {"name": "s0", "primary": "postgresql://postgres@127.0.0.1:5500/app"},
        {"name": "s1", "primary": "postgresql://postgres@127.0.0.1:5502/app"}
      ],
      "slots": {"s0": "0-511", "s1": "512-1023"},
      "tables": {
        "users": {"shard_key": "id", "type": "bigint"},
        "orders": {"shard_key": "user_id", "type": "bigint"},
        "sessions": {"shard_key": "token", "type": "text"},
        "countries": {"reference": true},
        "pgbench_accounts": {"shard_key": "aid", "type": "bigint"}
      }
    }
    """#

let map: ShardMap
do {
    map = try ShardMap.decode(Data(mapJSON.utf8), environment: [:])
} catch {
    print("map: \(error)")
    exit(1)
}

if CommandLine.arguments.count > 1 {
    let sql = CommandLine.arguments[1]
    do {
        let analysis = try SQLAnalyzer.analyze(sql, tables: map.tables)
        for statement in analysis.statements { print(statement) }
        if let override = analysis.override { print("override:", override) }
        print(try RoutePlanner.plan(analysis, map: map))
    } catch {
        print(error)
    }
    exit(0)
}

/// Median nanoseconds per call of `body`, over `samples` batches of `batch` calls.
func medianNanoseconds(samples: Int = 301, batch: Int = 200, _ body: (Int) -> Void) -> Double {
    var perCall: [Double] = []
    perCall.reserveCapacity(samples)
    let clock = ContinuousClock()
    var n = 0
    for _ in 0..<samples {
        let start = clock.now
        for _ in 0..<batch {
            body(n)
            n &+= 1
        }
        let elapsed = clock.now - start
        let nanos = Double(elapsed.components.seconds) * 1e9 + Double(elapsed.components.attoseconds) / 1e9
        perCall.append(nanos / Double(batch))
    }
    perCall.sort()
    return perCall[perCall.count / 2]
}

// Distinct texts of one shape, built beforehand so that string building is not measured.
let texts = (0..<1000).map { "SELECT abalance FROM pgbench_accounts WHERE aid = \(12345 + $0 * 7919)" }
var router = SQLRouter(map: map)
var sink = 0

// Warm up (and fill the cache with the shape).
for text in texts.prefix(100) {
    if case .shard(let index) = try! router.route(text).target { sink &+= index }
}

let cached = medianNanoseconds { n in
    if case .shard(let index) = try! router.route(texts[n % texts.count]).target { sink &+= index }
}
let uncached = medianNanoseconds(samples: 101, batch: 100) { n in
    let analysis = try! SQLAnalyzer.analyze(texts[n % texts.count], tables: map.tables)
    if case .shard(let index) = try! RoutePlanner.plan(analysis, map: map).target { sink &+= index }
}
let parameterized = medianNanoseconds { n in
    let parameters: BindParameters = [.text(String(12345 + n % 1000))]
    let plan = try! router.route("SELECT abalance FROM pgbench_accounts WHERE aid = $1", parameters: parameters)
    if case .shard(let index) = plan.target { sink &+= index }
}

print("statement: SELECT abalance FROM pgbench_accounts WHERE aid = <n>  (1000 distinct literals, one shape)")
print(String(format: "cached route lookup (lex + cache hit + plan):   median %7.2f µs   (target ≤ 5 µs)", cached / 1000))
print(String(format: "uncached parse + analysis + plan:               median %7.2f µs   (target ≤ 50 µs)", uncached / 1000))
print(String(format: "cached, extended protocol (aid = $1, text bind): median %7.2f µs", parameterized / 1000))
print("cache: \(router.cache.count) shapes, \(router.cache.byteCount) bytes, \(router.cache.hits) hits, \(router.cache.misses) misses")
if sink == 42 { print("") }
