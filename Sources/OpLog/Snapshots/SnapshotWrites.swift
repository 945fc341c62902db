import OpLogStorage

/// Snapshot writes and document deletion: direct LMDB commits on the writer thread.
///
/// Snapshots bypass the journal because they are large and rare: journaling them would write every
/// snapshot twice. A truncation, which is journaled, is only accepted once the snapshot it relies on
/// is committed, so no crash can leave a retained revision without ops or snapshot to replay from.
extension OpLogStore {
    /// Stores a snapshot record framed by the caller (`putSnapshot` compresses off this thread).
    func writeSnapshot(frame: [UInt8], of document: DocumentID, at revision: Revision, writer: WriterState) throws(OpLogError) {
        let head = try currentView(of: document)?.view.head ?? 0
        guard head > 0 else { throw .documentNotFound(document) }
        guard revision >= 1, revision <= head else { throw .beyondHead(document: document, requested: revision, head: head) }
        applyJournalIfSpaceIsTight(adding: frame.count, writer: writer)
        try checkSpace(adding: frame.count, writer: writer)
        if options.durability == .lastAppendsMayBeLost {
            // A synced snapshot must never outlive the ops it covers: after a system crash the
            // journal's unsynced tail is lost, and new appends would reuse those revisions under
            // a snapshot of different ops. One sync of the journal first closes that.
            do { try writer.journal?.synchronize() } catch { throw poison("journal sync before a snapshot failed: \(error)") }
        }
        try writeGrowing(writer: writer, allowReserve: false) { txn in
            try txn.put(tables.snapshots, key: KeyCoding.revisionKey(document, revision), value: frame)
        }
        observers.notify([.snapshotWritten(document: document, revision: revision)])
    }

    func removeSnapshot(of document: DocumentID, at revision: Revision, writer: WriterState) throws(OpLogError) {
        let floor = try currentView(of: document)?.view.floor ?? 1
        if floor > 1 && revision == floor - 1 { throw .snapshotProtected(document: document, revision: revision) }
        let deleted = try writeGrowing(writer: writer, allowReserve: true) { txn in
            try txn.delete(tables.snapshots, key: KeyCoding.revisionKey(document, revision))
        }
        if !deleted { throw .snapshotNotFound(document: document, revision: revision) }
    }

    /// Applies the journal first, so that no journaled op of the document can reappear at recovery,
    /// then removes every record of the document in one commit.
    func removeDocument(_ document: DocumentID, writer: WriterState) throws(OpLogError) {
        try applyJournal(writer: writer)
        try writeGrowing(writer: writer, allowReserve: true) { txn in
            try txn.delete(tables.documents, key: KeyCoding.documentKey(document))
            for database in [tables.ops, tables.snapshots, tables.dedupe] {
                try txn.withCursor(database) { cursor in
                    var entry = try cursor.seek(atOrAfter: KeyCoding.documentPrefix(document))
                    while let current = entry, KeyCoding.belongs(current.key, to: document) {
                        try cursor.deleteCurrent()
                        entry = try cursor.seek(atOrAfter: KeyCoding.documentPrefix(document))
                    }
                }
            }
        }
        writer.dedupe[document] = nil
        observers.notify([.documentDeleted(document: document)])
    }
}
