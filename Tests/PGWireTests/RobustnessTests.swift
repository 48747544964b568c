import NIOCore
import Testing
@testable import PGWire

/// Damaged input must end in a value or a `PGWireError`, never in a trap. Deterministic: every single-byte
/// corruption of every golden message, then a fixed-seed random sweep.
@Suite("Robustness")
struct RobustnessTests {
    /// Decodes whatever `bytes` holds as a stream of backend or frontend frames and touches every DataRow
    /// column; returns how many messages decoded.
    @discardableResult
    private static func decodeEverything(_ bytes: [UInt8], backend: Bool, limits: PGWireLimits = .default) -> Int {
        var input = buffer(bytes)
        var count = 0
        while true {
            let frame: PGFrame
            do {
                guard let next = try PGFrame.decode(from: &input, limits: limits) else { return count }
                frame = next
            } catch {
                return count
            }
            if backend {
                if case .dataRow(let row)? = try? BackendMessage.decode(frame) {
                    for index in 0..<Int(row.columnCount) { _ = row.column(index) }
                }
            } else if case .password(var payload)? = try? FrontendMessage.decode(frame) {
                _ = try? SASLInitialResponse.decode(from: &payload)
            }
            count += 1
        }
    }

    private static let replacements: [UInt8] = [0x00, 0x01, 0x7F, 0x80, 0xFE, 0xFF]

    @Test("every single-byte corruption of every backend golden message")
    func corruptBackend() {
        for golden in BackendGolden.all {
            for position in golden.bytes.indices {
                for value in Self.replacements {
                    var bytes = golden.bytes
                    bytes[position] = value
                    Self.decodeEverything(bytes, backend: true)
                }
            }
        }
    }

    @Test("every single-byte corruption of every frontend golden message")
    func corruptFrontend() {
        for golden in FrontendGolden.all {
            for position in golden.bytes.indices {
                for value in Self.replacements {
                    var bytes = golden.bytes
                    bytes[position] = value
                    Self.decodeEverything(bytes, backend: false)
                }
            }
        }
    }

    @Test("every single-byte corruption of every startup packet")
    func corruptStartup() {
        for golden in StartupGolden.all {
            for position in golden.bytes.indices {
                for value in Self.replacements {
                    var bytes = golden.bytes
                    bytes[position] = value
                    var input = buffer(bytes)
                    _ = try? StartupPacket.decode(from: &input, limits: .default)
                }
            }
        }
    }

    @Test("random byte soup with a fixed seed, with valid headers so the payload decoders are reached")
    func randomPayloads() {
        var random = SplitMix64(seed: 0x5EED_CAFE)
        let ids = (BackendGolden.all.map(\.bytes[0]) + FrontendGolden.all.map(\.bytes[0]))
        for _ in 0..<3000 {
            let id = ids[Int(random.next() % UInt64(ids.count))]
            let size = Int(random.next() % 40)
            var bytes: [UInt8] = [id, 0, 0, 0, UInt8(size + 4)]
            for _ in 0..<size {
                // Mostly small values and 0xFF, which make lengths and counts that almost fit.
                let r = random.next()
                bytes.append(r % 4 == 0 ? 0xFF : UInt8(truncatingIfNeeded: r >> 8) % 8)
            }
            Self.decodeEverything(bytes, backend: true)
            Self.decodeEverything(bytes, backend: false)
            var startup = buffer(Array(bytes.dropFirst()))
            _ = try? StartupPacket.decode(from: &startup, limits: .default)
        }
    }

    @Test("limits tighter than the message fail cleanly at every size")
    func tinyLimits() {
        let bytes = BackendGolden.all.flatMap(\.bytes)
        for limit in 0...16 {
            Self.decodeEverything(bytes, backend: true, limits: PGWireLimits(maxMessageBytes: limit, maxStartupBytes: limit))
        }
        #expect(Self.decodeEverything(bytes, backend: true) == BackendGolden.all.count)
    }
}

/// A tiny deterministic generator, so a failure reproduces.
struct SplitMix64 {
    var state: UInt64
    init(seed: UInt64) { self.state = seed }
    mutating func next() -> UInt64 {
        self.state &+= 0x9E37_79B9_7F4A_7C15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
