import Foundation

/// How the writer thread answers a request: exactly once, from the writer thread. The async API
/// wraps a continuation, the blocking API a semaphore.
struct Reply<Value: Sendable>: Sendable {
    let deliver: @Sendable (Result<Value, OpLogError>) -> Void

    func resume(returning value: Value) { deliver(.success(value)) }
    func resume(throwing error: OpLogError) { deliver(.failure(error)) }
    func resume(with result: Result<Value, OpLogError>) { deliver(result) }
}

extension Reply where Value == Void {
    func resume() { deliver(.success(())) }
}

/// A mutation waiting for the writer thread. Each carries the reply its caller waits for.
/// A snapshot to store: its framed record (compressed in the caller's task) and, for the change
/// feed, its bytes and time.
struct SnapshotWrite: Sendable {
    let frame: [UInt8]
    let bytes: [UInt8]
    let createdAtMilliseconds: Int64
}

enum WriteRequest: Sendable {
    case append(batch: [DocumentAppend], continuation: Reply<[AppendResult]>)
    case truncate(document: DocumentID, floor: Revision, epoch: UInt64?, continuation: Reply<Void>)
    /// Journaled like an append: the scope's epoch rises to `epoch`.
    case raiseEpoch(scope: FencingScope, epoch: UInt64, continuation: Reply<Void>)
    case putSnapshot(document: DocumentID, revision: Revision, snapshot: SnapshotWrite, epoch: UInt64?, continuation: Reply<Void>)
    case deleteSnapshot(document: DocumentID, revision: Revision, epoch: UInt64?, continuation: Reply<Void>)
    case deleteDocument(document: DocumentID, epoch: UInt64?, continuation: Reply<Void>)
    /// The scope's epoch as the writer holds it (under the turn, like every fencing decision).
    case readEpoch(scope: FencingScope, continuation: Reply<UInt64>)
    case checkpoint(continuation: Reply<Void>)
    /// A consumer's feed position saved (or, nil, removed): a direct LMDB commit.
    case savePosition(consumer: String, position: ChangePosition?, continuation: Reply<Void>)
    case close(continuation: Reply<Void>)
    /// A follower applies changes of its primary's feed (each its own journal record or direct
    /// commit, at its own position; one sync for the lot).
    case applyChanges(changes: [Change], epoch: UInt64?, continuation: Reply<Void>)
    /// Two-phase appends: stage a batch on top of the prepared ones; write the oldest prepared;
    /// drop a prepared change and those after it.
    case prepare(batch: [DocumentAppend], epoch: UInt64?, continuation: Reply<PreparedAppend>)
    case commitPrepared(change: Change, continuation: Reply<Void>)
    case abandonPrepared(change: Change, continuation: Reply<Void>)
    /// A follower becomes a primary.
    case promote(continuation: Reply<Void>)
    /// Another store sharing the memory budget asks this one to hold at most this many bytes.
    case trimMemory(toAtMostBytes: Int)

    /// Appends and truncations go through the journal and are coalesced into group commits.
    var isJournaled: Bool {
        switch self {
        case .append, .truncate, .raiseEpoch: return true
        default: return false
        }
    }

    /// The public call that made the request, for errors.
    var operationName: String {
        switch self {
        case .append: return "append"
        case .truncate: return "truncate"
        case .raiseEpoch: return "raiseEpoch"
        case .putSnapshot: return "putSnapshot"
        case .deleteSnapshot: return "deleteSnapshot"
        case .deleteDocument: return "deleteDocument"
        case .readEpoch: return "epoch"
        case .checkpoint: return "checkpoint"
        case .savePosition: return "savePosition"
        case .close: return "close"
        case .applyChanges: return "apply"
        case .promote: return "promote"
        case .prepare: return "prepare"
        case .commitPrepared: return "commit"
        case .abandonPrepared: return "abandon"
        case .trimMemory: return "trimMemory"
        }
    }

    var opCount: Int {
        if case .append(let batch, _) = self { return batch.reduce(0) { $0 + $1.ops.count } }
        return 0
    }

    var payloadBytes: Int {
        if case .append(let batch, _) = self {
            return batch.reduce(0) { $0 + $1.ops.reduce(0) { $0 + Limits.estimatedStoredBytes(of: $1) } }
        }
        return 0
    }

