import Foundation
import Logging
import OpLogStorage
import Synchronization

/// A durable per-document operation log and snapshot store on LMDB.
///
/// - Appends go through a checksummed journal, one `fdatasync` per group commit, and are applied to
///   LMDB in large batches (see FORMAT.md for the layout and why).
/// - All mutations run on one writer thread; any number of tasks and threads may call at once.
///   Concurrent appends are coalesced into one journal record and one sync.
/// - Reads never wait for writers: they read an LMDB snapshot plus the in-memory journal tail, inside
///   a transaction that ends before the call returns (no long-lived readers can be created).
///
/// Lifetime: call `close()` when done; the writer thread keeps the store alive until then. One
/// process may open a store for writing at a time (others get `lockedByAnotherProcess`); any number
/// may open it `readOnly`. Never open the same store twice in one process, and never use it across
/// `fork()` (LMDB's rules).
public final class OpLogStore: Sendable {
    /// The directory holding `data.mdb`, `lock.mdb`, `journal` and `oplog.lock`.
    public let directory: String
    public let options: StoreOptions
    let tables: StoreTables
    let state = Mutex(SharedState())
    let queue = RequestQueue()
    let writer: WriterState?
    let metrics: StoreMetrics
    let observers = StoreObservers()
    let subscriptions = SubscriptionRegistry()

    static let dataFileName = "data.mdb"
    static let lockFileName = "oplog.lock"
    static let knownFileNames: Set<String> = ["data.mdb", "lock.mdb", "journal", "journal.new", "oplog.lock"]

    private init(directory: String, options: StoreOptions, tables: StoreTables, writer: WriterState?) {
        self.directory = directory
        self.options = options
        self.tables = tables
        self.writer = writer
        self.metrics = StoreMetrics(label: "oplog")
    }

    /// Opens the store in `directory`, creating it when the directory is missing or empty.
    ///
    /// Recovers the journal: records not yet in LMDB are applied (or, read-only, held in memory).
    /// - Throws: `notAStore` for a directory holding other files or a file that is not LMDB;
    ///   `unsupportedFormatVersion`; `lockedByAnotherProcess`; `corruption` for a damaged journal or
    ///   metadata, or when LMDB is missing commits the journal says were applied (a damaged or
    ///   rolled-back data file).
    public static func open(directory: String, options: StoreOptions = StoreOptions()) throws(OpLogError) -> OpLogStore {
        try options.validate()
        do {
            return try openChecked(directory: directory, options: options)
        } catch let error as OpLogError {
            throw error
        } catch let error as StorageError where isUnreadableLMDB(error) && File.exists(directory + "/" + Journal.fileName) {
            // Next to a journal, data.mdb was an OpLog store's: LMDB could not read its own pages
            // (a damaged page size or last page makes mdb_env_open fail with EINVAL or ENOMEM).
            throw .corruption(CorruptionLocation(area: "lmdb"), detail: "data.mdb could not be read at open: \(error.description)")
        } catch let error as StorageError where error.kind == .lmdb(-30793) || error.kind == .lmdb(-30794) {
            // MDB_INVALID / MDB_VERSION_MISMATCH: not an LMDB file of this LMDB version.
            throw .notAStore(path: directory, detail: "data.mdb is not a readable LMDB file (\(error.description))")
        } catch {
            throw OpLogError.wrap(error)
        }
    }

    /// LMDB codes that, at open, mean LMDB could not make sense of the file.
    private static func isUnreadableLMDB(_ error: StorageError) -> Bool {
        // MDB_INVALID, MDB_VERSION_MISMATCH, MDB_CORRUPTED, MDB_PAGE_NOTFOUND, MDB_BAD_TXN, and
        // MDB_MAP_RESIZED that persists after adopting the file size (a damaged last page number).
        let codes: Set<Int32> = [-30793, -30794, -30796, -30797, -30782, -30785]
        if case let .lmdb(code) = error.kind { return codes.contains(code) || ([EINVAL, ENOMEM].contains(code) && error.operation == "mdb_env_open") }
        return false
    }

