/// A document as readers see it between journal applies: LMDB holds everything below
/// `pending.first`, the journal (and this view) holds `pending`.
struct DocumentView: Sendable {
    var head: Revision
    var floor: Revision
    var lastServerTimeMilliseconds: Int64
    /// Journaled ops not yet applied to LMDB, consecutive revisions continuing LMDB's head. Ops
    /// below `floor` (truncated before being applied) stay until the apply records their op IDs.
    var pending: [StoredOp]
    /// Approximate size of the retained part of `pending`, for `DocumentInfo.storedBytes`.
    var pendingBytes: Int
    /// Stored bytes of the document's chunks in LMDB.
    var appliedChunkBytes: UInt64

    init(record: DocumentRecord) {
        head = record.head
        floor = record.floor
        lastServerTimeMilliseconds = record.lastServerTimeMilliseconds
        pending = []
        pendingBytes = 0
        appliedChunkBytes = record.chunkBytes
    }

    /// Applies what one commit did to this document, in place (so a long journaled tail is never
    /// copied).
    mutating func absorb(_ update: ViewUpdate) {
        assert(
            update.appended.first.map { $0.revision == head + 1 } ?? true,
            "view of a document at head \(head) given ops from \(update.appended.first?.revision ?? 0)")
        assert(update.head == head + UInt64(update.appended.count), "a view update's head does not follow its ops")
        assert(update.lastServerTimeMilliseconds >= lastServerTimeMilliseconds, "server time went backwards")
        head = update.head
        lastServerTimeMilliseconds = update.lastServerTimeMilliseconds
        pending.append(contentsOf: update.appended)
        if update.floor != floor {
            assert(update.floor > floor && update.floor <= head + 1, "floor \(update.floor) outside \(floor)...\(head + 1)")
            // Journaled ops below the new floor stay in `pending` until the apply: their op IDs
            // must reach the dedupe records though the ops are never written to LMDB.
            floor = update.floor
            pendingBytes = Self.retainedBytes(of: pending, floor: floor)
        } else {
            pendingBytes += Self.retainedBytes(of: update.appended[...], floor: floor)
        }
    }

    /// After an apply that wrote this document up to `head`: those ops are in LMDB now.
    mutating func dropApplied(through head: Revision, appliedChunkBytes: UInt64) {
        assert(head <= self.head, "applied up to \(head), beyond the view's head \(self.head)")
        assert(pending.first.map { $0.revision <= head + 1 } ?? true, "the view's journaled ops skip past the applied head")
        pending.removeFirst(pending.prefix { $0.revision <= head }.count)
        self.appliedChunkBytes = appliedChunkBytes
        pendingBytes = Self.retainedBytes(of: pending, floor: floor)
    }

    /// Approximate stored size of ops at or above `floor`.
    static func retainedBytes(of ops: some Collection<StoredOp>, floor: Revision) -> Int {
        ops.reduce(0) { $0 + ($1.revision >= floor ? Limits.estimatedStoredBytes(of: $1) : 0) }
    }
}

/// What one commit changed in a document, handed from the writer to the reader's views.
struct ViewUpdate: Sendable {
    var head: Revision
    var floor: Revision
    var lastServerTimeMilliseconds: Int64
    /// The document's applied record, to start a view from when the document has none in memory.
    var record: DocumentRecord
    var appended: [StoredOp]
}
