import OpLogStorage

/// Which op IDs a document remembers for retries without `basedOn` (FORMAT.md, "The dedupe window").
///
/// The window is measured on the document's own history, never against today's date: an op's ID is
/// remembered while the op is among the document's last `ops` ops and its server time is at most
/// `milliseconds` older than the document's newest op. So a store closed for longer than the window,
/// restored from a backup, or opened under a clock that jumped backwards forgets nothing until the
/// document receives new ops; the answer depends only on what the store holds.
struct DedupeWindow: Sendable {
    let ops: Int
    let milliseconds: Int64

    init(options: StoreOptions) {
        ops = options.dedupeWindowOps
        milliseconds = options.dedupeWindowMilliseconds
    }

    /// The oldest revision still inside the window's op count for a document at `head`.
    func oldestRevision(head: Revision) -> Revision {
        head > UInt64(ops) ? head - UInt64(ops) + 1 : 1
    }

    /// Ops with an older server time than this have left the window of a document whose newest op
    /// has server time `lastServerTime`.
    func oldestServerTime(lastServerTime: Int64) -> Int64 {
        lastServerTime &- milliseconds
    }
}

/// Op IDs a document accepted recently, for idempotent retries.
///
/// Kept in memory, in revision order, and rebuilt on a document's first append after open from
/// what is stored anyway: retained op chunks, the `dedupe` records that keep IDs of truncated ops,
/// and the journal. This is why an append never touches a random B-tree page keyed by a random ID.
struct DedupeIndex {
    private var revisions: [OpID: Revision] = [:]
    private var order: [(id: OpID, revision: Revision, time: Int64)] = []
    private var start = 0
    /// The index holds the ID of every op from this revision to the document's head.
    private(set) var coveredFrom: Revision

    /// An empty index of a document whose next op will be `nextRevision`, with room for
    /// `capacity` IDs (a rebuild knows how many it will insert: growing one insert at a time
    /// reallocates both tables several times and leaves up to twice the room needed).
    init(nextRevision: Revision, capacity: Int = 0) {
        coveredFrom = nextRevision
        if capacity > 0 {
            revisions.reserveCapacity(capacity)
            order.reserveCapacity(capacity)
        }
    }

    var count: Int { order.count - start }

    /// The memory the index takes, estimated from its collections' capacities (what they hold
    /// allocated, pruned entries not yet compacted included).
    var estimatedBytes: Int {
        Limits.dedupeIndexBytesEstimate + max(order.capacity, revisions.capacity) * Limits.dedupeEntryBytesEstimate
    }

    func revision(of id: OpID) -> Revision? { revisions[id] }

    /// Adds the op at `revision`, the next one after everything the index holds.
    mutating func insert(_ id: OpID, revision: Revision, time: Int64) {
        assert(
            order.last.map { revision == $0.revision + 1 } ?? true,
            "dedupe index: revision \(revision) does not continue \(order.last?.revision ?? 0)")
        if order.count == start { coveredFrom = revision }
        // A newer op may reuse an ID whose first op has left the window: the newer revision wins.
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
            coveredFrom = oldest.revision + 1
        }
        if start > 4096 && start * 2 > order.count {
            order.removeFirst(start)
            start = 0
        }
    }
}

/// The writer's dedupe indexes, least recently used first out: their memory is what the store's
/// `MemoryBudget` bounds. Every index is a cache of stored data, so evicting one at any moment is
/// only a cost (the next append to its document rebuilds it), never a lost answer.
struct DedupeCache {
    private var entries: [DocumentID: (index: DedupeIndex, lastUse: UInt64)] = [:]
    private var clock: UInt64 = 0
    /// The sum of the indexes' `estimatedBytes`.
    private(set) var bytes = 0

    /// The index of `document`, marked as just used; nil if it is not loaded.
    mutating func use(_ document: DocumentID) -> DedupeIndex? {
        guard let found = entries[document] else { return nil }
        clock += 1
        entries[document]!.lastUse = clock
        return found.index
    }

    mutating func insert(_ index: DedupeIndex, for document: DocumentID) {
        remove(document)
        clock += 1
        entries[document] = (index, clock)
        bytes += index.estimatedBytes
    }

