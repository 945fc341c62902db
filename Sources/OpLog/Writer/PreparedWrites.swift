/// A change prepared and not yet committed or abandoned: what its commit writes and publishes,
/// and the writer's staged state after it (the base the next prepare validates against).
struct PreparedRecord {
    let change: Change
    let entries: [JournalEntry]
    /// The documents this change touched, each with only this change's ops, for publishing.
    let published: [DocumentID: ScratchDocument]
    /// Every document the prepared changes up to this one touched, as they leave it.
    let documentsAfter: [DocumentID: ScratchDocument]
    let epochsAfter: [FencingScope: UInt64]
}

/// Two-phase appends (`OpLogStore.prepare(_:epoch:)`, `commit(_:)`, `abandon(_:)`): for an owner
/// whose acknowledgement waits on something outside the store, such as a replicated log.
///
/// A prepare validates and stages a batch exactly as a group commit does, but against the state
/// the changes prepared before it leave, and assigns the position it will have (the journal's next
/// sequence plus the changes prepared before it). Nothing is written: prepared changes live in the
/// writer's memory only, so a crash or close leaves none of them. A commit writes the oldest one's
/// journal record, exactly what a group commit would have written, and publishes it. While changes
/// are prepared every other mutation is refused (`preparedChangesPending`): it would take the
/// positions the prepared changes were given.
extension Writer {
    /// Stages `batch` on top of the prepared changes and returns the change it will commit as.
    func prepare(_ batch: [DocumentAppend], epoch: UInt64?) throws(OpLogError) -> PreparedAppend {
        assertOnWriterThread()
        if let failure { throw failure }
        try requirePrimary("prepare")
        guard feedIsOn else { throw .invalidArgument("two-phase appends need the change feed on (feedRetentionBytes)") }
        guard prepared.count < Limits.preparedChangesMax else {
            throw .limitExceeded(.preparedChanges, value: prepared.count + 1, maximum: Limits.preparedChangesMax)
        }
        let parts = batch.map { part in
            DocumentAppend(
                document: part.document, ops: part.ops, expectedHead: part.expectedHead, basedOn: part.basedOn, epoch: epoch ?? part.epoch)
        }
        // The base: what the prepared changes leave, each document with no ops of its own yet.
        let base = prepared.last?.documentsAfter ?? [:]
        var scratch = base.mapValues { document in
            var fresh = document
            fresh.appended = []
            fresh.truncated = false
            return fresh
        }
        var groupEpochs = prepared.last?.epochsAfter ?? [:]
        var entries: [JournalEntry] = []
        let results = try stageAppend(parts, scratch: &scratch, epochs: &groupEpochs, entries: &entries, now: context.clock.now)
        guard !entries.isEmpty else { return PreparedAppend(change: nil, results: results) }
        let sequence = preparedNextSequence
        let change = change(sequence, Self.feedEvents(entries))
        let touched = scratch.filter(\.value.changed)
        prepared.append(
            PreparedRecord(
                change: change, entries: entries, published: touched, documentsAfter: base.merging(scratch) { $1 },
                epochsAfter: groupEpochs))
        assert(prepared.count == 1 || prepared[prepared.count - 2].change.position.sequence + 1 == sequence, "prepared positions skip")
        return PreparedAppend(change: change, results: results)
    }

    /// The journal sequence the next prepared change gets.
    private var preparedNextSequence: UInt64 {
        (prepared.last?.change.position.sequence).map { $0 + 1 } ?? (journal?.nextSequence ?? journalBaseToCreate ?? 1)
    }

    /// Writes the oldest prepared change, which must be `change`, as its group commit would have.
    func commitPrepared(_ change: Change) throws(OpLogError) {
        assertOnWriterThread()
        if let failure { throw failure }
        guard let first = prepared.first else { throw .invalidArgument("no change is prepared (commit of \(change.position))") }
        guard first.change.position == change.position else {
            throw .invalidArgument(
                "prepared changes commit in position order: \(first.change.position) first, not \(change.position)")
        }
        guard first.change == change else { throw .invalidArgument("the change to commit at \(change.position) is not the one prepared") }
        absorbFinishedApply()
        let bound = Limits.unappliedJournalSlotsMax * options.journalApplyBytes
        if sealedJob != nil, journalBytes >= bound || activeSlotHeldBytes >= bound { quiesceApplier() }
        // An apply since the prepare may have moved a document's ops from its view to LMDB and
        // dropped the view: a view made afresh starts from LMDB's record as it is now.
        var published = first.published
        for (document, staged) in published where try reader.journaledView(of: document) == nil {
            published[document]?.record = try tables.read { txn in try tables.readDocumentRecord(txn, document) } ?? .empty
            assert(published[document]?.record.head ?? 0 <= staged.head, "LMDB is ahead of a prepared change of '\(document)'")
        }
        let sequence = try writeJournalRecord(first.entries)
        assert(sequence == change.position.sequence, "the prepared change at \(change.position) was written at \(sequence)")
        prepared.removeFirst()
        feedJournaled(sequence, entries: first.entries, synced: options.durability == .full)
        publish(published, entries: first.entries)
        let raised = first.entries.compactMap { entry -> (FencingScope, UInt64)? in
            if case .epoch(let scope, let epoch) = entry { return (scope, epoch) }
            return nil
        }
        for (scope, epoch) in raised { epochs.journaled[scope] = max(epochs.journaled[scope] ?? 0, epoch) }
        if !raised.isEmpty { epochs.anyRaised = true }
        if sealedJob != nil || activeSlotIsDue(adding: 0) { startApplyIfDue() }
    }

    /// Drops the prepared change at `change`'s position and every one prepared after it.
    func abandonPrepared(_ change: Change) throws(OpLogError) {
        assertOnWriterThread()
        guard let index = prepared.firstIndex(where: { $0.change.position == change.position }) else {
            throw .invalidArgument("no change is prepared at \(change.position)")
        }
        prepared.removeSubrange(index...)
    }

    /// Refuses a mutation while changes are prepared: it would take their positions.
    func requireNothingPrepared() throws(OpLogError) {
        if let first = prepared.first { throw .preparedChangesPending(oldest: first.change.position, count: prepared.count) }
    }
}
