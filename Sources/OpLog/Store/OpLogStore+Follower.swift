/// Followers: a store that reproduces another store from its change feed (see `StoreRole`).
extension OpLogStore {
    /// This open's role: `StoreOptions.role` until `promote()`.
    public var role: StoreRole {
        guard let writer else { return options.role }
        return writer.isFollower ? .follower : .primary
    }

    /// Applies a change of the primary's feed (`changes(after:)`, or `Change(decoding:)` of what it
    /// sent), durably, at the same position: the same documents, revisions, op IDs, server times,
    /// snapshots, floors and deletions. The follower's applied position is its `latestPosition()`,
    /// recorded with the change itself, so after a crash it resumes from there.
    ///
    /// A follower that holds no change yet takes its primary's lineage with its first change (which
    /// must then be position 1; a follower of a primary whose feed no longer reaches back to 1 starts
    /// from a backup of it). Applying is idempotent: a change at or below the applied position is
    /// skipped when it is the one the follower holds there (or that one before an erasure the
    /// follower applied since, or below the follower's retained history, where it cannot compare).
    /// - Parameters:
    ///   - change: the primary's change at the follower's next position.
    ///   - epoch: the fencing epoch of the owner whose history this is, if the caller knows it:
    ///     refused (`staleEpoch`) when a document's scope is above it, so a stale owner's log cannot
    ///     be applied after a newer owner's. Epochs the change raises are applied either way.
    /// - Throws: `wrongRole` on a primary; `changeGap` when changes before it are missing;
    ///   `foreignLineage`; `divergence` when the follower holds another change at that position, or
    ///   the change contradicts what it holds (ops not continuing a head, a floor without its
    ///   snapshot); `staleEpoch`; `invalidArgument` for a change no store makes; `limitExceeded`;
    ///   `storageFull`; `reopenRequired`; `readOnly`; `closed`. Nothing of a refused change is applied.
    public func apply(_ change: Change, epoch: UInt64? = nil) async throws(OpLogError) {
        try await apply(contentsOf: [change], epoch: epoch)
    }

    /// Applies consecutive changes like `apply(_:epoch:)`, with one sync for all of them (in
    /// `full`): how a follower catching up should apply a batch of its primary's feed. On an error
    /// the changes before the failing one are applied and durable, the rest are not.
    /// - Throws: as `apply(_:epoch:)`; `limitExceeded` (`changesPerApply`) for more than
    ///   `Limits.changesPerApplyMax` changes.
    public func apply(contentsOf changes: [Change], epoch: UInt64? = nil) async throws(OpLogError) {
        guard changes.count <= Limits.changesPerApplyMax else {
            throw .limitExceeded(.changesPerApply, value: changes.count, maximum: Limits.changesPerApplyMax)
        }
        guard !changes.isEmpty else { return }
        try await requireWriter().submit { .applyChanges(changes: changes, epoch: epoch, continuation: $0) }
    }

    /// Makes a follower a primary that continues its history: the same lineage, positions and
    /// revisions, recognising retries of every op it applied (within the dedupe window, as for
    /// its own). Promoting a primary does nothing. Promotion is this open's: open the store as a
    /// primary (`StoreOptions.role`) from then on. Take over a fencing scope with `raiseEpoch`
    /// right after, so the former primary's late writes cannot be applied here.
    /// - Throws: `readOnly`; `closed`.
    public func promote() async throws(OpLogError) {
        try await requireWriter().submit { .promote(continuation: $0) }
    }
}
