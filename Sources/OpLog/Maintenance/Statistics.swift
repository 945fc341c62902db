import OpLogStorage

/// Store-wide figures for `oplog stats`.
public struct StoreStatistics: Sendable {
    /// Size of `data.mdb` on disk as allocated, and as its apparent length.
    public var dataFileAllocatedBytes: Int
    /// Apparent length of `data.mdb`.
    public var dataFileBytes: Int
    /// Size of the journal file.
    public var journalBytes: Int
    /// LMDB's current map size and page size.
    public var mapSizeBytes: Int
    /// LMDB's page size.
    public var pageSizeBytes: Int
    /// Pages up to LMDB's last used page, and how many of them are free.
    public var pagesUsed: Int
    /// Pages on LMDB's free list (reused by later commits).
    public var freePages: Int
    /// Documents in the store.
    public var documentCount: Int
    /// Reader slots left by killed processes that were cleared when this store opened.
    public var staleReadersClearedAtOpen: Int
}

extension Maintenance {
    func statistics() throws(OpLogError) -> StoreStatistics {
        do {
            let info = try tables.environment.info()
            let documentCount = try tables.environment.read { (txn: borrowing ReadTransaction) in try txn.entryCount(tables.documents) }
            let journaledNew = try reader.journaledDocuments().count
            return StoreStatistics(
                dataFileAllocatedBytes: File.allocatedBytes(directory + "/" + StoreDirectory.dataFileName),
                dataFileBytes: File.sizeOf(directory + "/" + StoreDirectory.dataFileName) ?? 0,
                journalBytes: Journal.fileBytes(in: directory),
                mapSizeBytes: info.mapSizeBytes, pageSizeBytes: info.pageSizeBytes,
                pagesUsed: info.lastPageNumber + 1, freePages: try tables.environment.freePageCount(),
                documentCount: max(documentCount, journaledNew),
                staleReadersClearedAtOpen: tables.environment.staleReadersClearedAtOpen)
        } catch { throw OpLogError(mapping: error) }
    }
}

/// Bytes stored per kind of record (values as stored: framed and compressed, keys included).
public struct SpaceUsage: Sendable, Equatable {
    /// Bytes of op chunks, snapshots, dedupe records and document records, keys included.
    public var opChunkBytes = 0
    /// Bytes of snapshot records, keys included.
    public var snapshotBytes = 0
    /// Bytes of dedupe records, keys included.
    public var dedupeBytes = 0
    /// Bytes of document records, keys included.
    public var documentRecordBytes = 0
    /// All of them together.
    public var total: Int { opChunkBytes + snapshotBytes + dedupeBytes + documentRecordBytes }

    /// All zero.
    public init() {}
}

extension Maintenance {
    /// Scans every record and sums what is stored, by kind (a full scan, in short transactions).
    func spaceUsage() throws(OpLogError) -> SpaceUsage {
        var usage = SpaceUsage()
        do {
            try scan(tables.ops, progress: { _ in }) { usage.opChunkBytes += $0.key.count + $0.value.count }
            try scan(tables.snapshots, progress: { _ in }) { usage.snapshotBytes += $0.key.count + $0.value.count }
            try scan(tables.dedupe, progress: { _ in }) { usage.dedupeBytes += $0.key.count + $0.value.count }
            try scan(tables.documents, progress: { _ in }) { usage.documentRecordBytes += $0.key.count + $0.value.count }
        } catch { throw OpLogError(mapping: error) }
        return usage
    }
}