    private static func openChecked(directory: String, options: StoreOptions) throws -> OpLogStore {
        try inspectDirectory(directory, readOnly: options.readOnly)
        var lockFile: File?
        if !options.readOnly {
            let file = try File(path: directory + "/" + lockFileName, writable: true, create: true)
            guard try lockWithRetry(file) else { throw OpLogError.lockedByAnotherProcess(path: directory) }
            lockFile = file
        }
        let dataSize = File.sizeOf(directory + "/" + dataFileName) ?? 0
        let mapSize = max(options.mapSizeInitialBytes, roundUpToMiB(dataSize))
        let tables = try StoreTables.open(directory: directory, options: options, mapSizeBytes: mapSize)
        do {
            try checkFormat(tables, directory: directory, initializeIfEmpty: !options.readOnly, clock: options.clock)
            let writer = lockFile.map { WriterState(lockFile: $0, mapSizeBytes: mapSize) }
            let store = OpLogStore(directory: directory, options: options, tables: tables, writer: writer)
            try store.recover()
            if writer != nil { store.startWriterThread() }
            return store
        } catch {
            tables.environment.close()
            throw error
        }
    }

    /// Takes the writer lock, retrying for up to half a second: a child process forked by this one
    /// (any `Process` launch) shares the lock's open file description until it execs, so a store
    /// closed and reopened at that moment would otherwise look locked by another process.
    private static func lockWithRetry(_ file: File) throws -> Bool {
        for attempt in 0..<50 {
            if try file.tryLockExclusive() { return true }
            if attempt < 49 { usleep(10_000) }
        }
        return false
    }

    /// Creates a missing directory; throws if it holds anything but a store.
    @discardableResult
    private static func inspectDirectory(_ directory: String, readOnly: Bool) throws -> Bool {
        if !File.exists(directory) {
            if readOnly { throw OpLogError.notAStore(path: directory, detail: "the directory does not exist") }
            try File.createDirectory(directory)
            return false
        }
        guard File.isDirectory(directory) else { throw OpLogError.notAStore(path: directory, detail: "not a directory") }
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        let foreign = names.filter { !knownFileNames.contains($0) }
        if names.contains(dataFileName) {
            return true
        }
        if names.contains(Journal.fileName) {
            throw OpLogError.corruption(CorruptionLocation(area: "lmdb"), detail: "\(directory) has a journal but no data.mdb: the data file was removed")
        }
        if !foreign.isEmpty {
            throw OpLogError.notAStore(path: directory, detail: "it holds \(foreign.count) other file(s), e.g. '\(foreign.sorted()[0])', and no data.mdb")
        }
        if readOnly { throw OpLogError.notAStore(path: directory, detail: "no data.mdb") }
        return false
    }

    /// A new store: the journal first, then the format record, so that a crash in between leaves
    /// a directory that the next open initialises again.
    private static func initialize(_ tables: StoreTables, directory: String, clock: any StoreClock) throws {
        try Journal.create(directory: directory, baseSequence: 1).close()
        try tables.environment.write { txn in
            let format = FormatRecord(version: formatVersion, createdAtMilliseconds: clock.now)
            try txn.put(tables.meta, key: StoreTables.formatKey,
                        value: RecordFrame.encode(kind: .format, codec: .raw, key: StoreTables.formatKey, stored: format.encode(), rawLength: 20))
            try txn.put(tables.meta, key: StoreTables.appliedKey,
                        value: RecordFrame.encode(kind: .appliedSequence, codec: .raw, key: StoreTables.appliedKey, stored: AppliedSequenceRecord.encode(0), rawLength: 8))
        }
    }

    /// Checks the format record. A writable open initialises a store with no format record and no
    /// documents: new, or left by a crash while it was being created.
    private static func checkFormat(_ tables: StoreTables, directory: String, initializeIfEmpty: Bool, clock: any StoreClock) throws {
        var format = try tables.environment.read { txn in try tables.readFormat(txn) }
        if format == nil && initializeIfEmpty {
            let empty = try tables.environment.read { txn in try txn.entryCount(tables.documents) == 0 && txn.entryCount(tables.ops) == 0 }
            if empty {
                try initialize(tables, directory: directory, clock: clock)
                format = try tables.environment.read { txn in try tables.readFormat(txn) }
            }
        }
        guard let format else {
            // OpLog's named databases exist (StoreTables.open checked), so data in any of them
            // means the format record's key or value was damaged, not that this is no store.
            let holdsData = try tables.environment.read { txn in
                try [tables.meta, tables.documents, tables.ops, tables.snapshots, tables.dedupe].contains { try txn.entryCount($0) > 0 }
            }
            if holdsData {
                throw OpLogError.corruption(CorruptionLocation(area: "meta"), detail: "the store holds data but its format record is missing (damaged key?)")
            }
            throw OpLogError.notAStore(path: directory, detail: "data.mdb has no OpLog format record")
        }
        guard format.version >= 1 else { throw OpLogError.notAStore(path: directory, detail: "format version 0") }
        guard format.version <= formatVersion else {
            throw OpLogError.unsupportedFormatVersion(found: format.version, supported: formatVersion)
        }
    }

