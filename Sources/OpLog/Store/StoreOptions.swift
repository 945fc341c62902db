import Logging

/// What a system crash (power loss, kernel panic) may do to acknowledged work. A process crash
/// loses nothing acknowledged in any mode: the data is in the operating system's page cache.
public enum Durability: String, Sendable, CaseIterable {
    /// ACID. An append returns only after the journal's `fdatasync` returned; LMDB commits (applies,
    /// snapshots, deletions) are synced too. A system crash loses nothing acknowledged.
    case full
    /// ACI. Appends are written to the journal but not synced; they become durable when the journal
    /// is applied to LMDB in a synced commit (about every `journalApplyBytes`, and at close), or
    /// synced before a snapshot put. A system crash may lose acknowledged appends since the last
    /// such sync: the journal is read up to its first missing or torn record and the rest is
    /// dropped. It never corrupts the store.
    case lastAppendsMayBeLost
    /// Nothing is synced, LMDB included (`MDB_NOSYNC`). A system crash may lose acknowledged work
    /// and, on file systems that reorder writes (ext4 does not promise order), corrupt the store.
    /// For tests and bulk loads that can be redone.
    case mayCorruptOnSystemCrash
}

/// Whether a store takes its changes from clients or from another store's change feed.
public enum StoreRole: String, Sendable, CaseIterable {
    /// Clients mutate it (appends, truncations, snapshots, deletions); it assigns revisions,
    /// server times and feed positions.
    case primary
    /// It reproduces another store (its primary) exactly from that store's change feed, through
    /// `OpLogStore.apply(_:epoch:)`: same documents, revisions, op IDs, server times, snapshots,
    /// floors, positions and lineage. Client mutations and compaction are refused (`wrongRole`);
    /// reads, replay, subscriptions and its own feed serve as on a primary. `promote()` makes it a
    /// primary that continues the same history. Needs the feed on (`feedRetentionBytes`).
    case follower
}

/// Options for opening a store. Every field has a documented default and bound.
public struct StoreOptions: Sendable {
    /// What a crash may lose; `full` by default (see `Durability`).
    public var durability: Durability = .full
    /// Map size LMDB starts with. Grown (doubled) on demand up to `mapSizeMaximumBytes`.
    public var mapSizeInitialBytes: Int = 64 << 20
    /// The store never grows beyond this; then appends fail with `OpLogError.storageFull`.
    public var mapSizeMaximumBytes: Int = 64 << 30
    /// Space held back from appends and snapshots so that truncations and deletions, which need
    /// a few pages to free many, still succeed when the store is full.
    public var reservedBytesForDeletion: Int = 2 << 20
    /// zlib level for records in LMDB (0 stores everything raw, 1–9 compress where it pays).
    public var compressionLevel: Int32 = 6
    /// zlib level for journal records; low, because it runs on every acknowledgement.
    public var journalCompressionLevel: Int32 = 1
    /// Apply the journal to LMDB once it holds this many bytes (1 MiB ... 1 GiB).
    public var journalApplyBytes: Int = 4 << 20
    /// Op IDs remembered per document for retries without `basedOn`, independent of truncation: a
    /// document remembers the IDs of its last `dedupeWindowOps` ops…
    public var dedupeWindowOps: Int = 100_000
    /// …whose server time is at most this much older than the document's newest op (24 hours by
    /// default). Measured on the document's own history, not against the clock: a store closed
    /// for longer than this forgets nothing until the document gets new ops. Retries that name
    /// the revision their ops were based on (`basedOn`) are checked with no window at all.
    public var dedupeWindowMilliseconds: Int64 = 24 * 3600 * 1000
    /// Memory the store's per-document state may take (256 MiB by default, at least
    /// `Limits.memoryBudgetBytesMin`): the op-ID indexes of the documents appended to since open,
    /// evicted least recently used and rebuilt from disk on demand. See `MemoryBudget` for what
    /// counts and what is bounded otherwise. Ignored when `sharedMemoryBudget` is set.
    public var memoryBudgetBytes: Int = 256 << 20
    /// The change feed (`OpLogStore.changes(after:)`): nil (the default) keeps none; a size turns
    /// it on and keeps at least that many stored bytes of history in LMDB (at least 64 KiB). At
    /// each journal apply the oldest changes beyond it, or older than `feedRetentionMilliseconds`,
    /// are removed, unless a saved consumer position (`OpLogStore.savePosition(_:for:)`) still
    /// needs them; a consumer that falls further behind gets `belowRetention`. The history holds a
    /// copy of every change, ops and snapshots included, so it adds about the op bytes again to
    /// what each apply writes (README, "The change feed"). Turning the feed off, or on again,
    /// starts its history over.
    public var feedRetentionBytes: Int?
    /// With the feed on, changes older than this (by the store's clock) leave the history at the
    /// next apply, even within `feedRetentionBytes`; nil (the default): no age limit.
    public var feedRetentionMilliseconds: Int64?
    /// The feed's history never holds more stored bytes than this (1 GiB by default, at least
    /// `feedRetentionBytes`), saved positions or not: an abandoned consumer cannot fill the disk.
    /// A consumer whose saved position falls below gets `belowRetention`.
    public var feedRetentionBytesMax: Int = 1 << 30
    /// One budget for several stores of this process (each store opened with the same instance);
    /// nil gives the store a budget of its own of `memoryBudgetBytes`.
    public var sharedMemoryBudget: MemoryBudget?
    /// The fencing scope of each document (see `FencingScope`): by default the document itself.
    /// Give a shard or tenant function to fence a group of documents with one `raiseEpoch`. It must
    /// be a pure function and the same for every open of the store: epochs are stored per scope.
    public var fencingScope: @Sendable (DocumentID) -> FencingScope = { FencingScope(document: $0) }
    /// Most ops coalesced into one group commit (a caller's ops are never split), 1 ... 100,000.
    public var groupCommitMaxOps: Int = 8192
    /// Most payload bytes coalesced into one group commit.
    public var groupCommitMaxBytes: Int = 8 << 20
    /// Primary (the default) or follower (see `StoreRole`). The role is this open's: a follower's
    /// store opened as a primary later is promoted by that open.
    public var role: StoreRole = .primary
    /// Open without writing: no journal apply, no appends. Other processes may write meanwhile.
    public var readOnly: Bool = false
    /// Where the store logs (swift-log).
    public var logger: Logger = Logger(label: "oplog")
    /// The wall clock the store reads all its time from: op server times, snapshot and store
    /// creation times, and (through `CompactionScheduler`) the compaction age triggers and waits.
    /// `SystemClock()` by default; tests pass a `ManualClock`. See `StoreClock`.
    public var clock: any StoreClock = SystemClock()
    /// Permissions of the files the store creates (`data.mdb`, `lock.mdb`, the journal, the copies
    /// `backup` writes). Owner-only by default: every document is readable from them. Widen it (to
    /// `0o640`, say) only for a group that may read every document.
    public var filePermissions: UInt32 = 0o600
    /// Permissions of a store directory the store creates (and of backup directories).
    public var directoryPermissions: UInt32 = 0o700