    /// Changes the index of `document` in place, if it is loaded.
    mutating func modify(_ document: DocumentID, _ body: (inout DedupeIndex) -> Void) {
        guard entries[document] != nil else { return }
        let before = entries[document]!.index.estimatedBytes
        body(&entries[document]!.index)
        bytes += entries[document]!.index.estimatedBytes - before
        assert(bytes >= 0, "dedupe cache: negative bytes")
    }

    mutating func remove(_ document: DocumentID) {
        if let gone = entries.removeValue(forKey: document) { bytes -= gone.index.estimatedBytes }
        assert(bytes >= 0, "dedupe cache: negative bytes")
    }

    /// Evicts the least recently used indexes until the cache holds at most `limit` bytes; returns
    /// how many were evicted.
    @discardableResult
    mutating func evict(toAtMost limit: Int) -> Int {
        guard bytes > limit else { return 0 }
        var evicted = 0
        for (document, _) in entries.map({ ($0.key, $0.value.lastUse) }).sorted(by: { $0.1 < $1.1 }) {
            guard bytes > limit else { break }
            remove(document)
            evicted += 1
        }
        assert(bytes <= limit || entries.isEmpty, "dedupe cache: \(bytes) bytes left after evicting to \(limit)")
        return evicted
    }
}

/// The op IDs a document's stored data holds from some revision up to its head.
struct StoredOpIDs {
    /// In revision order, consecutive.
    var entries: [(id: OpID, revision: Revision, time: Int64)] = []
    /// The lowest revision whose op ID the store still holds (dedupe records, op chunks, journal):
    /// every revision from here to the head can be checked.
    var checkableFrom: Revision
}

extension Writer {
    /// Keeps the dedupe indexes within the store's memory budget: evicts the least recently used
    /// when the budget (the store's own, or the shared one across stores) is exceeded. Under the
    /// turn, after each group's publish and each index load.
    func enforceMemoryBudget() {
        assertOnWriterThread()
        if let target = memoryBudget.report(memoryBudgetID, holds: dedupe.bytes) {
            countEvictions(dedupe.evict(toAtMost: target))
            _ = memoryBudget.report(memoryBudgetID, holds: dedupe.bytes)
        }
        let bytes = dedupe.bytes
        counters.withLock { $0.dedupeIndexBytes = bytes }
    }

    private func countEvictions(_ evicted: Int) {
        guard evicted > 0 else { return }
        metrics.dedupeIndexEvictions.increment(by: evicted)
        metrics.dedupeIndexBytes.record(dedupe.bytes)
        counters.withLock { $0.dedupeIndexEvictions += evicted }
    }

    /// Trims the indexes to `bytes` at another store's request (a shared budget over its bound).
    func trimMemory(toAtMost bytes: Int) {
        assertOnWriterThread()
        countEvictions(dedupe.evict(toAtMost: bytes))
        _ = memoryBudget.report(memoryBudgetID, holds: dedupe.bytes)
        let held = dedupe.bytes
        counters.withLock { $0.dedupeIndexBytes = held }
    }

    /// The dedupe index of `document`, loaded into `dedupe` unless it is there already.
    func dedupeIndex(_ document: DocumentID) throws(OpLogError) -> DedupeIndex {
        assertOnWriterThread()
        if let index = dedupe.use(document) { return index }
        let view = try reader.currentView(of: document) ?? DocumentView(record: .empty)
        let window = DedupeWindow(options: options)
        let stored = try storedOpIDs(document, from: window.oldestRevision(head: view.head), view: view)
        // A little room for the appends to come, which will land in this index.
        var index = DedupeIndex(nextRevision: view.head + 1, capacity: stored.entries.count + Limits.dedupeIndexSpareEntries)
        for entry in stored.entries { index.insert(entry.id, revision: entry.revision, time: entry.time) }
        index.prune(keepingOps: window.ops, cutoff: window.oldestServerTime(lastServerTime: view.lastServerTimeMilliseconds))
        dedupe.insert(index, for: document)
        metrics.dedupeIndexLoads.increment()
        counters.withLock { $0.dedupeIndexLoads += 1 }
        enforceMemoryBudget()
        return index
    }

