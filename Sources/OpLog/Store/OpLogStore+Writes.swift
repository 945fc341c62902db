/// Mutations. Each is `async`: it queues a request for the writer thread and resumes when the
/// change is durable (per `StoreOptions.durability`) and visible to reads.
extension OpLogStore {
    /// Appends `ops` to `document` atomically and returns once they are durable (per `durability`).
    ///
    /// The store assigns revisions head+1 … head+n and the server timestamps. If every op ID was
    /// accepted before, nothing is written and the original revisions come back (`wasRetry`), even
    /// when `expectedHead` is stale. Retries are recognised within the dedupe window, or with no
    /// time limit when `basedOn` names the revision the ops were based on (see `DocumentAppend`).
    /// - Throws: `conflict` when `expectedHead` is set and differs from the head; `partialRetry`;
    ///   `retryUnverifiable` when `basedOn` lies below the op IDs the store still holds;
    ///   `beyondHead` when `basedOn` lies above the head; `duplicateInBatch`; `limitExceeded`;
    ///   `invalidArgument`; `storageFull`; `reopenRequired` after an I/O failure; `readOnly`; `closed`.
    public func append(
        _ ops: [NewOp], to document: DocumentID, expectedHead: Revision? = nil,
        basedOn: Revision? = nil, epoch: UInt64? = nil
    ) async throws(OpLogError) -> AppendResult {
        let results = try await append(
            batch: [DocumentAppend(document: document, ops: ops, expectedHead: expectedHead, basedOn: basedOn, epoch: epoch)])
        return results[0]
    }

    /// Appends to several documents in one durable commit: all of it or none of it.
    ///
    /// Each document may appear once. If any document's part fails, nothing is written and the
    /// error names that document. Returns one result per element of `batch`.
    /// - Throws: as `append(_:to:expectedHead:basedOn:)`, for the first part that fails.
    public func append(batch: [DocumentAppend]) async throws(OpLogError) -> [AppendResult] {
        guard !batch.isEmpty else { throw .invalidArgument("a batch needs at least one document") }
        guard batch.count <= Limits.documentsPerBatchMax else {
            throw .limitExceeded(.documentsPerBatch, value: batch.count, maximum: Limits.documentsPerBatchMax)
        }
        let writer = try requireWriter()
        // Without a sync per append, an idle writer's work is cheaper done here than handed over.
        if let inline = writer.appendInline(batch) { return try inline.get() }
        return try await writer.submit { .append(batch: batch, continuation: $0) }
    }

    /// Appends like `append(batch:)`, blocking the calling thread instead of suspending a task.
    ///
    /// For callers on threads of their own (a thread per connection, a worker pool), as LevelDB's,
    /// RocksDB's and SQLite's writes are: when the queue is empty and the writer idle, the calling
    /// thread runs the group commit itself — the journal record and, in ``Durability/full``, its
    /// `fdatasync` — so a lone writer pays no hand-off to the writer thread; behind other requests
    /// the writer thread commits it with them and the caller is woken once. Never call it from a
    /// task or an actor: it would block a thread of Swift concurrency's cooperative pool for the
    /// length of a sync; use `append(batch:)` there.
    /// - Throws: as `append(batch:)`.
    public func appendBlocking(batch: [DocumentAppend]) throws(OpLogError) -> [AppendResult] {
        guard !batch.isEmpty else { throw .invalidArgument("a batch needs at least one document") }
        guard batch.count <= Limits.documentsPerBatchMax else {
            throw .limitExceeded(.documentsPerBatch, value: batch.count, maximum: Limits.documentsPerBatchMax)
        }
        return try requireWriter().appendLeading(batch).get()
    }

