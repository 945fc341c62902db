import Foundation
import Logging
import Metrics
import Synchronization

/// Snapshots and truncates documents in the background by `CompactionPolicy`.
///
/// It runs on its own thread in the process that owns the store, picks the document with the
/// largest backlog first, and does each step as its own short write: the snapshot is one LMDB
/// commit, the truncation one journaled record, each old snapshot's deletion one commit. Replay
/// (the reducer) runs outside any transaction, reading a batch of ops at a time. Every step is safe
/// to interrupt: a snapshot is durable before the truncation that relies on it is accepted, and
/// redoing a step after a crash finds it done or does it again.
///
/// Lifecycle: `start()`, `pause()`, `resume()`, `drain()` (returns when nothing is due), `stop()`.
public final class CompactionScheduler: Sendable {
    public let store: OpLogStore
    public let policy: CompactionPolicy
    private let reducerFor: @Sendable (DocumentID) -> AnyReducer?
    private let state = Mutex(SchedulerState())
    private let wakeUp = NSCondition()
    private let logger: Logger
    private let metrics: CompactionMetrics

    struct Backlog {
        var opsSinceSnapshot: UInt64 = 0
        var bytesSinceSnapshot = 0
        var oldestUnsnapshottedMilliseconds: Int64?
        var needsRetention = false
        var retryAfterMilliseconds: Int64 = 0
    }

    struct SchedulerState {
        var backlog: [DocumentID: Backlog] = [:]
        var phase = Phase.created
        var busy = false
        var statistics = CompactionStatistics()
        var observerToken: Int?
    }

    enum Phase { case created, running, paused, stopping, stopped }

    /// - Parameter reducerFor: the reducer for a document, or nil to leave it alone.
    public init(store: OpLogStore, policy: CompactionPolicy = CompactionPolicy(), reducerFor: @escaping @Sendable (DocumentID) -> AnyReducer?) throws(OpLogError) {
        try policy.validate()
        guard !store.options.readOnly else { throw .readOnly }
        self.store = store
        self.policy = policy
        self.reducerFor = reducerFor
        self.logger = store.options.logger
        self.metrics = CompactionMetrics(label: "oplog.compaction")
    }

    /// One reducer for every document.
    public convenience init<R: Reducer>(store: OpLogStore, policy: CompactionPolicy = CompactionPolicy(), reducer: R) throws(OpLogError) {
        let erased = AnyReducer(reducer)
        try self.init(store: store, policy: policy, reducerFor: { _ in erased })
    }

    /// Scans the store for existing backlog, then starts the background thread.
    public func start() throws(OpLogError) {
        let proceed = state.withLock { state -> Bool in
            guard state.phase == .created else { return false }
            state.phase = .running
            return true
        }
        guard proceed else { return }
        let token = store.observers.add { [weak self] events in self?.record(events) }
        state.withLock { $0.observerToken = token }
        try scanExistingDocuments()
        let thread = Thread { [self] in run() }
        thread.name = "oplog-compaction"
        thread.start()
    }

    public func pause() { state.withLock { if $0.phase == .running { $0.phase = .paused } } }

    public func resume() {
        state.withLock { if $0.phase == .paused { $0.phase = .running } }
        signal()
    }

    /// Returns once no document is due for compaction and none is being compacted (documents that
    /// failed and wait for their retry do not count).
    public func drain() async {
        while true {
            let done = state.withLock { state in
                !state.busy && dueDocuments(state, now: currentTimeMilliseconds()).isEmpty || state.phase == .stopped || state.phase == .stopping
            }
            if done { return }
            signal()
            try? await Task.sleep(for: .milliseconds(5))
        }
    }

    /// Stops after the step in progress; the store stays open.
    public func stop() async {
        state.withLock { state in
            switch state.phase {
            case .created: state.phase = .stopped  // never started: no thread to wait for
            case .stopped: break
            default: state.phase = .stopping
            }
        }
        signal()
        while state.withLock({ $0.phase != .stopped }) {
            try? await Task.sleep(for: .milliseconds(5))
        }
        if let token = state.withLock({ $0.observerToken }) { store.observers.remove(token) }
    }