    /// The revisions of `ids` in `document` for an append based on revision `basedOn`: every op the
    /// document accepted after `basedOn` is checked, however old, from the dedupe index where it
    /// reaches that far and from the stored data below it.
    /// - Throws: `retryUnverifiable` when the store no longer holds the IDs of every op after
    ///   `basedOn`; `beyondHead` when `basedOn` is above the document's head.
    func revisionsAfter(
        basedOn: Revision, of ids: [OpID], in document: DocumentID, head: Revision,
        index: DedupeIndex
    ) throws(OpLogError) -> [Revision?] {
        guard basedOn <= head else { throw .beyondHead(document: document, requested: basedOn, head: head) }
        let windowed = ids.map { index.revision(of: $0) }
        // The index alone answers when it holds every op after basedOn.
        if basedOn + 1 >= index.coveredFrom { return windowed }
        let view = try reader.currentView(of: document) ?? DocumentView(record: .empty)
        let stored = try storedOpIDs(document, from: basedOn + 1, view: view)
        guard basedOn + 1 >= stored.checkableFrom else {
            throw .retryUnverifiable(document: document, basedOn: basedOn, checkableFrom: stored.checkableFrom - 1)
        }
        var older: [OpID: Revision] = [:]
        for entry in stored.entries where entry.revision < index.coveredFrom { older[entry.id] = entry.revision }
        // The index holds the newer revision of an ID accepted twice (the first one outside the window).
        return zip(ids, windowed).map { id, revision in revision ?? older[id] }
    }

    /// Reads the op IDs `document` stores from revision `lowest` (or the lowest it still holds, if
    /// higher) to its head: dedupe records, op chunks, then the journaled tail in `view`. Checks
    /// that they run without a gap, so that a record lost to damage is reported, never forgotten.
    ///
    /// `view` was taken under the writer's turn and stays valid while it is held, but LMDB does not
    /// stand still: the applier may commit the view's pending ops between the view and the read
    /// transaction below. So LMDB's ops are taken only below the view's first pending revision
    /// (`lmdbEnd`), the rest from the view, and LMDB's head is allowed to be past `lmdbEnd`.
    func storedOpIDs(_ document: DocumentID, from lowest: Revision, view: DocumentView) throws(OpLogError) -> StoredOpIDs {
        let lmdbEnd = view.pending.first?.revision ?? (view.head + 1)
        var result = StoredOpIDs(checkableFrom: lmdbEnd)
        do {
            try tables.environment.read { (txn: borrowing ReadTransaction) in
                let record = try tables.readDocumentRecord(txn, document) ?? .empty
                var covered: Range<Revision>?  // dedupe revisions seen, from `lowest` on
                var chunkCovered: Range<Revision>?  // op chunk revisions seen, from `lowest` on
                for database in [tables.dedupe, tables.ops] {
                    let isChunk = database == tables.ops
                    try txn.withCursor(database) { cursor in
                        var entry = try cursor.seek(
                            containing: KeyCoding.revisionKey(document, lowest), prefix: KeyCoding.documentPrefix(document))
                        while let current = entry, KeyCoding.belongs(current.key, to: document) {
                            for (id, revision, time) in try dedupeEntries(current, document: document, isChunk: isChunk)
                            where revision >= lowest && revision < lmdbEnd {
                                if !isChunk {
                                    if let range = covered, revision != range.upperBound {
                                        throw OpLogError.corruption(
                                            CorruptionLocation(area: "dedupe", document: document, revision: range.upperBound),
                                            detail: "dedupe records skip from \(range.upperBound) to \(revision)")
                                    }
                                    covered = (covered?.lowerBound ?? revision)..<(revision + 1)
                                } else {
                                    if let range = chunkCovered, revision != range.upperBound {
                                        throw OpLogError.corruption(
                                            CorruptionLocation(area: "ops", document: document, revision: range.upperBound),
                                            detail: "op chunks skip from \(range.upperBound) to \(revision)")
                                    }
                                    chunkCovered = (chunkCovered?.lowerBound ?? revision)..<(revision + 1)
                                }
                                if revision > (result.entries.last?.revision ?? 0) { result.entries.append((id, revision, time)) }
                            }
                            entry = try cursor.next()
                        }
                    }
                }
                try checkCoverage(
                    txn, document, record: record, below: lmdbEnd, oldest: lowest, dedupe: covered, chunks: chunkCovered)
                result.checkableFrom = try lowestStoredRevision(txn, document, record: record) ?? lmdbEnd
            }
        } catch { throw OpLogError(mapping: error) }
        for op in view.pending where op.revision >= lowest { result.entries.append((op.opID, op.revision, op.serverTimeMilliseconds)) }
        return result
    }

