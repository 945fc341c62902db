import Foundation
import OpLogStorage

/// Moving the journal into LMDB: a sealed slot's changes in one write transaction, normally on the
/// applier thread while the writer appends to the other slot. See FORMAT.md, "Applying the journal"
/// for the crash analysis.
extension Writer {
    /// Seals the active slot and hands it to the applier once it holds `journalApplyBytes` (after
    /// a group commit on the writer thread or a leading caller's). First takes a finished apply's
    /// result; a failed apply's job is started again.
    func startApplyIfDue() {
        assertOnWriterThread()
        absorbFinishedApply()
        guard let applier, !applier.isApplyingOrHoldsResult, failure == nil, journal != nil else { return }
        if sealedJob == nil {
            guard activeSlotIsDue(adding: 0) else { return }
            do { sealedJob = try sealActiveSlot() } catch {
                options.logger.error("sealing the journal slot failed", metadata: ["error": "\(error)"])
                return
            }
        }
        guard let sealedJob else { return }
        applier.start(sealedJob)
    }

    /// Moves everything journaled into LMDB before returning (checkpoint, close, deletion, a tight
    /// space check, recovery): waits for an apply in flight, then applies what is sealed and what
    /// the active slot holds, on the calling thread.
    func applyJournal() throws(OpLogError) {
        assertOnWriterThread()
        quiesceApplier()
        for _ in 0..<2 {
            if sealedJob == nil {
                guard let journal, journal.activeHoldsRecords else { return }
                sealedJob = try sealActiveSlot()
            }
            guard let job = sealedJob else { return }
            let result = commitApply(job, deflater: try deflater(level: options.compressionLevel))
            try finishApply(job, result).get()
        }
        assert(sealedJob == nil && journal?.activeHoldsRecords != true, "the journal holds records after a full apply")
    }

    /// Waits until the applier is idle and takes its result: before the writer's own LMDB
    /// commits, and whenever the unapplied journal reaches its bound.
    func quiesceApplier() {
        assertOnWriterThread()
        applier?.waitUntilIdle()
        absorbFinishedApply()
    }

    /// Takes a finished apply's result, if one is waiting.
    func absorbFinishedApply() {
        assertOnWriterThread()
        guard let (job, result) = applier?.takeResult() else { return }
        if case .failure(let error) = finishApply(job, result) {
            options.logger.error("journal apply failed", metadata: ["error": "\(error)"])
        }
    }

    /// Whether the active slot is due for an apply once `bytes` more are written: when its records
    /// reach `journalApplyBytes` as stored, or the memory they hold in the views does (raw bytes
    /// plus the views' overhead, `activeSlotHeldBytes`). The second bound is the one that holds
    /// memory: the views of unapplied documents hold the ops decoded, and records of compressible
    /// ops, or of one small op to each of many documents, can be many times smaller than that.
    func activeSlotIsDue(adding bytes: Int) -> Bool {
        guard let journal else { return false }
        return max(journal.activeRecordBytes, activeSlotHeldBytes) + bytes >= options.journalApplyBytes
    }

    /// Ends the active slot's run: the views of the documents it changed become the job.
    private func sealActiveSlot() throws(OpLogError) -> ApplyJob {
        assert(sealedJob == nil, "sealing a slot while another waits to be applied")
        guard let journal else { throw poison("the journal is not open") }
        let views = reader.views(of: dirtyDocuments.sorted())
        assert(views.count == dirtyDocuments.count, "a dirty document has no view")
        let lastSequence: UInt64
        do { lastSequence = try journal.seal(synchronize: options.durability != .full) } catch {
            throw poison("journal sync before an apply failed: \(error)")
        }
        feedSynced()
        let feed = feedRecords
        feedRecords.removeAll(keepingCapacity: true)
        dirtyDocuments.removeAll(keepingCapacity: true)
        activeSlotHeldBytes = 0
        return ApplyJob(lastSequence: lastSequence, views: views, journalBytes: journalBytes, epochs: epochs.seal(), feed: feed)
    }

    /// Writes a job's changes in one LMDB transaction. Runs on the applier's thread (or, from
    /// `applyJournal`, under the turn with the applier idle); touches no writer state but the LMDB
    /// space figures, which `writeGrowing` keeps behind their lock.
    func commitApply(_ job: ApplyJob, deflater: Deflater?) -> Result<AppliedRecords, OpLogError> {
        let started = DispatchTime.now().uptimeNanoseconds
        let window = context.window
        var written: AppliedRecords = [:]
        do throws(OpLogError) {
            try writeGrowing { txn in
                let applied = try tables.readAppliedSequence(txn)
                assert(applied < job.lastSequence, "LMDB applied \(applied), the sealed slot ends at \(job.lastSequence)")
                for (document, view) in job.views {
                    written[document] = try applyDocument(txn, document, view: view, window: window, deflater: deflater)
                }
                for (scope, epoch) in job.epochs { try tables.raiseEpoch(txn, scope, to: epoch) }
                try writeFeed(txn, job.feed, heldThrough: job.lastSequence, deflater: deflater)
                let appliedBody = AppliedSequenceRecord.encode(job.lastSequence)
                try txn.put(
                    tables.meta, key: StoreTables.appliedKey,
                    value: RecordFrame.encode(
                        kind: .appliedSequence, codec: .raw, key: StoreTables.appliedKey, stored: appliedBody, rawLength: appliedBody.count)
                )
            }
        } catch {
            return .failure(error)
        }
        metrics.applies.increment()
        metrics.applyLatency.recordNanoseconds(Int64(DispatchTime.now().uptimeNanoseconds - started))
        return .success(written)
    }

