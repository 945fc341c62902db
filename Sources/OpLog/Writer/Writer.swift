import Foundation
import OpLogStorage
import Synchronization

/// The writing side of a store: the request queue, the journal, group commit, applying the journal
/// to LMDB, snapshot writes and deletions, space accounting and the op-ID dedupe cache.
///
/// Every mutation runs on the writer's one thread; any number of tasks and threads submit requests
/// to its queue. Thread safety: the `var`s below are touched only by that thread (and by `open`
/// before the thread starts), which `assertOnWriterThread()` checks; that is what makes the
/// `@unchecked Sendable` true. `counters` is shared behind its own lock.
final class Writer: @unchecked Sendable {
    let context: StoreContext
    let reader: Reader
    let queue = RequestQueue()
    let counters = Mutex(WriterCounters())
    private let lockFile: File

    var journal: Journal?
    /// Set while `journal` is nil because its replacement after an apply ran out of space.
    var journalBaseToCreate: UInt64?
    /// Record bytes in the journal not yet applied (for the storage-full estimate).
    var journalBytes = 0
    var mapSizeBytes: Int
    /// Op IDs remembered per document (loaded on a document's first append after open).
    var dedupe: [DocumentID: DedupeIndex] = [:]
    /// Documents with journaled changes that the next apply must write.
    var dirtyDocuments: Set<DocumentID> = []
    /// LMDB bytes in use after the last commit (pages in use × page size), for the full check.
    var lmdbUsedBytes = 0
    /// Set when an I/O failure left the journal uncertain; every later write fails with it.
    var failure: OpLogError?
    /// Deflate streams kept per level (journal records, op chunks), so that a group commit or an
    /// apply never initialises one: see `Deflater`.
    private var deflaters: [Int32: Deflater] = [:]
    /// The writer thread, once started.
    private var thread: pthread_t?

    init(context: StoreContext, reader: Reader, lockFile: File, mapSizeBytes: Int) {
        self.context = context
        self.reader = reader
        self.lockFile = lockFile
        self.mapSizeBytes = mapSizeBytes
    }

    var options: StoreOptions { context.options }
    var tables: StoreTables { context.tables }
    var metrics: StoreMetrics { context.metrics }

    /// Checks the thread-confinement invariant: writer state is touched only by the writer thread,
    /// or during open before that thread exists.
    func assertOnWriterThread(_ function: StaticString = #function) {
        assert(thread.map { pthread_equal($0, pthread_self()) != 0 } ?? true, "\(function) ran off the writer thread")
    }

    /// The kept deflate stream for `level`, or nil for level 0 (store raw).
    func deflater(level: Int32) throws(OpLogError) -> Deflater? {
        assertOnWriterThread()
        guard level > 0 else { return nil }
        if let kept = deflaters[level] { return kept }
        do {
            let made = try Deflater(level: level)
            deflaters[level] = made
            return made
        } catch {
            throw OpLogError(error)
        }
    }

    // MARK: - Submitting work

    /// Queues a request and waits for the writer thread's reply. The caller's task is suspended;
    /// no I/O ever runs on its executor.
    func submit<T: Sendable>(_ make: (Reply<T>) -> WriteRequest) async throws(OpLogError) -> T {
        let result: Result<T, OpLogError> = await withCheckedContinuation { continuation in
            let request = make(Reply { continuation.resume(returning: $0) })
            if !queue.enqueue(request) { request.fail(.closed) }
        }
        return try result.get()
    }

    func start() {
        let started = DispatchSemaphore(value: 0)
        let thread = Thread { [self] in
            self.thread = pthread_self()
            started.signal()
            runWriter()
        }
        thread.name = "oplog-writer"
        thread.start()
        // The thread records itself before any request can reach it.
        started.wait()
    }

    /// The writer loop: takes a group of requests, runs it, repeats until `close`.
    private func runWriter() {
        while true {
            metrics.queueDepth.record(queue.depth)
            let group = queue.takeGroup(maxOps: options.groupCommitMaxOps, maxBytes: options.groupCommitMaxBytes)
            if group[0].isJournaled {
                applyJournalIfSpaceIsTight(adding: group.reduce(0) { $0 + $1.payloadBytes })
                commitGroup(group)
                continue
            }
            assert(group.count == 1, "a group of \(group.count) requests that are not journaled")
            if case .close(let continuation) = group[0] {
                continuation.resume(with: Result { () throws(OpLogError) in try shutDown() })
                drainAfterClose()
                return
            }
            runExclusive(group[0])
        }
    }

    /// Requests that reached the queue after `close` fail with `closed`.
    private func drainAfterClose() {
        while queue.depth > 0 {
            for request in queue.takeGroup(maxOps: .max, maxBytes: .max) { request.fail(.closed) }
        }
    }

    private func runExclusive(_ request: WriteRequest) {
        func run(_ continuation: Reply<Void>, _ body: () throws(OpLogError) -> Void) {
            do throws(OpLogError) {
                if let failure { throw failure }
                try body()
                continuation.resume()
            } catch {
                continuation.resume(throwing: error)
            }
        }
        switch request {
        case .putSnapshot(let document, let revision, let frame, let continuation):
            run(continuation) { () throws(OpLogError) in try writeSnapshot(frame: frame, of: document, at: revision) }
        case .deleteSnapshot(let document, let revision, let continuation):
            run(continuation) { () throws(OpLogError) in try removeSnapshot(of: document, at: revision) }
        case .deleteDocument(let document, let continuation):
            run(continuation) { () throws(OpLogError) in try removeDocument(document) }
        case .checkpoint(let continuation):
            run(continuation) { () throws(OpLogError) in try applyJournal() }
        case .append, .truncate, .close:
            assertionFailure("runExclusive given a request the writer loop handles itself")
        }
    }

    /// Applies what is journaled, closes the journal and the environment.
    private func shutDown() throws(OpLogError) {
        defer {
            journal?.close()
            reader.markClosed()
            tables.environment.close()
            lockFile.close()
        }
        if failure == nil {
            try applyJournal()
            if options.durability == .mayCorruptOnSystemCrash {
                do { try tables.environment.sync() } catch { throw OpLogError(error) }
            }
        }
    }

    /// Marks the store unusable after an I/O failure whose effect on disk is unknown.
    func poison(_ reason: String) -> OpLogError {
        let error = OpLogError.reopenRequired(reason: reason)
        if failure == nil { failure = error }
        options.logger.error("store needs reopening", metadata: ["reason": "\(reason)"])
        return error
    }

    /// Announces a commit on the store's event stream and counts it.
    func announce(_ events: [StoreEvent]) {
        let commit = StoreCommit(events: events)
        context.events.announce(commit)
    }
}

/// What the writer thread has done since the store was opened.
public struct WriterCounters: Sendable, Equatable {
    /// Group commits (journal records) written, and the ops they carried.
    public var groupCommits = 0
    /// Ops those group commits carried.
    public var opsCommitted = 0
    /// Time spent in the journal's sync calls.
    public var syncNanoseconds: UInt64 = 0
    /// Journal applies into LMDB, and all LMDB write transactions (applies, snapshots, deletions).
    public var journalApplies = 0
    /// LMDB write transactions: applies, snapshot writes and deletions.
    public var lmdbCommits = 0
    /// Time spent in them.
    public var lmdbCommitNanoseconds: UInt64 = 0
}
