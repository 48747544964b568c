import Foundation

/// `${NAME}` expansion inside shard-map string values.
///
/// `${NAME}` is replaced by the variable's value (an empty value is fine; an unset variable is an error
/// naming the field). `$${` stands for a literal `${`, so any text survives a write/read round trip.
/// Any other `$` is kept as is. Names are `[A-Za-z_][A-Za-z0-9_]*`.
enum EnvironmentExpansion {
    /// Expands `text`; errors carry an empty field for the caller to fill in. `transform` is applied to
    /// each substituted value (URLs percent-encode them), not to the literal text around it.
    static func expand(
        _ text: String, environment: [String: String], transform: (String) -> String = { $0 }
    ) throws -> String {
        guard text.contains("$") else { return text }
        let scalars = Array(text.unicodeScalars)
        var out = String.UnicodeScalarView()
        var i = 0
        while i < scalars.count {
            let scalar = scalars[i]
            if scalar == "$", i + 2 < scalars.count, scalars[i + 1] == "$", scalars[i + 2] == "{" {
                out.append(contentsOf: ["$", "{"])
                i += 3
            } else if scalar == "$", i + 1 < scalars.count, scalars[i + 1] == "{" {
                guard let close = scalars[(i + 2)...].firstIndex(of: "}") else {
                    throw ShardMapError(
                        field: "", problem: "\"${\" without a closing \"}\"; write $${ for a literal ${")
                }
                let name = String(String.UnicodeScalarView(scalars[(i + 2)..<close]))
                guard isValidName(name) else {
                    throw ShardMapError(
                        field: "", problem: "\"${\(name)}\" is not a valid environment variable reference")
                }
                guard let value = environment[name] else {
                    throw ShardMapError(field: "", problem: "environment variable \(name) is not set")
                }
                out.append(contentsOf: transform(value).unicodeScalars)
                i = close + 1
            } else {
                out.append(scalar)
                i += 1
            }
        }
        return String(out)
    }

    /// The variable name if `text` is exactly one `${NAME}` reference.
    static func soleReference(_ text: String) -> String? {
        guard text.hasPrefix("${"), text.hasSuffix("}"), text.count > 3 else { return nil }
        let name = String(text.dropFirst(2).dropLast())
        return isValidName(name) ? name : nil
    }

    /// The inverse for output: every `${` becomes `$${` so expansion gives back `text`.
    static func escape(_ text: String) -> String {
        text.contains("${") ? text.replacingOccurrences(of: "${", with: "$${") : text
    }

    private static func isValidName(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first,
              first == "_" || ("A"..."Z").contains(first) || ("a"..."z").contains(first) else {
            return false
        }
        return name.unicodeScalars.allSatisfy {
            $0 == "_" || ("A"..."Z").contains($0) || ("a"..."z").contains($0) || ("0"..."9").contains($0)
        }
    }
}
