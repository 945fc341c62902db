/// Every size OpLog accepts has a maximum, and they all live here.
///
/// Each is enforced with `OpLogError.limitExceeded` before anything is written, and the decoders use
/// the same numbers to refuse stored lengths that could only come from damage.
public enum Limits {
    /// Document ID length in UTF-8 bytes. Keeps every LMDB key (ID + 0x00 + 8-byte revision) under
    /// LMDB's 511-byte key limit with room to spare.
    public static let documentIDBytesMax = 256
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
    /// Ops returned by one read call.
    public static let readOpsMax = 100_000
    /// Documents listed per page.
    public static let listDocumentsMax = 10_000
}

/// The name of a limit, carried by `OpLogError.limitExceeded`.
public enum LimitName: String, Sendable, Equatable {
    case documentIDBytes, authorBytes, payloadBytes, opsPerAppend, opsPerBatch, documentsPerBatch, batchPayloadBytes
    case snapshotBytes, readOps, listDocuments
}
