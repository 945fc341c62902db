/// When the compaction scheduler snapshots a document and what it keeps.
///
/// A document is snapshotted when, since its newest snapshot, its ops reach `snapshotEveryOps`, or
/// their payload bytes reach `snapshotEveryBytes`, or its oldest un-snapshotted op is older than
/// `snapshotAfterMilliseconds` — whichever comes first. Below the newest snapshot at least
/// `keepOps` ops (and every op younger than `keepMilliseconds`) stay for history and undo; the floor
/// always sits just above a retained snapshot. The newest `keepSnapshots` snapshots are kept, plus
/// one at every multiple of `milestoneEveryRevisions` if set, plus the one covering the floor and
/// the oldest one above the floor (the next floor's cover).
public struct CompactionPolicy: Sendable, Equatable {
    /// Snapshot once this many ops arrived since the newest snapshot.
    public var snapshotEveryOps: Int = 1_000
    /// Snapshot once this many payload bytes arrived since the newest snapshot.
    public var snapshotEveryBytes: Int = 1 << 20
    /// Snapshot once the oldest op not covered by a snapshot is this old (by the store's clock).
    public var snapshotAfterMilliseconds: Int64 = 10 * 60 * 1000
    /// Ops kept below the newest snapshot, for history and undo.
    public var keepOps: Int = 500
    /// Ops younger than this (by the store's clock) are never truncated; 0 keeps none by age.
    public var keepMilliseconds: Int64 = 0
    /// The newest snapshots kept.
    public var keepSnapshots: Int = 2
    /// Also keep every snapshot at a multiple of this revision, if set.
    public var milestoneEveryRevisions: UInt64? = nil
    /// Documents compacted per second at most (nil: as fast as it goes); keeps the writer thread's
    /// share of snapshot commits bounded under load.
    public var maxDocumentsPerSecond: Double? = nil
    /// After a document fails (its reducer threw, say), it is retried only after this long.
    public var retryAfterFailureMilliseconds: Int64 = 60_000

    /// The default policy: a snapshot every 1,000 ops, 1 MiB or 10 minutes; 500 ops and 2 snapshots kept.
    public init() {}

    func validate() throws(OpLogError) {
        func require(_ condition: Bool, _ message: String) throws(OpLogError) {
            if !condition { throw .invalidArgument(message) }
        }
        try require(snapshotEveryOps >= 1, "snapshotEveryOps must be at least 1")
        try require(snapshotEveryBytes >= 1, "snapshotEveryBytes must be at least 1")
        try require(snapshotAfterMilliseconds >= 0, "snapshotAfterMilliseconds must not be negative")
        try require(keepOps >= 0, "keepOps must not be negative")
        try require(keepMilliseconds >= 0, "keepMilliseconds must not be negative")
        try require(keepSnapshots >= 1, "keepSnapshots must be at least 1")
        try require(milestoneEveryRevisions.map { $0 >= 1 } ?? true, "milestoneEveryRevisions must be at least 1")
        try require(maxDocumentsPerSecond.map { $0 > 0 } ?? true, "maxDocumentsPerSecond must be positive")
        try require(retryAfterFailureMilliseconds >= 0, "retryAfterFailureMilliseconds must not be negative")
    }
}

/// A reducer with its state type erased, so one scheduler can serve documents of several kinds.
public struct AnyReducer: Sendable {
    let makeSnapshot: @Sendable (OpLogStore, DocumentID) throws -> (bytes: [UInt8], revision: Revision)
    let verifySnapshots: @Sendable (OpLogStore, DocumentID) throws -> [VerificationProblem]

    /// Erases `reducer`'s state type.
    public init<R: Reducer>(_ reducer: R) {
        makeSnapshot = { store, document in
            let (state, revision) = try store.replay(document, with: reducer)
            return (try reducer.encode(state), revision)
        }
        verifySnapshots = { store, document in try store.verifySnapshots(of: document, with: reducer) }
    }
}

/// What the scheduler has done since it started.
public struct CompactionStatistics: Sendable, Equatable {
    /// Documents whose policy currently asks for a snapshot.
    public var backlogDocuments = 0
    /// Snapshots written, and their bytes before compression.
    public var snapshotsWritten = 0
    /// Bytes of those snapshots, before compression.
    public var snapshotBytesWritten = 0
    /// Ops below the floors it moved up.
    public var opsTruncated: UInt64 = 0
    /// Old snapshots deleted by the retention policy.
    public var snapshotsDeleted = 0
    /// Stored bytes of the ops truncated (as the store counted them before and after).
    public var bytesReclaimed = 0
    /// Time spent compacting (monotonic clock).
    public var compactionNanoseconds: UInt64 = 0
    /// Documents whose compaction failed (retried after `retryAfterFailureMilliseconds`).
    public var failures = 0
}
