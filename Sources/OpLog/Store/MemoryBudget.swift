import Synchronization

/// A bound on the memory that per-document state may take: one store's (the default, sized by
/// `StoreOptions.memoryBudgetBytes`), or shared by several stores of a process
/// (`StoreOptions.sharedMemoryBudget`), for example one store per shard.
///
/// What counts is the state a store keeps per document it has appended to since it opened: the
/// op-ID indexes that recognise plain retries (`DocumentAppend` without `basedOn`), each holding the
/// IDs in its document's dedupe window. They are caches of what the store holds on disk anyway:
/// the least recently used are evicted to stay within the budget, and an evicted document's index is
/// rebuilt from disk on its next append, exactly as after a reopen. Eviction costs that read, never
/// an answer: a retry is recognised the same with or without it.
///
/// What does not count, because other limits bound it: the views of documents with unapplied
/// journal records (at most `Limits.unappliedJournalSlotsMax` journal slots, each sealed for its
/// apply once its records reach `StoreOptions.journalApplyBytes` stored, or once what they hold
/// decoded in the views, overhead included, does; they are needed for reads, so never evicted, and
/// an apply starts as soon as a slot fills, so their bound never makes an acknowledgement wait),
/// LMDB's mapped file pages (the page cache's, reported apart as `RssFile`), and a store's fixed buffers.
///
/// A store trims itself when it goes over; when the stores sharing a budget are over it together and
/// the one growing has too little to give back, the others are asked to trim, each on its own
/// writer thread.
///
/// Thread safety: all state is behind one mutex.
public final class MemoryBudget: Sendable {
    /// The bound, in bytes.
    public let bytes: Int

    private struct Consumer {
        var bytes: Int
        let trim: @Sendable (_ toAtMostBytes: Int) -> Void
    }

    private struct State {
        var consumers: [Int: Consumer] = [:]
        var nextID = 0
        var total = 0
    }

    private let state = Mutex(State())

    /// A budget of `bytes` (at least `Limits.memoryBudgetBytesMin`, checked when a store opens
    /// with it).
    public init(bytes: Int) {
        self.bytes = bytes
        evictsEverything = false
    }

    /// A budget of 0 bytes, below the minimum a store accepts otherwise: every index is evicted
    /// after the group that used it. For tests of the rebuild path.
    package init(evictingEverythingForTesting: Void) {
        bytes = 0
        evictsEverything = true
    }

    /// Set only by the testing initialiser, which skips the minimum.
    package let evictsEverything: Bool

    /// The bytes all stores using the budget hold now (as each last reported).
    public var bytesInUse: Int { state.withLock { $0.total } }

    /// Registers a store; `trim` is called (on any thread) when others need it to hold less.
    func register(trim: @escaping @Sendable (_ toAtMostBytes: Int) -> Void) -> Int {
        state.withLock { state in
            let id = state.nextID
            state.nextID += 1
            state.consumers[id] = Consumer(bytes: 0, trim: trim)
            return id
        }
    }

    func unregister(_ id: Int) {
        state.withLock { state in
            if let gone = state.consumers.removeValue(forKey: id) { state.total -= gone.bytes }
        }
    }

    /// Records that store `id` holds `held` bytes. Returns nil while the budget holds, else what
    /// the store should trim itself down to; asks the others to trim when it cannot free enough
    /// alone. Trims aim at `Limits.memoryBudgetTrimPercent` of the budget, so that an eviction
    /// round frees a fair share and does not run at every group commit.
    func report(_ id: Int, holds held: Int) -> Int? {
        let (ownTarget, others): (Int?, [(trim: @Sendable (Int) -> Void, target: Int)]) = state.withLock { state in
            guard var consumer = state.consumers[id] else { return (nil, []) }
            state.total += held - consumer.bytes
            consumer.bytes = held
            state.consumers[id] = consumer
            assert(state.total >= 0, "memory budget: negative bytes in use")
            guard state.total > bytes else { return (nil, []) }
            var excess = state.total - bytes / 100 * Limits.memoryBudgetTrimPercent
            let own = max(0, held - excess)
            excess -= held - own
            var others: [(trim: @Sendable (Int) -> Void, target: Int)] = []
            for (otherID, other) in state.consumers.sorted(by: { $0.value.bytes > $1.value.bytes }) where otherID != id {
                guard excess > 0 else { break }
                let given = min(excess, other.bytes)
                others.append((other.trim, other.bytes - given))
                excess -= given
            }
            return (own, others)
        }
        // Outside the lock: a trim request queues work on another store's writer thread.
        for other in others { other.trim(other.target) }
        return ownTarget
    }
}
