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
}

/// What an apply wrote per document: the new document record (for the views' rebase).
typealias AppliedRecords = [DocumentID: DocumentRecord]

/// The thread that applies sealed journal slots to LMDB while the writer goes on appending to the
/// other slot, so that an acknowledgement never waits for an apply's LMDB commit.
///
/// One job at a time. Its result waits here until the holder of the writer's turn takes it
/// (`takeResult`), which is when the views and the journal learn what LMDB now holds; the applier
/// itself never takes the turn, so a turn holder may wait for it (`waitUntilIdle`) without a
/// deadlock.
///
/// Thread safety: `state` is touched only under `condition`, which makes `@unchecked Sendable` true.
final class JournalApplier: @unchecked Sendable {
    private struct State {
        var job: ApplyJob?
        var running = false
        var result: (ApplyJob, Result<AppliedRecords, OpLogError>)?
        var isShutDown = false
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

    /// Whether a job is queued or running (its result not yet stored).
    var isBusy: Bool {
        condition.lock()
        defer { condition.unlock() }
        return state.running || state.job != nil
    }

    /// Starts `job`. The applier must be idle and its last result taken.
    func start(_ job: ApplyJob) {
        condition.lock()
        defer { condition.unlock() }
        assert(!state.running && state.job == nil && state.result == nil, "an apply started while another is in flight")
        assert(!state.isShutDown, "an apply started after shutdown")
        state.job = job
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

    /// Blocks until no job is queued or running.
    func waitUntilIdle() {
        assert(!isCurrentThread, "the applier waiting for itself")
        condition.lock()
        while state.running || state.job != nil { condition.wait() }
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
            while state.job == nil && !state.isShutDown { condition.wait() }
            guard let job = state.job else {
                condition.unlock()
                return
            }
            state.job = nil
            state.running = true
            condition.unlock()
            let result = work(job)
            condition.lock()
            state.running = false
            state.result = (job, result)
            condition.broadcast()
            condition.unlock()
            finished()
        }
    }
}
