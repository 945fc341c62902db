import Foundation
import OpLogStorage
import Synchronization

/// The writing side of a store: the request queue, the journal, group commit, applying the journal
/// to LMDB, snapshot writes and deletions, space accounting and the op-ID dedupe cache.
///
/// Mutations run one at a time, under the writer's turn (`turn`): normally on the writer's own
/// thread, which takes groups from the queue; an append in a durability mode without a sync per
/// append may instead run on its caller's thread when the writer is idle (`appendInline`), which
/// saves the two thread hand-offs that otherwise dominate its cost. Thread safety: the `var`s
/// below are touched only by the holder of the turn (and by `open` before the thread starts), which
/// `assertOnWriterThread()` checks; that is what makes the `@unchecked Sendable` true. `counters`
/// is shared behind its own lock.
final class Writer: @unchecked Sendable {
    let context: StoreContext
    let reader: Reader
    let queue = RequestQueue()
    let counters = Mutex(WriterCounters())
    private let lockFile: File

    var journal: Journal?
    /// Set while `journal` is nil because creating its slots (upgrade, reset after a deletion) ran
    /// out of space.
    var journalBaseToCreate: UInt64?
    /// Record bytes in the journal not yet applied (for the storage-full estimate).
    var journalBytes = 0
    /// The memory the active slot's records hold in the views, estimated: their raw (uncompressed)
    /// bytes plus the views' overhead per document (`Limits.viewDocumentBytesEstimate`). With the
    /// stored bytes, what decides when the slot is sealed and applied (`activeSlotIsDue`).
    var activeSlotHeldBytes = 0
    /// A sealed slot's changes until an apply commits them (a failed apply's stay, and are tried
    /// again).
    var sealedJob: ApplyJob?
    /// The thread applying sealed slots; started with the writer thread (recovery applies on the
    /// opening thread).
    private(set) var applier: JournalApplier?
    /// The LMDB map size now, and the bytes in use after the last commit (pages in use × page
    /// size, for the full check). Written by whoever commits to LMDB (the applier's thread or
    /// the turn holder, never both at once), read by the turn holder meanwhile.
    let mapSizeBytes: Atomic<Int>
    let lmdbUsedBytes = Atomic<Int>(0)
    /// Op IDs remembered per document (loaded on a document's first append after open, evicted
    /// least recently used to stay within `memoryBudget`).
    var dedupe = DedupeCache()
    /// Fencing epochs: journaled, being applied, and a cache of applied ones.
    var epochs = FencingEpochs()
    /// The change-feed positions of the active slot's records, for its apply.
    var feedRecords: [FeedRecord] = []
    /// Changes prepared and not yet committed or abandoned, in position order (two-phase appends).
    var prepared: [PreparedRecord] = []
    /// Journaled changes not yet synced (the weaker durability modes): the feed gets them at the
    /// next journal sync.
    var unsyncedFeed: [Change] = []
    /// Whether this open is a follower (`StoreOptions.role`); cleared by `promote()` on the
    /// writer's turn, read by anyone (`OpLogStore.role`).
    let followerRole: Atomic<Bool>
    /// The budget the indexes count against: the store's own, or one shared by several stores.
    let memoryBudget: MemoryBudget
    /// This store's registration with `memoryBudget`.
    private(set) var memoryBudgetID = 0
    /// Documents with journaled changes that the next apply must write.
    var dirtyDocuments: Set<DocumentID> = []
    /// Set when an I/O failure left the journal or LMDB uncertain; every later write fails with it.
    /// Behind a lock: the applier's thread may set it.
    private let failureState = Mutex<OpLogError?>(nil)
    var failure: OpLogError? { failureState.withLock { $0 } }
    /// Deflate streams kept per level (journal records, op chunks), so that a group commit or an
    /// apply never initialises one: see `Deflater`.
    private var deflaters: [Int32: Deflater] = [:]
    /// The writer thread, once started.
    private var thread: pthread_t?
    /// Held while a group, an exclusive request or an inline append runs: the writer's state has
    /// one user at a time, and its memory is published from one holder to the next.
    private let turn = Mutex(())
    /// The thread holding `turn` (read only by that thread, for the confinement assertion).
    private var turnHolder: pthread_t?

