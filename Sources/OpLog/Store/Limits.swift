/// Every size OpLog accepts has a maximum, and they all live here.
///
/// Each is enforced with `OpLogError.limitExceeded` before anything is written, and the decoders use
/// the same numbers to refuse stored lengths that could only come from damage.
public enum Limits {
    /// Document ID length in UTF-8 bytes. Keeps every LMDB key (ID + 0x00 + 8-byte revision) under
    /// LMDB's 511-byte key limit with room to spare.
    public static let documentIDBytesMax = 256
    /// Fencing scope name length in UTF-8 bytes (the scope is the key of its epoch record); at
    /// least `documentIDBytesMax`, since a document is its own scope by default.
    public static let fencingScopeBytesMax = 256
    /// Author ID length in bytes.
    public static let authorBytesMax = 64
    /// One op's payload in bytes (1 MiB). Larger state belongs in snapshots.
    public static let payloadBytesMax = 1 << 20
    /// Ops in one append call (one document).
    public static let opsPerAppendMax = 10_000
    /// Ops in one multi-document batch, all documents together: with the payload bound below it
    /// keeps every journal record far under `journalRecordBytesMax`, raw or compressed.
    public static let opsPerBatchMax = 10_000
    /// Documents in one multi-document batch.
    public static let documentsPerBatchMax = 1_000
    /// Total payload bytes in one append or batch (16 MiB), so one caller cannot monopolise a commit.
    public static let batchPayloadBytesMax = 16 << 20
    /// One snapshot in bytes (256 MiB).
    public static let snapshotBytesMax = 256 << 20
    /// Raw bytes of one op chunk as stored in LMDB: chunks are cut at this size when applied.
    public static let chunkRawBytesTarget = 32 << 10
    /// Largest raw body any stored record may declare (snapshot max plus headroom). A decoder never
    /// allocates more than this, whatever a damaged length field says.
    public static let recordBodyBytesMax = snapshotBytesMax + (1 << 16)
    /// Largest journal record (a whole group commit): batch maximum plus framing headroom.
    public static let journalRecordBytesMax = 64 << 20
    /// Dedupe window upper bound on op IDs remembered per document.
    public static let dedupeOpsPerDocumentMax = 1_000_000
    /// Journal record bodies shorter than this are written raw. Each acknowledgement's sync writes
    /// the journal's last page whole, so a small record costs about one 4 KiB page whatever its
    /// size: below 256 bytes level-1 zlib saved under 2% of the bytes a sync writes, and it cost a
    /// deflate per group commit. Measured on the automerge-paper ops: bodies of one op (~100 bytes)
    /// do not shrink at all, 250 bytes shrink to 0.69, 4 KiB to 0.52.
    public static let journalCompressionThresholdBytes = 256
    /// A journal slot grows by this many zero bytes at a time, so that acknowledgement syncs
    /// overwrite written blocks (no size or allocation to record) and the growth's own metadata
    /// reaches the disk once per step. 256 KiB: at one op per sync (about 100 bytes, while each
    /// sync writes a 4 KiB page) the fill adds about 2.5% to the bytes written until the slot is
    /// full size; the slots are then reused for the store's life. The extra sync per step is
    /// under 0.1% of the syncs at one op per group.
    public static let journalFillStepBytes = 256 << 10
    /// Ops returned by one read call.
    public static let readOpsMax = 100_000
    /// Documents listed per page.
    public static let listDocumentsMax = 10_000
    /// Largest journal file a reader accepts: a few applies' worth that failed plus the largest
    /// record. Anything bigger is not a journal OpLog wrote.
    public static let journalFileBytesMax = journalRecordBytesMax * 4 + (1 << 30)

    // MARK: - Batches, retries and internal bounds (not caller-visible limits)

