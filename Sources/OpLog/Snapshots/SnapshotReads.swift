import OpLogStorage

/// Snapshot reads. Snapshots are written straight to LMDB (not through the journal), so LMDB alone
/// answers these.
extension OpLogStore {
    /// The newest snapshot of `document` at or below `revision` (default: any), or nil.
    public func snapshot(of document: DocumentID, atOrBelow revision: Revision = .max) throws(OpLogError) -> Snapshot? {
        do {
            return try tables.environment.read { txn in
                guard let entry = try findSnapshot(txn, document, atOrBelow: revision) else { return nil }
                return try decodeSnapshot(entry, document: document)
            }
        } catch { throw OpLogError.wrap(error) }
    }

    /// All snapshots of `document`, oldest first.
    public func snapshots(of document: DocumentID) throws(OpLogError) -> [SnapshotInfo] {
        do {
            return try tables.environment.read { txn in try listSnapshots(txn, document) }
        } catch { throw OpLogError.wrap(error) }
    }

    func listSnapshots(_ txn: borrowing Transaction, _ document: DocumentID) throws -> [SnapshotInfo] {
        try txn.withCursor(tables.snapshots) { cursor in
            var result: [SnapshotInfo] = []
            var entry = try cursor.seek(atOrAfter: KeyCoding.documentPrefix(document))
            while let current = entry, KeyCoding.belongs(current.key, to: document) {
                let snapshot = try decodeSnapshot(current, document: document)
                result.append(SnapshotInfo(revision: snapshot.revision, createdAtMilliseconds: snapshot.createdAtMilliseconds,
                                           sizeBytes: snapshot.bytes.count, storedBytes: current.value.count))
                entry = try cursor.next()
            }
            return result
        }
    }

    /// Revision of the newest snapshot at or below `revision`, or nil.
    func latestSnapshotRevision(_ document: DocumentID, atOrBelow revision: Revision) throws -> Revision? {
        try tables.environment.read { txn in
            try findSnapshot(txn, document, atOrBelow: revision).flatMap { KeyCoding.parseRevisionKey($0.key)?.revision }
        }
    }

    func findSnapshot(_ txn: borrowing Transaction, _ document: DocumentID, atOrBelow revision: Revision) throws -> Entry? {
        try txn.withCursor(tables.snapshots) { cursor in
            guard let entry = try cursor.seek(atOrBefore: KeyCoding.revisionKey(document, revision)),
                  KeyCoding.belongs(entry.key, to: document) else { return nil }
            return entry
        }
    }

    func decodeSnapshot(_ entry: Entry, document: DocumentID) throws(OpLogError) -> Snapshot {
        try StoreTables.decodeRevisionRecord(entry, document: document, area: "snapshots", kind: .snapshot,
                                             decode: SnapshotRecord.decode, revisionOf: { $0.revision })
    }
}
