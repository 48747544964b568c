/// Quoting for the SQL shardctl generates (identifiers and literals), without a connection.
///
/// Literals assume `standard_conforming_strings = on` (PostgreSQL's default since 9.1); shardctl's
/// connections set it.
public enum SQLText {
    /// `"name"` with embedded `"` doubled.
    public static func identifier(_ name: String) -> String {
        "\"" + name.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    /// `'text'` with embedded `'` doubled.
    public static func literal(_ text: String) -> String {
        "'" + text.replacingOccurrences(of: "'", with: "''") + "'"
    }

    /// A qualified relation name, `"schema"."table"`.
    public static func relation(schema: String, name: String) -> String {
        identifier(schema) + "." + identifier(name)
    }

    /// The map's name of a table as a `regclass` text for `to_regclass`: `users` → `"users"`,
    /// `app.users` → `"app"."users"` (unqualified names follow the connection's search_path).
    public static func regclassText(mapName: String) -> String {
        let parts = mapName.split(separator: ".", maxSplits: 1).map(String.init)
        return parts.map(identifier).joined(separator: ".")
    }
}
