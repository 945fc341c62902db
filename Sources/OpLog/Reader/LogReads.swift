import OpLogStorage

/// Reads of a document's ops: LMDB's chunks below the journaled tail, then the tail from memory.
extension Reader {
    /// Ops of `document` from revision `from` upward, at most `limit` of them, in revision order.
    ///
    /// Returns an empty array for `from == head + 1` (nothing new); an unknown document reads as an
    /// empty one (head 0).
    /// Never waits for writers: it reads an LMDB snapshot and the in-memory tail.
    /// - Throws: `belowFloor` (with the snapshot hint) when `from` was truncated; `beyondHead` when
    ///   `from > head + 1`; `corruption` naming the damaged record.
    func ops(of document: DocumentID, from: Revision, limit: Int) throws(OpLogError) -> [StoredOp] {
        try readRange(StoredOp.self, of: document, from: from, limit: limit)
    }

    /// What `ops(of:from:limit:)` reads, as views into the decoded chunks (no copy per op): replay's path.
    func opViews(of document: DocumentID, from: Revision, limit: Int) throws(OpLogError) -> [StoredOpView] {
        try readRange(StoredOpView.self, of: document, from: from, limit: limit)
    }

    private func readRange<Op: ReadableOp>(_: Op.Type, of document: DocumentID, from: Revision, limit: Int) throws(OpLogError) -> [Op] {
        guard limit >= 1 else { throw .invalidArgument("limit must be at least 1, got \(limit)") }
        guard limit <= Limits.readOpsMax else { throw .limitExceeded(.readOps, value: limit, maximum: Limits.readOpsMax) }
        guard from >= 1 else { throw .invalidArgument("revisions start at 1") }
        // An apply or truncation between reading the view and LMDB can make one attempt see a gap;
        // the next attempt sees the newer state. Three in a row means the data itself has a hole.
        var lastGap = ""
        for _ in 0..<Limits.readAttemptsMax {
            let view = try currentView(of: document)
            do {
                return try readOps(Op.self, document, from: from, limit: limit, view: view)
            } catch let gap as ReadGap {
                lastGap = gap.detail
            } catch {
                throw OpLogError(mapping: error)
            }
        }
        throw .corruption(CorruptionLocation(area: "ops", document: document, revision: from), detail: lastGap)
    }

    struct ReadGap: Error { let detail: String }

    private func readOps<Op: ReadableOp>(
        _: Op.Type, _ document: DocumentID, from: Revision, limit: Int, view found: DocumentView?
    ) throws -> [Op] {
        // An unknown document reads as an empty one: head 0, floor 1.
        let view = found ?? DocumentView(record: .empty)
        if from < view.floor {
            throw OpLogError.belowFloor(
                document: document, requested: from, floor: view.floor,
                latestSnapshot: try latestSnapshotRevision(document, atOrBelow: view.floor - 1))
        }
        if from > view.head + 1 { throw OpLogError.beyondHead(document: document, requested: from, head: view.head) }
        let wanted = min(UInt64(limit), view.head + 1 - from)
        if wanted == 0 { return [] }
        let lmdbEnd = view.pending.first?.revision ?? (view.head + 1)  // LMDB holds [floor, lmdbEnd)
        var result: [Op] = []
        result.reserveCapacity(Int(wanted))
        var lmdbFloor: Revision = 1  // read only when LMDB comes up short
        if from < lmdbEnd {
            try tables.environment.read { (txn: borrowing ReadTransaction) in
                try txn.withCursor(tables.ops) { cursor in
                    var entry = try cursor.seek(
                        containing: KeyCoding.revisionKey(document, from), prefix: KeyCoding.documentPrefix(document))
                    while let current = entry, KeyCoding.belongs(current.key, to: document), UInt64(result.count) < wanted {
                        // Ops of a chunk are consecutive: keep those from the next wanted revision on.
                        let keeping = (from + UInt64(result.count))..<min(lmdbEnd, from + wanted)
                        let last = try Op.decodeChunk(current, document: document, keeping: keeping, into: &result)
                        if last + 1 >= lmdbEnd { break }
                        entry = try cursor.next()
                    }
                }
                // Short of what LMDB should hold: its own floor may be past the view's (a read-only
                // store in another process keeps the views of its open while the writer process
                // truncates and applies). Only then is the document record read.
                if result.first?.revision != from || UInt64(result.count) < min(wanted, lmdbEnd - from) {
                    lmdbFloor = try tables.readDocumentRecord(txn, document)?.floor ?? 1
                }
            }
        }
        if from < lmdbFloor {
            throw OpLogError.belowFloor(
                document: document, requested: from, floor: lmdbFloor,
                latestSnapshot: try latestSnapshotRevision(document, atOrBelow: lmdbFloor - 1))
        }
        for op in view.pending where UInt64(result.count) < wanted && op.revision == from + UInt64(result.count) {
            result.append(Op(pending: op))
        }
        for index in result.indices where result[index].revision != from + UInt64(index) {
            throw ReadGap(detail: "expected revision \(from + UInt64(index)), found \(result[index].revision)")
        }
        guard UInt64(result.count) == wanted else {
            throw ReadGap(detail: "found \(result.count) of \(wanted) ops from revision \(from) (head \(view.head))")
        }
        return result
    }
}

/// The two forms reads return ops in: owning `StoredOp`s, or `StoredOpView`s into decoded chunks.
private protocol ReadableOp {
    var revision: Revision { get }
    /// Checks the chunk in `entry` and appends its ops in `keeping`; returns its last revision.
    static func decodeChunk(
        _ entry: Entry, document: DocumentID, keeping: Range<Revision>, into ops: inout [Self]
    ) throws(OpLogError)
        -> Revision
    /// An op of the journaled tail, held in memory as a `StoredOp`.
    init(pending op: StoredOp)
}

extension StoredOp: ReadableOp {
    fileprivate static func decodeChunk(
        _ entry: Entry, document: DocumentID, keeping: Range<Revision>, into ops: inout [StoredOp]
    ) throws(OpLogError) -> Revision {
        try StoreTables.decodeChunk(entry, document: document, keeping: keeping, into: &ops)
    }
    fileprivate init(pending op: StoredOp) { self = op }
}

extension StoredOpView: ReadableOp {
    fileprivate static func decodeChunk(
        _ entry: Entry, document: DocumentID, keeping: Range<Revision>, into ops: inout [StoredOpView]
    ) throws(OpLogError) -> Revision {
        try StoreTables.decodeChunkViews(entry, document: document, keeping: keeping, into: &ops)
    }
    fileprivate init(pending op: StoredOp) { self.init(op) }
}
