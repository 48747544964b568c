/// What a merge does with the shards' results: indexes and kinds only (the SQL rewriting that makes the
/// shards produce these columns is SQLRouting's `MergePlan`, which maps onto this one to one).
///
/// Modes, by what is set:
/// - `grouping` set: an aggregate query. Every row of every shard is folded into groups (buffered,
///   bounded by `maxBufferedBytes`); then HAVING, DISTINCT, ORDER BY (`sortKeys`) and OFFSET/LIMIT are
///   applied to the merged groups.
/// - else `sortKeys` set: every shard's rows arrive sorted; a k-way merge streams them in order.
/// - else: concatenation, streamed as rows arrive.
/// `distinct`, `offset`, `limit` and `withTies` apply in every mode; hidden columns (the last
/// `hiddenColumnCount` columns of the shards' rows) never reach the client.
public struct MergeSpec: Sendable, Hashable {
    /// Columns the planner appended for sorting, grouping or aggregating; stripped from every row.
    public var hiddenColumnCount: Int
    /// ORDER BY, as columns of the shards' rows.
    public var sortKeys: [MergeSortKey]
    /// Rows to skip (OFFSET), after DISTINCT and ordering.
    public var offset: Int64
    /// Rows to return at most (LIMIT / FETCH FIRST), `nil` for all.
    public var limit: Int64?
    /// `FETCH FIRST n ROWS WITH TIES`: also return the rows equal to the last one on the sort keys.
    public var withTies: Bool
    /// `DISTINCT` / `DISTINCT ON`.
    public var distinct: MergeDistinct?
    /// Aggregates, GROUP BY and HAVING.
    public var grouping: MergeGrouping?
    /// A shard error's position (the `P` field) beyond this many characters points into SQL the client did
    /// not send (the rewritten part), and is dropped; `nil`: the shards ran the client's text unchanged.
    public var errorPositionLimit: Int?
    /// The session's `extra_float_digits` (1 unless the client set it), for printing computed floats.
    public var extraFloatDigits: Int

    /// Creates a spec; the defaults describe a plain concatenation.
    public init(
        hiddenColumnCount: Int = 0, sortKeys: [MergeSortKey] = [], offset: Int64 = 0, limit: Int64? = nil,
        withTies: Bool = false, distinct: MergeDistinct? = nil, grouping: MergeGrouping? = nil,
        errorPositionLimit: Int? = nil, extraFloatDigits: Int = 1
    ) {
        self.hiddenColumnCount = hiddenColumnCount
        self.sortKeys = sortKeys
        self.offset = offset
        self.limit = limit
        self.withTies = withTies
        self.distinct = distinct
        self.grouping = grouping
        self.errorPositionLimit = errorPositionLimit
        self.extraFloatDigits = extraFloatDigits
    }
}

/// A column of the shards' rows, counted from the first (0-based) or from the last (1 is the last): the
/// planner cannot count the columns a `*` expands to, so columns after one are counted from the end.
public enum MergeColumn: Sendable, Hashable {
    /// The column at this 0-based index.
    case fromStart(Int)
    /// The column this many places from the end (1 = the last column).
    case fromEnd(Int)

    /// The 0-based index in rows of `columnCount` columns, `nil` when out of range.
    public func index(columnCount: Int) -> Int? {
        let index: Int
        switch self {
        case .fromStart(let i): index = i
        case .fromEnd(let k): index = columnCount - k
        }
        return index >= 0 && index < columnCount ? index : nil
    }
}

/// One ORDER BY item.
public struct MergeSortKey: Sendable, Hashable {
    /// The column sorted by.
    public var column: MergeColumn
    /// `DESC`.
    public var descending: Bool
    /// `NULLS FIRST` (PostgreSQL's default: NULLS FIRST for DESC, NULLS LAST for ASC).
    public var nullsFirst: Bool
    /// A `COLLATE` on the sort expression; `nil` for the merge's default collation.
    public var collation: TextCollation?

    /// Creates a sort key; `nullsFirst` defaults to PostgreSQL's rule.
    public init(column: MergeColumn, descending: Bool = false, nullsFirst: Bool? = nil, collation: TextCollation? = nil) {
        self.column = column
        self.descending = descending
        self.nullsFirst = nullsFirst ?? descending
        self.collation = collation
    }
}

/// `SELECT DISTINCT` or `SELECT DISTINCT ON (...)`.
public enum MergeDistinct: Sendable, Hashable {
    /// `DISTINCT`: rows equal in every visible column are one row.
    case rows
    /// `DISTINCT ON (...)`: the first row (in ORDER BY order) of each set of rows equal in these columns.
    case on([MergeColumn])
}

