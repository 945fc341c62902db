import Foundation
import OpLogStorage

/// Group commit: a run of queued appends and truncations becomes one journal record and one sync.
extension Writer {
    /// Runs a group of appends and truncations as one journal record and one sync.
    ///
    /// Each request is validated against the state left by the requests before it in the group; a
    /// failing request fails alone and its changes are discarded. Callers are resumed only after the
    /// record is durable, and the views are updated before that (read-after-acknowledge). With
    /// `mayApply` (the writer thread) a journal past `journalApplyBytes` is then applied.
    func commitGroup(_ group: [WriteRequest], mayApply: Bool) {
        assertOnWriterThread()
        let started = DispatchTime.now().uptimeNanoseconds
        absorbFinishedApply()
        // Memory for unapplied ops is bounded at two slots' worth on disk, and the active slot at
        // two slots' worth of the views' memory: past either, writing waits for the apply in flight
        // (only when appends outrun LMDB commits for a whole slot).
        let bound = Limits.unappliedJournalSlotsMax * options.journalApplyBytes
        if mayApply, sealedJob != nil, journalBytes >= bound || activeSlotHeldBytes >= bound {
            quiesceApplier()
        }
        if let failure {
            group.forEach { $0.fail(failure) }
            return
        }
        var scratch: [DocumentID: ScratchDocument] = [:]
        var groupEpochs: [FencingScope: UInt64] = [:]
        var entries: [JournalEntry] = []
        var outcomes: [Result<[AppendResult], OpLogError>] = []
        var journaled: [Bool] = []
        let now = context.clock.now
        for request in group {
            let before = entries.count
            do {
                try requirePrimary(request.operationName)
                try requireNothingPrepared()
                switch request {
                case .append(let batch, _):
                    outcomes.append(.success(try stageAppend(batch, scratch: &scratch, epochs: &groupEpochs, entries: &entries, now: now)))
                case .truncate(let document, let floor, let epoch, _):
                    try stageTruncate(document, floor: floor, epoch: epoch, scratch: &scratch, epochs: &groupEpochs, entries: &entries)
                    outcomes.append(.success([]))
                case .raiseEpoch(let scope, let epoch, _):
                    try stageEpochRaise(scope, to: epoch, epochs: &groupEpochs, entries: &entries)
                    outcomes.append(.success([]))
                case .putSnapshot, .deleteSnapshot, .deleteDocument, .checkpoint, .savePosition, .close, .trimMemory, .readEpoch,
                    .applyChanges, .promote, .prepare, .commitPrepared, .abandonPrepared:
                    preconditionFailure("commitGroup given a request that is not journaled")
                }
            } catch {
                outcomes.append(.failure(error))
            }
            journaled.append(entries.count > before)
        }
        assert(outcomes.count == group.count && journaled.count == group.count, "one outcome per request")
        if !entries.isEmpty {
            do {
                let sequence = try writeJournalRecord(entries)
                feedJournaled(sequence, entries: entries, synced: options.durability == .full)
            } catch {
                for index in group.indices where journaled[index] { outcomes[index] = .failure(error) }
                resume(group, outcomes)
                return
            }
            publish(scratch, entries: entries)
            epochs.journaled.merge(groupEpochs, uniquingKeysWith: max)
            if !groupEpochs.isEmpty { epochs.anyRaised = true }
        }
        resume(group, outcomes)
        metrics.commitLatency.recordNanoseconds(Int64(DispatchTime.now().uptimeNanoseconds - started))
        if mayApply, sealedJob != nil || activeSlotIsDue(adding: 0) {
            startApplyIfDue()
        }
    }

    private func resume(_ group: [WriteRequest], _ outcomes: [Result<[AppendResult], OpLogError>]) {
        for (request, outcome) in zip(group, outcomes) {
            switch (request, outcome) {
            case (.append(_, let continuation), .success(let results)): continuation.resume(returning: results)
            case (.truncate(_, _, _, let continuation), .success), (.raiseEpoch(_, _, let continuation), .success):
                continuation.resume()
            case (_, .failure(let error)): request.fail(error)
            default: preconditionFailure("a successful outcome for a request that is not journaled")
            }
        }
    }

