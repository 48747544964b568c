import ShardMap

/// Routes SQL text through a shard map, with a cache of analyses by statement shape.
///
/// A value type with mutating lookups and no locks: the proxy keeps one per event loop. Swap the map
/// with `updateMap(_:)`; the cache is emptied only when the map's table rules change (slot moves do not
/// affect analyses, which are independent of slot ownership).
public struct SQLRouter: Sendable {
    /// The map routes are planned against.
    public private(set) var map: ShardMap
    /// The analysis cache.
    public private(set) var cache: AnalysisCache
    /// The last lookup's shape key, whose storage the next lookup reuses: a cache hit then allocates no key.
    private var shapeStorage: [UInt8] = []

    /// The default cache size: 4 MiB, a few thousand statement shapes.
    public static let defaultCacheBytes = 4 << 20

    /// Creates a router for `map` with a cache of at most `cacheBytes` bytes.
    public init(map: ShardMap, cacheBytes: Int = SQLRouter.defaultCacheBytes) {
        self.map = map
        cache = AnalysisCache(byteLimit: cacheBytes)
    }

    /// Replaces the map; cached analyses stay valid unless the table rules changed.
    public mutating func updateMap(_ newMap: ShardMap) {
        if newMap.tables != map.tables { cache.removeAll() }
        map = newMap
    }

    /// The analysis of `sql`: from the cache when a statement of the same shape was analyzed before,
    /// else parsed (and cached when its shape can stand for it).
    public mutating func analyze(_ sql: String) throws(RouteError) -> SQLAnalysis {
        var text = sql
        let lexed = text.withUTF8 { SQLLexer.lex($0, storage: &self.shapeStorage) }
        defer { self.shapeStorage = lexed.shape }
        if lexed.cacheable, let statements = cache.lookup(lexed.shape) {
            let override = lexed.leadingEnd > 0
                ? text.withUTF8 { RouteOverride.parse(UnsafeBufferPointer(rebasing: $0[..<lexed.leadingEnd])) }
                : nil
            return SQLAnalysis(statements: statements, override: override, text: text, literals: lexed.literals)
        }
        let (analysis, cacheable) = try SQLAnalyzer.analyze(text: text, lexed: lexed, tables: map.tables)
        if cacheable { cache.insert(lexed.shape, analysis.statements) }
        return analysis
    }

    /// The route of `sql` with `parameters` (see `RoutePlanner.plan` for the errors).
    public mutating func route(
        _ sql: String, parameters: BindParameters = BindParameters()
    ) throws(RouteError) -> RoutePlan {
        try RoutePlanner.plan(analyze(sql), map: map, parameters: parameters)
    }
}
