import OpLogStorage

/// Reads of a document's ops: LMDB's chunks below the journaled tail, then the tail from memory.
extension OpLogStore {
    /// Ops of `document` from revision `from` upward, at most `limit` of them, in revision order.
    ///
    /// Returns an empty array for `from == head + 1` (nothing new); an unknown document reads as an
    /// empty one (head 0).
    /// Never waits for writers: it reads an LMDB snapshot and the in-memory tail.
    /// - Throws: `belowFloor` (with the snapshot hint) when `from` was truncated; `beyondHead` when
    ///   `from > head + 1`; `corruption` naming the damaged record.
    public func ops(of document: DocumentID, from: Revision, limit: Int = 1_000) throws(OpLogError) -> [StoredOp] {
        guard limit >= 1 else { throw .invalidArgument("limit must be at least 1") }
        guard limit <= Limits.readOpsMax else { throw .limitExceeded(.readOps, value: limit, maximum: Limits.readOpsMax) }
        guard from >= 1 else { throw .invalidArgument("revisions start at 1") }
        // An apply or truncation between reading the view and LMDB can make one attempt see a gap;
        // the next attempt sees the newer state. Three in a row means the data itself has a hole.
        var lastGap = ""
        for _ in 0..<3 {
            let view = try currentView(of: document)
            do {
                return try readOps(document, from: from, limit: limit, view: view)
            } catch let gap as ReadGap {
                lastGap = gap.detail
            } catch {
                throw OpLogError.wrap(error)
            }
        }
        throw .corruption(CorruptionLocation(area: "ops", document: document, revision: from), detail: lastGap)
    }

    struct ReadGap: Error { let detail: String }

    /// The view of a document from memory, or built from LMDB when nothing is journaled for it.
    func currentView(of document: DocumentID) throws(OpLogError) -> (view: DocumentView, hasPending: Bool)? {
        if let view = try withState({ $0.documents[document] }) { return (view, true) }
        enum Found { case record(DocumentRecord), absent, onlySnapshots }
        let found: Found
        do {
            found = try tables.environment.read { txn in
                if let record = try tables.readDocumentRecord(txn, document) { return .record(record) }
                let hasSnapshots = try txn.withCursor(tables.snapshots) { cursor in
                    try cursor.seek(atOrAfter: KeyCoding.documentPrefix(document)).map { KeyCoding.belongs($0.key, to: document) } ?? false
                }
                return hasSnapshots ? .onlySnapshots : .absent
            }
        } catch { throw OpLogError.wrap(error) }
        switch found {
        case let .record(record): return (DocumentView(record: record), false)
        case .absent: return nil
        case .onlySnapshots:
            // Snapshots exist only for documents with ops: a document with snapshots but neither a
            // record nor journaled ops lost its record to damage. The writer knows every journaled
            // document; a read-only opener's view of the journal may predate the document, so it
            // reads the journal again first, then LMDB (an apply in between moves the document
            // into LMDB, where the second read finds it).
            if writer == nil {
                let journaled = try Journal.read(directory: directory, strict: false).records.contains { record in
                    record.entries.contains { entry in
                        switch entry {
                        case let .ops(id, _), let .truncate(id, _): return id == document
                        }
                    }
                }
                if journaled { return nil }
                let applied: DocumentRecord?
                do { applied = try tables.environment.read { txn in try tables.readDocumentRecord(txn, document) } } catch { throw OpLogError.wrap(error) }
                if let applied { return (DocumentView(record: applied), false) }
            }
            throw OpLogError.corruption(CorruptionLocation(area: "documents", document: document),
                                        detail: "snapshot records exist but the document record is missing (damaged key?)")
        }
    }

    private func readOps(_ document: DocumentID, from: Revision, limit: Int, view state: (view: DocumentView, hasPending: Bool)?) throws -> [StoredOp] {
        // An unknown document reads as an empty one: head 0, floor 1.
        let view = state?.view ?? DocumentView(record: .empty)
        if from < view.floor {
            throw OpLogError.belowFloor(document: document, requested: from, floor: view.floor, latestSnapshot: try latestSnapshotRevision(document, atOrBelow: view.floor - 1))
        }
        if from > view.head + 1 { throw OpLogError.beyondHead(document: document, requested: from, head: view.head) }
        let wanted = min(UInt64(limit), view.head + 1 - from)
        if wanted == 0 { return [] }
        let lmdbEnd = view.pending.first?.revision ?? (view.head + 1)  // LMDB holds [floor, lmdbEnd)
        var result: [StoredOp] = []
        result.reserveCapacity(Int(wanted))
        if from < lmdbEnd {
            try tables.environment.read { txn in
                try txn.withCursor(tables.ops) { cursor in
                    var entry = try cursor.seek(containing: KeyCoding.revisionKey(document, from), prefix: KeyCoding.documentPrefix(document))
                    while let current = entry, KeyCoding.belongs(current.key, to: document), UInt64(result.count) < wanted {
                        let chunk = try decodeChunk(current, document: document)
                        for op in chunk where op.revision >= from + UInt64(result.count) && op.revision < lmdbEnd && UInt64(result.count) < wanted {
                            result.append(op)
                        }
                        if (chunk.last?.revision ?? 0) + 1 >= lmdbEnd { break }
                        entry = try cursor.next()
                    }
                }
            }
        }
        for op in view.pending where UInt64(result.count) < wanted && op.revision == from + UInt64(result.count) {
            result.append(op)
        }
        for (index, op) in result.enumerated() where op.revision != from + UInt64(index) {
            throw ReadGap(detail: "expected revision \(from + UInt64(index)), found \(op.revision)")
        }
        guard UInt64(result.count) == wanted else {
            throw ReadGap(detail: "found \(result.count) of \(wanted) ops from revision \(from) (head \(view.head))")
        }
        return result
    }

    /// Decodes an op chunk and checks it against its key.
    func decodeChunk(_ entry: Entry, document: DocumentID) throws(OpLogError) -> [StoredOp] {
        try StoreTables.decodeRevisionRecord(entry, document: document, area: "ops", kind: .opChunk,
                                             decode: OpChunkRecord.decode, revisionOf: { $0.first?.revision })
    }
}
