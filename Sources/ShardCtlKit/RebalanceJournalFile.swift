import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The journal on disk: written whole to `PATH.tmp`, fsynced, renamed over `PATH`, then the directory
/// fsynced, so that after a crash the file is either the old or the new journal, never a torn one.
///
/// `lock()` takes an exclusive `flock` on `PATH.lock` for the life of the process (the kernel releases
/// it when the process dies, even by SIGKILL): two shardctl processes never work on one journal.
public final class RebalanceJournalFile {
    /// The journal's path.
    public let path: String
    private var lockDescriptor: Int32 = -1

    /// The default journal, in the directory shardctl runs in.
    public static let defaultPath = "shardgate-rebalance.journal"

    public init(path: String) {
        self.path = path
    }

    deinit {
        if self.lockDescriptor >= 0 { close(self.lockDescriptor) }
    }

    /// Whether the journal file exists.
    public var exists: Bool {
        FileManager.default.fileExists(atPath: self.path)
    }

    /// The journal, or `nil` when there is no file.
    public func load() throws -> RebalanceJournal? {
        guard self.exists else { return nil }
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: self.path))
        } catch {
            throw RebalanceError.journal(self.path, "cannot read it: \(error.localizedDescription)")
        }
        do {
            return try RebalanceJournal.decode(data)
        } catch RebalanceError.journal(_, let problem) {
            throw RebalanceError.journal(self.path, problem)
        } catch {
            throw RebalanceError.journal(self.path, "not a rebalance journal (\(error))")
        }
    }

    /// Writes `journal` durably (temp file, fsync, rename, fsync of the directory).
    public func save(_ journal: RebalanceJournal) throws {
        let data = try journal.encoded()
        let temporary = self.path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw self.failure("cannot create \(temporary)") }
        var written = 0
        let ok = data.withUnsafeBytes { buffer -> Bool in
            while written < buffer.count {
                let n = write(fd, buffer.baseAddress! + written, buffer.count - written)
                if n < 0 {
                    if errno == EINTR { continue }
                    return false
                }
                written += n
            }
            return true
        }
        guard ok, fsync(fd) == 0 else {
            let error = self.failure("cannot write \(temporary)")
            close(fd)
            unlink(temporary)
            throw error
        }
        close(fd)
        guard rename(temporary, self.path) == 0 else {
            let error = self.failure("cannot rename \(temporary) to \(self.path)")
            unlink(temporary)
            throw error
        }
        let directory = (self.path as NSString).deletingLastPathComponent
        let dirFD = open(directory.isEmpty ? "." : directory, O_RDONLY)
        if dirFD >= 0 {
            _ = fsync(dirFD)
            close(dirFD)
        }
    }

    /// Takes the journal's lock, or throws `RebalanceError.busy` when another process holds it.
    public func lock() throws {
        guard self.lockDescriptor < 0 else { return }
        let lockPath = self.path + ".lock"
        let fd = open(lockPath, O_RDWR | O_CREAT, 0o644)
        guard fd >= 0 else { throw self.failure("cannot open \(lockPath)") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            close(fd)
            throw RebalanceError.busy("another shardctl is working on \(self.path) (it holds \(lockPath)); wait for it to finish")
        }
        self.lockDescriptor = fd
    }

    private func failure(_ what: String) -> RebalanceError {
        RebalanceError.journal(self.path, "\(what): \(String(cString: strerror(errno)))")
    }
}