    /// The lowest revision whose op ID LMDB holds: the first dedupe record's, else the first op
    /// chunk's; nil when LMDB holds neither (the journal may still hold ops).
    private func lowestStoredRevision(_ txn: borrowing ReadTransaction, _ document: DocumentID, record: DocumentRecord) throws -> Revision?
    {
        if record.dedupeFrom != 0 { return record.dedupeFrom }
        return try txn.withCursor(tables.ops) { cursor in
            try cursor.seek(atOrAfter: KeyCoding.documentPrefix(document)).flatMap { KeyCoding.parseRevisionKey($0.key) }
        }.flatMap { $0.document == document ? $0.revision : nil }
    }

    /// The op IDs a retry is checked against must all be there: the dedupe records hold every
    /// revision from `record.dedupeFrom` (or `oldest`, if later) up to the first op chunk (or the
    /// floor), and the op chunks every revision from there (or `oldest`) to LMDB's head. A record
    /// whose key was damaged is missing from that range; the op IDs it held must not be silently
    /// forgotten, or a retry would be stored twice. Only revisions below `end` were read from LMDB
    /// (the view holds the rest), so the op chunks are checked up to LMDB's head or `end - 1`,
    /// whichever is lower.
    private func checkCoverage(
        _ txn: borrowing ReadTransaction, _ document: DocumentID, record: DocumentRecord, below end: Revision,
        oldest: Revision, dedupe: Range<Revision>?, chunks: Range<Revision>?
    ) throws {
        // The view's pending ops start right after what LMDB held when the view was made, and LMDB
        // only moves forward: a head below that lost an applied commit.
        guard record.head + 1 >= end else {
            throw OpLogError.corruption(
                CorruptionLocation(area: "documents", document: document),
                detail: "the document record's head \(record.head) is below the journal's first unapplied revision \(end)")
        }
        let checkedHead = min(record.head, end - 1)
        let firstChunk = try txn.withCursor(tables.ops) { cursor in
            try cursor.seek(atOrAfter: KeyCoding.documentPrefix(document)).flatMap { KeyCoding.parseRevisionKey($0.key) }
        }.flatMap { $0.document == document ? $0.revision : nil }
        let dedupeEnd = min(firstChunk ?? record.floor, end)
        let start = record.dedupeFrom == 0 ? dedupeEnd : max(record.dedupeFrom, oldest)
        let expected = start < dedupeEnd ? start..<dedupeEnd : nil
        if dedupe != expected {
            throw OpLogError.corruption(
                CorruptionLocation(area: "dedupe", document: document),
                detail:
                    "dedupe records hold revisions \(dedupe.map { "\($0)" } ?? "none") where the document record requires "
                    + "\(expected.map { "\($0)" } ?? "none")"
            )
        }
        // LMDB retains floor...head; the first chunk may start below the floor (truncation deletes
        // only whole chunks), never above it.
        var expectedChunks: Range<Revision>?
        if record.floor <= record.head {
            guard let firstChunk, firstChunk <= record.floor else {
                throw OpLogError.corruption(
                    CorruptionLocation(area: "ops", document: document, revision: record.floor),
                    detail: "no op chunk holds the floor \(record.floor)")
            }
            let chunkStart = max(oldest, firstChunk)
            expectedChunks = chunkStart <= checkedHead ? chunkStart..<(checkedHead + 1) : nil
        }
        if chunks != expectedChunks {
            throw OpLogError.corruption(
                CorruptionLocation(area: "ops", document: document),
                detail:
                    "op chunks hold revisions \(chunks.map { "\($0)" } ?? "none") where the document record requires "
                    + "\(expectedChunks.map { "\($0)" } ?? "none")"
            )
        }
    }

    private func dedupeEntries(_ entry: Entry, document: DocumentID, isChunk: Bool) throws(OpLogError) -> [(OpID, Revision, Int64)] {
        if isChunk {
            return try StoreTables.decodeChunkViews(entry, document: document).map { ($0.opID, $0.revision, $0.serverTimeMilliseconds) }
        }
        let record = try StoreTables.decodeDedupe(entry, document: document)
        return record.entries.enumerated().map { ($1.opID, record.firstRevision + UInt64($0), $1.serverTime) }
    }
}
