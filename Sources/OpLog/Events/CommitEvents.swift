import Synchronization

/// One change a commit made durable.
public enum StoreEvent: Sendable {
    /// Ops appended to a document, consecutive revisions.
    case appended(document: DocumentID, ops: [StoredOp])
    /// The document's floor rose to `floor`.
    case truncated(document: DocumentID, floor: Revision)
    /// A snapshot was stored at `revision`.
    case snapshotWritten(document: DocumentID, revision: Revision)
    /// The snapshot at `revision` was deleted.
    case snapshotDeleted(document: DocumentID, revision: Revision)
    /// The document and everything of it was deleted.
    case documentDeleted(document: DocumentID)
}

/// Everything one commit (a group commit, a snapshot write or deletion, a document deletion) made
/// durable and visible to reads, in the order it happened.
public struct StoreCommit: Sendable {
    /// What the commit did, in order.
    public let events: [StoreEvent]

    /// Ops the commit appended, all documents together.
    public var opCount: Int {
        events.reduce(0) { total, event in
            if case .appended(_, let ops) = event { return total + ops.count }
            return total
        }
    }
}

/// The store's one event stream: every commit is announced once, to every listener — tail
/// subscriptions, the store's metrics, and observers such as the compaction scheduler.
///
/// Listeners run on the writer thread, right after the commit became visible to reads and before
/// its callers are resumed; they must only record what they need and return.
final class CommitEvents: Sendable {
    private let listeners = Mutex<[Int: @Sendable (StoreCommit) -> Void]>([:])
    private let nextToken = Atomic<Int>(0)

    func add(_ listener: @escaping @Sendable (StoreCommit) -> Void) -> Int {
        let token = nextToken.add(1, ordering: .relaxed).newValue
        listeners.withLock { $0[token] = listener }
        return token
    }

    func remove(_ token: Int) {
        _ = listeners.withLock { $0.removeValue(forKey: token) }
    }

    func announce(_ commit: StoreCommit) {
        guard !commit.events.isEmpty else { return }
        let current = listeners.withLock { Array($0.values) }
        for listener in current { listener(commit) }
    }
}

/// A registration made with `OpLogStore.observeCommits(_:)`; ends with `cancel()` or when released.
public final class CommitObservation: Sendable {
    private let events: CommitEvents
    private let token: Int

    init(events: CommitEvents, token: Int) {
        self.events = events
        self.token = token
    }

    /// Stops the observer; it is not called again once this returns (a call in progress may finish).
    public func cancel() { events.remove(token) }

    deinit { events.remove(token) }
}
