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
