import Synchronization

/// A live view of one document's log: the retained ops from a revision, then every op as it
/// becomes durable, in revision order, with no gaps and no duplicates.
///
/// Memory per subscriber is bounded: live ops are buffered up to `bufferLimit`; a subscriber that
/// falls further behind drops its buffer and, when it resumes, reads what it missed from the store.
/// The sequence ends (throws) when the store closes (`closed`), when the subscriber's position is
/// truncated away before it read it (`belowFloor`, with the snapshot hint), or when the document
/// is deleted. Cancelling the consuming task ends it (`next()` returns nil).
public struct OpSubscription: AsyncSequence, Sendable {
    /// Each element is one stored op.
    public typealias Element = StoredOp
    let reader: Reader
    let document: DocumentID
    let from: Revision
    let bufferLimit: Int

    /// An iterator from the subscription's revision on.
    public func makeAsyncIterator() -> Iterator {
        Iterator(reader: reader, document: document, next: from, bufferLimit: bufferLimit)
    }

    /// Reads retained ops from the store, then live ones from the writer.
    public struct Iterator: AsyncIteratorProtocol {
        let reader: Reader
        let document: DocumentID
        var nextRevision: Revision
        var batch: [StoredOp] = []
        var batchIndex = 0
        let inbox: SubscriptionInbox

        init(reader: Reader, document: DocumentID, next: Revision, bufferLimit: Int) {
            self.reader = reader
            self.document = document
            self.nextRevision = next
            // Registered before the first read, so every commit after it reaches the inbox.
            inbox = reader.subscriptions.register(document, bufferLimit: bufferLimit)
        }

        /// The next op; nil when the task is cancelled. Throws `closed`, `belowFloor` or the read's error.
        public mutating func next() async throws(OpLogError) -> StoredOp? {
            while true {
                if batchIndex < batch.count {
                    let op = batch[batchIndex]
                    batchIndex += 1
                    nextRevision = op.revision + 1
                    return op
                }
                if Task.isCancelled {
                    inbox.cancel()
                    return nil
                }
                // Live ops that continue exactly where we are, else catch up from the store.
                switch inbox.take(from: nextRevision) {
                case .ops(let ops):
                    batch = ops
                    batchIndex = 0
                    continue
                case .closed:
                    throw .closed
                case .readStore:
                    break
                }
                let read: [StoredOp]
                do { read = try reader.ops(of: document, from: nextRevision, limit: Limits.subscriptionCatchUpOps) } catch {
                    inbox.cancel()
                    throw error
                }
                if !read.isEmpty {
                    batch = read
                    batchIndex = 0
                    continue
                }
                // Caught up: wait for the writer to deliver (or for close or cancellation).
                await inbox.wait()
            }
        }
    }
}

/// What a waiting iterator should do next.
enum InboxTake {
    case ops([StoredOp])
    case readStore
    case closed
}

/// The per-subscriber buffer the writer thread fills. About 200 bytes when idle.
final class SubscriptionInbox: Sendable {
    struct State {
        var buffer: [StoredOp] = []
        var overflowed = false
        var closed = false
        var cancelled = false
        var waiter: CheckedContinuation<Void, Never>?
    }

    let state = Mutex(State())
    let bufferLimit: Int
    let document: DocumentID
    weak let registry: SubscriptionRegistry?

    init(document: DocumentID, bufferLimit: Int, registry: SubscriptionRegistry) {
        self.document = document
        self.bufferLimit = bufferLimit
        self.registry = registry
    }

    deinit { registry?.unregister(self) }

    /// Called by the writer thread with newly durable ops (consecutive revisions).
    func deliver(_ ops: [StoredOp]) {
        assert(zip(ops, ops.dropFirst()).allSatisfy { $0.revision + 1 == $1.revision }, "a delivery of ops that are not consecutive")
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard !state.cancelled else { return nil }
            if !state.overflowed {
                if state.buffer.count + ops.count > bufferLimit {
                    // Too far behind: drop everything; the reader catches up from the store.
                    state.overflowed = true
                    state.buffer = []
                } else {
                    state.buffer.append(contentsOf: ops)
                }
            }
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    func close() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.closed = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    func take(from revision: Revision) -> InboxTake {
        state.withLock { state in
            if state.closed { return .closed }
            state.buffer.removeAll { $0.revision < revision }
            if state.overflowed || state.buffer.first.map({ $0.revision != revision }) ?? false {
                state.overflowed = false
                state.buffer = []
                return .readStore
            }
            if state.buffer.isEmpty { return .readStore }
            defer { state.buffer = [] }
            return .ops(state.buffer)
        }
    }

    /// Suspends until something is delivered, the store closes, or the task is cancelled.
    func wait() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { state -> Bool in
                    if state.closed || state.cancelled || state.overflowed || !state.buffer.isEmpty { return true }
                    state.waiter = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
                state.cancelled = true
                defer { state.waiter = nil }
                return state.waiter
            }
            waiter?.resume()
        }
    }

    func cancel() {
        state.withLock { $0.cancelled = true }
        registry?.unregister(self)
    }
}

/// Subscribers by document, so a commit reaches only its own documents' subscribers.
final class SubscriptionRegistry: Sendable {
    private let inboxes = Mutex<[DocumentID: [ObjectIdentifier: Weak]]>([:])
    private let isClosed = Mutex(false)

    struct Weak: @unchecked Sendable {
        // Invariant: only read under `inboxes`' lock; the inbox unregisters itself in deinit.
        weak var inbox: SubscriptionInbox?
    }

    func register(_ document: DocumentID, bufferLimit: Int) -> SubscriptionInbox {
        let inbox = SubscriptionInbox(document: document, bufferLimit: bufferLimit, registry: self)
        inboxes.withLock { $0[document, default: [:]][ObjectIdentifier(inbox)] = Weak(inbox: inbox) }
        if isClosed.withLock({ $0 }) { inbox.close() }
        return inbox
    }

    func unregister(_ inbox: SubscriptionInbox) {
        inboxes.withLock { all in
            all[inbox.document]?[ObjectIdentifier(inbox)] = nil
            if all[inbox.document]?.isEmpty == true { all[inbox.document] = nil }
        }
    }

    var count: Int { inboxes.withLock { $0.values.reduce(0) { $0 + $1.count } } }

    /// Hands a commit's appended ops to the subscribers of their documents.
    func deliver(_ commit: StoreCommit) {
        for event in commit.events {
            guard case .appended(let document, let ops) = event else { continue }
            let targets = inboxes.withLock { all in all[document].map { $0.values.compactMap(\.inbox) } ?? [] }
            for inbox in targets { inbox.deliver(ops) }
        }
    }

    func closeAll() {
        isClosed.withLock { $0 = true }
        let all = inboxes.withLock { all in all.values.flatMap { $0.values.compactMap(\.inbox) } }
        for inbox in all { inbox.close() }
    }
}