    // MARK: - Submitting work to the writer

    func submit<T: Sendable>(_ make: (Reply<T>) -> WriteRequest) async throws(OpLogError) -> T {
        guard writer != nil else { throw .readOnly }
        let result: Result<T, OpLogError> = await withCheckedContinuation { continuation in
            let request = make(Reply { continuation.resume(returning: $0) })
            if !queue.enqueue(request) { request.fail(.closed) }
        }
        return try result.get()
    }

    /// Appends `ops` to `document` atomically and returns once they are durable (per `durability`).
    ///
    /// The store assigns revisions head+1 … head+n and the server timestamps. If every op ID was
    /// accepted before, nothing is written and the original revisions come back (`wasRetry`), even
    /// when `expectedHead` is stale. Retries are recognised within the dedupe window, or with no
    /// time limit when `basedOn` names the revision the ops were based on (see `DocumentAppend`).
    /// - Throws: `conflict` when `expectedHead` is set and differs from the head; `partialRetry`;
    ///   `retryUnverifiable` when `basedOn` lies below the op IDs the store still holds;
    ///   `beyondHead` when `basedOn` lies above the head; `limitExceeded`; `invalidArgument`;
    ///   `storageFull`; `reopenRequired` after an I/O failure.
    public func append(_ ops: [NewOp], to document: DocumentID, expectedHead: Revision? = nil,
                       basedOn: Revision? = nil) async throws(OpLogError) -> AppendResult {
        let results = try await append(batch: [DocumentAppend(document: document, ops: ops, expectedHead: expectedHead, basedOn: basedOn)])
        return results[0]
    }

    /// Appends to several documents in one durable commit: all of it or none of it.
    ///
    /// Each document may appear once. If any document's part fails, nothing is written and the
    /// error names that document. Returns one result per element of `batch`.
    public func append(batch: [DocumentAppend]) async throws(OpLogError) -> [AppendResult] {
        guard !batch.isEmpty else { throw .invalidArgument("a batch needs at least one document") }
        guard batch.count <= Limits.documentsPerBatchMax else {
            throw .limitExceeded(.documentsPerBatch, value: batch.count, maximum: Limits.documentsPerBatchMax)
        }
        return try await submit { .append(batch: batch, continuation: $0) }
    }

    /// Removes the ops of `document` below `floor`. Requires a snapshot at exactly `floor - 1`, so
    /// every retained revision stays replayable. A floor at or below the current one is a no-op.
    public func truncate(_ document: DocumentID, below floor: Revision) async throws(OpLogError) {
        try await submit { .truncate(document: document, floor: floor, continuation: $0) }
    }

    /// Stores `bytes` as the state of `document` at `revision` (1 ... head). Replaces a snapshot at
    /// the same revision.
    public func putSnapshot(_ bytes: [UInt8], of document: DocumentID, at revision: Revision) async throws(OpLogError) {
        guard bytes.count <= Limits.snapshotBytesMax else {
            throw .limitExceeded(.snapshotBytes, value: bytes.count, maximum: Limits.snapshotBytesMax)
        }
        // Compress and frame here, in the caller's task: the writer thread serves every appender.
        let frame = try snapshotFrame(bytes, of: document, at: revision)
        try await submit { .putSnapshot(document: document, revision: revision, frame: frame, continuation: $0) }
    }

    func snapshotFrame(_ bytes: [UInt8], of document: DocumentID, at revision: Revision) throws(OpLogError) -> [UInt8] {
        let key = KeyCoding.revisionKey(document, revision)
        let body = SnapshotRecord.encode(revision: revision, createdAt: options.clock.now, bytes: bytes)
        do { return try RecordFrame.encode(kind: .snapshot, key: key, body: body, compressionLevel: options.compressionLevel) } catch {
            throw OpLogError.wrap(error)
        }
    }

