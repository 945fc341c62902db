import Synchronization

/// The live end of the change feed: positions become visible here strictly in order, each once
/// it is durable, and readers wait here for the next one.
///
/// The writer assigns positions (journal sequences) in commit order, but they become durable in
/// another order: a group commit at its journal sync, a snapshot put when the applier thread has
/// committed it. `ready` takes them in any order and publishes the contiguous prefix, so a reader
/// never sees a position before an earlier one (the skipped-event bugs of other feeds come from
/// exactly that). Published changes stay in memory until an apply has written them to LMDB's
/// `feed` database; the journal's two slots bound how many that is.
final class FeedHub: Sendable {
    private struct State {
        /// Published changes LMDB's `feed` database may not hold yet, in position order.
        var published: [Change] = []
        /// The newest published position (0: none).
        var publishedThrough: UInt64 = 0
        /// LMDB holds the feed records of every position up to here (its applied journal sequence).
        var appliedThrough: UInt64 = 0
        /// Durable, waiting for an earlier position.
        var early: [UInt64: Change] = [:]
        var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
        var nextWaiter = 0
        var closed = false
        var active = false
        var lineage: StoreLineage?
    }

    private let state = Mutex(State())

    /// Set by the writer once recovery has applied the journal: everything up to `durableThrough`
    /// is in LMDB. A read-only store's hub is never activated (its feed is LMDB's history alone).
    func activate(lineage: StoreLineage, durableThrough: UInt64) {
        state.withLock {
            assert(!$0.active, "the feed hub was activated twice")
            $0.active = true
            $0.lineage = lineage
            $0.publishedThrough = durableThrough
            $0.appliedThrough = durableThrough
        }
    }

    /// A follower that holds no change yet takes its primary's lineage (at its first apply).
    func adopt(lineage: StoreLineage) {
        state.withLock {
            assert($0.active && $0.publishedThrough == 0, "a lineage adopted by a store with history")
            $0.lineage = lineage
        }
    }

    /// Whether a writer publishes here.
    var isActive: Bool { state.withLock { $0.active } }

    /// The store's lineage, once active.
    var lineage: StoreLineage? { state.withLock { $0.lineage } }

    /// `change` is durable. Publishes it and every waiting successor once its predecessors are.
    func ready(_ change: Change) {
        let woken: [CheckedContinuation<Void, Never>] = state.withLock { state in
            let sequence = change.position.sequence
            assert(sequence > state.publishedThrough && state.early[sequence] == nil, "feed position \(sequence) made ready twice")
            state.early[sequence] = change
            var published = false
            while let next = state.early.removeValue(forKey: state.publishedThrough + 1) {
                state.published.append(next)
                state.publishedThrough += 1
                published = true
            }
            guard published else { return [] }
            let waiters = Array(state.waiters.values)
            state.waiters.removeAll()
            return waiters
        }
        for waiter in woken { waiter.resume() }
    }

    /// An apply committed the feed records up to `sequence`: memory drops them.
    func applied(through sequence: UInt64) {
        state.withLock { state in
            state.appliedThrough = max(state.appliedThrough, sequence)
            let keep = state.published.firstIndex { $0.position.sequence > state.appliedThrough } ?? state.published.endIndex
            state.published.removeFirst(keep)
        }
    }

    /// The newest published position (0: none).
    var publishedThrough: UInt64 { state.withLock { $0.publishedThrough } }

    /// The first position memory holds (LMDB holds the ones before it).
    var firstInMemory: UInt64 { state.withLock { $0.appliedThrough + 1 } }

    /// Where the changes after `after` are to be read now.
    enum Source {
        /// In LMDB's `feed` database, up to this sequence.
        case store(through: UInt64)
        /// Here, in order.
        case memory([Change])
        /// Not published yet.
        case waitForMore
        case closed
    }

    func source(after: UInt64, limit: Int) -> Source {
        state.withLock { state in
            if after < state.appliedThrough { return .store(through: state.appliedThrough) }
            if after < state.publishedThrough {
                let start = state.published.firstIndex { $0.position.sequence == after + 1 }
                // The published list covers (appliedThrough, publishedThrough] without a gap.
                guard let start else {
                    assertionFailure("feed position \(after + 1) is neither in LMDB nor in memory")
                    return .store(through: state.publishedThrough)
                }
                return .memory(Array(state.published[start..<min(state.published.endIndex, start + limit)]))
            }
            return state.closed ? .closed : .waitForMore
        }
    }

    /// Returns once a position after `after` is published, the hub closes, or the task is cancelled.
    func waitForMore(after: UInt64) async {
        let token = state.withLock { state -> Int in
            state.nextWaiter += 1
            return state.nextWaiter
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { state -> Bool in
                    if state.closed || state.publishedThrough > after || Task.isCancelled { return true }
                    state.waiters[token] = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            state.withLock { $0.waiters.removeValue(forKey: token) }?.resume()
        }
    }

    /// The store closed: waiting readers end.
    func close() {
        let woken = state.withLock { state in
            state.closed = true
            let waiters = Array(state.waiters.values)
            state.waiters.removeAll()
            return waiters
        }
        for waiter in woken { waiter.resume() }
    }
}