    public var statistics: CompactionStatistics {
        state.withLock { state in
            var statistics = state.statistics
            statistics.backlogDocuments = dueDocuments(state, now: currentTimeMilliseconds()).count
            return statistics
        }
    }

    // MARK: - Backlog

    private func record(_ events: [StoreEvent]) {
        state.withLock { state in
            for event in events {
                switch event {
                case let .appended(document, ops):
                    var entry = state.backlog[document] ?? Backlog()
                    entry.opsSinceSnapshot += UInt64(ops.count)
                    entry.bytesSinceSnapshot += ops.reduce(0) { $0 + $1.payload.count }
                    if entry.oldestUnsnapshottedMilliseconds == nil { entry.oldestUnsnapshottedMilliseconds = ops.first?.serverTimeMilliseconds }
                    state.backlog[document] = entry
                case let .snapshotWritten(document, _):
                    state.backlog[document, default: Backlog()].needsRetention = true
                case let .documentDeleted(document):
                    state.backlog[document] = nil
                case .truncated:
                    break
                }
            }
        }
        signal()
    }

    private func scanExistingDocuments() throws(OpLogError) {
        var after: DocumentID?
        while true {
            let page = try store.documents(after: after, limit: 1_000)
            for document in page {
                guard let info = try store.info(of: document) else { continue }
                let newest = info.snapshots.last?.revision ?? 0
                guard info.head > newest || info.snapshots.count > policy.keepSnapshots else { continue }
                let oldest = info.head > newest ? try store.ops(of: document, from: max(newest + 1, info.floor), limit: 1).first?.serverTimeMilliseconds : nil
                state.withLock { state in
                    var entry = state.backlog[document] ?? Backlog()
                    entry.opsSinceSnapshot += info.head - newest
                    entry.oldestUnsnapshottedMilliseconds = entry.oldestUnsnapshottedMilliseconds ?? oldest
                    entry.needsRetention = true
                    state.backlog[document] = entry
                }
            }
            guard page.count == 1_000 else { return }
            after = page.last
        }
    }

    /// Documents due now, the largest backlog first.
    private func dueDocuments(_ state: SchedulerState, now: Int64) -> [DocumentID] {
        state.backlog.filter { _, entry in
            guard entry.retryAfterMilliseconds <= now else { return false }
            return entry.needsRetention || entry.opsSinceSnapshot >= UInt64(policy.snapshotEveryOps)
                || entry.bytesSinceSnapshot >= policy.snapshotEveryBytes
                || (entry.oldestUnsnapshottedMilliseconds.map { now - $0 >= policy.snapshotAfterMilliseconds } ?? false)
        }
        .sorted { $0.value.opsSinceSnapshot > $1.value.opsSinceSnapshot }
        .map(\.key)
    }

    private func signal() {
        wakeUp.lock()
        wakeUp.signal()
        wakeUp.unlock()
    }

    // MARK: - The background thread

    private func run() {
        var lastStarted: Double = 0
        while true {
            let (phase, next): (Phase, DocumentID?) = state.withLock { state in
                let due = state.phase == .running ? dueDocuments(state, now: currentTimeMilliseconds()) : []
                if !due.isEmpty { state.busy = true }
                return (state.phase, due.first)
            }
            if phase == .stopping {
                state.withLock { $0.phase = .stopped }
                return
            }
            guard let document = next else {
                wakeUp.lock()
                _ = wakeUp.wait(until: Date(timeIntervalSinceNow: Double(policy.pollIntervalMilliseconds) / 1000))
                wakeUp.unlock()
                continue
            }
            if let rate = policy.maxDocumentsPerSecond {
                let wait = lastStarted + 1 / rate - Date().timeIntervalSince1970
                if wait > 0 { Thread.sleep(forTimeInterval: wait) }
                lastStarted = Date().timeIntervalSince1970
            }
            compact(document)
            state.withLock { $0.busy = false }
        }
    }

    private func compact(_ document: DocumentID) {
        let started = DispatchTime.now().uptimeNanoseconds
        do {
            try compactDocument(document)
        } catch {
            logger.warning("compaction failed", metadata: ["document": "\(document)", "error": "\(error)"])
            state.withLock { state in
                state.statistics.failures += 1
                state.backlog[document]?.retryAfterMilliseconds = currentTimeMilliseconds() + policy.retryAfterFailureMilliseconds
            }
        }
        let elapsed = DispatchTime.now().uptimeNanoseconds - started
        metrics.compactionTime.recordNanoseconds(Int64(elapsed))
        state.withLock { $0.statistics.compactionNanoseconds += elapsed }
    }

