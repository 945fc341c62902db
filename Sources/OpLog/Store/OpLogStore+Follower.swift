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

/// What `OpLogStore.prepare(_:epoch:)` staged: the change to commit, and each part's result.
public struct PreparedAppend: Sendable, Equatable {
    /// The change the batch becomes, at the position it will have; nil when every part was a
    /// retry (of committed ops, or of ops prepared before), so there is nothing to commit.
    public let change: Change?
    /// One result per part of the batch, as `append(batch:)` returns them; a part that retries
    /// ops still prepared gets their revisions, valid once that change commits.
    public let results: [AppendResult]
}

/// Two-phase appends, for an owner whose acknowledgement waits on something outside the store.
extension OpLogStore {
    /// Validates `batch` against the store and the changes already prepared (expected heads,
    /// retries, limits, epochs), assigns revisions, server times and the position, and returns the
    /// change without making it durable. Nothing is written until `commit(_:)`; a crash or close
    /// before it leaves nothing. Until every prepared change is committed or abandoned, the
    /// store's other mutations are refused (`preparedChangesPending`). Needs the feed on.
    /// - Parameters:
    ///   - batch: the parts, as for `append(batch:)`.
    ///   - epoch: the owner's fencing epoch for every part (overriding `DocumentAppend.epoch`).
    /// - Throws: as `append(batch:)`; `limitExceeded` (`preparedChanges`); `wrongRole` on a
    ///   follower; `invalidArgument` without a feed.
    public func prepare(_ batch: [DocumentAppend], epoch: UInt64? = nil) async throws(OpLogError) -> PreparedAppend {
        guard !batch.isEmpty else { throw .invalidArgument("a batch needs at least one document") }
        guard batch.count <= Limits.documentsPerBatchMax else {
            throw .limitExceeded(.documentsPerBatch, value: batch.count, maximum: Limits.documentsPerBatchMax)
        }
        return try await requireWriter().submit { .prepare(batch: batch, epoch: epoch, continuation: $0) }
    }

    /// Makes the oldest prepared change durable (per `durability`) and publishes it: reads, the
    /// feed and subscribers see it, exactly as the group commit it stands for. Changes commit in
    /// position order.
    /// - Throws: `invalidArgument` for a change that is not the oldest prepared; `storageFull`;
    ///   `reopenRequired`; `closed`.
    public func commit(_ change: Change) async throws(OpLogError) {
        try await requireWriter().submit { .commitPrepared(change: change, continuation: $0) }
    }

    /// Drops a prepared change and every change prepared after it (they were validated against
    /// it): nothing of them is written, and their positions go to the next changes.
    /// - Throws: `invalidArgument` for a change that is not prepared; `closed`.
    public func abandon(_ change: Change) async throws(OpLogError) {
        try await requireWriter().submit { .abandonPrepared(change: change, continuation: $0) }
    }
}
