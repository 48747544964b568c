import NIOCore
import PGWire

// Helpers shared by the PGWire tests. Golden byte sequences in the tests are written out by hand from the
// PostgreSQL "Message Formats" page; these helpers only spell ASCII text and big-endian words, they never
// compute a length.

/// The UTF-8 bytes of `text` followed by a NUL: a protocol `String`.
func cstr(_ text: String) -> [UInt8] { Array(text.utf8) + [0] }

/// The UTF-8 bytes of `text` without terminator: a protocol `Byten`.
func ascii(_ text: String) -> [UInt8] { Array(text.utf8) }

/// One ASCII character as a type byte.
func b(_ character: Unicode.Scalar) -> UInt8 { UInt8(ascii: character) }

func buffer(_ bytes: [UInt8]) -> ByteBuffer { ByteBuffer(bytes: bytes) }

func buffer(_ text: String) -> ByteBuffer { ByteBuffer(string: text) }

extension ByteBuffer {
    /// The readable bytes, for comparing with a golden sequence.
    var bytes: [UInt8] { self.getBytes(at: self.readerIndex, length: self.readableBytes) ?? [] }
}

extension BackendMessage {
    var encodedBytes: [UInt8] {
        var out = ByteBuffer()
        self.encode(into: &out)
        return out.bytes
    }
}

extension FrontendMessage {
    var encodedBytes: [UInt8] {
        var out = ByteBuffer()
        self.encode(into: &out)
        return out.bytes
    }
}

extension StartupPacket {
    var encodedBytes: [UInt8] {
        var out = ByteBuffer()
        self.encode(into: &out)
        return out.bytes
    }
}

/// Splits `bytes` into exactly one frame (with default limits), failing the caller's expectation otherwise.
func singleFrame(_ bytes: [UInt8]) throws -> PGFrame? {
    var input = buffer(bytes)
    let frame = try PGFrame.decode(from: &input, limits: .default)
    guard input.readableBytes == 0 else { return nil }
    return frame
}

/// Feeds `stream` one byte at a time into a growing buffer and runs `decode` after every byte until it
/// returns nil. Returns what was decoded and the 1-based byte count at which each item came out.
///
/// Whenever `decode` returns nil the buffer must be untouched: same reader index, same bytes.
func feedByteByByte<T>(
    _ stream: [UInt8],
    decode: (inout ByteBuffer) throws -> T?,
    onPartialInputChanged: (_ afterBytes: Int) -> Void
) rethrows -> [(value: T, afterBytes: Int)] {
    var accumulated = ByteBuffer()
    var decoded: [(value: T, afterBytes: Int)] = []
    for (index, byte) in stream.enumerated() {
        accumulated.writeInteger(byte)
        while true {
            let before = accumulated
            guard let value = try decode(&accumulated) else {
                if accumulated.readerIndex != before.readerIndex || accumulated != before {
                    onPartialInputChanged(index + 1)
                }
                break
            }
            decoded.append((value, index + 1))
        }
    }
    return decoded
}

/// The reason of a `.malformed` error, or nil for any other error.
func malformedReason(_ error: PGWireError?) -> (message: String, reason: String)? {
    guard case .malformed(let message, let reason)? = error else { return nil }
    return (message, reason)
}

/// Concatenates hand-written pieces of a message. Variadic so long literals type-check quickly.
func wire(_ parts: [UInt8]...) -> [UInt8] { parts.flatMap { $0 } }
