import OpLogStorage

/// Snapshot reads. Snapshots are written straight to LMDB (not through the journal), so LMDB alone
/// answers these.
extension Reader {

    /// The newest snapshot of `document` at or below `revision` (default: any), or nil.
    func snapshot(of document: DocumentID, atOrBelow revision: Revision) throws(OpLogError) -> Snapshot? {
        try tables.read { txn in
            guard let entry = try findSnapshot(txn, document, atOrBelow: revision) else { return nil }
            return try StoreTables.decodeSnapshot(entry, document: document)
        }
    }

    /// All snapshots of `document`, oldest first.
    func snapshots(of document: DocumentID) throws(OpLogError) -> [SnapshotInfo] {
        try tables.read { txn in try listSnapshots(txn, document) }
    }

    func listSnapshots(_ txn: borrowing some ReadableTransaction & ~Copyable, _ document: DocumentID) throws -> [SnapshotInfo] {
        try txn.withCursor(tables.snapshots) { cursor in
            var result: [SnapshotInfo] = []
            var entry = try cursor.seek(atOrAfter: KeyCoding.documentPrefix(document))
            while let current = entry, KeyCoding.belongs(current.key, to: document) {
                let snapshot = try StoreTables.decodeSnapshot(current, document: document)
                result.append(
                    SnapshotInfo(
                        revision: snapshot.revision, createdAtMilliseconds: snapshot.createdAtMilliseconds,
                        sizeBytes: snapshot.bytes.count, storedBytes: current.value.count))
                entry = try cursor.next()
            }
            return result
        }
    }

    /// Revision of the newest snapshot at or below `revision`, or nil.
    func latestSnapshotRevision(_ document: DocumentID, atOrBelow revision: Revision) throws(OpLogError) -> Revision? {
        try tables.read { txn in
            try findSnapshot(txn, document, atOrBelow: revision).flatMap { KeyCoding.parseRevisionKey($0.key)?.revision }
        }
    }

    func findSnapshot(
        _ txn: borrowing some ReadableTransaction & ~Copyable, _ document: DocumentID, atOrBelow revision: Revision
    ) throws -> Entry? {
        try txn.withCursor(tables.snapshots) { cursor in
            guard let entry = try cursor.seek(atOrBefore: KeyCoding.revisionKey(document, revision)),
                KeyCoding.belongs(entry.key, to: document)
            else { return nil }
            return entry
        }
    }
}