    /// The defaults documented on each field.
    public init() {}

    func validate() throws(OpLogError) {
        func require(_ condition: Bool, _ message: String) throws(OpLogError) {
            if !condition { throw .invalidArgument(message) }
        }
        try require(role == .primary || feedRetentionBytes != nil, "a follower needs the change feed on (feedRetentionBytes)")
        try require(mapSizeInitialBytes >= 1 << 20, "mapSizeInitialBytes must be at least 1 MiB")
        try require((feedRetentionBytes ?? 64 << 10) >= 64 << 10, "feedRetentionBytes must be at least 64 KiB")
        try require(feedRetentionBytesMax >= (feedRetentionBytes ?? 64 << 10), "feedRetentionBytesMax must be at least feedRetentionBytes")
        try require((feedRetentionMilliseconds ?? 0) >= 0, "feedRetentionMilliseconds must not be negative")
        try require(mapSizeMaximumBytes >= mapSizeInitialBytes, "mapSizeMaximumBytes must be at least mapSizeInitialBytes")
        try require(
            reservedBytesForDeletion >= 0 && reservedBytesForDeletion < mapSizeMaximumBytes / 2,
            "reservedBytesForDeletion must be below half the maximum map size")
        try require((0...9).contains(compressionLevel), "compressionLevel must be 0...9")
        try require((0...9).contains(journalCompressionLevel), "journalCompressionLevel must be 0...9")
        try require((1 << 20...1 << 30).contains(journalApplyBytes), "journalApplyBytes must be 1 MiB ... 1 GiB")
        try require(
            (1...Limits.dedupeOpsPerDocumentMax).contains(dedupeWindowOps), "dedupeWindowOps must be 1...\(Limits.dedupeOpsPerDocumentMax)")
        try require(dedupeWindowMilliseconds >= 0, "dedupeWindowMilliseconds must not be negative")
        try require((1...100_000).contains(groupCommitMaxOps), "groupCommitMaxOps must be 1...100,000")
        try require(
            (sharedMemoryBudget?.bytes ?? memoryBudgetBytes) >= Limits.memoryBudgetBytesMin || sharedMemoryBudget?.evictsEverything == true,
            "the memory budget must be at least \(Limits.memoryBudgetBytesMin) bytes")
        try require(
            (1 << 16...Limits.journalRecordBytesMax / 2).contains(groupCommitMaxBytes), "groupCommitMaxBytes must be 64 KiB ... 32 MiB")
        try require(
            filePermissions & ~0o666 == 0 && filePermissions & 0o600 == 0o600,
            "filePermissions must allow the owner to read and write and set no execute or special bits")
        try require(
            directoryPermissions & ~0o777 == 0 && directoryPermissions & 0o700 == 0o700,
            "directoryPermissions must give the owner full access and set no special bits")
    }
}