    init(context: StoreContext, reader: Reader, lockFile: File, mapSizeBytes: Int) {
        self.context = context
        self.reader = reader
        self.lockFile = lockFile
        self.mapSizeBytes = Atomic(mapSizeBytes)
        followerRole = Atomic(context.options.role == .follower)
        memoryBudget = context.options.sharedMemoryBudget ?? MemoryBudget(bytes: context.options.memoryBudgetBytes)
        // Another store sharing the budget may ask this one to trim: on its writer thread, in turn.
        let queue = self.queue
        memoryBudgetID = memoryBudget.register { bytes in _ = queue.enqueue(.trimMemory(toAtMostBytes: bytes)) }
    }

    deinit { memoryBudget.unregister(memoryBudgetID) }

    var options: StoreOptions { context.options }
    var tables: StoreTables { context.tables }
    var metrics: StoreMetrics { context.metrics }

    /// Checks the thread-confinement invariant: writer state is touched only by the writer thread,
    /// or during open before that thread exists.
    func assertOnWriterThread(_ function: StaticString = #function) {
        assert(holdsTurn, "\(function) ran without the writer's turn")
    }

    private var holdsTurn: Bool { thread == nil || turnHolder.map { pthread_equal($0, pthread_self()) != 0 } == true }

    /// Checks that one party commits to LMDB at a time: the applier's thread during an apply, else
    /// the holder of the turn with the applier idle.
    func assertMayCommitToLMDB(_ function: StaticString = #function) {
        assert(
            applier?.isCurrentThread == true || (holdsTurn && applier?.isBusy != true),
            "\(function) committed to LMDB beside another committer")
    }

    /// Runs `body` holding the writer's turn.
    private func withTurn<T>(_ body: () -> T) -> T {
        turn.withLock { _ in
            turnHolder = pthread_self()
            defer { turnHolder = nil }
            return body()
        }
    }

    /// Runs `body` holding the writer's turn if no one holds it; nil if someone does.
    private func withTurnIfFree<T>(_ body: () -> T) -> T? {
        turn.withLockIfAvailable { _ in
            turnHolder = pthread_self()
            defer { turnHolder = nil }
            return body()
        }
    }

    /// `commitGroup` on a caller's thread, counted in `commitsOnCallerThreads`.
    private func commitOnCallerThread(_ group: [WriteRequest], mayApply: Bool) {
        let commitsBefore = counters.withLock { $0.groupCommits }
        commitGroup(group, mayApply: mayApply)
        counters.withLock { $0.commitsOnCallerThreads += $0.groupCommits - commitsBefore }
    }

