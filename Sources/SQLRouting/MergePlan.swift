/// How a read that runs on several shards is merged: the SQL every shard runs, and what the merger
/// (ResultMerge's `MergeSpec`, which these types mirror one to one) does with the shards' rows.
///
/// Hidden columns (sort, group and aggregate helpers the client did not ask for) are appended after the
/// client's columns and stripped before rows reach the client.
public struct MergePlan: Sendable, Hashable {
    /// The statement every shard runs (the client's text when nothing needed rewriting).
    public var shardSQL: String
    /// Columns appended to the client's SELECT list.
    public var hiddenColumnCount: Int
    /// ORDER BY, as columns of the shards' rows.
    public var sortKeys: [SortKey]
    /// OFFSET (`nil`: none).
    public var offset: Bound?
    /// LIMIT / FETCH FIRST (`nil`: none; `LIMIT ALL` and `LIMIT NULL` are none).
    public var limit: Bound?
    /// `FETCH FIRST ... WITH TIES`.
    public var withTies: Bool
    /// DISTINCT / DISTINCT ON.
    public var distinct: Distinct?
    /// Aggregates, GROUP BY, HAVING (`nil`: not an aggregate query).
    public var grouping: Grouping?
    /// Characters at the start of `shardSQL` that are the client's text unchanged: a shard error's
    /// position beyond them points into rewritten SQL. `nil` when `shardSQL` is the client's text.
    public var unchangedPrefixCharacters: Int?

    /// Creates a plan.
    public init(
        shardSQL: String, hiddenColumnCount: Int = 0, sortKeys: [SortKey] = [], offset: Bound? = nil, limit: Bound? = nil,
        withTies: Bool = false, distinct: Distinct? = nil, grouping: Grouping? = nil, unchangedPrefixCharacters: Int? = nil
    ) {
        self.shardSQL = shardSQL
        self.hiddenColumnCount = hiddenColumnCount
        self.sortKeys = sortKeys
        self.offset = offset
        self.limit = limit
        self.withTies = withTies
        self.distinct = distinct
        self.grouping = grouping
        self.unchangedPrefixCharacters = unchangedPrefixCharacters
    }

    /// Whether the shards' results are simply concatenated (no order, limit, distinct or aggregates).
    public var isConcatenation: Bool {
        sortKeys.isEmpty && offset == nil && limit == nil && distinct == nil && grouping == nil
    }

    /// A column of the shards' rows: 0-based from the first, or counted from the last (1 = last), for
    /// columns after a `*` whose width is unknown until the shards describe their rows.
    public enum Column: Sendable, Hashable {
        case fromStart(Int)
        case fromEnd(Int)
    }

    /// One ORDER BY item.
    public struct SortKey: Sendable, Hashable {
        /// The column sorted by.
        public var column: Column
        /// `DESC`.
        public var descending: Bool
        /// NULLS FIRST (PostgreSQL's default: first for DESC, last for ASC).
        public var nullsFirst: Bool
        /// The collation named by a `COLLATE` on the sort expression (`nil`: the database's).
        public var collation: String?

        /// Creates a sort key; `nullsFirst` defaults to PostgreSQL's rule.
        public init(column: Column, descending: Bool = false, nullsFirst: Bool? = nil, collation: String? = nil) {
            self.column = column
            self.descending = descending
            self.nullsFirst = nullsFirst ?? descending
            self.collation = collation
        }
    }

    /// A LIMIT or OFFSET value.
    public enum Bound: Sendable, Hashable {
        /// A literal count.
        case constant(Int64)
        /// Bind parameter `$n` (1-based); resolve with `bounds(parameters:)`.
        case parameter(Int)
    }

    /// `SELECT DISTINCT` / `SELECT DISTINCT ON (...)`.
    public enum Distinct: Sendable, Hashable {
        /// Over every client column.
        case rows
        /// Over these columns.
        case on([Column])
    }

    /// The aggregate part of a plan.
    public struct Grouping: Sendable, Hashable {
        /// GROUP BY columns (empty without GROUP BY).
        public var keys: [Column]
        /// The aggregate columns; every other column is equal within a group (taken from any of its rows).
        public var aggregates: [Aggregate]
        /// HAVING, for the merger to evaluate on merged groups.
        public var having: Predicate?
        /// Whether there is a GROUP BY (without one, the result is exactly one row before HAVING).
        public var hasGroupBy: Bool

        /// Creates a grouping.
        public init(keys: [Column], aggregates: [Aggregate], having: Predicate? = nil, hasGroupBy: Bool) {
            self.keys = keys
            self.aggregates = aggregates
            self.having = having
            self.hasGroupBy = hasGroupBy
        }
    }

