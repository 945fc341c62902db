import Foundation
import Logging
import Metrics
import ServiceLifecycle
import Synchronization

/// Snapshots and truncates documents in the background by `CompactionPolicy`.
///
/// A swift-service-lifecycle `Service`: add it to a `ServiceGroup` (its `run()` returns on graceful
/// shutdown or cancellation, after the step in progress), or call `start()` and `stop()`. It is a
/// client of the store's public API only: it learns what the store made durable from the store's
/// events, picks the document with the largest backlog first, and does each step as its own short
/// write — the snapshot is one `putSnapshot`, the truncation one `truncate`, each old snapshot's
/// deletion one `deleteSnapshot`. Replay (the reducer) runs on the scheduler's own thread, never on
/// Swift's cooperative pool, reading a batch of ops at a time. Every step is safe to interrupt: a
/// snapshot is durable before the truncation that relies on it is accepted, and redoing a step
/// after a crash finds it done or does it again.
///
/// Time comes from the store's clock (`StoreOptions.clock`): the age trigger, `keepMilliseconds`,
/// the retry delay after a failure, and the waits for them. When nothing is due it sleeps until the
/// clock reaches the next deadline or the store reports new work; it never polls.
public final class CompactionScheduler: Service, Sendable {
    /// The store it compacts.
    public let store: OpLogStore
    /// What it snapshots, truncates and keeps.
    public let policy: CompactionPolicy
    let reducerFor: @Sendable (DocumentID) -> AnyReducer?
    /// The fencing epoch the scheduler's mutations of a document carry.
    let epochFor: @Sendable (DocumentID) -> UInt64?
    let book = Mutex(CompactionBook())
    private let lifecycle = Mutex(Lifecycle())
    private let wakeUp = WakeUpSignal()
    let logger: Logger
    let metrics: CompactionMetrics
    var clock: any StoreClock { store.options.clock }

    private struct Lifecycle {
        var phase = Phase.created
        var busy = false
        var observation: CommitObservation?
        var task: Task<Void, Never>?
        var drainWaiters: [CheckedContinuation<Void, Never>] = []
    }

    private enum Phase { case created, running, paused, stopped }

    /// A scheduler for `store` by `policy`, not yet running (`run()` or `start()`).
    /// - Parameters:
    ///   - store: the store to compact; opened for writing.
    ///   - policy: when to snapshot and what to keep.
    ///   - reducerFor: the reducer for a document, or nil to leave it alone.
    ///   - epochFor: the owner's fencing epoch for a document (see `FencingScope`), carried by the
    ///     scheduler's snapshot writes, truncations and deletions; nil for none. A step refused as
    ///     stale is counted as a failure and tried again later.
    public init(
        store: OpLogStore, policy: CompactionPolicy = CompactionPolicy(), reducerFor: @escaping @Sendable (DocumentID) -> AnyReducer?,
        epochFor: @escaping @Sendable (DocumentID) -> UInt64? = { _ in nil }
    ) throws(OpLogError) {
        try policy.validate()
        guard !store.options.readOnly else { throw .readOnly }
        self.store = store
        self.policy = policy
        self.reducerFor = reducerFor
        self.epochFor = epochFor
        self.logger = store.options.logger
        self.metrics = CompactionMetrics(label: "oplog.compaction")
    }

    /// One reducer for every document.
    public convenience init<R: Reducer>(
        store: OpLogStore, policy: CompactionPolicy = CompactionPolicy(), reducer: R,
        epochFor: @escaping @Sendable (DocumentID) -> UInt64? = { _ in nil }
    ) throws(OpLogError) {
        let erased = AnyReducer(reducer)
        try self.init(store: store, policy: policy, reducerFor: { _ in erased }, epochFor: epochFor)
    }

    // MARK: - Lifecycle