    /// After a job's commit, under the turn: the views drop what LMDB now holds, the journal may
    /// recycle the slot. A failed job stays sealed, to be tried again.
    @discardableResult
    private func finishApply(_ job: ApplyJob, _ result: Result<AppliedRecords, OpLogError>) -> Result<Void, OpLogError> {
        assertOnWriterThread()
        assert(sealedJob?.lastSequence == job.lastSequence, "an apply's result for a job that is not the sealed one")
        guard case .success(let written) = result else { return result.map { _ in () } }
        reader.rebase(after: job, written: written, stillJournaled: dirtyDocuments)
        journal?.markApplied(through: job.lastSequence)
        epochs.sealedWereApplied()
        context.feed.applied(through: job.lastSequence)
        journalBytes -= job.journalBytes
        assert(journalBytes >= 0, "unapplied journal bytes went negative")
        sealedJob = nil
        counters.withLock { $0.journalApplies += 1 }
        return .success(())
    }

    /// `finishApply` for recovery's apply, before the journal is open.
    func finishApplyAtOpen(_ job: ApplyJob, _ result: Result<AppliedRecords, OpLogError>) throws(OpLogError) {
        try finishApply(job, result).get()
    }

    /// Replaces both slots with empty ones whose base is the next sequence: after a deletion, so
    /// that the deleted document's journaled bytes leave the slot files with them. Requires an
    /// applied journal.
    ///
    /// On ENOSPC the old slots stay (LMDB holds all their records: the state a crash after the
    /// deletion leaves, which recovery handles). The writer then runs without a journal and the
    /// next group retries the replacement, failing with `storageFull` until it fits. Any other
    /// failure marks the store unusable.
    func resetJournal() throws(OpLogError) {
        assertOnWriterThread()
        guard let current = journal else { return }
        assert(sealedJob == nil && !current.activeHoldsRecords, "resetting a journal that holds unapplied records")
        let base = current.nextSequence
        current.close()
        journal = nil
        try replaceJournal(baseSequence: base)
    }

    /// Creates empty slots whose first record will be `baseSequence` (see `resetJournal`).
    func replaceJournal(baseSequence: UInt64) throws(OpLogError) {
        do throws(StorageError) {
            journal = try Journal.create(directory: context.directory, baseSequence: baseSequence, mode: options.filePermissions)
            journalBaseToCreate = nil
        } catch {
            guard error.isNoSpace else { throw poison(error.description) }
            journalBaseToCreate = baseSequence
            throw .storageFull(detail: "the file system is full; the journal slots could not be replaced: \(error.description)")
        }
    }

    /// Writes one document's journaled changes: truncation (moving truncated op IDs that are still in
    /// the dedupe window to `dedupe` records), new op chunks, and the document record.
    private func applyDocument(
        _ txn: borrowing WriteTransaction, _ document: DocumentID, view: DocumentView, window: DedupeWindow, deflater: Deflater?
    ) throws -> DocumentRecord {
        var record = try tables.readDocumentRecord(txn, document) ?? .empty
        // Check before the record is rewritten: a lost first dedupe record must not be laundered
        // into a new `dedupeFrom` (gaps further up stay visible to the dedupe load and to verify).
        let firstDedupe = try firstDedupeRevision(txn, document)
        if firstDedupe != (record.dedupeFrom == 0 ? nil : record.dedupeFrom) {
            throw OpLogError.corruption(
                CorruptionLocation(area: "dedupe", document: document),
                detail:
                    "the first dedupe record is at \(firstDedupe.map { "\($0)" } ?? "none") but the document record says "
                    + "\(record.dedupeFrom)"
            )
        }
        let oldestKept = window.oldestRevision(head: view.head)
        if view.floor > record.floor {
            let freed = try removeChunks(txn, document, below: view.floor, oldestKept: oldestKept)
            record.chunkBytes -= min(record.chunkBytes, freed)
        }
        try pruneDedupeRecords(txn, document, oldestKept: oldestKept)
        if let first = view.pending.first?.revision, first != record.head + 1 {
            throw OpLogError.corruption(
                CorruptionLocation(area: "journal", document: document, revision: first),
                detail: "journaled ops start at \(first) but LMDB's head is \(record.head)")
        }
        // Ops truncated before they were applied: only their op IDs are kept, as a dedupe record.
        let truncated = view.pending.prefix { $0.revision < view.floor }
        try rememberOpIDs(txn, document, of: truncated, oldestKept: oldestKept)
        let retained = view.pending[truncated.endIndex...]
        var start = retained.startIndex
        while start < retained.endIndex {
            var end = start
            var size = 0
            while end < retained.endIndex && (end == start || size < Limits.chunkRawBytesTarget) {
                size += Limits.estimatedStoredBytes(of: retained[end])
                end += 1
            }
            let chunk = retained[start..<end]
            let key = KeyCoding.revisionKey(document, retained[start].revision)
            let value = try RecordFrame.encode(
                kind: .opChunk, key: key, body: OpChunkRecord.encode(chunk), deflater: deflater)
            try txn.put(tables.ops, key: key, value: value)
            record.chunkBytes += UInt64(value.count)
            start = end
        }
        record.head = view.head
        record.floor = view.floor
        record.lastServerTimeMilliseconds = view.lastServerTimeMilliseconds
        record.dedupeFrom = try firstDedupeRevision(txn, document) ?? 0
        let key = KeyCoding.documentKey(document)
        try txn.put(
            tables.documents, key: key,
            value: RecordFrame.encode(
                kind: .document, codec: .raw, key: key, stored: record.encode(), rawLength: DocumentRecord.encodedBytes))
        return record
    }

