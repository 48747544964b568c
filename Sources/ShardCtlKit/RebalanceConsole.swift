import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What a rebalance prints: step lines on standard output, and a live progress line on standard error
/// (redrawn in place on a terminal; elsewhere printed at most every `quietInterval`).
public final class RebalanceConsole {
    private let live: Bool
    private let quietInterval: TimeInterval
    private var lastQuiet = Date.distantPast
    private var showing = false
    private let write: (String, Bool) -> Void

    /// A console on the process's standard output and error.
    public convenience init() {
        self.init(live: isatty(STDERR_FILENO) == 1) { text, toError in
            let handle = toError ? FileHandle.standardError : FileHandle.standardOutput
            handle.write(Data(text.utf8))
        }
    }

    /// A console writing through `write(text, toStandardError)` (tests).
    public init(live: Bool, quietInterval: TimeInterval = 5, write: @escaping (String, Bool) -> Void) {
        self.live = live
        self.quietInterval = quietInterval
        self.write = write
    }

    /// Prints a line (ending the progress line first).
    public func line(_ text: String) {
        self.endProgress()
        self.write(text + "\n", false)
    }

    /// Prints a warning on standard error.
    public func warn(_ text: String) {
        self.endProgress()
        self.write("warning: " + text + "\n", true)
    }

    /// Shows `text` as the current progress.
    public func progress(_ text: String) {
        if self.live {
            self.write("\r\u{1B}[2K" + text, true)
            self.showing = true
        } else if Date().timeIntervalSince(self.lastQuiet) >= self.quietInterval {
            self.lastQuiet = Date()
            self.write(text + "\n", true)
        }
    }

    /// Leaves the progress line as it is and moves to a new line.
    public func endProgress() {
        if self.showing {
            self.write("\n", true)
            self.showing = false
        }
    }
}