    func fail(_ error: OpLogError) {
        switch self {
        case .append(_, let continuation): continuation.resume(throwing: error)
        case .truncate(_, _, _, let continuation), .raiseEpoch(_, _, let continuation), .putSnapshot(_, _, _, _, let continuation),
            .deleteSnapshot(_, _, _, let continuation), .deleteDocument(_, _, let continuation), .checkpoint(let continuation),
            .savePosition(_, _, let continuation), .close(let continuation), .applyChanges(_, _, let continuation),
            .promote(let continuation), .commitPrepared(_, let continuation), .abandonPrepared(_, let continuation):
            continuation.resume(throwing: error)
        case .readEpoch(_, let continuation): continuation.resume(throwing: error)
        case .prepare(_, _, let continuation): continuation.resume(throwing: error)
        case .trimMemory: break
        }
    }
}

/// The queue between callers and the writer thread.
///
/// Thread safety: every field is guarded by `condition`.
final class RequestQueue: @unchecked Sendable {
    private let condition = NSCondition()
    /// Queued requests from `head` on; the slots before it are nil, so a taken request (its batch,
    /// its reply) is released as soon as it is taken, not when the prefix is next reclaimed.
    private var requests: [WriteRequest?] = []
    private var head = 0
    private var acceptsRequests = true
    /// True while the writer thread sleeps in `takeGroup`: only then does a new request signal the
    /// condition. A writer that is busy takes everything queued when it comes back, so signalling
    /// it would only cost a futex round trip per append.
    private var writerIsWaiting = false

    /// Queues `request`; false if the store is closing (the caller then fails it). With
    /// `wakeWriter` false the writer thread is not woken: the caller commits the request itself
    /// (`Writer.appendLeading`), and a writer that is awake still takes it if it comes first.
    func enqueue(_ request: WriteRequest, wakeWriter: Bool = true) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        guard acceptsRequests else { return false }
        requests.append(request)
        if case .close = request { acceptsRequests = false }
        if wakeWriter && writerIsWaiting { condition.signal() }
        return true
    }

    /// Whether the request at the head of the queue is journaled (a leader could take it).
    var hasJournaledHead: Bool {
        condition.lock()
        defer { condition.unlock() }
        return head < requests.count && requests[head]!.isJournaled
    }

    /// Wakes the writer thread if it waits for work (a leader leaves queued requests to it).
    func wakeWriter() {
        condition.lock()
        defer { condition.unlock() }
        if writerIsWaiting { condition.signal() }
    }

    /// Nothing queued and still accepting requests: an append may then run inline.
    var isIdle: Bool {
        condition.lock()
        defer { condition.unlock() }
        return head == requests.count && acceptsRequests
    }

    var depth: Int {
        condition.lock()
        defer { condition.unlock() }
        return requests.count - head
    }

    /// Waits for work, then takes either one non-journaled request, or a run of journaled requests
    /// bounded by `maxOps` and `maxBytes` (the first request is always taken whole).
    func takeGroup(maxOps: Int, maxBytes: Int) -> [WriteRequest] {
        condition.lock()
        defer { condition.unlock() }
        while head == requests.count {
            writerIsWaiting = true
            condition.wait()
            writerIsWaiting = false
        }
        return takeLocked(maxOps: maxOps, maxBytes: maxBytes)
    }

    /// Without waiting: a run of journaled requests from the head of the queue, as `takeGroup`
    /// takes them, or nil when the queue is empty or its head is a request only the writer thread
    /// runs (snapshot writes, deletions, checkpoints, close).
    func takeJournaledGroup(maxOps: Int, maxBytes: Int) -> [WriteRequest]? {
        condition.lock()
        defer { condition.unlock() }
        guard head < requests.count, requests[head]!.isJournaled else { return nil }
        return takeLocked(maxOps: maxOps, maxBytes: maxBytes)
    }

    private func takeLocked(maxOps: Int, maxBytes: Int) -> [WriteRequest] {
        assert(head < requests.count, "a group taken from an empty queue")
        var group = [take()]
        if group[0].isJournaled {
            var ops = group[0].opCount
            var bytes = group[0].payloadBytes
            while head < requests.count, let next = requests[head], next.isJournaled,
                ops + next.opCount <= maxOps, bytes + next.payloadBytes <= maxBytes
            {
                ops += next.opCount
                bytes += next.payloadBytes
                group.append(take())
            }
        }
        // Reclaim the consumed prefix: at once when the queue is empty (the usual case), else
        // now and then, so the array does not grow without bound.
        if head == requests.count {
            requests.removeAll(keepingCapacity: true)
            head = 0
        } else if head > 1024 && head * 2 > requests.count {
            requests.removeFirst(head)
            head = 0
        }
        return group
    }

    /// The request at `head`, its slot released.
    private func take() -> WriteRequest {
        guard let request = requests[head] else { preconditionFailure("request queue: a taken slot at the head") }
        requests[head] = nil
        head += 1
        return request
    }
}
