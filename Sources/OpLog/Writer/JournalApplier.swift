import Foundation
import OpLogStorage
import Synchronization

/// A sealed journal slot's changes on their way into LMDB: the views of the documents it changed,
/// as they were when it was sealed.
struct ApplyJob: Sendable {
    /// The sealed run's last sequence: LMDB's applied sequence once the job commits.
    let lastSequence: UInt64
    let views: [(DocumentID, DocumentView)]
    /// The record bytes the job takes out of the unapplied journal (for the space estimate).
    let journalBytes: Int
    /// Fencing epochs the sealed records raised.
    var epochs: [FencingScope: UInt64] = [:]
    /// The change-feed positions of the sealed records.
    var feed: [FeedRecord] = []
}

/// What an apply wrote per document: the new document record (for the views' rebase).
typealias AppliedRecords = [DocumentID: DocumentRecord]

/// The thread that commits to LMDB while the writer goes on appending: sealed journal slots
/// (applied while the writer appends to the other slot, so that an acknowledgement never waits for
/// an apply's LMDB commit) and snapshot writes (so that a snapshot's commit, two syncs in the
/// durable modes, never holds up the appends queued behind it).
///
/// Work runs in the order it was handed over, one item at a time; at most one apply is queued or
/// running. An apply's result waits here until the holder of the writer's turn takes it
/// (`takeResult`), which is when the views and the journal learn what LMDB now holds; the applier
/// itself never takes the turn, so a turn holder may wait for it (`waitUntilIdle`) without a
/// deadlock. A snapshot write answers its caller itself.
///
/// Thread safety: `state` is touched only under `condition`, which makes `@unchecked Sendable` true.
final class JournalApplier: @unchecked Sendable {
    private enum Work {
        case apply(ApplyJob)
        case commit(@Sendable () -> Void)
    }

    private struct State {
        var queued: [Work] = []
        /// What runs now: nil when idle.
        var running: Work?
        var result: (ApplyJob, Result<AppliedRecords, OpLogError>)?
        var isShutDown = false

        var isApplying: Bool {
            if case .apply = running { return true }
            return queued.contains { if case .apply = $0 { true } else { false } }
        }
    }

    private let condition = NSCondition()
    private var state = State()
    private var thread: pthread_t?
    private let work: @Sendable (ApplyJob) -> Result<AppliedRecords, OpLogError>
    private let finished: @Sendable () -> Void

    /// `work` runs each job on the applier's thread; `finished` is called after its result is
    /// stored (the writer tries to take it at once, if its turn is free).
    init(work: @escaping @Sendable (ApplyJob) -> Result<AppliedRecords, OpLogError>, finished: @escaping @Sendable () -> Void) {
        self.work = work
        self.finished = finished
        let started = DispatchSemaphore(value: 0)
        let thread = Thread { [self] in
            self.thread = pthread_self()
            started.signal()
            run()
        }
        thread.name = "oplog-apply"
        thread.start()
        started.wait()
    }

    /// Whether the calling thread is the applier's.
    var isCurrentThread: Bool { thread.map { pthread_equal($0, pthread_self()) != 0 } ?? false }

    /// Whether anything is queued or running.
    var isBusy: Bool {
        condition.lock()
        defer { condition.unlock() }
        return state.running != nil || !state.queued.isEmpty
    }

    /// Whether an apply is queued or running, or its result not yet taken: another may not start.
    var isApplyingOrHoldsResult: Bool {
        condition.lock()
        defer { condition.unlock() }
        return state.isApplying || state.result != nil
    }

    /// Starts `job` after the work queued before it. No other apply may be in flight, and the
    /// last one's result must have been taken.
    func start(_ job: ApplyJob) {
        enqueue(.apply(job)) { state in
            assert(!state.isApplying && state.result == nil, "an apply started while another is in flight")
        }
    }

    /// Runs `commit` on the applier's thread after the work queued before it. `commit` answers
    /// its own caller and may commit to LMDB; it must not take the writer's turn.
    func commit(_ commit: @escaping @Sendable () -> Void) {
        enqueue(.commit(commit)) { _ in }
    }

    private func enqueue(_ work: Work, check: (State) -> Void) {
        condition.lock()
        defer { condition.unlock() }
        check(state)
        assert(!state.isShutDown, "work handed to the applier after shutdown")
        state.queued.append(work)
        condition.broadcast()
    }

    /// The finished job and its result, once; nil while none is waiting.
    func takeResult() -> (ApplyJob, Result<AppliedRecords, OpLogError>)? {
        condition.lock()
        defer { condition.unlock() }
        let result = state.result
        state.result = nil
        return result
    }

    /// Blocks until nothing is queued or running.
    func waitUntilIdle() {
        assert(!isCurrentThread, "the applier waiting for itself")
        condition.lock()
        while state.running != nil || !state.queued.isEmpty { condition.wait() }
        condition.unlock()
    }

    /// Ends the thread once it is idle.
    func shutDown() {
        condition.lock()
        state.isShutDown = true
        condition.broadcast()
        condition.unlock()
    }

    private func run() {
        while true {
            condition.lock()
            while state.queued.isEmpty && !state.isShutDown { condition.wait() }
            guard !state.queued.isEmpty else {
                condition.unlock()
                return
            }
            let next = state.queued.removeFirst()
            state.running = next
            condition.unlock()
            switch next {
            case .apply(let job):
                let result = work(job)
                condition.lock()
                state.running = nil
                state.result = (job, result)
                condition.broadcast()
                condition.unlock()
                finished()
            case .commit(let commit):
                commit()
                condition.lock()
                state.running = nil
                condition.broadcast()
                condition.unlock()
            }
        }
    }
}