    private func firstDedupeRevision(_ txn: borrowing WriteTransaction, _ document: DocumentID) throws -> Revision? {
        try txn.withCursor(tables.dedupe) { cursor in
            guard let first = try cursor.seek(atOrAfter: KeyCoding.documentPrefix(document)),
                let (owner, revision) = KeyCoding.parseRevisionKey(first.key), owner == document
            else { return nil }
            return revision
        }
    }

    /// Deletes chunks whose ops are all below `floor`; returns the stored bytes freed.
    private func removeChunks(
        _ txn: borrowing WriteTransaction, _ document: DocumentID, below floor: Revision,
        oldestKept: Revision
    ) throws -> UInt64 {
        var freed: UInt64 = 0
        try txn.withWriteCursor(tables.ops) { cursor in
            var entry = try cursor.seek(atOrAfter: KeyCoding.documentPrefix(document))
            while let current = entry, KeyCoding.belongs(current.key, to: document) {
                let ops = try StoreTables.decodeChunk(current, document: document)
                guard let last = ops.last, last.revision < floor else { break }
                try rememberOpIDs(txn, document, of: ops[...], oldestKept: oldestKept)
                freed += UInt64(current.value.count)
                try cursor.deleteCurrent()
                entry = try cursor.seek(atOrAfter: KeyCoding.documentPrefix(document))
            }
        }
        return freed
    }

    /// Writes a dedupe record for the ops still inside the dedupe window (a suffix: revisions and
    /// server times both increase).
    private func rememberOpIDs(
        _ txn: borrowing WriteTransaction, _ document: DocumentID, of ops: ArraySlice<StoredOp>,
        oldestKept: Revision
    ) throws {
        // Only the op count bounds what is kept, never the ops' age: `basedOn` retries check these
        // records with no time limit (the time window applies to plain retries, in memory).
        let remembered = Array(ops.filter { $0.revision >= oldestKept })
        // Records of at most `dedupeEntriesPerRecord` entries stay inside LMDB leaf pages: a larger
        // value goes to overflow pages and wastes up to a page of slack each.
        for start in stride(from: 0, to: remembered.count, by: Limits.dedupeEntriesPerRecord) {
            let piece = remembered[start..<min(start + Limits.dedupeEntriesPerRecord, remembered.count)]
            guard let first = piece.first else { continue }
            let record = DedupeRecord(firstRevision: first.revision, entries: piece.map { ($0.opID, $0.serverTimeMilliseconds) })
            let key = KeyCoding.revisionKey(document, first.revision)
            try txn.put(
                tables.dedupe, key: key, value: RecordFrame.encode(kind: .dedupe, key: key, body: record.encode(), compressionLevel: 0))
        }
    }

    /// Deletes dedupe records wholly outside the window.
    private func pruneDedupeRecords(_ txn: borrowing WriteTransaction, _ document: DocumentID, oldestKept: Revision) throws {
        try txn.withWriteCursor(tables.dedupe) { cursor in
            var entry = try cursor.seek(atOrAfter: KeyCoding.documentPrefix(document))
            while let current = entry, KeyCoding.belongs(current.key, to: document) {
                let record = try StoreTables.decodeDedupe(current, document: document)
                let lastRevision = record.firstRevision + UInt64(record.entries.count) - 1
                guard lastRevision < oldestKept else { break }
                try cursor.deleteCurrent()
                entry = try cursor.seek(atOrAfter: KeyCoding.documentPrefix(document))
            }
        }
    }
}