    /// Deletes the snapshot at `revision`. Refused (`snapshotProtected`) for the one at `floor - 1`.
    public func deleteSnapshot(of document: DocumentID, at revision: Revision) async throws(OpLogError) {
        try await submit { .deleteSnapshot(document: document, revision: revision, continuation: $0) }
    }

    /// Deletes a document entirely: ops, snapshots, remembered op IDs. Its ID may be used again and
    /// starts over at revision 1. Deleting an unknown document does nothing.
    public func deleteDocument(_ document: DocumentID) async throws(OpLogError) {
        try await submit { .deleteDocument(document: document, continuation: $0) }
    }

    /// Moves everything journaled into LMDB now (it happens by itself every `journalApplyBytes`).
    public func checkpoint() async throws(OpLogError) {
        try await submit { .checkpoint(continuation: $0) }
    }

    /// Applies the journal, syncs and closes. Calls made afterwards fail with `closed`.
    public func close() async throws(OpLogError) {
        guard writer != nil else {
            closeReadOnly()
            return
        }
        do {
            try await submit { .close(continuation: $0) }
        } catch .closed {
            return
        }
    }

    // MARK: - Reads

    /// The document's head revision (0 for an unknown document).
    public func head(of document: DocumentID) throws(OpLogError) -> Revision {
        try currentView(of: document)?.view.head ?? 0
    }

    /// The document's figures, or nil for an unknown document.
    public func info(of document: DocumentID) throws(OpLogError) -> DocumentInfo? {
        guard let (view, _) = try currentView(of: document) else { return nil }
        let snapshots = try snapshots(of: document)
        return DocumentInfo(
            id: document, head: view.head, floor: view.floor, opCount: Int(view.head + 1 - view.floor),
            storedBytes: Int(view.appliedChunkBytes) + view.pendingBytes, snapshots: snapshots,
            lastServerTimeMilliseconds: view.lastServerTimeMilliseconds)
    }

    /// Document IDs in byte order, starting after `after` (nil: from the first), at most `limit`.
    public func documents(after: DocumentID? = nil, limit: Int = 1_000) throws(OpLogError) -> [DocumentID] {
        guard (1...Limits.listDocumentsMax).contains(limit) else {
            throw .limitExceeded(.listDocuments, value: limit, maximum: Limits.listDocumentsMax)
        }
        let journaled = try withState { Array($0.documents.keys) }
        var found: [DocumentID] = []
        do {
            try tables.environment.read { txn in
                try txn.withCursor(tables.documents) { cursor in
                    var entry = try after.map { try cursor.seek(atOrAfter: KeyCoding.documentKey($0)) } ?? (try cursor.first())
                    while let current = entry, found.count <= limit {
                        guard let id = DocumentID(keyBytes: current.key[...]) else {
                            throw OpLogError.corruption(CorruptionLocation(area: "documents"), detail: "a key is not a valid document ID")
                        }
                        // The record's checksum covers its key: a damaged key is reported here
                        // instead of listing an ID that no document has.
                        _ = try StoreTables.decodeFrame(current.value, key: current.key, kind: .document,
                                                        location: CorruptionLocation(area: "documents", document: id))
                        if after.map({ $0 < id }) ?? true { found.append(id) }
                        entry = try cursor.next()
                    }
                }
            }
        } catch { throw OpLogError.wrap(error) }
        // Documents created since the last apply exist only in memory.
        let merged = Set(found).union(journaled.filter { id in after.map { $0 < id } ?? true })
        return Array(merged.sorted().prefix(limit))
    }

    /// What the writer thread has done since open: group commits, ops, sync time, LMDB commits.
    public func writerCounters() -> WriterCounters {
        state.withLock { $0.counters }
    }

    /// Throws `closed` once the store is closed.
    func checkOpen() throws(OpLogError) {
        try withState { _ in }
    }

    func withState<T>(_ body: (inout SharedState) throws(OpLogError) -> T) throws(OpLogError) -> T {
        try state.withLock { (state: inout SharedState) throws(OpLogError) -> T in
            if state.isClosed { throw OpLogError.closed }
            return try body(&state)
        }
    }
}

func roundUpToMiB(_ bytes: Int) -> Int { (bytes + (1 << 20) - 1) / (1 << 20) * (1 << 20) }