    /// Appends `ops` to `document` like `append(_:to:expectedHead:basedOn:)`, blocking the calling
    /// thread (see `appendBlocking(batch:)`; never from a task or an actor).
    /// - Throws: as `append(_:to:expectedHead:basedOn:)`.
    public func appendBlocking(
        _ ops: [NewOp], to document: DocumentID, expectedHead: Revision? = nil, basedOn: Revision? = nil, epoch: UInt64? = nil
    ) throws(OpLogError) -> AppendResult {
        try appendBlocking(
            batch: [DocumentAppend(document: document, ops: ops, expectedHead: expectedHead, basedOn: basedOn, epoch: epoch)])[0]
    }

    /// Removes the ops of `document` below `floor`. Requires a snapshot at exactly `floor - 1`, so
    /// every retained revision stays replayable. A floor at or below the current one is a no-op.
    /// - Throws: `documentNotFound`; `beyondHead` for a floor above head + 1; `snapshotRequired`;
    ///   `storageFull`; `reopenRequired`; `readOnly`; `closed`; `staleEpoch`, `epochRequired` (see `epoch`).
    /// - Parameters:
    ///   - document: the document to truncate.
    ///   - floor: its new floor, the lowest revision kept.
    ///   - epoch: the owner's fencing epoch, as for appends (`DocumentAppend.epoch`); a truncation
    ///     that moves the floor raises the scope's epoch to it.
    public func truncate(_ document: DocumentID, below floor: Revision, epoch: UInt64? = nil) async throws(OpLogError) {
        try await requireWriter().submit { .truncate(document: document, floor: floor, epoch: epoch, continuation: $0) }
    }

    /// Raises the fencing epoch of `scope` to `epoch`, durably: from its acknowledgement on, every
    /// mutation of a document in the scope carrying a lower epoch, or none, is refused
    /// (`staleEpoch`, `epochRequired`). An owner calls it when it takes the scope over, before
    /// anything else; documents never written before are fenced as well. Raising to the current
    /// epoch does nothing.
    /// - Throws: `staleEpoch` when `epoch` is below the scope's; `invalidArgument` for 0;
    ///   `storageFull`; `reopenRequired`; `readOnly`; `closed`.
    public func raiseEpoch(_ epoch: UInt64, for scope: FencingScope) async throws(OpLogError) {
        guard epoch >= 1 else { throw .invalidArgument("epochs start at 1") }
        try await requireWriter().submit { .raiseEpoch(scope: scope, epoch: epoch, continuation: $0) }
    }

    /// The fencing epoch of `scope` as this store's writer holds it: 0 if it has none.
    /// - Throws: `corruption`; `readOnly`; `closed`.
    public func epoch(of scope: FencingScope) async throws(OpLogError) -> UInt64 {
        try await requireWriter().submit { .readEpoch(scope: scope, continuation: $0) }
    }

    /// Stores `bytes` as the state of `document` at `revision` (1 ... head). Replaces a snapshot at
    /// the same revision. The bytes are compressed in the caller's task, not on the writer thread.
    /// - Throws: `documentNotFound`; `beyondHead`; `limitExceeded` (`snapshotBytes`); `storageFull`;
    ///   `reopenRequired`; `readOnly`; `closed`.
    /// - Parameters:
    ///   - bytes: the encoded state (`Reducer.encode`), up to `Limits.snapshotBytesMax`.
    ///   - document: the document it is a state of.
    ///   - revision: the revision the state stands at.
    ///   - epoch: the owner's fencing epoch: refused below the scope's, or missing in a fenced scope
    ///     (`staleEpoch`, `epochRequired`); it does not raise the scope's epoch.
    public func putSnapshot(_ bytes: [UInt8], of document: DocumentID, at revision: Revision, epoch: UInt64? = nil) async throws(OpLogError)
    {
        guard bytes.count <= Limits.snapshotBytesMax else {
            throw .limitExceeded(.snapshotBytes, value: bytes.count, maximum: Limits.snapshotBytesMax)
        }
        let writer = try requireWriter()
        let createdAt = options.clock.now
        let frame = try Writer.snapshotFrame(
            bytes, of: document, at: revision, createdAt: createdAt, compressionLevel: options.compressionLevel)
        let snapshot = SnapshotWrite(frame: frame, bytes: bytes, createdAtMilliseconds: createdAt)
        try await writer.submit { .putSnapshot(document: document, revision: revision, snapshot: snapshot, epoch: epoch, continuation: $0) }
    }