    /// Appends one journal record and syncs it (in the full durability mode, or with `sync`).
    /// - Returns: its sequence, the change-feed position of what it holds.
    /// With `deferSync` it is not synced even in `full`: a follower syncs a run of records once.
    func writeJournalRecord(_ entries: [JournalEntry], sync: Bool = false, deferSync: Bool = false) throws(OpLogError) -> UInt64 {
        if journal == nil, let base = journalBaseToCreate {
            try replaceJournal(baseSequence: base)
        }
        guard let journal else { throw poison("the journal is not open") }
        let record = JournalRecord(sequence: journal.nextSequence, entries: entries)
        let frame: JournalCoding.Frame
        let deflater = try deflater(level: options.journalCompressionLevel)
        do { frame = try JournalCoding.encodeFrame(record, deflater: deflater) } catch {
            throw OpLogError(error)
        }
        // The reader refuses records whose stored or raw length exceeds the limit; never write one.
        guard frame.bytes.count <= Limits.journalRecordBytesMax, frame.rawLength <= Limits.journalRecordBytesMax else {
            throw .limitExceeded(.batchPayloadBytes, value: max(frame.bytes.count, frame.rawLength), maximum: Limits.journalRecordBytesMax)
        }
        let syncStarted = DispatchTime.now().uptimeNanoseconds
        let fillBefore = journal.fillBytesWritten
        do throws(Journal.AppendFailure) {
            try journal.append(frame.bytes, sync: sync || (options.durability == .full && !deferSync))
        } catch {
            switch error {
            case .noSpace(let cause):
                // The partial frame was cut off: nothing of this group is acknowledged, and the
                // next group tries again.
                throw .storageFull(
                    detail: "the file system is full; a journal record of \(frame.bytes.count) bytes was not written (\(cause.description))"
                )
            case .failed(let cause):
                // The record may be partly on disk, and a failed sync may have dropped earlier pages.
                throw poison(cause.description)
            }
        }
        let syncNanoseconds = DispatchTime.now().uptimeNanoseconds - syncStarted
        metrics.syncLatency.recordNanoseconds(Int64(syncNanoseconds))
        journalBytes += frame.bytes.count
        activeSlotHeldBytes += frame.rawLength
        counters.withLock { counters in
            counters.groupCommits += 1
            counters.opsCommitted += entries.reduce(0) { $0 + $1.ops.count }
            counters.syncNanoseconds += syncNanoseconds
            counters.journalFillBytes += journal.fillBytesWritten - fillBefore
        }
        return record.sequence
    }

    /// Makes a durable group visible: views first (read-after-acknowledge), then the event stream,
    /// then the dedupe indexes.
    func publish(_ scratch: [DocumentID: ScratchDocument], entries: [JournalEntry]) {
        let changed = scratch.filter { $0.value.changed }
        reader.publish(changed.mapValues(\.update))
        // Events in the order the group staged them.
        announce(
            entries.map { entry in
                switch entry {
                case .ops(let document, let ops): return .appended(document: document, ops: ops)
                case .truncate(let document, let floor): return .truncated(document: document, floor: floor)
                case .epoch, .marker: return nil
                }
            }.compactMap { $0 })
        let window = context.window
        for (document, staged) in changed {
            // The views hold the document until the slot is applied: its overhead counts towards
            // sealing the slot, so that one small op to each of many documents cannot hold many
            // times the slot's bytes. (Per op, the views hold about 160 bytes besides payload and
            // author: at most about 2.6 times the raw bytes of the traces' 56-byte ops. That is
            // not counted, because it would seal slots 2.6 times as often on every workload.)
            if dirtyDocuments.insert(document).inserted { activeSlotHeldBytes += Limits.viewDocumentBytesEstimate }
            let cutoff = window.oldestServerTime(lastServerTime: staged.lastServerTimeMilliseconds)
            dedupe.modify(document) { index in
                for op in staged.appended { index.insert(op.opID, revision: op.revision, time: op.serverTimeMilliseconds) }
                index.prune(keepingOps: window.ops, cutoff: cutoff)
            }
        }
        enforceMemoryBudget()
    }
}
