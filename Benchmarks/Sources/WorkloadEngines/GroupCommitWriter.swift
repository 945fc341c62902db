import Dispatch
import Foundation

/// Group commit on one dedicated writer thread, for engines whose store has a single writer
/// (LMDB: one write transaction at a time, bound to the thread that began it).
///
/// Callers `submit` a request and block. The writer thread takes everything queued (up to
/// `maxOpsPerCommit` ops, never splitting a request), hands it to `commit` as one unit, and then
/// wakes exactly the callers of that unit. While one commit is syncing, the next group queues up,
/// so the fsync cost is shared by however many callers arrived during it: with one caller nothing
/// is shared, with 64 up to 64 are.
///
/// `@unchecked Sendable`: `queue` and `stopping` are only touched under `condition`; `commit`
/// runs only on the writer thread; a ticket's `error` is written before its semaphore is signalled
/// and read after the wait returns, which orders the two.
public final class GroupCommitWriter<Request: Sendable>: @unchecked Sendable {
    /// Groups, requests and ops the writer has taken, for the engines' stderr summary at close.
    public struct Counters: Sendable {
        public var commits = 0
        public var requests = 0
        public var ops = 0
    }

    /// One waiting caller. A semaphore per caller rather than one broadcast condition, so a
    /// commit wakes only its own callers, not the 60-odd queued for the next one.
    private final class Ticket: @unchecked Sendable {
        let request: Request
        let weight: Int
        let done = DispatchSemaphore(value: 0)
        var error: (any Error)?

        init(_ request: Request, weight: Int) {
            self.request = request
            self.weight = weight
        }
    }

    private let condition = NSCondition()
    private var queue: [Ticket] = []
    private var stopping = false
    private var counters = Counters()
    private let stopped = DispatchSemaphore(value: 0)
    private let maxOpsPerCommit: Int
    private let weight: @Sendable (Request) -> Int
    private let commit: ([Request]) throws -> Void

    /// Starts the writer thread.
    /// - Parameters:
    ///   - maxOpsPerCommit: bounds one transaction's size (and so its memory and latency); a single
    ///     request larger than this still commits whole, alone.
    ///   - weight: ops a request counts for against that bound.
    ///   - commit: applies the requests, in queue order, as ONE durable transaction. Runs only on
    ///     the writer thread. If it throws, every request in the group fails with that error,
    ///     as in any group commit: they shared the transaction.
    public init(
        label: String,
        maxOpsPerCommit: Int = 8192,
        weight: @escaping @Sendable (Request) -> Int,
        commit: @escaping ([Request]) throws -> Void
    ) {
        self.maxOpsPerCommit = maxOpsPerCommit
        self.weight = weight
        self.commit = commit
        // An OS thread, not a task: it blocks in fsync, which must not occupy the cooperative pool.
        let thread = Thread { [self] in run() }
        thread.name = label
        thread.stackSize = 1 << 20
        thread.start()
    }

    /// Enqueues `request` and blocks until the transaction holding it has committed durably.
    public func submit(_ request: Request) throws {
        let ticket = Ticket(request, weight: weight(request))
        condition.lock()
        guard !stopping else {
            condition.unlock()
            throw EngineError(engine: "group-commit", call: "submit", code: 0, message: "writer closed")
        }
        queue.append(ticket)
        condition.signal()
        condition.unlock()
        ticket.done.wait()
        if let error = ticket.error { throw error }
    }

    /// Commits what is still queued, stops the writer thread and returns the group-size counters.
    /// Callers must have returned (the harness closes after all writers joined).
    public func close() -> Counters {
        condition.lock()
        let first = !stopping
        stopping = true
        condition.signal()
        condition.unlock()
        if first { stopped.wait() }
        return condition.withLock { counters }
    }

    private func run() {
        while let group = nextGroup() {
            var failure: (any Error)?
            do { try commit(group.map(\.request)) } catch { failure = error }
            for ticket in group {
                ticket.error = failure
                ticket.done.signal()
            }
        }
        stopped.signal()
    }

    /// Waits for work, then takes the longest queue prefix within the op bound (at least one
    /// request). Returns nil once stopping and drained.
    private func nextGroup() -> [Ticket]? {
        condition.lock()
        defer { condition.unlock() }
        while queue.isEmpty && !stopping { condition.wait() }
        guard !queue.isEmpty else { return nil }
        var taken = 1
        var ops = queue[0].weight
        while taken < queue.count && ops + queue[taken].weight <= maxOpsPerCommit {
            ops += queue[taken].weight
            taken += 1
        }
        let group = Array(queue[..<taken])
        queue.removeFirst(taken)
        counters.commits += 1
        counters.requests += taken
        counters.ops += ops
        return group
    }
}
