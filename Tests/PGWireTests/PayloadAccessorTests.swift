import NIOCore
import Testing
@testable import PGWire

@Suite("DataRow columns and Bind formats")
struct PayloadAccessorTests {
    private func decodeRow(_ payload: [UInt8]) throws -> DataRow {
        guard case .dataRow(let row) = try BackendMessage.decode(PGFrame(id: b("D"), payload: buffer(payload))) else {
            throw PGWireError.unexpectedMessage(b("D"))
        }
        return row
    }

    @Test("column(_:) tells NULL from the empty string and finds every column")
    func columnsWithNullsAndEmptyStrings() throws {
        // 5 columns: NULL, '', 'abc', NULL, '' (a zero-length value last: the walk must not run off the end)
        let row = try self.decodeRow([
            0, 5,
            0xFF, 0xFF, 0xFF, 0xFF,
            0, 0, 0, 0,
            0, 0, 0, 3, b("a"), b("b"), b("c"),
            0xFF, 0xFF, 0xFF, 0xFF,
            0, 0, 0, 0,
        ])
        #expect(row.columnCount == 5)
        #expect(row.column(0) == nil)
        #expect(row.column(1) == ByteBuffer())
        #expect(row.column(1) != nil)
        #expect(row.column(2) == buffer("abc"))
        #expect(row.column(3) == nil)
        #expect(row.column(4) == ByteBuffer())
        #expect(row.column(4) != nil)
    }

    @Test("column(_:) returns binary and non-ASCII values unchanged")
    func columnsBinary() throws {
        let values: [ByteBuffer?] = [buffer([0, 0, 0, 42]), buffer("ünï"), nil, buffer([0xFF])]
        let row = DataRow(values: values)
        #expect(row.columnCount == 4)
        for (index, value) in values.enumerated() {
            #expect(row.column(index) == value)
        }
        #expect(row.bytes.bytes == [0, 0, 0, 4, 0, 0, 0, 42, 0, 0, 0, 5, 0xC3, 0xBC, 0x6E, 0xC3, 0xAF,
                                    0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 1, 0xFF])
    }

    @Test("column(_:) works on a row whose bytes do not start at index 0")
    func columnOnOffsetBuffer() {
        var bytes = ByteBuffer()
        bytes.writeBytes([9, 9, 9])
        bytes.moveReaderIndex(forwardBy: 3)
        bytes.writeBytes([0, 0, 0, 1, b("x"), 0xFF, 0xFF, 0xFF, 0xFF])
        let row = DataRow(columnCount: 2, bytes: bytes)
        #expect(row.column(0) == buffer("x"))
        #expect(row.column(1) == nil)
    }

    @Test("a decoded row keeps only its own columns, as a slice")
    func decodedRowBytes() throws {
        let row = try self.decodeRow([0, 2, 0, 0, 0, 1, b("x"), 0, 0, 0, 0])
        #expect(row.bytes.bytes == [0, 0, 0, 1, b("x"), 0, 0, 0, 0])
        #expect(row == DataRow(values: [buffer("x"), ByteBuffer()]))
    }

    @Test("Bind.format(ofParameter:) follows the zero / one / one-per-parameter rule", arguments: [
        ([] as [Int16], 0, 0 as Int16),
        ([], 7, 0),
        ([1], 0, 1),
        ([1], 5, 1),
        ([0], 3, 0),
        ([0, 1, 0], 0, 0),
        ([0, 1, 0], 1, 1),
        ([0, 1, 0], 2, 0),
    ])
    func formatOfParameter(_ formats: [Int16], _ index: Int, _ expected: Int16) {
        let bind = Bind(portal: "", statement: "", parameterFormats: formats,
                        parameters: Array(repeating: nil, count: max(formats.count, index + 1)))
        #expect(bind.format(ofParameter: index) == expected)
    }

    @Test("a decoded Bind answers per-parameter formats")
    func decodedBindFormats() throws {
        let golden = FrontendGolden.all.first { $0.name == "Bind per-parameter formats" }!
        guard case .bind(let bind) = try FrontendMessage.decode(PGFrame(id: b("B"), payload: buffer(golden.payload)))
        else {
            Issue.record("not a Bind")
            return
        }
        #expect(bind.format(ofParameter: 0) == 0)
        #expect(bind.format(ofParameter: 1) == 1)
        #expect(bind.parameters == [buffer("ab"), ByteBuffer()])
        #expect(bind.resultFormats == [0, 1, 0])
    }
}
