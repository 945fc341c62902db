import OpLogStorage

/// Snapshot writes and document deletion: direct LMDB commits, not journaled.
///
/// Snapshots bypass the journal because they are large and rare: journaling them would write every
/// snapshot twice. A truncation, which is journaled, is only accepted once the snapshot it relies on
/// is committed, so no crash can leave a retained revision without ops or snapshot to replay from.
extension Writer {
    /// Checks a snapshot put under the turn, then commits the record (framed by the caller:
    /// `putSnapshot` compresses off this thread) on the applier's thread, after the work queued
    /// there before it, and answers `reply` from there. So the appends queued behind a snapshot
    /// never wait for its commit (two syncs in the durable modes) or for an apply in flight; the
    /// snapshot's own answer waits for both. Ordering stays whole: everything that must follow a
    /// snapshot's commit (a truncation relying on it, a deletion, close) either waits for its answer
    /// or quiesces the applier first.
    func writeSnapshot(frame: [UInt8], of document: DocumentID, at revision: Revision, epoch: UInt64?, reply: Reply<Void>) {
        assertOnWriterThread()
        do throws(OpLogError) {
            if let failure { throw failure }
            try checkDirectMutation(epoch, for: document)
            let head = try reader.head(of: document)
            guard head > 0 else { throw .documentNotFound(document) }
            guard revision >= 1, revision <= head else { throw .beyondHead(document: document, requested: revision, head: head) }
            applyJournalIfSpaceIsTight(adding: frame.count)
            try checkSpace(adding: frame.count)
            if options.durability == .lastAppendsMayBeLost {
                // A synced snapshot must never outlive the ops it covers: after a system crash the
                // journal's unsynced tail is lost, and new appends would reuse those revisions under
                // a snapshot of different ops. One sync of the journal first closes that.
                do { try journal?.synchronize() } catch { throw poison("journal sync before a snapshot failed: \(error)") }
            }
            assert(revision >= 1 && revision <= head, "snapshot \(revision) outside 1...\(head) passed the check")
        } catch {
            reply.resume(throwing: error)
            return
        }
        let commit: @Sendable () -> Void = { [self] in
            reply.resume(
                with: Result { () throws(OpLogError) in
                    if let failure { throw failure }
                    try writeGrowing { txn in
                        try txn.put(tables.snapshots, key: KeyCoding.revisionKey(document, revision), value: frame)
                    }
                    announce([.snapshotWritten(document: document, revision: revision)])
                })
        }
        if let applier { applier.commit(commit) } else { commit() }
    }

    func removeSnapshot(of document: DocumentID, at revision: Revision) throws(OpLogError) {
        let floor = try reader.currentView(of: document)?.floor ?? 1
        if floor > 1 && revision == floor - 1 { throw .snapshotProtected(document: document, revision: revision) }
        let deleted = try writeGrowing { txn in
            try txn.delete(tables.snapshots, key: KeyCoding.revisionKey(document, revision))
        }
        if !deleted { throw .snapshotNotFound(document: document, revision: revision) }
        announce([.snapshotDeleted(document: document, revision: revision)])
    }

    /// Applies the journal first, so that no journaled op of the document can reappear at recovery,
    /// then removes every record of the document in one commit.
    func removeDocument(_ document: DocumentID) throws(OpLogError) {
        try applyJournal()
        try writeGrowing { txn in
            try txn.delete(tables.documents, key: KeyCoding.documentKey(document))
            for database in [tables.ops, tables.snapshots, tables.dedupe] {
                try txn.withWriteCursor(database) { cursor in
                    var entry = try cursor.seek(atOrAfter: KeyCoding.documentPrefix(document))
                    while let current = entry, KeyCoding.belongs(current.key, to: document) {
                        try cursor.deleteCurrent()
                        entry = try cursor.seek(atOrAfter: KeyCoding.documentPrefix(document))
                    }
                }
            }
        }
        dedupe.remove(document)
        // The applied slots still hold the document's journaled ops as stale frames: new, empty
        // slots take their place (FORMAT.md, "Deleting a document").
        do { try resetJournal() } catch {
            options.logger.notice("the journal slots could not be replaced after a deletion", metadata: ["error": "\(error)"])
        }
        announce([.documentDeleted(document: document)])
    }

    /// A snapshot record ready to store: framed and compressed. Called in the caller's task, so the
    /// writer thread, which serves every appender, never compresses snapshots.
    static func snapshotFrame(
        _ bytes: [UInt8], of document: DocumentID, at revision: Revision,
        createdAt: Int64, compressionLevel: Int32
    ) throws(OpLogError) -> [UInt8] {
        let key = KeyCoding.revisionKey(document, revision)
        let body = SnapshotRecord.encode(revision: revision, createdAt: createdAt, bytes: bytes)
        do { return try RecordFrame.encode(kind: .snapshot, key: key, body: body, compressionLevel: compressionLevel) } catch {
            throw OpLogError(error)
        }
    }
}
