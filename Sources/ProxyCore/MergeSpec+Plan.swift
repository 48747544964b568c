import ResultMerge
import SQLRouting

/// SQLRouting's merge plan (what the SQL says) as ResultMerge's spec (what the merger does): SQLRouting does
/// not depend on ResultMerge, so the two models meet here.
extension MergeSpec {
    /// Throws what PostgreSQL would for the bound LIMIT/OFFSET (2201W/2201X negative, 22P02 not a number).
    init(plan: MergePlan, parameters: BindParameters = BindParameters(), parameterTypes: [UInt32] = [],
         extraFloatDigits: Int = 1) throws(RouteError) {
        let (offset, limit) = try plan.bounds(parameters: parameters)
        func column(_ c: MergePlan.Column) -> MergeColumn {
            switch c {
            case .fromStart(let i): return .fromStart(i)
            case .fromEnd(let k): return .fromEnd(k)
            }
        }
        func constant(_ c: MergePlan.Constant) -> MergeConstant {
            switch c {
            case .number(let t): return .number(t)
            case .string(let t): return .string(t)
            case .boolean(let b): return .boolean(b)
            case .null: return .null
            case .parameter(let n):
                let p = parameters[n]
                let type = n >= 1 && n <= parameterTypes.count ? parameterTypes[n - 1] : (p?.typeOID ?? 0)
                return .parameter(typeOID: type, binary: p?.format == .binary, value: p?.value)
            }
        }
        func operand(_ o: MergePlan.Operand) -> MergeOperand {
            switch o {
            case .column(let c): return .column(column(c))
            case .constant(let k): return .constant(constant(k))
            }
        }
        func predicate(_ p: MergePlan.Predicate) -> MergePredicate {
            switch p {
            case .and(let items): return .and(items.map(predicate))
            case .or(let items): return .or(items.map(predicate))
            case .not(let x): return .not(predicate(x))
            case .compare(let op, let a, let b): return .compare(MergeComparison(rawValue: op.rawValue)!, operand(a), operand(b))
            case .isNull(let a, let negated): return .isNull(operand(a), negated: negated)
            case .value(let a): return .value(operand(a))
            case .constant(let b): return .constant(b)
            }
        }
        let distinct: MergeDistinct?
        switch plan.distinct {
        case nil: distinct = nil
        case .rows?: distinct = .rows
        case .on(let columns)?: distinct = .on(columns.map(column))
        }
        let grouping = plan.grouping.map { g in
            MergeGrouping(keys: g.keys.map(column), aggregates: g.aggregates.map { a in
                MergeAggregate(column: column(a.column), function: MergeAggregateFunction(rawValue: a.function.rawValue)!,
                               isDistinct: a.isDistinct, sumColumn: a.sumColumn.map(column),
                               countColumn: a.countColumn.map(column), outputName: a.outputName)
            }, having: g.having.map(predicate), hasGroupBy: g.hasGroupBy)
        }
        self.init(hiddenColumnCount: plan.hiddenColumnCount,
                  sortKeys: plan.sortKeys.map {
                      MergeSortKey(column: column($0.column), descending: $0.descending, nullsFirst: $0.nullsFirst,
                                   collation: $0.collation.map { TextCollation($0) })
                  },
                  offset: offset, limit: limit, withTies: plan.withTies, distinct: distinct, grouping: grouping,
                  errorPositionLimit: plan.unchangedPrefixCharacters, extraFloatDigits: extraFloatDigits)
    }
}
