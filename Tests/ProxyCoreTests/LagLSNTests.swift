import ProxyCore
import Testing

@Suite("LSN text form")
struct LagLSNTests {
    @Test(arguments: [
        ("0/0", UInt64(0)),
        ("0/3000060", UInt64(0x0300_0060)),
        ("16/B374D848", UInt64(0x16_B374_D848)),
        ("FFFFFFFF/FFFFFFFF", UInt64.max),
        ("1/0", UInt64(1) << 32),
    ])
    func parsesAndPrintsAsPostgreSQL(text: String, value: UInt64) {
        #expect(LSN(text)?.value == value)
        #expect(LSN(value).description == text)
    }

    @Test func acceptsLowerCaseAndLeadingZerosLikePgLsnIn() {
        #expect(LSN("16/b374d848") == LSN(0x16_B374_D848))
        #expect(LSN("00000000/00000001") == LSN(1))
        #expect(LSN("0/00000001")?.description == "0/1")
    }

    @Test(arguments: ["", "/", "0/", "/0", "0", "0/0/0", "123456789/0", "0/123456789", " 0/0", "0/0 ", "-1/0",
                      "0x1/0", "G/0", "0/+1", "0//0"])
    func refusesWhatPgLsnInRefuses(text: String) {
        #expect(LSN(text) == nil, "\(text)")
    }

    @Test func ordersAndSubtractsLikePgWalLsnDiff() {
        let a = LSN("0/3000060")!
        let b = LSN("0/3000160")!
        #expect(a < b)
        #expect(b.bytes(after: a) == 0x100)
        #expect(a.bytes(after: b) == 0, "clamped, never negative")
        #expect(LSN("1/0")!.bytes(after: LSN("0/FFFFFFFF")!) == 1)
    }

    @Test func anInsertPositionJustPastAPageHeaderEndsAtThePageBoundary() {
        let block: UInt64 = 8192
        let segment: UInt64 = 16 << 20
        // Mid-page: unchanged.
        #expect(LSN(0x0300_0060).insertPositionEnd(blockSize: block, segmentSize: segment) == LSN(0x0300_0060))
        // Just past a short page header (24 bytes): the boundary, where a caught-up replica's replay is.
        #expect(LSN(0x0300_2018).insertPositionEnd(blockSize: block, segmentSize: segment) == LSN(0x0300_2000))
        // First page of a segment: a long header (40 bytes).
        #expect(LSN(0x0400_0028).insertPositionEnd(blockSize: block, segmentSize: segment) == LSN(0x0400_0000))
        // 24 bytes into a segment's first page is inside its long header, not a position PostgreSQL reports.
        #expect(LSN(0x0400_0018).insertPositionEnd(blockSize: block, segmentSize: segment) == LSN(0x0400_0018))
        // Other page sizes.
        #expect(LSN(0x0300_4018).insertPositionEnd(blockSize: 16384, segmentSize: 1 << 30) == LSN(0x0300_4000))
        #expect(LSN(24).insertPositionEnd(blockSize: 0, segmentSize: 0) == LSN(24), "no geometry: unchanged")
    }
}
