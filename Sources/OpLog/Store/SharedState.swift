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
}

/// State shared by the writer thread (the only mutator) and readers, behind the store's mutex.
/// Documents without journaled changes are not kept: LMDB has all of them.
struct SharedState: Sendable {
    var documents: [DocumentID: DocumentView] = [:]
    /// Set when an I/O failure left the journal uncertain; every later write fails with it.
    var failure: OpLogError?
    var isClosed = false
    /// Bytes in the journal not yet applied (for the storage-full estimate and statistics).
    var journalBytes = 0
    var counters = WriterCounters()
}

/// What the writer thread has done since the store was opened.
public struct WriterCounters: Sendable, Equatable {
    /// Group commits (journal records) written, and the ops they carried.
    public var groupCommits = 0
    public var opsCommitted = 0
    /// Time spent in the journal's sync calls.
    public var syncNanoseconds: UInt64 = 0
    /// Journal applies into LMDB, and all LMDB write transactions (applies, snapshots, deletions).
    public var journalApplies = 0
    public var lmdbCommits = 0
    public var lmdbCommitNanoseconds: UInt64 = 0
}

/// Approximate stored size of the journaled ops at or above the floor.
func retainedPendingBytes(_ view: DocumentView) -> Int {
    view.pending.reduce(0) { $0 + ($1.revision >= view.floor ? $1.payload.count + $1.author.count + 20 : 0) }
}