    /// Ops read per batch during replay: memory stays bounded by the state plus one batch. A batch
    /// ending inside a chunk decodes that chunk again for the next one, so a batch spans several
    /// chunks (about 500 of the traces' ops each).
    public static let replayBatchOps = 4_096
    /// Raw body bytes of one encoded `Change`: room for the largest snapshot with its document ID,
    /// and for the largest journal record. Decoders refuse more.
    public static let changeBytesMax = recordBodyBytesMax
    /// Changes a feed iterator reads from the store per step.
    public static let feedBatchChanges = 256
    /// Changes one `OpLogStore.apply(contentsOf:epoch:)` takes: a follower's catch-up batch,
    /// applied under one turn of the writer, so the appliers behind it wait at most this many.
    public static let changesPerApplyMax = 4_096
    /// Changes prepared and not yet committed (`OpLogStore.prepare(_:epoch:)`): an owner's
    /// pipeline towards a replicated log. Each holds its ops in the writer's memory until then.
    public static let preparedChangesMax = 256
    /// Named consumer positions a store keeps (`savePosition(_:for:)`): each one can hold the
    /// feed's history back, so their number is bounded; `feedRetentionBytesMax` bounds their cost.
    public static let feedConsumersMax = 64
    /// Bytes of a consumer's name (UTF-8): an LMDB key.
    public static let feedConsumerNameBytesMax = 128
    /// Applied fencing epochs the writer keeps in memory; past this the cache is dropped and
    /// epochs are read from LMDB again (journaled ones are always in memory).
    static let fencingEpochsCachedMax = 65_536
    /// Ops a subscription reads from the store per catch-up step.
    static let subscriptionCatchUpOps = 256
    /// Entries read per read transaction while scanning (`verify`, `spaceUsage`), so a long scan
    /// never pins old pages.
    static let scanBatchEntries = 512
    /// The smallest memory budget a store accepts: below it every append would rebuild its index.
    public static let memoryBudgetBytesMin = 1 << 20
    /// A store over its memory budget evicts down to this share of it (percent), so that one round
    /// frees a tenth of the budget instead of running at every group commit.
    static let memoryBudgetTrimPercent = 90
    /// Estimated bytes of one op ID in a dedupe index: its place in the revision-ordered array
    /// (16-byte ID, revision, server time: 32) and in the ID → revision dictionary (24 bytes per
    /// bucket, at most 3/4 of the buckets used: 32), plus allocator slack.
    static let dedupeEntryBytesEstimate = 72
    /// Estimated fixed bytes of a dedupe index and its cache entry (two collection headers, the
    /// document ID, the recency stamp).
    static let dedupeIndexBytesEstimate = 160
    /// Entries per dedupe record: 100 of about 17 bytes stay under 1.8 KiB, inside an LMDB leaf
    /// page (a larger value goes to overflow pages and wastes up to a page of slack each).
    static let dedupeEntriesPerRecord = 100
    /// A read that meets a gap (an apply or truncation between reading the view and LMDB) tries
    /// again; this many gaps in a row mean the data itself has a hole.
    static let readAttemptsMax = 3
    /// Replay restarts from a newer snapshot when compaction truncates under it, at most this often.
    static let replayAttemptsMax = 4
    /// A read-only open retries reading the journal and LMDB together while a writer replaces it.
    static let recoveryReadAttemptsMax = 3
    /// `backup` copies again when an apply replaced the journal under the copy, at most this often.
    static let backupCopyAttemptsMax = 5
    /// Taking the writer lock: a child process forked by this one (any `Process` launch) shares the
    /// lock's open file description until it execs, so the lock is retried briefly.
    static let writerLockAttempts = 50
    static let writerLockRetryMicroseconds: UInt32 = 10_000
    /// Journaled bytes beyond this many applies' worth mean applies keep failing: appends are
    /// refused with `storageFull` instead of letting the journal grow without bound.
    static let unappliedJournalApplies = 4
    /// Unapplied journal bytes, in `journalApplyBytes`, past which a group commit waits for the
    /// apply in flight: the sealed slot plus a full active one. Bounds the memory the views hold.
    static let unappliedJournalSlotsMax = 2
    /// What a document with pending ops costs in the views beyond its ops: its entries in the
    /// reader's views, the dirty set and the apply job, with hash-table slack.
    static let viewDocumentBytesEstimate = 512
    /// Room left in a rebuilt op-ID index for the next append, beyond the IDs it holds. More would
    /// round the hash table up to the next power of two (11 IDs + 4 take 32 buckets, not 16) and
    /// cost a quarter more evictions under W4's budget.
    static let dedupeIndexSpareEntries = 1
    /// A commit's EIO counts as a full file system only while less than this is free.
    static let fileSystemNearlyFullBytes = 1 << 20
    /// Per-op bytes besides payload and author in the stored encoding (op ID, time and length
    /// fields), for the estimates of stored sizes, space and group-commit bounds.
    static let opOverheadBytesEstimate = 24

