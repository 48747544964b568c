import Foundation
import Logging
import NIOConcurrencyHelpers
import ProxyCore
import ShardMap

/// The running proxy as the admin port sees it (`AdminBackend`): status and lag from the proxy, its lag
/// monitor and metrics; map swaps persisted to the map file before they go live; slot pauses.
public final class ProxyAdmin: AdminBackend {
    private let server: ProxyServer
    private let monitor: LagMonitor?
    private let metrics: ProxyMetrics?
    /// The map file to persist new versions to (nil: not persisted).
    private let mapPath: String?
    private let environment: [String: String]
    private let startedAtMillis = Int64(Date().timeIntervalSince1970 * 1000)
    /// Map swaps one at a time (check, persist, swap).
    private let swapping = NIOLockedValueBox(false)
    private let logger: Logger

    public init(server: ProxyServer, monitor: LagMonitor?, metrics: ProxyMetrics?, mapPath: String?,
                environment: [String: String], logger: Logger) {
        self.server = server
        self.monitor = monitor
        self.metrics = metrics
        self.mapPath = mapPath
        self.environment = environment
        self.logger = logger
    }

    public func status() async -> ProxyStatus {
        ProxyStatus(map: self.server.currentMap, pools: await self.server.poolStatus(), clients: await self.server.clientCount(),
                    pausedSlots: self.server.pausedSlots.sorted(), counters: self.metrics?.counters() ?? ProxyCounters(),
                    startedAtMillis: self.startedAtMillis)
    }

    public func lag() async -> LagSnapshot {
        self.monitor?.latest() ?? LagModel(map: self.server.currentMap).snapshot
    }

    public func shardMap() async -> ShardMap {
        self.server.currentMap
    }

    public func replaceShardMap(_ map: ShardMap, fences: [Int: LSN]) async throws -> ShardMap {
        guard self.swapping.withLockedValue({ busy in
            defer { busy = true }
            return !busy
        }) else {
            throw AdminError.conflict("another shard map replacement is in progress; retry")
        }
        defer { self.swapping.withLockedValue { $0 = false } }
        let live = self.server.currentMap
        guard map.version > live.version else {
            throw AdminError.conflict("shard map version \(map.version) is not newer than the live version \(live.version)")
        }
        do {
            try map.validate()
        } catch {
            throw AdminError.invalid("\(error)")
        }
        if let mapPath = self.mapPath {
            do {
                try Self.persist(map, to: mapPath, environment: self.environment)
            } catch {
                throw AdminError.unavailable("cannot write the new map to \(mapPath): \(error); the live map is unchanged")
            }
        }
        do {
            try await self.server.replaceMap(map, fences: fences)
        } catch {
            throw AdminError.invalid("\(error)")
        }
        self.monitor?.reconfigure(map)
        self.metrics?.update(map: map)
        return map
    }

    public func pause(slots: [Int], timeout: Duration) async throws -> PauseResult {
        let result = await self.server.pause(slots: Set(slots), timeout: timeout)
        let waited = result.waited.components
        return PauseResult(pausedSlots: result.paused.sorted(), drained: result.drained,
                           waitedMs: Int(waited.seconds * 1000 + waited.attoseconds / 1_000_000_000_000_000),
                           inFlight: result.inFlight)
    }

    public func resume(slots: [Int]) async throws -> [Int] {
        await self.server.resume(slots: Set(slots)).sorted()
    }

    /// Writes the map over its file, keeping the file's `${VAR}` references, crash-safely: a temporary file
    /// in the same folder, fsync, rename over the old one, fsync of the folder.
    static func persist(_ map: ShardMap, to path: String, environment: [String: String]) throws {
        let url = URL(fileURLWithPath: path)
        let folder = url.deletingLastPathComponent().path
        let original = (try? Data(contentsOf: url)) ?? Data()
        let data = original.isEmpty ? map.jsonData(redactingSecrets: false)
            : map.fileData(replacing: original, environment: environment, baseDirectory: folder)
        let temporary = folder + "/.\(url.lastPathComponent).\(getpid()).tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        guard fd >= 0 else { throw POSIXFailure(call: "open \(temporary)", code: errno) }
        var ok = data.withUnsafeBytes { bytes in
            var offset = 0
            while offset < bytes.count {
                let n = write(fd, bytes.baseAddress! + offset, bytes.count - offset)
                if n <= 0 { return false }
                offset += n
            }
            return true
        }
        ok = ok && fsync(fd) == 0
        let code = errno
        close(fd)
        guard ok else {
            unlink(temporary)
            throw POSIXFailure(call: "write \(temporary)", code: code)
        }
        // Keep the old file's permissions (the map may be readable by the operator's group).
        if let attributes = try? FileManager.default.attributesOfItem(atPath: path),
           let mode = attributes[.posixPermissions] as? NSNumber {
            chmod(temporary, mode_t(mode.uint16Value))
        }
        guard rename(temporary, path) == 0 else {
            let code = errno
            unlink(temporary)
            throw POSIXFailure(call: "rename to \(path)", code: code)
        }
        let folderFD = open(folder, O_RDONLY)
        if folderFD >= 0 {
            fsync(folderFD)
            close(folderFD)
        }
    }
}

struct POSIXFailure: Error, CustomStringConvertible {
    var call: String
    var code: Int32
    var description: String { "\(self.call): \(String(cString: strerror(self.code)))" }
}
