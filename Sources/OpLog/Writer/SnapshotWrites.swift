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
    func writeSnapshot(_ snapshot: SnapshotWrite, of document: DocumentID, at revision: Revision, epoch: UInt64?, reply: Reply<Void>) {
        assertOnWriterThread()
        let frame = snapshot.frame
        let sequence: UInt64?
        do throws(OpLogError) {
            if let failure { throw failure }
            try checkDirectMutation(epoch, for: document)
            let head = try reader.head(of: document)
            guard head > 0 else { throw .documentNotFound(document) }
            guard revision >= 1, revision <= head else { throw .beyondHead(document: document, requested: revision, head: head) }
            applyJournalIfSpaceIsTight(adding: frame.count)
            try checkSpace(adding: frame.count)
            assert(revision >= 1 && revision <= head, "snapshot \(revision) outside 1...\(head) passed the check")
            // The snapshot's feed position, journaled and synced first. The sync (without a feed,
            // a plain one) also keeps a synced snapshot from outliving the ops it covers in the
            // weaker modes: after a system crash the journal's unsynced tail is lost, and new
            // appends would reuse those revisions under a snapshot of different ops.
            sequence = try writeMarker(MarkedCommit(kind: .snapshotPut, document: document, revision: revision))
            if sequence == nil, options.durability == .lastAppendsMayBeLost {
                do { try journal?.synchronize() } catch { throw poison("journal sync before a snapshot failed: \(error)") }
            }
        } catch {
            reply.resume(throwing: error)
            return
        }
        let put = sequence.map {
            change(
                $0,
                [
                    .snapshotPut(
                        document: document, revision: revision, createdAtMilliseconds: snapshot.createdAtMilliseconds, bytes: snapshot.bytes
                    )
                ])
        }
        let commit: @Sendable () -> Void = { [self] in
            let result = Result { () throws(OpLogError) in
                if let failure { throw failure }
                try writeGrowing { txn in
                    try txn.put(tables.snapshots, key: KeyCoding.revisionKey(document, revision), value: frame)
                    if let put {
                        try writeFeed(
                            txn, [FeedRecord(sequence: put.position.sequence, events: put.events, committedAt: options.clock.now)],
                            heldThrough: try tables.readAppliedSequence(txn), deflater: nil)
                    }
                }
                announce([.snapshotWritten(document: document, revision: revision)])
            }
            // A snapshot that did not commit leaves its position with an empty change, as the
            // apply of its marker will write.
            if let put {
                if case .success = result {
                    context.feed.ready(put)
                } else {
                    context.feed.ready(Change(position: put.position, events: []))
                }
            }
            reply.resume(with: result)
        }
        if let applier { applier.commit(commit) } else { commit() }
    }

    func removeSnapshot(of document: DocumentID, at revision: Revision) throws(OpLogError) {
        let floor = try reader.currentView(of: document)?.floor ?? 1
        if floor > 1 && revision == floor - 1 { throw .snapshotProtected(document: document, revision: revision) }
        let key = KeyCoding.revisionKey(document, revision)
        guard try tables.read({ txn in try txn.get(tables.snapshots, key: key) }) != nil else {
            throw .snapshotNotFound(document: document, revision: revision)
        }
        let sequence = try writeMarker(MarkedCommit(kind: .snapshotDeleted, document: document, revision: revision))
        let deleted = sequence.map { change($0, [.snapshotDeleted(document: document, revision: revision)]) }
        do throws(OpLogError) {
            try writeGrowing { txn in
                _ = try txn.delete(tables.snapshots, key: key)
                if let deleted {
                    try writeFeed(
                        txn, [FeedRecord(sequence: deleted.position.sequence, events: deleted.events, committedAt: options.clock.now)],
                        heldThrough: try tables.readAppliedSequence(txn), deflater: nil)
                }
            }
        } catch {
            if let deleted { context.feed.ready(Change(position: deleted.position, events: [])) }
            throw error
        }
        if let deleted { context.feed.ready(deleted) }
        announce([.snapshotDeleted(document: document, revision: revision)])
    }

    /// Applies the journal first, so that no journaled op of the document can reappear at recovery,
    /// then removes every record of the document in one commit.
    func removeDocument(_ document: DocumentID) throws(OpLogError) {
        // The position first; the apply then holds it as an empty change until the deletion's
        // commit writes the deletion there.
        let sequence = try writeMarker(MarkedCommit(kind: .documentDeleted, document: document, revision: 0))
        let deletion = sequence.map { change($0, [.documentDeleted(document: document)]) }
        do throws(OpLogError) {
            try applyJournal()
            try deleteDocumentRecords(
                document,
                feed: deletion.map { FeedRecord(sequence: $0.position.sequence, events: $0.events, committedAt: options.clock.now) })
        } catch {
            if let deletion { context.feed.ready(Change(position: deletion.position, events: [])) }
            throw error
        }
        if let deletion { context.feed.ready(deletion) }
        dedupe.remove(document)
        // The applied slots still hold the document's journaled ops as stale frames: new, empty
        // slots take their place (FORMAT.md, "Deleting a document").
        do { try resetJournal() } catch {
            options.logger.notice("the journal slots could not be replaced after a deletion", metadata: ["error": "\(error)"])
        }
        announce([.documentDeleted(document: document)])
    }

    /// Removes every record of the document in one commit, with the deletion's feed record.
    func deleteDocumentRecords(_ document: DocumentID, feed: FeedRecord?) throws(OpLogError) {
        try writeGrowing { txn in
            if let feed {
                try eraseFromFeed(txn, document)
                try writeFeed(txn, [feed], heldThrough: try tables.readAppliedSequence(txn), deflater: nil)
            }
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