    /// Deletes the snapshot at `revision`. Refused (`snapshotProtected`) for the one at `floor - 1`.
    /// - Throws: `snapshotProtected`; `snapshotNotFound`; `reopenRequired`; `readOnly`; `closed`.
    /// - Parameters:
    ///   - document: the snapshot's document.
    ///   - revision: the snapshot's revision.
    ///   - epoch: the owner's fencing epoch, as for `putSnapshot`.
    public func deleteSnapshot(of document: DocumentID, at revision: Revision, epoch: UInt64? = nil) async throws(OpLogError) {
        try await requireWriter().submit { .deleteSnapshot(document: document, revision: revision, epoch: epoch, continuation: $0) }
    }

    /// Deletes a document entirely: ops, snapshots, remembered op IDs. Its ID may be used again and
    /// starts over at revision 1. Deleting an unknown document does nothing.
    /// - Throws: `storageFull` (rarely: a reserve is kept for deletions); `reopenRequired`;
    ///   `readOnly`; `closed`.
    /// - Parameters:
    ///   - document: the document to delete.
    ///   - epoch: the owner's fencing epoch, as for `putSnapshot`. The scope's epoch outlives the document.
    public func deleteDocument(_ document: DocumentID, epoch: UInt64? = nil) async throws(OpLogError) {
        try await requireWriter().submit { .deleteDocument(document: document, epoch: epoch, continuation: $0) }
    }

    /// Saves `position` as the consumer's, durably: the feed's history keeps every change after the
    /// slowest saved position (within `StoreOptions.feedRetentionBytesMax`), so a consumer that
    /// saves where it got to and restarts from `savedPosition(for:)` misses nothing. Saving the
    /// position of the last change a consumer has processed, after processing it, gives
    /// exactly-once processing to a consumer whose effects are idempotent or saved with it.
    /// - Throws: `limitExceeded` (`feedConsumers`, `feedConsumerNameBytes`); `invalidArgument` for
    ///   an empty name or a store without a feed; `foreignLineage`; `beyondFeed`;
    ///   `belowRetention`; `readOnly`; `closed`.
    /// - Parameters:
    ///   - position: where the consumer got to (the last change it processed).
    ///   - consumer: its name, 1 ... `Limits.feedConsumerNameBytesMax` bytes of UTF-8.
    public func savePosition(_ position: ChangePosition, for consumer: String) async throws(OpLogError) {
        try Self.checkConsumerName(consumer)
        try await requireWriter().submit { .savePosition(consumer: consumer, position: position, continuation: $0) }
    }

    /// Forgets a consumer's saved position: the history it held back may go at the next apply.
    /// Removing an unknown name does nothing.
    /// - Throws: `invalidArgument`; `limitExceeded`; `readOnly`; `closed`.
    public func removeSavedPosition(for consumer: String) async throws(OpLogError) {
        try Self.checkConsumerName(consumer)
        try await requireWriter().submit { .savePosition(consumer: consumer, position: nil, continuation: $0) }
    }

    static func checkConsumerName(_ consumer: String) throws(OpLogError) {
        guard !consumer.isEmpty else { throw .invalidArgument("a consumer name must not be empty") }
        guard consumer.utf8.count <= Limits.feedConsumerNameBytesMax else {
            throw .limitExceeded(.feedConsumerNameBytes, value: consumer.utf8.count, maximum: Limits.feedConsumerNameBytesMax)
        }
    }

    /// Moves everything journaled into LMDB now (it happens by itself every `journalApplyBytes`).
    /// - Throws: `storageFull`; `reopenRequired`; `readOnly`; `closed`.
    public func checkpoint() async throws(OpLogError) {
        try await requireWriter().submit { .checkpoint(continuation: $0) }
    }
}
