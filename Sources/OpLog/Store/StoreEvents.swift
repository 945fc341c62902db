import Synchronization

/// A change the writer thread made durable, as observers see it (the compaction scheduler's
/// backlog, tail subscriptions). Delivered on the writer thread right after the change became
/// visible to reads: observers must only record it and return.
enum StoreEvent: Sendable {
    case appended(document: DocumentID, ops: [StoredOp])
    case truncated(document: DocumentID, floor: Revision)
    case snapshotWritten(document: DocumentID, revision: Revision)
    case documentDeleted(document: DocumentID)
}

/// The observers registered on a store.
final class StoreObservers: Sendable {
    private let observers = Mutex<[Int: @Sendable ([StoreEvent]) -> Void]>([:])
    private let nextToken = Atomic<Int>(0)

    func add(_ observer: @escaping @Sendable ([StoreEvent]) -> Void) -> Int {
        let token = nextToken.add(1, ordering: .relaxed).newValue
        observers.withLock { $0[token] = observer }
        return token
    }

    func remove(_ token: Int) {
        _ = observers.withLock { $0.removeValue(forKey: token) }
    }

    func notify(_ events: [StoreEvent]) {
        guard !events.isEmpty else { return }
        let current = observers.withLock { Array($0.values) }
        for observer in current { observer(events) }
    }
}