    /// Runs an append on the calling thread, or returns nil (the caller then submits it as usual).
    ///
    /// Only in the durability modes that do not sync each append: the journal write then goes to
    /// the page cache, and `fdatasync` never runs on a caller's thread (the cooperative pool, in
    /// an async server). Only when the writer is idle and its queue empty, so the append takes no
    /// place ahead of queued work, and only when no apply, journal replacement or space-driven
    /// apply is due: those sync, and stay on the writer thread, which the append's successor then
    /// reaches through the queue.
    func appendInline(_ batch: [DocumentAppend]) -> Result<[AppendResult], OpLogError>? {
        guard options.durability != .full, queue.isIdle else { return nil }
        let reply = InlineReply()
        let request = WriteRequest.append(batch: batch, continuation: Reply { reply.result = $0 })
        let bytes = request.payloadBytes
        let outcome: Result<[AppendResult], OpLogError>?? = withTurnIfFree {
            guard queue.isIdle, failure == nil, journal != nil, !activeSlotIsDue(adding: bytes),
                !spaceIsTight(adding: bytes)
            else { return nil }
            commitOnCallerThread([request], mayApply: false)
            assert(reply.result != nil, "an inline append that got no reply")
            return reply.result
        }
        guard let outcome, let result = outcome else { return nil }
        return result
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

    /// Runs an append for a caller blocking its own thread (`appendBlocking`). When its request
    /// is alone in the queue and the writer's turn is free, the caller takes the turn and commits
    /// the journaled requests at the head of the queue — its own and any queued meanwhile — journal
    /// sync included, on its own thread: a lone writer so pays no thread hand-off at all. Otherwise
    /// (others queued, another caller leading, or the writer thread at work) the request is left
    /// to the writer thread, which groups everything
    /// that queued during the current sync into its next commit, and the caller waits for its
    /// answer: one wake-up per append. (Handing the turn from caller to caller instead, as
    /// LevelDB does, measured slower here at 64 writers on 2 cores: each hand-off is a thread
    /// wake-up in the commit's critical path.)
    ///
    /// No request is stranded: whoever enqueues without waking the writer thread either leads, or
    /// wakes it; a leader that leaves journaled requests queued wakes it too.
    func appendLeading(_ batch: [DocumentAppend]) -> Result<[AppendResult], OpLogError> {
        let reply = BlockingReply()
        guard queue.enqueue(.append(batch: batch, continuation: Reply { reply.deliver($0) }), wakeWriter: false) else {
            return .failure(.closed)
        }
        // Only a request that found the queue empty leads: behind others, the writer thread is
        // already gathering a group, and a caller taking the turn would only delay it.
        let led: Void? =
            queue.depth > 1
            ? nil
            : withTurnIfFree {
                while reply.result == nil,
                    let group = queue.takeJournaledGroup(maxOps: options.groupCommitMaxOps, maxBytes: options.groupCommitMaxBytes)
                {
                    applyJournalIfSpaceIsTight(adding: group.reduce(0) { $0 + $1.payloadBytes })
                    commitOnCallerThread(group, mayApply: true)
                }
            }
        // Work left in the queue (its own request behind one only the writer thread runs, or
        // requests queued during its commit) goes to the writer thread.
        if led == nil || reply.result == nil || queue.hasJournaledHead { queue.wakeWriter() }
        return reply.wait()
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
        let level = options.compressionLevel
        applier = JournalApplier(
            work: { [unowned self] job in
                // One deflate stream per apply (megabytes apart), owned by the applier's thread.
                let deflater: Deflater?
                do { deflater = level > 0 ? try Deflater(level: level) : nil } catch { return .failure(OpLogError(mapping: error)) }
                return commitApply(job, deflater: deflater)
            },
            finished: { [unowned self] in
                // The views drop the applied ops now if no one holds the turn; else its holder
                // takes the result at its next group.
                _ = withTurnIfFree { absorbFinishedApply() }
            })
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
            let closed = withTurn { () -> Bool in
                if group[0].isJournaled {
                    applyJournalIfSpaceIsTight(adding: group.reduce(0) { $0 + $1.payloadBytes })
                    commitGroup(group, mayApply: true)
                    return false
                }
                assert(group.count == 1, "a group of \(group.count) requests that are not journaled")
                if case .close(let continuation) = group[0] {
                    continuation.resume(with: Result { () throws(OpLogError) in try shutDown() })
                    return true
                }
                runExclusive(group[0])
                return false
            }
            if closed {
                drainAfterClose()
                return
            }
        }
    }

    /// Requests that reached the queue after `close` fail with `closed`.
    private func drainAfterClose() {
        while queue.depth > 0 {
            for request in queue.takeGroup(maxOps: .max, maxBytes: .max) { request.fail(.closed) }
        }
    }