    /// Aggregates the merger combines.
    public enum AggregateFunction: String, Sendable, Hashable {
        case count, sum, avg, min, max
        case boolAnd = "bool_and"
        case boolOr = "bool_or"
    }

    /// One aggregate column.
    public struct Aggregate: Sendable, Hashable {
        /// The shards' partial result; for count/sum/avg DISTINCT, the argument's values.
        public var column: Column
        public var function: AggregateFunction
        /// count/sum/avg DISTINCT.
        public var isDistinct: Bool
        /// avg: the hidden `sum(x)` column.
        public var sumColumn: Column?
        /// avg: the hidden `count(x)` column.
        public var countColumn: Column?
        /// The client's column name where the shards' column is named otherwise (DISTINCT aggregates).
        public var outputName: String?

        /// Creates an aggregate column.
        public init(
            column: Column, function: AggregateFunction, isDistinct: Bool = false, sumColumn: Column? = nil,
            countColumn: Column? = nil, outputName: String? = nil
        ) {
            self.column = column
            self.function = function
            self.isDistinct = isDistinct
            self.sumColumn = sumColumn
            self.countColumn = countColumn
            self.outputName = outputName
        }
    }

    /// A HAVING condition over merged group values.
    public indirect enum Predicate: Sendable, Hashable {
        case and([Predicate])
        case or([Predicate])
        case not(Predicate)
        case compare(Comparison, Operand, Operand)
        /// `IS NULL` / `IS NOT NULL` (`negated`).
        case isNull(Operand, negated: Bool)
        /// A boolean value as a condition.
        case value(Operand)
        case constant(Bool?)
    }

    /// Comparison operators.
    public enum Comparison: String, Sendable, Hashable {
        case equal = "=", notEqual = "<>", less = "<", lessOrEqual = "<=", greater = ">", greaterOrEqual = ">="
    }

    /// A HAVING operand.
    public enum Operand: Sendable, Hashable {
        case column(Column)
        case constant(Constant)
    }

    /// A HAVING constant.
    public enum Constant: Sendable, Hashable {
        /// A numeric literal as written (sign included).
        case number(String)
        /// A string literal (untyped).
        case string(String)
        case boolean(Bool)
        case null
        /// Bind parameter `$n`: the merger needs its value (type, format, bytes).
        case parameter(Int)
    }

    /// OFFSET and LIMIT with `parameters` bound, checked as PostgreSQL checks them: a negative LIMIT is
    /// `2201W`, a negative OFFSET `2201X`; NULL means no limit / no offset.
    public func bounds(parameters: BindParameters = BindParameters()) throws(RouteError) -> (offset: Int64, limit: Int64?) {
        let offsetValue = try Self.value(offset, parameters: parameters, name: "OFFSET", sqlState: "2201X")
        let limitValue = try Self.value(limit, parameters: parameters, name: "LIMIT", sqlState: "2201W")
        return (offsetValue ?? 0, limitValue)
    }

    private static func value(
        _ bound: Bound?, parameters: BindParameters, name: String, sqlState: String
    ) throws(RouteError) -> Int64? {
        let value: Int64?
        switch bound {
        case nil:
            return nil
        case .constant(let v)?:
            value = v
        case .parameter(let n)?:
            guard let parameter = parameters[n] else {
                throw RouteError(sqlState: "08P01", message: "\(name) parameter $\(n) was not bound")
            }
            guard let bytes = parameter.value else { return nil }
            value = try integer(bytes, parameter: parameter, name: name)
        }
        if let value, value < 0 {
            throw RouteError(sqlState: sqlState, message: "\(name) must not be negative")
        }
        return value
    }

    private static func trimmed(_ bytes: [UInt8]) -> String {
        var start = 0, end = bytes.count
        while start < end, bytes[start] == 0x20 { start += 1 }
        while end > start, bytes[end - 1] == 0x20 { end -= 1 }
        return String(decoding: bytes[start..<end], as: UTF8.self)
    }

    /// An integer parameter in text or binary (int2/int4/int8 by length) form.
    private static func integer(_ bytes: [UInt8], parameter: BindParameter, name: String) throws(RouteError) -> Int64 {
        switch parameter.format {
        case .text:
            let text = trimmed(bytes)
            if let v = Int64(text) { return v }
            throw RouteError(sqlState: "22P02", message: "invalid input syntax for type bigint: \"\(text)\"")
        case .binary:
            var v: Int64 = 0
            switch bytes.count {
            case 2, 4, 8:
                for b in bytes { v = v << 8 | Int64(b) }
                let shift = 64 - bytes.count * 8
                if shift > 0 { v = (v << shift) >> shift }
                return v
            default:
                throw RouteError(sqlState: "22P03", message: "incorrect binary data format in \(name) parameter")
            }
        }
    }
}
