import Foundation
import Logging
import OpLogStorage

/// A durable per-document operation log and snapshot store on LMDB.
///
/// - Appends go through a checksummed journal, one `fdatasync` per group commit, and are applied to
///   LMDB in large batches (see FORMAT.md for the layout and why).
/// - All mutations run on one writer thread; any number of tasks and threads may call at once.
///   Concurrent appends are coalesced into one journal record and one sync.
/// - Reads never wait for writers: they read an LMDB snapshot plus the in-memory journal tail, inside
///   a transaction that ends before the call returns (no long-lived readers can be created).
///
/// `OpLogStore` is a façade: the reader, the writer and maintenance each own their state, and this
/// type holds nothing mutable of its own.
///
/// Lifetime: call `close()` when done; the writer thread keeps the store alive until then. One
/// process may open a store for writing at a time (others get `lockedByAnotherProcess`); any number
/// may open it `readOnly`. A store is opened once per process (a second open gets
/// `alreadyOpenInThisProcess`), and never used across `fork()` (LMDB's rules).
///
/// Which calls block: reads (`ops`, `head`, `info`, `snapshot`, `documents`, `replay`) are
/// synchronous and short — one or a few LMDB read transactions — and safe on any thread. Calls that
/// do file I/O beyond that (`open`, `backup`, `restore`, `verify`, `spaceUsage`, `verifySnapshots`)
/// have `async` variants that run on threads of OpLog's own, off Swift's cooperative pool.
/// Mutations are `async`; their I/O runs on the writer thread.
public final class OpLogStore: Sendable {
    /// The directory holding `data.mdb`, `lock.mdb`, `journal` and `oplog.lock`.
    public let directory: String
    /// The options it was opened with.
    public let options: StoreOptions
    let context: StoreContext
    let reader: Reader
    let writer: Writer?
    let maintenance: Maintenance
    let openKey: String
    private let metricsListener: Int

    private init(context: StoreContext, reader: Reader, writer: Writer?, openKey: String) {
        self.directory = context.directory
        self.options = context.options
        self.context = context
        self.reader = reader
        self.writer = writer
        self.maintenance = Maintenance(context: context, reader: reader)
        self.openKey = openKey
        let metrics = context.metrics
        metricsListener = context.events.add { commit in
            metrics.commits.increment()
            metrics.opsPerCommit.record(commit.opCount)
        }
    }

    deinit {
        context.events.remove(metricsListener)
        // A read-only store dropped without `close()`. A writable one is never closed here: its
        // writer thread still runs (and holds the environment) until `close()`.
        if writer == nil, reader.markClosed() {
            context.tables.environment.close()
            OpenStores.release(openKey)
        }
    }

    /// Opens the store in `directory`, creating it (owner-only, see `StoreOptions.filePermissions`)
    /// when the directory is missing or empty. Blocks the calling thread while it recovers the
    /// journal; from async code prefer `open(directory:options:) async`.
    ///
    /// Recovers the journal: records not yet in LMDB are applied (or, read-only, held in memory).
    /// - Throws: `invalidArgument` for bad options; `notAStore` for a directory holding other files
    ///   or a file that is not LMDB; `unsupportedFormatVersion`; `lockedByAnotherProcess`;
    ///   `alreadyOpenInThisProcess`; `corruption` for a damaged journal or metadata, or when LMDB is
    ///   missing commits the journal says were applied (a damaged or rolled-back data file);
    ///   `storage` when the file system fails.
    public static func open(directory: String, options: StoreOptions = StoreOptions()) throws(OpLogError) -> OpLogStore {
        try options.validate()
        assert(Limits.relationsHold, "the relations between OpLog's limits do not hold")
        try StoreDirectory.inspect(directory, options: options)
        let openKey = OpenStores.key(directory)
        try OpenStores.claim(openKey, path: directory)
        do {
            return try openClaimed(directory: directory, options: options, openKey: openKey)
        } catch {
            OpenStores.release(openKey)
            throw error
        }
    }

    /// `open(directory:options:)` on a thread of OpLog's own, so that recovering a long journal
    /// never blocks the cooperative pool.
    public static func open(directory: String, options: StoreOptions = StoreOptions()) async throws(OpLogError) -> OpLogStore {
        try await BlockingWork.shared.run { () throws(OpLogError) in try open(directory: directory, options: options) }
    }

    private static func openClaimed(directory: String, options: StoreOptions, openKey: String) throws(OpLogError) -> OpLogStore {
        let lockFile = options.readOnly ? nil : try StoreDirectory.lockForWriting(directory, options: options)
        let mapSize = max(
            options.mapSizeInitialBytes, StoreDirectory.roundUpToMiB(File.sizeOf(directory + "/" + StoreDirectory.dataFileName) ?? 0))
        let tables: StoreTables
        do { tables = try StoreTables.open(directory: directory, options: options, mapSizeBytes: mapSize) } catch {
            lockFile?.close()
            throw error
        }
        do {
            try StoreDirectory.checkFormat(tables, directory: directory, options: options)
            let context = StoreContext(
                directory: directory, options: options, tables: tables, events: CommitEvents(),
                metrics: StoreMetrics(label: "oplog"))
            let reader = Reader(context: context, isWriterProcess: lockFile != nil)
            let writer = lockFile.map { Writer(context: context, reader: reader, lockFile: $0, mapSizeBytes: mapSize) }
            let store = OpLogStore(context: context, reader: reader, writer: writer, openKey: openKey)
            try JournalRecovery.run(context, reader: reader, writer: writer)
            writer?.start()
            return store
        } catch {
            tables.environment.close()
            lockFile?.close()
            throw error
        }
    }

    /// Applies the journal, syncs and closes. Calls made afterwards fail with `closed`.
    /// - Throws: what the final journal apply throws (`storageFull`, `reopenRequired`); the store
    ///   is closed either way.
    public func close() async throws(OpLogError) {
        defer { OpenStores.release(openKey) }
        guard let writer else {
            if reader.markClosed() { context.tables.environment.close() }
            return
        }
        do {
            try await writer.submit { .close(continuation: $0) }
        } catch .closed {
            return
        }
    }

    /// Throws `closed` once the store is closed.
    func checkOpen() throws(OpLogError) {
        try reader.checkOpen()
    }

    /// The writer, or `readOnly` for a store opened read-only.
    func requireWriter() throws(OpLogError) -> Writer {
        guard let writer else { throw .readOnly }
        return writer
    }
}