    private func runExclusive(_ request: WriteRequest) {
        if case .trimMemory(let bytes) = request {
            trimMemory(toAtMost: bytes)
            return
        }
        if case .readEpoch(let scope, let continuation) = request {
            continuation.resume(with: Result { () throws(OpLogError) in try currentEpoch(of: scope) })
            return
        }
        if case .putSnapshot(let document, let revision, let snapshot, let epoch, let continuation) = request {
            do throws(OpLogError) {
                try requirePrimary("putSnapshot")
                try requireNothingPrepared()
            } catch {
                continuation.resume(throwing: error)
                return
            }
            writeSnapshot(snapshot, of: document, at: revision, epoch: epoch, reply: continuation)
            return
        }
        // A follower's journal records go beside an apply in flight, as group commits do; its
        // direct commits wait for the applier themselves.
        if case .applyChanges(let changes, let epoch, let continuation) = request {
            continuation.resume(with: Result { () throws(OpLogError) in try applyChanges(changes, epoch: epoch) })
            return
        }
        switch request {
        case .prepare(let batch, let epoch, let continuation):
            continuation.resume(with: Result { () throws(OpLogError) in try prepare(batch, epoch: epoch) })
            return
        case .commitPrepared(let change, let continuation):
            continuation.resume(with: Result { () throws(OpLogError) in try commitPrepared(change) })
            return
        case .abandonPrepared(let change, let continuation):
            continuation.resume(with: Result { () throws(OpLogError) in try abandonPrepared(change) })
            return
        default: break
        }
        if case .promote(let continuation) = request {
            promote()
            continuation.resume()
            return
        }
        // Snapshot deletions, document deletions and checkpoints commit to LMDB on this thread:
        // after the apply and the snapshot writes handed to the applier.
        quiesceApplier()
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
        case .deleteSnapshot(let document, let revision, let epoch, let continuation):
            run(continuation) { () throws(OpLogError) in
                try requirePrimary("deleteSnapshot")
                try requireNothingPrepared()
                try checkDirectMutation(epoch, for: document)
                try removeSnapshot(of: document, at: revision)
            }
        case .deleteDocument(let document, let epoch, let continuation):
            run(continuation) { () throws(OpLogError) in
                try requirePrimary("deleteDocument")
                try requireNothingPrepared()
                try checkDirectMutation(epoch, for: document)
                try removeDocument(document)
            }
        case .checkpoint(let continuation):
            run(continuation) { () throws(OpLogError) in try applyJournal() }
        case .savePosition(let consumer, let position, let continuation):
            run(continuation) { () throws(OpLogError) in try saveFeedPosition(position, for: consumer) }
        case .append, .applyChanges, .promote, .prepare, .commitPrepared, .abandonPrepared, .truncate, .raiseEpoch, .close, .putSnapshot,
            .trimMemory, .readEpoch:
            assertionFailure("runExclusive given a request the writer loop handles itself")
        }
    }

    /// Applies what is journaled, closes the journal and the environment.
    private func shutDown() throws(OpLogError) {
        quiesceApplier()
        defer {
            memoryBudget.unregister(memoryBudgetID)
            applier?.shutDown()
            journal?.close()
            reader.markClosed()
            tables.environment.close()
            lockFile.close()
        }
        defer { context.feed.close() }
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
        failureState.withLock { if $0 == nil { $0 = error } }
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
    /// Of `groupCommits`, those run on a caller's thread instead of the writer thread: an async
    /// append that found the writer idle (durability modes without a sync per append), or a
    /// blocking append leading a group (`OpLogStore.appendBlocking(batch:)`).
    public var commitsOnCallerThreads = 0
    /// Time spent in the journal's sync calls.
    public var syncNanoseconds: UInt64 = 0
    /// Zero bytes written to grow the journal's slot files (part of the bytes written; a slot grows
    /// once, then is reused).
    public var journalFillBytes = 0
    /// Journal applies into LMDB, and all LMDB write transactions (applies, snapshots, deletions).
    public var journalApplies = 0
    /// Dedupe indexes loaded from disk (a document's first append after open or after eviction).
    public var dedupeIndexLoads = 0
    /// Dedupe indexes evicted to stay within the memory budget.
    public var dedupeIndexEvictions = 0
    /// The dedupe indexes' estimated bytes now (what counts against the memory budget).
    public var dedupeIndexBytes = 0
    /// LMDB write transactions: applies, snapshot writes and deletions.
    public var lmdbCommits = 0
    /// Time spent in them.
    public var lmdbCommitNanoseconds: UInt64 = 0
}

/// Where an inline append's reply lands: set by `commitGroup` on the same thread before
/// `appendInline` reads it, so the lock only satisfies `Reply`'s `@Sendable` closure.
private final class InlineReply: Sendable {
    private let state = Mutex<Result<[AppendResult], OpLogError>?>(nil)
    var result: Result<[AppendResult], OpLogError>? {
        get { state.withLock { $0 } }
        set { state.withLock { $0 = newValue } }
    }
}

/// Where a blocking append's reply lands, from whichever thread committed it.
private final class BlockingReply: Sendable {
    private let state = Mutex<Result<[AppendResult], OpLogError>?>(nil)
    private let answered = DispatchSemaphore(value: 0)

    /// The answer, once there is one.
    var result: Result<[AppendResult], OpLogError>? { state.withLock { $0 } }

    func deliver(_ result: Result<[AppendResult], OpLogError>) {
        state.withLock { state in
            assert(state == nil, "a request answered twice")
            state = result
        }
        answered.signal()
    }

    /// Waits for the answer (at once if this thread committed it).
    func wait() -> Result<[AppendResult], OpLogError> {
        answered.wait()
        guard let result else { preconditionFailure("a signalled reply without a result") }
        return result
    }
}
