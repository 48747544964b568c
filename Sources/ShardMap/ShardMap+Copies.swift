/// The `"copies"` section: rows a shard holds of slots it does not own, while a rebalance moves them.
///
/// Between `CREATE SUBSCRIPTION` and the cutover the target holds the copied rows of the moving slots;
/// between the cutover and the cleanup the source still holds them. Every read over several shards must
/// skip them there, or one row would be counted twice; the proxy filters them out (`CopyFilter`).
extension ShardMap {
    /// The slots shard `index` holds copies of; empty for almost every shard almost always.
    public func copies(on index: Int) -> Set<Int> {
        self.copies[index] ?? []
    }

    /// Records that shard `index` holds (or is about to hold) copies of `slots`.
    public mutating func addCopies(_ slots: some Sequence<Int>, on index: Int) {
        self.copies[index, default: []].formUnion(slots)
    }

    /// Records that shard `index` no longer holds copies of `slots`.
    public mutating func removeCopies(_ slots: some Sequence<Int>, from index: Int) {
        guard var held = self.copies[index] else { return }
        held.subtract(slots)
        self.copies[index] = held.isEmpty ? nil : held
    }
}

extension ShardMap {
    /// The shards that own at least one slot or hold copies: those a statement over every row of a
    /// sharded table must run on. A shard just added (no slots yet) is left out, so that reads do not
    /// fail there before a rebalance has created its tables.
    public var shardsHoldingRows: Set<Int> {
        var seen = [Bool](repeating: false, count: self.shards.count)
        var count = 0
        for index in self.copies.keys where index < seen.count && !seen[index] {
            seen[index] = true
            count += 1
        }
        for owner in self.slotOwners where owner < seen.count && !seen[owner] {
            seen[owner] = true
            count += 1
            if count == seen.count { break }
        }
        return Set(seen.indices.filter { seen[$0] })
    }
}
