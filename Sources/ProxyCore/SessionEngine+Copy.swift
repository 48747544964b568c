import NIOCore
import PGWire
import ShardMap
import SQLRouting

/// COPY FROM STDIN into a sharded table: the data is split by each row's key over every shard.
extension SessionEngine {
    /// Starts the COPY, first asking shard 0 where the key is when the COPY names no columns.
    mutating func copyIntoShards(_ frame: PGFrame, format: CopyInFormat, context: inout RoutingContext) -> Bool {
        guard let keyField = format.keyColumn else {
            let choice = self.choose(shard: 0, primary: true, context: &context)
            guard self.isReady(for: choice) else { return false }
            let id = self.lease(for: choice)
            self.enqueue(.bytes(Self.query(Self.keyPositionQuery(format), allocator: self.allocator), [.init(.query, .capture)]),
                         to: id)
            self.copyIn = .lookingUp(frame: frame, format: format, lease: id, found: nil, failed: false)
            return true
        }
        let shards = Array(context.map.shards.indices)
        guard self.isReadyForGroup(shards) else { return false }
        if self.transaction == nil {
            var transaction = Transaction(begin: "BEGIN", readOnly: false, answeredLocally: true)
            transaction.implicit = true
            self.transaction = transaction
        }
        let implicit = self.transaction?.implicit == true
        let members = self.makeGroup(shards, primary: true, rows: .concatenate, isWrite: false, context: &context)
        if implicit { self.group?.combiner.holdsReadyForQuery = true }
        var bytes = self.allocator.buffer(capacity: frame.wireLength)
        frame.write(into: &bytes)
        for (index, member) in members.enumerated() {
            if let i = self.index(of: member) { self.leases[i].wrote = true }
            self.transaction?.writers.insert(shards[index])
            self.noteUnit(SessionEffect(), plan: nil, lease: member, shard: shards[index])
            self.enqueue(.bytes(bytes, [.init(.query, .combine)]), to: member)
        }
        let memberOfShard = Dictionary(uniqueKeysWithValues: shards.enumerated().map { ($1, $0) })
        self.copyIn = .splitting(CopySplitter(format: format, keyField: keyField, map: context.map,
                                              memberOfShard: memberOfShard, memberCount: members.count,
                                              allocator: self.allocator))
        return true
    }

    /// The 0-based position of the key among the table's columns, as COPY without a column list reads them;
    /// no row when the table has no such column.
    static func keyPositionQuery(_ format: CopyInFormat) -> String {
        let parts = format.table.split(separator: ".", maxSplits: 1).map { SessionParameters.quoteIdentifier(String($0)) }
        let relation = SessionParameters.quoteLiteral(parts.joined(separator: "."))
        let key = SessionParameters.quoteLiteral(format.key)
        return """
            SELECT (SELECT count(*) FROM pg_catalog.pg_attribute a WHERE a.attrelid = k.attrelid AND a.attnum > 0 \
            AND NOT a.attisdropped AND a.attnum < k.attnum) FROM pg_catalog.pg_attribute k \
            WHERE k.attrelid = \(relation)::pg_catalog.regclass AND k.attname = \(key) AND k.attnum > 0 AND NOT k.attisdropped
            """
    }

    /// A message of the key-position question's answer.
    mutating func keyPositionAnswer(type: UInt8, payload: ByteBuffer, completed: Bool, context: inout RoutingContext) {
        guard case .lookingUp(let frame, let format, let lease, var found, var failed) = self.copyIn else { return }
        switch type {
        case BackendMessageID.dataRow.rawValue:
            var reader = payload
            if let row = try? DataRow.decode(from: &reader), row.columnCount == 1, let value = row.column(0) {
                found = Int(String(buffer: value))
            }
        case BackendMessageID.errorResponse.rawValue:
            // The COPY's own error (e.g. the table does not exist): the client sees it as PostgreSQL's.
            var out = self.allocator.buffer(capacity: payload.readableBytes + 5)
            out.writeInteger(type)
            out.writeInteger(Int32(payload.readableBytes + 4))
            out.writeImmutableBuffer(payload)
            self.emit(.send(out))
            failed = true
        default:
            break
        }
        self.copyIn = .lookingUp(frame: frame, format: format, lease: lease, found: found, failed: failed)
        guard completed else { return }
        self.copyIn = nil
        if failed {
            self.sendToClient([.readyForQuery(self.clientStatus)])
            return
        }
        guard let found else {
            self.sendToClient([.errorResponse(ProxyErrors.error(
                "42703", "column \"\(format.key)\" of relation \"\(format.table)\" does not exist",
                hint: "The shard map names \"\(format.key)\" as the table's shard key.")), .readyForQuery(self.clientStatus)])
            return
        }
        var known = format
        known.keyColumn = found
        // Nothing else is in flight now (the question was): the COPY starts at once.
        _ = self.copyIntoShards(frame, format: known, context: &context)
    }

    /// COPY data, CopyDone or CopyFail for a COPY split over the shards.
    mutating func splitCopy(_ frame: PGFrame, splitter: inout CopySplitter) {
        guard let members = self.group?.members else { return }
        let chunks: [(member: Int, data: ByteBuffer)]
        switch frame.id {
        case FrontendMessageID.copyData.rawValue:
            chunks = splitter.feed(frame.payload)
        case FrontendMessageID.copyDone.rawValue:
            chunks = splitter.finish()
        default:
            chunks = []
        }
        for (member, data) in chunks where member < members.count {
            var out = self.allocator.buffer(capacity: data.readableBytes + 5)
            FrontendMessage.copyData(data).encode(into: &out)
            self.enqueue(.bytes(out, []), to: members[member])
        }
        if frame.id != FrontendMessageID.copyData.rawValue {
            // CopyDone or CopyFail: every shard ends its COPY.
            for member in members { self.enqueue(.frame(frame, nil), to: member) }
        }
    }
}
