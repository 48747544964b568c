import Foundation

/// Reads typed values out of a `JSONValue` tree, naming the field (as a path like `shards[1].primary`)
/// in every error. String values get `${ENV}` expansion here, so it applies to every string in the map.
struct MapDecoder {
    var environment: [String: String]
    var baseDirectory: String?

    /// The members of a JSON object, after checking it has no duplicate and (if `allowed` is given)
    /// no unknown keys.
    struct Object {
        var path: String
        var members: [(key: String, value: JSONValue)]

        /// The path of member `key`.
        func path(_ key: String) -> String {
            path.isEmpty ? key : "\(path).\(key)"
        }

        func optional(_ key: String) -> JSONValue? {
            members.first { $0.key == key }?.value
        }

        func required(_ key: String) throws -> JSONValue {
            guard let value = optional(key) else {
                throw ShardMapError(field: path(key), problem: "required key is missing")
            }
            return value
        }
    }

    func object(_ value: JSONValue, _ path: String, allowed: [String]?) throws -> Object {
        guard case .object(let members) = value else {
            throw wrongType(value, path, expected: "an object")
        }
        let object = Object(path: path, members: members)
        var seen = Set<String>()
        for member in members {
            guard seen.insert(member.key).inserted else {
                throw ShardMapError(field: object.path(member.key), problem: "duplicate key")
            }
            if let allowed, !allowed.contains(member.key) {
                throw ShardMapError(field: object.path(member.key), problem: "unknown key")
            }
        }
        return object
    }

    func array(_ value: JSONValue, _ path: String) throws -> [JSONValue] {
        guard case .array(let elements) = value else {
            throw wrongType(value, path, expected: "an array")
        }
        return elements
    }

    /// A string value with `${ENV}` references expanded.
    func string(_ value: JSONValue, _ path: String) throws -> String {
        guard case .string(let text) = value else {
            throw wrongType(value, path, expected: "a string")
        }
        do {
            return try EnvironmentExpansion.expand(text, environment: environment)
        } catch let error as ShardMapError {
            throw error.at(path)
        }
    }

    /// A whole number that fits in `Int` (`20`, not `20.0` or `"20"`).
    func integer(_ value: JSONValue, _ path: String) throws -> Int {
        guard case .number(let text) = value else {
            throw wrongType(value, path, expected: "an integer")
        }
        guard !text.contains(where: { $0 == "." || $0 == "e" || $0 == "E" }) else {
            throw ShardMapError(field: path, problem: "expected an integer, got \(text)")
        }
        guard let number = Int(text) else {
            throw ShardMapError(field: path, problem: "\(text) is too large")
        }
        return number
    }

    func bool(_ value: JSONValue, _ path: String) throws -> Bool {
        guard case .bool(let flag) = value else {
            throw wrongType(value, path, expected: "true or false")
        }
        return flag
    }

    /// A connection URL; parse errors are re-scoped to `path`.
    ///
    /// A URL that is exactly one `${VAR}` is taken from the environment as is. A `${VAR}` inside a URL
    /// is percent-encoded as it is substituted, so a password from the environment may hold `@`, `:`
    /// or `/` (the value is the password itself, not its URL encoding).
    func url(_ value: JSONValue, _ path: String) throws -> PostgresURL {
        guard case .string(let raw) = value else {
            throw wrongType(value, path, expected: "a string")
        }
        let text: String
        do {
            if EnvironmentExpansion.soleReference(raw) != nil {
                text = try EnvironmentExpansion.expand(raw, environment: environment)
            } else {
                text = try EnvironmentExpansion.expand(raw, environment: environment) { PostgresURL.encode($0) }
            }
            return try PostgresURL(parsing: text)
        } catch let error as ShardMapError {
            throw error.at(path)
        }
    }

    /// A file path; relative paths are resolved against `baseDirectory` when there is one.
    func filePath(_ value: JSONValue, _ path: String) throws -> String {
        let text = try string(value, path)
        guard !text.isEmpty else {
            throw ShardMapError(field: path, problem: "empty file path")
        }
        guard let baseDirectory, !text.hasPrefix("/") else { return text }
        return URL(fileURLWithPath: text, relativeTo: URL(fileURLWithPath: baseDirectory, isDirectory: true))
            .standardizedFileURL.path
    }

    private func wrongType(_ value: JSONValue, _ path: String, expected: String) -> ShardMapError {
        ShardMapError(field: path, problem: "expected \(expected), got \(value.kindDescription)")
    }
}
