import OpLogStorage

/// Op IDs a document accepted recently, for idempotent retries.
///
/// Kept in memory, in revision order, and rebuilt on a document's first append after open from
/// what is stored anyway: retained op chunks, the `dedupe` records that keep IDs of truncated ops,
/// and the journal. This is why an append never touches a random B-tree page keyed by a random ID.
struct DedupeIndex {
    private var revisions: [OpID: Revision] = [:]
    private var order: [(id: OpID, revision: Revision, time: Int64)] = []
    private var start = 0

    var count: Int { order.count - start }

    func revision(of id: OpID) -> Revision? { revisions[id] }

    mutating func insert(_ id: OpID, revision: Revision, time: Int64) {
        revisions[id] = revision
        order.append((id, revision, time))
    }

    /// Forgets IDs beyond the window: more than `keepingOps` behind, or older than `cutoff`.
    mutating func prune(keepingOps: Int, cutoff: Int64) {
        while count > 0 && (count > keepingOps || order[start].time < cutoff) {
            let oldest = order[start]
            // The same ID may have been accepted again after it left the window; keep the newer one.
            if revisions[oldest.id] == oldest.revision { revisions[oldest.id] = nil }
            start += 1
        }
        if start > 4096 && start * 2 > order.count {
            order.removeFirst(start)
            start = 0
        }
    }
}

extension OpLogStore {
    /// Loads the dedupe index of `document` into `writer.dedupe` unless it is there already.
    func loadDedupeIndex(_ document: DocumentID, writer: WriterState) throws(OpLogError) {
        if writer.dedupe[document] != nil { return }
        let view = try currentView(of: document)?.view ?? DocumentView(record: .empty)
        var index = DedupeIndex()
        let oldest = view.head > UInt64(options.dedupeWindowOps) ? view.head - UInt64(options.dedupeWindowOps) + 1 : 1
        let lmdbEnd = view.pending.first?.revision ?? (view.head + 1)
        do {
            try tables.environment.read { txn in
                let record = try tables.readDocumentRecord(txn, document) ?? .empty
                var covered: Range<Revision>?  // dedupe revisions seen, from `oldest` on
                var chunkCovered: Range<Revision>?  // op chunk revisions seen, from `oldest` on
                for database in [tables.dedupe, tables.ops] {
                    let isChunk = database == tables.ops
                    try txn.withCursor(database) { cursor in
                        var entry = try cursor.seek(containing: KeyCoding.revisionKey(document, oldest), prefix: KeyCoding.documentPrefix(document))
                        while let current = entry, KeyCoding.belongs(current.key, to: document) {
                            for (id, revision, time) in try dedupeEntries(current, document: document, isChunk: isChunk)
                            where revision >= oldest && revision < lmdbEnd {
                                if !isChunk {
                                    if let range = covered, revision != range.upperBound {
                                        throw OpLogError.corruption(CorruptionLocation(area: "dedupe", document: document, revision: range.upperBound),
                                                                    detail: "dedupe records skip from \(range.upperBound) to \(revision)")
                                    }
                                    covered = (covered?.lowerBound ?? revision)..<(revision + 1)
                                } else {
                                    if let range = chunkCovered, revision != range.upperBound {
                                        throw OpLogError.corruption(CorruptionLocation(area: "ops", document: document, revision: range.upperBound),
                                                                    detail: "op chunks skip from \(range.upperBound) to \(revision)")
                                    }
                                    chunkCovered = (chunkCovered?.lowerBound ?? revision)..<(revision + 1)
                                }
                                if index.revision(of: id) == nil { index.insert(id, revision: revision, time: time) }
                            }
                            entry = try cursor.next()
                        }
                    }
                }
                try checkCoverage(txn, document, record: record, oldest: oldest, dedupe: covered, chunks: chunkCovered)
            }
        } catch { throw OpLogError.wrap(error) }
        for op in view.pending { index.insert(op.opID, revision: op.revision, time: op.serverTimeMilliseconds) }
        index.prune(keepingOps: options.dedupeWindowOps, cutoff: currentTimeMilliseconds() - options.dedupeWindowMilliseconds)
        // Bound memory: indexes are rebuilt on demand, so dropping one is only a cost, never a loss.
        if writer.dedupe.count >= Self.dedupeIndexesMax, let victim = writer.dedupe.keys.first {
            writer.dedupe[victim] = nil
        }
        writer.dedupe[document] = index
    }

    /// The op IDs a retry is checked against must all be there: the dedupe records hold every
    /// revision from `record.dedupeFrom` (or `oldest`, if later) up to the first op chunk (or the
    /// floor), and the op chunks every revision from there (or `oldest`) to LMDB's head. A record
    /// whose key was damaged is missing from that range; the op IDs it held must not be silently
    /// forgotten, or a retry would be stored twice.
    private func checkCoverage(_ txn: borrowing Transaction, _ document: DocumentID, record: DocumentRecord,
                               oldest: Revision, dedupe: Range<Revision>?, chunks: Range<Revision>?) throws {
        let firstChunk = try txn.withCursor(tables.ops) { cursor in
            try cursor.seek(atOrAfter: KeyCoding.documentPrefix(document)).flatMap { KeyCoding.parseRevisionKey($0.key) }
        }.flatMap { $0.document == document ? $0.revision : nil }
        let end = firstChunk ?? record.floor
        let start = record.dedupeFrom == 0 ? end : max(record.dedupeFrom, oldest)
        let expected = start < end ? start..<end : nil
        if dedupe != expected {
            throw OpLogError.corruption(CorruptionLocation(area: "dedupe", document: document),
                                        detail: "dedupe records hold revisions \(dedupe.map { "\($0)" } ?? "none") where the document record requires \(expected.map { "\($0)" } ?? "none")")
        }
        // LMDB retains floor...head; the first chunk may start below the floor (truncation deletes
        // only whole chunks), never above it.
        var expectedChunks: Range<Revision>?
        if record.floor <= record.head {
            guard let firstChunk, firstChunk <= record.floor else {
                throw OpLogError.corruption(CorruptionLocation(area: "ops", document: document, revision: record.floor),
                                            detail: "no op chunk holds the floor \(record.floor)")
            }
            let chunkStart = max(oldest, firstChunk)
            expectedChunks = chunkStart <= record.head ? chunkStart..<(record.head + 1) : nil
        }
        if chunks != expectedChunks {
            throw OpLogError.corruption(CorruptionLocation(area: "ops", document: document),
                                        detail: "op chunks hold revisions \(chunks.map { "\($0)" } ?? "none") where the document record requires \(expectedChunks.map { "\($0)" } ?? "none")")
        }
    }

    /// Dedupe indexes kept in memory at once (each up to `dedupeWindowOps` entries).
    static let dedupeIndexesMax = 4096

    private func dedupeEntries(_ entry: Entry, document: DocumentID, isChunk: Bool) throws(OpLogError) -> [(OpID, Revision, Int64)] {
        if isChunk {
            return try decodeChunk(entry, document: document).map { ($0.opID, $0.revision, $0.serverTimeMilliseconds) }
        }
        let record = try decodeDedupe(entry, document: document)
        return record.entries.enumerated().map { ($1.opID, record.firstRevision + UInt64($0), $1.serverTime) }
    }

    func decodeDedupe(_ entry: Entry, document: DocumentID) throws(OpLogError) -> DedupeRecord {
        try StoreTables.decodeRevisionRecord(entry, document: document, area: "dedupe", kind: .dedupe,
                                             decode: DedupeRecord.decode, revisionOf: { $0.firstRevision })
    }
}
