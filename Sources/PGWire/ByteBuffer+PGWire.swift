import NIOCore

extension ByteBuffer {
    /// Writes a complete typed message: `id`, a length word, then what `body` writes.
    @inlinable
    public mutating func writePGMessage(id: UInt8, _ body: (inout ByteBuffer) -> Void) {
        self.writeInteger(id)
        let lengthIndex = self.writerIndex
        self.writeInteger(Int32(0))
        body(&self)
        self.setInteger(Int32(self.writerIndex - lengthIndex), at: lengthIndex)
    }
}