/// An aggregate and GROUP BY merge.
public struct MergeGrouping: Sendable, Hashable {
    /// The GROUP BY columns (empty without GROUP BY).
    public var keys: [MergeColumn]
    /// The aggregate columns; every other column is a value equal within a group (a group key, a
    /// function of the keys, a constant), taken from the group's first row.
    public var aggregates: [MergeAggregate]
    /// HAVING, evaluated on the merged groups.
    public var having: MergePredicate?
    /// Whether the query has GROUP BY: without it an aggregate query returns exactly one row (before
    /// HAVING), even when no shard returned a row.
    public var hasGroupBy: Bool

    /// Creates a grouping.
    public init(keys: [MergeColumn], aggregates: [MergeAggregate], having: MergePredicate? = nil, hasGroupBy: Bool) {
        self.keys = keys
        self.aggregates = aggregates
        self.having = having
        self.hasGroupBy = hasGroupBy
    }
}

/// The aggregates the merger combines exactly.
public enum MergeAggregateFunction: String, Sendable, Hashable {
    case count, sum, avg, min, max
    /// `bool_and` and `every`.
    case boolAnd = "bool_and"
    /// `bool_or`.
    case boolOr = "bool_or"
}

/// One aggregate column.
public struct MergeAggregate: Sendable, Hashable {
    /// The column holding the shard's partial result; for a DISTINCT count/sum/avg, the argument's value
    /// (the shards group by it, so each distinct value arrives at least once).
    public var column: MergeColumn
    /// The function.
    public var function: MergeAggregateFunction
    /// `count(DISTINCT x)`, `sum(DISTINCT x)`, `avg(DISTINCT x)` (DISTINCT does not change min/max/bool).
    public var isDistinct: Bool
    /// `avg(x)`: the hidden column with the shard's `sum(x)`.
    public var sumColumn: MergeColumn?
    /// `avg(x)`: the hidden column with the shard's `count(x)`.
    public var countColumn: MergeColumn?
    /// The column name the client sees when the shards' column has another name (DISTINCT aggregates).
    public var outputName: String?

    /// Creates an aggregate column.
    public init(
        column: MergeColumn, function: MergeAggregateFunction, isDistinct: Bool = false, sumColumn: MergeColumn? = nil,
        countColumn: MergeColumn? = nil, outputName: String? = nil
    ) {
        self.column = column
        self.function = function
        self.isDistinct = isDistinct
        self.sumColumn = sumColumn
        self.countColumn = countColumn
        self.outputName = outputName
    }
}

/// A HAVING condition over merged group values (SQL three-valued logic: a group passes when it is true).
public indirect enum MergePredicate: Sendable, Hashable {
    case and([MergePredicate])
    case or([MergePredicate])
    case not(MergePredicate)
    /// `a op b`, compared by the columns' types (an untyped literal takes the other side's type).
    case compare(MergeComparison, MergeOperand, MergeOperand)
    /// `x IS NULL` (`negated`: IS NOT NULL).
    case isNull(MergeOperand, negated: Bool)
    /// A boolean value used as a condition (`HAVING bool_or(flag)`).
    case value(MergeOperand)
    /// `TRUE`, `FALSE` or `NULL`.
    case constant(Bool?)
}

/// A comparison operator.
public enum MergeComparison: String, Sendable, Hashable {
    case equal = "=", notEqual = "<>", less = "<", lessOrEqual = "<=", greater = ">", greaterOrEqual = ">="
}

/// One side of a HAVING comparison.
public enum MergeOperand: Sendable, Hashable {
    /// A column of the merged group (an aggregate's merged result or a group value).
    case column(MergeColumn)
    /// A constant.
    case constant(MergeConstant)
}

/// A constant in HAVING: a literal from the SQL text, or a bound parameter's value.
public enum MergeConstant: Sendable, Hashable {
    /// A numeric literal as written (`5`, `-2.5`, `1e3`).
    case number(String)
    /// A string literal (untyped: read as the other side's type, as PostgreSQL does).
    case string(String)
    /// `TRUE` / `FALSE`.
    case boolean(Bool)
    /// `NULL`.
    case null
    /// A bound parameter: its type OID (0 when unspecified), its format (`binary`), its bytes (`nil`: NULL).
    case parameter(typeOID: UInt32, binary: Bool, value: [UInt8]?)
}
