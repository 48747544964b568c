extension StatementAnalyzer {
    /// SQL-level PREPARE, EXECUTE or DEALLOCATE as the statement `type` with `body`, for ShardGate to run.
    func preparedCommand(type: String, body: Int) -> SQLPreparedCommand? {
        switch type {
        case "PrepareStmt":
            return .prepare(name: tree.string(body, "name") ?? "")
        case "ExecuteStmt":
            let parameters = Array(tree.elements(body, "params"))
            var problem: String?
            for (index, parameter) in parameters.enumerated() {
                if let what = nonConstant(parameter) {
                    problem = "EXECUTE argument \(index + 1) is \(what); ShardGate places the arguments of EXECUTE in the "
                        + "prepared statement's text, so they must be constants (literals, casts, operators, "
                        + "ARRAY[...], functions of constants)"
                    break
                }
            }
            return .execute(name: tree.string(body, "name") ?? "", argumentCount: parameters.count, problem: problem)
        case "DeallocateStmt":
            return .deallocate(name: tree.string(body, "name"))
        default:
            return nil
        }
    }

    /// What makes expression `node` other than a constant (a column, a subquery, an aggregate, ...), or `nil`.
    private func nonConstant(_ node: Int) -> String? {
        guard let (typeKey, body) = tree.node(node) else { return "not an expression" }
        let type = tree.string(typeKey)
        var children: [Int] = []
        func add(_ name: StaticString) {
            guard let child = tree.member(body, name) else { return }
            if tree.kind(child) == .array {
                children.append(contentsOf: tree.elements(child))
            } else {
                children.append(child)
            }
        }
        switch type {
        case "A_Const", "SQLValueFunction":
            break
        case "TypeCast", "CollateClause", "NullTest", "BooleanTest":
            add("arg")
        case "A_Expr":
            add("lexpr")
            add("rexpr")
        case "BoolExpr", "CoalesceExpr", "MinMaxExpr":
            add("args")
        case "A_ArrayExpr":
            add("elements")
        case "FuncCall":
            let name = tree.elements(body, "funcname").compactMap { element in
                tree.node(element).flatMap { tree.string($0.body, "sval") }
            }.last ?? ""
            if tree.bool(body, "agg_star") || tree.bool(body, "agg_distinct") || tree.member(body, "over") != nil
                || tree.member(body, "agg_filter") != nil || tree.member(body, "agg_order") != nil
                || Self.aggregateNames.contains(name.lowercased()) {
                return "an aggregate or window function"
            }
            add("args")
        case "ColumnRef":
            return "a column reference"
        case "SubLink":
            return "a subquery"
        case "ParamRef":
            return "a parameter"
        default:
            return "an expression ShardGate does not substitute (\(type))"
        }
        for child in children {
            if let what = nonConstant(child) { return what }
        }
        return nil
    }
}
