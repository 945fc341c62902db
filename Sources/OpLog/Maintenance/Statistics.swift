import OpLogStorage

/// Store-wide figures for `oplog stats`.
public struct StoreStatistics: Sendable {
    /// Size of `data.mdb` on disk as allocated, and as its apparent length.
    public var dataFileAllocatedBytes: Int
    public var dataFileBytes: Int
    public var journalBytes: Int
    public var mapSizeBytes: Int
    public var pageSizeBytes: Int
    public var pagesUsed: Int
    public var freePages: Int
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
                journalBytes: File.sizeOf(directory + "/" + Journal.fileName) ?? 0,
                mapSizeBytes: info.mapSizeBytes, pageSizeBytes: info.pageSizeBytes,
                pagesUsed: info.lastPageNumber + 1, freePages: try tables.environment.freePageCount(),
                documentCount: max(documentCount, journaledNew),
                staleReadersClearedAtOpen: tables.environment.staleReadersClearedAtOpen)
        } catch { throw OpLogError(mapping: error) }
    }
}

/// Bytes stored per kind of record (values as stored: framed and compressed, keys included).
public struct SpaceUsage: Sendable, Equatable {
    public var opChunkBytes = 0
    public var snapshotBytes = 0
    public var dedupeBytes = 0
    public var documentRecordBytes = 0
    public var total: Int { opChunkBytes + snapshotBytes + dedupeBytes + documentRecordBytes }

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
