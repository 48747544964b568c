import Foundation
import ShardMap

/// Copies table definitions from the source primary to the target with PostgreSQL's own tools:
/// `pg_dump --schema-only -t …` piped into `psql --single-transaction` (both from postgresql-client).
///
/// pg_dump writes exactly what PostgreSQL needs to recreate the tables — columns, defaults, owned
/// sequences, constraints, indexes, partitions — which a CREATE TABLE built by hand from the catalog
/// would get subtly wrong. Owners, privileges, publications and subscriptions are left out.
public enum SchemaCopier {
    /// What went wrong, with the tools' own error output.
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// The arguments of pg_dump for `relations` (`"schema"."table"`, quoted so patterns match exactly).
    public static func dumpArguments(conninfo: String, relations: [String]) -> [String] {
        ["--schema-only", "--no-owner", "--no-privileges", "--no-publications", "--no-subscriptions",
         "--no-comments", "--dbname=\(conninfo)"] + relations.flatMap { ["-t", $0] }
    }

    /// The arguments of psql that restore the dump in one transaction and stop at the first error.
    public static func restoreArguments(conninfo: String) -> [String] {
        ["-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction", "--dbname=\(conninfo)"]
    }

    /// Runs the copy. Passwords go through `PGPASSWORD` in the tools' environment, never the command line.
    public static func copy(relations: [String], from source: PostgresURL, sourcePassword: String?,
                            to target: PostgresURL, targetPassword: String?) throws {
        let pgDump = try self.tool("pg_dump")
        let psql = try self.tool("psql")
        let dump = Process()
        dump.executableURL = URL(fileURLWithPath: pgDump)
        dump.arguments = self.dumpArguments(conninfo: self.conninfo(source), relations: relations)
        dump.environment = self.environment(password: sourcePassword)
        let restore = Process()
        restore.executableURL = URL(fileURLWithPath: psql)
        restore.arguments = self.restoreArguments(conninfo: self.conninfo(target))
        restore.environment = self.environment(password: targetPassword)

        let pipe = Pipe()
        let dumpErrors = Pipe()
        let restoreOutput = Pipe()
        dump.standardOutput = pipe
        dump.standardError = dumpErrors
        dump.standardInput = FileHandle.nullDevice
        restore.standardInput = pipe
        restore.standardOutput = restoreOutput
        restore.standardError = restoreOutput
        do {
            try restore.run()
            try dump.run()
        } catch {
            throw Failure(description: "cannot start pg_dump/psql: \(error)")
        }
        // Read both output streams while the tools run, so that a full pipe never blocks either.
        let restoreReader = PipeReader(restoreOutput.fileHandleForReading)
        let dumpText = dumpErrors.fileHandleForReading.readDataToEndOfFile()
        dump.waitUntilExit()
        let restoreText = restoreReader.wait()
        restore.waitUntilExit()
        if dump.terminationStatus != 0 {
            throw Failure(description: "pg_dump on the source failed (exit \(dump.terminationStatus)): "
                + String(decoding: dumpText, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
        }
        if restore.terminationStatus != 0 {
            throw Failure(description: "psql on the target failed (exit \(restore.terminationStatus)), nothing was created: "
                + String(decoding: restoreText, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
        }
    }

    /// The absolute path of `name` on `PATH`, else a failure saying what to install.
    public static func tool(_ name: String) throws -> String {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for directory in path.split(separator: ":") {
            let candidate = "\(directory)/\(name)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        throw Failure(description: """
            \(name) is not on PATH; install the PostgreSQL client tools (Debian: apt-get install \
            postgresql-client-15) or create the missing tables on the target yourself
            """)
    }

    static func conninfo(_ url: PostgresURL) -> String {
        PGConnectionInfo.parameters(for: url, applicationName: "shardctl-schema-copy")
            .filter { $0.key != "password" }
            .map { "\($0.key)=\(PGConnectionInfo.quote($0.value))" }.joined(separator: " ")
    }

    static func environment(password: String?) -> [String: String] {
        var environment = ProcessInfo.processInfo.environment
        if let password { environment["PGPASSWORD"] = password }
        return environment
    }
}

/// Reads a pipe to its end on a background thread.
private final class PipeReader: @unchecked Sendable {
    private var data = Data()
    private let done = DispatchSemaphore(value: 0)

    init(_ handle: FileHandle) {
        DispatchQueue.global().async {
            self.data = handle.readDataToEndOfFile()
            self.done.signal()
        }
    }

    /// Everything the pipe carried (after its writer closed it).
    func wait() -> Data {
        self.done.wait()
        return self.data
    }
}