    /// Runs until the task is cancelled or the service group shuts down gracefully: scans the store
    /// for existing backlog, then compacts as documents become due. Returns after the step in
    /// progress. A scheduler runs once; a second `run()` or `start()` throws `invalidArgument`.
    /// - Throws: what the scan of existing documents throws (`closed`, `corruption`); `wrongRole`
    ///   on a follower, which never compacts on its own.
    public func run() async throws {
        try begin()
        try await runBegun()
    }

    /// Starts `run()` in a task of its own; `stop()` ends it. From its return on, every change the
    /// store makes durable counts toward the backlog. Fails at once, and leaves nothing running,
    /// when the store is closed or the scheduler ran before.
    public func start() throws(OpLogError) {
        try store.checkOpen()
        try begin()
        lifecycle.withLock { state in
            state.task = Task { [self] in
                do { try await runBegun() } catch {
                    logger.error("compaction scheduler stopped", metadata: ["error": "\(error)"])
                }
            }
        }
    }

    /// The scan and the loop, on the scheduler's own thread, until cancelled or shut down.
    private func runBegun() async throws {
        let executor = ThreadExecutor(name: "oplog-compaction")
        defer {
            executor.shutDown()
            end()
        }
        try await withTaskExecutorPreference(executor) {
            try scanExistingDocuments()
            await cancelWhenGracefulShutdown { await self.loop() }
        }
    }

    /// Stops after the step in progress and returns once it has; the store stays open.
    public func stop() async {
        let task = lifecycle.withLock { state -> Task<Void, Never>? in
            if state.phase == .created && state.task == nil { state.phase = .stopped }
            return state.task
        }
        task?.cancel()
        await task?.value
    }

    /// Stops taking new work after the step in progress, until `resume()`.
    public func pause() { lifecycle.withLock { if $0.phase == .running { $0.phase = .paused } } }

    /// Takes work again after `pause()`.
    public func resume() {
        lifecycle.withLock { if $0.phase == .paused { $0.phase = .running } }
        wakeUp.signal()
    }

