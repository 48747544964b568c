import PGAuth
import Testing

/// The UTF-8 bytes of `text`.
func bytes(_ text: String) -> [UInt8] {
    Array(text.utf8)
}

/// `bytes` as a string, for readable expectations.
func text(_ bytes: [UInt8]) -> String {
    String(decoding: bytes, as: UTF8.self)
}

/// Runs `body` and returns the SCRAMError it threw, or `nil` when it returned normally.
///
/// (Closures do not infer typed throws yet, so this takes `any Error` and records an issue for other types.)
func scramError(sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void) -> SCRAMError? {
    do {
        try body()
        return nil
    } catch let error as SCRAMError {
        return error
    } catch {
        Issue.record("expected a SCRAMError, got \(error)", sourceLocation: sourceLocation)
        return nil
    }
}