    /// Snapshot if the policy asks, truncate to what it keeps, delete the snapshots it does not keep.
    private func compactDocument(_ document: DocumentID) throws {
        guard let reducer = reducerFor(document), let before = try store.info(of: document) else {
            state.withLock { _ = $0.backlog.removeValue(forKey: document) }
            return
        }
        let trigger = state.withLock { state in
            state.backlog[document].map { entry in
                entry.opsSinceSnapshot >= UInt64(policy.snapshotEveryOps) || entry.bytesSinceSnapshot >= policy.snapshotEveryBytes
                    || (entry.oldestUnsnapshottedMilliseconds.map { currentTimeMilliseconds() - $0 >= policy.snapshotAfterMilliseconds } ?? false)
            } ?? false
        }
        // Reset before the work: appends that arrive meanwhile count toward the next snapshot.
        state.withLock { state in
            state.backlog[document] = Backlog()
        }
        var newest = before.snapshots.last?.revision ?? 0
        if trigger && before.head > newest {
            let (bytes, revision) = try reducer.makeSnapshot(store, document)
            if revision > newest {
                let frame = try store.snapshotFrame(bytes, of: document, at: revision)
                try store.submitAndWait { .putSnapshot(document: document, revision: revision, frame: frame, continuation: $0) }
                newest = revision
                metrics.snapshots.increment()
                state.withLock { state in
                    state.statistics.snapshotsWritten += 1
                    state.statistics.snapshotBytesWritten += bytes.count
                    // This snapshot's own event set needsRetention; the retention below handles it.
                    state.backlog[document]?.needsRetention = false
                }
            }
        }
        try applyRetention(document, before: before)
    }

    private func applyRetention(_ document: DocumentID, before: DocumentInfo) throws {
        var snapshots = try store.snapshots(of: document).map(\.revision)
        guard let newest = snapshots.last else { return }
        var floor = try store.info(of: document)?.floor ?? 1
        // The highest snapshot that leaves keepOps ops (and every op younger than keepMilliseconds)
        // between it and the newest snapshot becomes the floor's cover.
        let now = currentTimeMilliseconds()
        for candidate in snapshots.reversed() where candidate + UInt64(policy.keepOps) <= newest && candidate + 1 > floor {
            if policy.keepMilliseconds > 0 {
                let last = try store.ops(of: document, from: candidate, limit: 1).first
                if let last, now - last.serverTimeMilliseconds < policy.keepMilliseconds { continue }
            }
            try store.submitAndWait { .truncate(document: document, floor: candidate + 1, continuation: $0) }
            let truncated = candidate + 1 - floor
            floor = candidate + 1
            metrics.opsTruncated.increment(by: Int64(truncated))
            state.withLock { $0.statistics.opsTruncated += truncated }
            break
        }
        // Kept: the newest keepSnapshots, milestones, the floor's cover, and the oldest snapshot above
        // the floor — the next floor's cover once keepOps newer ops exist, so truncation progresses
        // even when keepOps spans more than keepSnapshots snapshots.
        let nextCover = snapshots.first { $0 + 1 > floor }
        let kept = Set(snapshots.suffix(policy.keepSnapshots)).union(snapshots.filter { revision in
            revision + 1 == floor || revision == nextCover || (policy.milestoneEveryRevisions.map { revision % $0 == 0 } ?? false)
        })
        for revision in snapshots where !kept.contains(revision) && revision + 1 != floor {
            try store.submitAndWait { .deleteSnapshot(document: document, revision: revision, continuation: $0) }
            state.withLock { $0.statistics.snapshotsDeleted += 1 }
        }
        snapshots.removeAll { !kept.contains($0) }
        if let after = try store.info(of: document) {
            let reclaimed = max(0, before.storedBytes - after.storedBytes)
            metrics.bytesReclaimed.increment(by: Int64(reclaimed))
            state.withLock { $0.statistics.bytesReclaimed += reclaimed }
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
