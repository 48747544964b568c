import Foundation

/// Password lookup in `~/.pgpass` (or `$PGPASSFILE`) with libpq's rules (`passwordFromFile` in
/// `fe-connect.c`):
///
/// - lines are `hostname:port:database:username:password`; lines starting with `#` are comments;
/// - a field that is exactly `*` matches anything; `\:` and `\\` escape a colon or a backslash;
/// - the first matching line wins;
/// - an empty host, or the default socket directory, is matched as `localhost`;
/// - like libpq, the file is ignored unless it is a regular file without group or world permissions
///   (`chmod 0600`), and no password is looked up for an empty database or user name.
public enum PGPassFile {
    /// The password for a connection, or `nil` when no file or no line matches.
    public static func password(
        host: String, port: Int, database: String, user: String,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) -> String? {
        guard let path = path(environment: environment) else { return nil }
        guard let contents = readProtectedFile(path) else { return nil }
        return password(in: contents, host: host, port: port, database: database, user: user)
    }

    /// The file libpq would read: `PGPASSFILE` if set and not empty, else `.pgpass` in the home directory.
    public static func path(environment: [String: String] = ProcessInfo.processInfo.environment) -> String? {
        if let file = environment["PGPASSFILE"], !file.isEmpty {
            return file
        }
        var home = environment["HOME"] ?? ""
        if home.isEmpty {
            home = FileManager.default.homeDirectoryForCurrentUser.path
        }
        guard !home.isEmpty else { return nil }
        return (home as NSString).appendingPathComponent(".pgpass")
    }

    /// Looks a password up in the text of a password file (no file-permission rules applied).
    public static func password(in contents: String, host: String, port: Int, database: String, user: String)
        -> String? {
        guard !database.isEmpty, !user.isEmpty else { return nil }
        var hostKey = host
        if hostKey.isEmpty || hostKey == PostgresURL.defaultSocketDirectory {
            hostKey = "localhost"
        }
        let tokens = [hostKey, String(port), database, user].map { Array($0.utf8) }
        // Split on bytes: as Characters, "\r\n" is a single grapheme and would not split on "\n".
        for rawLine in contents.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true) {
            var line = Array(rawLine)
            if line.first == UInt8(ascii: "#") { continue }
            while let last = line.last, last == UInt8(ascii: "\r") || last == UInt8(ascii: "\n") {
                line.removeLast()
            }
            guard !line.isEmpty else { continue }
            var position: Int? = 0
            for token in tokens {
                guard let start = position else { break }
                position = matchField(line, from: start, token: token)
            }
            if let start = position {
                return unescapePassword(line[start...])
            }
        }
        return nil
    }

    /// libpq's `pwdfMatchesString`: the index just past this field's `:` if the field matches `token`.
    private static func matchField(_ line: [UInt8], from start: Int, token: [UInt8]) -> Int? {
        let colon = UInt8(ascii: ":")
        let backslash = UInt8(ascii: "\\")
        if start + 1 < line.count, line[start] == UInt8(ascii: "*"), line[start + 1] == colon {
            return start + 2
        }
        var i = start
        var t = 0
        while i < line.count {
            var escaped = false
            if line[i] == backslash {
                i += 1
                escaped = true
                guard i < line.count else { return nil }
            }
            if line[i] == colon, t == token.count, !escaped {
                return i + 1
            }
            guard t < token.count, line[i] == token[t] else { return nil }
            i += 1
            t += 1
        }
        return nil
    }

    /// The password is the rest of the line up to an unescaped `:`, with escapes removed.
    private static func unescapePassword(_ field: ArraySlice<UInt8>) -> String {
        var out: [UInt8] = []
        var i = field.startIndex
        while i < field.endIndex, field[i] != UInt8(ascii: ":") {
            if field[i] == UInt8(ascii: "\\"), i + 1 < field.endIndex {
                i += 1
            }
            out.append(field[i])
            i += 1
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The file's text if it is a regular file that only its owner may read or write.
    private static func readProtectedFile(_ path: String) -> String? {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path),
              attributes[.type] as? FileAttributeType == .typeRegular,
              let permissions = (attributes[.posixPermissions] as? NSNumber)?.intValue,
              permissions & 0o077 == 0,
              let data = FileManager.default.contents(atPath: path) else {
            return nil
        }
        return String(decoding: data, as: UTF8.self)
    }
}