    /// The estimated stored size of one op.
    static func estimatedStoredBytes(of op: StoredOp) -> Int {
        op.payload.count + op.author.count + opOverheadBytesEstimate
    }

    static func estimatedStoredBytes(of op: NewOp) -> Int {
        op.payload.count + op.author.count + opOverheadBytesEstimate
    }

    /// The relations between the limits that the code relies on; checked by the tests and, in
    /// debug builds, at every open.
    static var relationsHold: Bool {
        opsPerAppendMax <= opsPerBatchMax
            && batchPayloadBytesMax + opsPerBatchMax * (authorBytesMax + 64) < journalRecordBytesMax
            && payloadBytesMax <= batchPayloadBytesMax
            && snapshotBytesMax < recordBodyBytesMax
            && chunkRawBytesTarget + payloadBytesMax + authorBytesMax + 64 < recordBodyBytesMax
            && documentIDBytesMax + 9 <= 511  // LMDB's default maximum key size
            && fencingScopeBytesMax >= documentIDBytesMax && fencingScopeBytesMax <= 511
            && fencingEpochsCachedMax >= 1
            && changesPerApplyMax >= feedBatchChanges  // a feed iterator's batch fits one apply
            && feedConsumersMax >= 1 && feedConsumerNameBytesMax <= 511  // LMDB's default maximum key size
            && snapshotBytesMax + documentIDBytesMax + 64 <= changeBytesMax && journalRecordBytesMax <= changeBytesMax
            && dedupeEntriesPerRecord * 17 + 32 < 2_000  // inside a leaf page of 4 KiB
            && replayBatchOps <= readOpsMax && subscriptionCatchUpOps <= readOpsMax
            && journalRecordBytesMax < journalFileBytesMax
            && journalCompressionThresholdBytes >= RecordFrame.compressionThresholdBytes
            && unappliedJournalSlotsMax < unappliedJournalApplies
            && journalFillStepBytes >= 2 * 24 && journalFillStepBytes < journalRecordBytesMax
    }
}

/// The name of a limit, carried by `OpLogError.limitExceeded`.
public enum LimitName: String, Sendable, Equatable {
    /// `Limits.documentIDBytesMax`, `authorBytesMax`, `payloadBytesMax`, `opsPerAppendMax`, `opsPerBatchMax`,
    /// `documentsPerBatchMax`, `batchPayloadBytesMax`.
    case documentIDBytes, authorBytes, payloadBytes, opsPerAppend, opsPerBatch, documentsPerBatch, batchPayloadBytes
    /// `Limits.fencingScopeBytesMax`.
    case fencingScopeBytes
    /// `Limits.feedConsumersMax`, `feedConsumerNameBytesMax`.
    case feedConsumers, feedConsumerNameBytes
    /// `Limits.changeBytesMax`, `changesPerApplyMax`, `preparedChangesMax`.
    case changeBytes, changesPerApply, preparedChanges
    /// `Limits.snapshotBytesMax`, `readOpsMax`, `listDocumentsMax`.
    case snapshotBytes, readOps, listDocuments
}