    /// Returns once no document is due for compaction and none is being compacted (documents that
    /// failed and wait for their retry do not count). Returns at once when the scheduler is not
    /// running (not started, paused or stopped).
    public func drain() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let waiting = lifecycle.withLock { state -> Bool in
                guard state.phase == .running else { return false }
                state.drainWaiters.append(continuation)
                return true
            }
            if waiting { wakeUp.signal() } else { continuation.resume() }
        }
    }

    /// What it has done since it started, and how many documents are due now.
    public var statistics: CompactionStatistics {
        let now = clock.now
        return book.withLock { book in
            var statistics = book.statistics
            statistics.backlogDocuments = book.dueDocuments(policy, now: now).count
            return statistics
        }
    }

    private func begin() throws(OpLogError) {
        // A follower's snapshots and truncations come from its primary's feed.
        if store.role == .follower { throw .wrongRole(role: .follower, operation: "compaction") }
        let observation = store.observeCommits { [weak self] commit in
            self?.book.withLock { $0.record(commit.events) }
            self?.wakeUp.signal()
        }
        let claimed = lifecycle.withLock { state -> Bool in
            guard state.phase == .created else { return false }
            state.phase = .running
            state.observation = observation
            return true
        }
        guard claimed else {
            observation.cancel()
            throw .invalidArgument("the compaction scheduler runs once; create another to run again")
        }
    }

    private func end() {
        let (observation, waiters) = lifecycle.withLock { state in
            state.phase = .stopped
            defer {
                state.drainWaiters = []
                state.observation = nil
            }
            return (state.observation, state.drainWaiters)
        }
        observation?.cancel()
        for waiter in waiters { waiter.resume() }
    }

    // MARK: - The loop

    private func loop() async {
        var lastStarted: ContinuousClock.Instant?
        while !Task.isCancelled {
            let now = clock.now
            let (document, deadline) = nextStep(now: now)
            guard let document else {
                await waitForWork(until: deadline)
                continue
            }
            // The rate limit is a duration, so it uses the monotonic clock.
            if let rate = policy.maxDocumentsPerSecond {
                let interval = Duration.seconds(1 / rate)
                if let last = lastStarted, ContinuousClock.now < last + interval {
                    try? await Task.sleep(until: last + interval, clock: .continuous)
                }
                lastStarted = ContinuousClock.now
            }
            await compact(document)
            lifecycle.withLock { $0.busy = false }
        }
    }

    /// The document to compact now, or else the clock time at which one becomes due. When nothing
    /// is due and nothing runs, the drain waiters are released.
    private func nextStep(now: Int64) -> (DocumentID?, Int64?) {
        let (due, deadline) = book.withLock { ($0.dueDocuments(policy, now: now).first, $0.nextDeadline(policy, now: now)) }
        let (document, idleWaiters) = lifecycle.withLock { state -> (DocumentID?, [CheckedContinuation<Void, Never>]) in
            if state.phase == .running, let due {
                state.busy = true
                return (due, [])
            }
            defer { state.drainWaiters = [] }
            return (nil, state.drainWaiters)
        }
        for waiter in idleWaiters { waiter.resume() }
        return (document, deadline)
    }

    /// Sleeps until new work is signalled, the clock reaches `deadline`, or the task is cancelled.
    private func waitForWork(until deadline: Int64?) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.wakeUp.wait() }
            if let deadline {
                group.addTask { try? await self.clock.sleep(until: deadline) }
            }
            await group.next()
            group.cancelAll()
        }
    }

    private func compact(_ document: DocumentID) async {
        let started = DispatchTime.now().uptimeNanoseconds
        let taken = book.withLock { $0.backlog[document] } ?? CompactionBacklog()
        do {
            try await compactDocument(document)
        } catch {
            logger.warning("compaction failed", metadata: ["document": "\(document)", "error": "\(error)"])
            let retryAt = clock.now + policy.retryAfterFailureMilliseconds
            book.withLock { book in
                book.statistics.failures += 1
                // The step reset the backlog before failing: put it back, to be retried later.
                var entry = book.backlog[document] ?? CompactionBacklog()
                entry.absorb(taken)
                entry.retryAfterMilliseconds = retryAt
                book.backlog[document] = entry
            }
        }
        let elapsed = DispatchTime.now().uptimeNanoseconds - started
        metrics.compactionTime.recordNanoseconds(Int64(elapsed))
        book.withLock { $0.statistics.compactionNanoseconds += elapsed }
    }

    private func scanExistingDocuments() throws(OpLogError) {
        var after: DocumentID?
        while true {
            let page = try store.documents(after: after, limit: 1_000)
            for document in page {
                guard let info = try store.info(of: document) else { continue }
                let newest = info.snapshots.last?.revision ?? 0
                guard info.head > newest || info.snapshots.count > policy.keepSnapshots else { continue }
                let oldest =
                    info.head > newest
                    ? try store.ops(of: document, from: max(newest + 1, info.floor), limit: 1).first?.serverTimeMilliseconds : nil
                book.withLock { book in
                    var entry = book.backlog[document] ?? CompactionBacklog()
                    entry.opsSinceSnapshot += info.head - newest
                    entry.oldestUnsnapshottedMilliseconds = entry.oldestUnsnapshottedMilliseconds ?? oldest
                    entry.needsRetention = true
                    book.backlog[document] = entry
                }
            }
            guard page.count == 1_000 else { return }
            after = page.last
        }
    }
}

/// The scheduler's swift-metrics instruments.
struct CompactionMetrics: Sendable {
    let snapshots: Counter
    let opsTruncated: Counter
    let bytesReclaimed: Counter
    let compactionTime: Metrics.Timer

    init(label: String) {
        snapshots = Counter(label: "\(label).snapshots_written")
        opsTruncated = Counter(label: "\(label).ops_truncated")
        bytesReclaimed = Counter(label: "\(label).bytes_reclaimed")
        compactionTime = Metrics.Timer(label: "\(label).compaction_time")
    }
}
