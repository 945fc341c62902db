import Foundation
import OpLogStorage

/// Moving the journal into LMDB: one write transaction for everything journaled since the last
/// apply, then a fresh journal. See FORMAT.md, "Applying the journal" for the crash analysis.
extension Writer {
    func applyJournal() throws(OpLogError) {
        assertOnWriterThread()
        guard let journal, journal.nextSequence > journal.baseSequence else { return }
        let started = DispatchTime.now().uptimeNanoseconds
        let lastSequence = journal.nextSequence - 1
        let views = reader.views(of: dirtyDocuments.sorted())
        assert(views.count == dirtyDocuments.count, "a dirty document has no view")
        let window = context.window
        try writeGrowing { txn in
            let applied = try tables.readAppliedSequence(txn)
            assert(
                applied + 1 >= journal.baseSequence && applied <= lastSequence,
                "LMDB applied \(applied), journal holds \(journal.baseSequence)...\(lastSequence)")
            for (document, view) in views {
                try applyDocument(txn, document, view: view, window: window)
            }
            let appliedBody = AppliedSequenceRecord.encode(lastSequence)
            try txn.put(
                tables.meta, key: StoreTables.appliedKey,
                value: RecordFrame.encode(
                    kind: .appliedSequence, codec: .raw, key: StoreTables.appliedKey, stored: appliedBody, rawLength: appliedBody.count))
        }
        // LMDB now holds everything journaled: readers find it there.
        reader.dropApplied()
        journalBytes = 0
        counters.withLock { $0.journalApplies += 1 }
        dirtyDocuments.removeAll(keepingCapacity: true)
        journal.close()
        self.journal = nil
        metrics.applies.increment()
        metrics.applyLatency.recordNanoseconds(Int64(DispatchTime.now().uptimeNanoseconds - started))
        try replaceJournal(baseSequence: lastSequence + 1)
    }

    /// Replaces the journal with an empty one whose first record will be `baseSequence`.
    ///
    /// On ENOSPC the old journal stays, and LMDB already holds all its records: the state a crash
    /// after the apply's commit leaves, which recovery handles. The writer then runs without a
    /// journal and the next group retries the replacement, failing with `storageFull` until it
    /// fits. Any other failure marks the store unusable.
    func replaceJournal(baseSequence: UInt64) throws(OpLogError) {
        do throws(StorageError) {
            journal = try Journal.create(directory: context.directory, baseSequence: baseSequence, mode: options.filePermissions)
            journalBaseToCreate = nil
        } catch {
            guard error.isNoSpace else { throw poison(error.description) }
            journalBaseToCreate = baseSequence
            throw .storageFull(detail: "the file system is full; the applied journal could not be replaced: \(error.description)")
        }
    }

    /// Writes one document's journaled changes: truncation (moving truncated op IDs that are still in
    /// the dedupe window to `dedupe` records), new op chunks, and the document record.
    private func applyDocument(_ txn: borrowing WriteTransaction, _ document: DocumentID, view: DocumentView, window: DedupeWindow) throws {
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
                kind: .opChunk, key: key, body: OpChunkRecord.encode(chunk), deflater: deflater(level: options.compressionLevel))
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
