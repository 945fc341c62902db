/// Turns ops into document state. The caller implements it; OpLog stores the encoded state as
/// snapshots and replays ops through `apply`.
///
/// A reducer runs outside LMDB transactions: replay reads a batch of ops, ends the read, then
/// calls `apply`, so a slow reducer never pins LMDB pages.
public protocol Reducer: Sendable {
    associatedtype State
    /// The state before revision 1.
    func initialState() -> State
    /// Applies one op. Throwing stops replay with `ReplayError.reducerFailed` at that revision.
    func apply(_ op: StoredOp, to state: inout State) throws
    /// Snapshot bytes for a state.
    func encode(_ state: State) throws -> [UInt8]
    /// The state stored in snapshot bytes.
    func decode(_ bytes: [UInt8]) throws -> State
}

/// Why a replay failed.
public enum ReplayError: Error, Sendable, CustomStringConvertible {
    /// The reducer threw on the op at `revision`.
    case reducerFailed(document: DocumentID, revision: Revision, detail: String)
    /// A snapshot's bytes could not be decoded by the reducer.
    case snapshotUndecodable(document: DocumentID, revision: Revision, detail: String)
    /// The store failed (includes `beyondHead` and `belowFloor` with its snapshot hint).
    case store(OpLogError)

    public var description: String {
        switch self {
        case let .reducerFailed(document, revision, detail): return "reducer rejected op \(revision) of '\(document)': \(detail)"
        case let .snapshotUndecodable(document, revision, detail): return "snapshot \(revision) of '\(document)' does not decode: \(detail)"
        case let .store(error): return error.description
        }
    }
}

extension OpLogStore {
    /// Ops read per batch during replay: memory stays bounded by the state plus one batch.
    public static let replayBatchOps = 1_000

    /// The state of `document` at `revision` (default: head): the newest snapshot at or below it,
    /// then the ops after it.
    /// - Returns: the state and the revision it stands at.
    public func replay<R: Reducer>(_ document: DocumentID, to revision: Revision? = nil, with reducer: R) throws(ReplayError) -> (state: R.State, revision: Revision) {
        // Replay reads in several short transactions, so compaction may truncate the ops after the
        // snapshot it started from; it then starts again from the newer snapshot that truncation
        // required. Only a target that itself fell below the floor is an error.
        var attempt = 0
        while true {
            attempt += 1
            do {
                return try replayOnce(document, to: revision, with: reducer)
            } catch .store(.belowFloor(_, let requested, _, _)) where attempt < 4 && requested != (revision ?? 0) {
                continue
            }
        }
    }

    private func replayOnce<R: Reducer>(_ document: DocumentID, to revision: Revision?, with reducer: R) throws(ReplayError) -> (state: R.State, revision: Revision) {
        let head: Revision
        let floor: Revision
        do {
            guard let view = try currentView(of: document)?.view else { return (reducer.initialState(), 0) }
            head = view.head
            floor = view.floor
        } catch { throw .store(error) }
        let target = revision ?? head
        guard target <= head else { throw .store(.beyondHead(document: document, requested: target, head: head)) }
        var state = reducer.initialState()
        var at: Revision = 0
        do {
            if let snapshot = try snapshot(of: document, atOrBelow: target), snapshot.revision >= floor - 1 {
                do { state = try reducer.decode(snapshot.bytes) } catch {
                    throw ReplayError.snapshotUndecodable(document: document, revision: snapshot.revision, detail: "\(error)")
                }
                at = snapshot.revision
            } else if floor > 1 {
                throw ReplayError.store(.belowFloor(document: document, requested: target, floor: floor, latestSnapshot: try latestSnapshotRevision(document, atOrBelow: floor - 1)))
            }
        } catch let error as ReplayError { throw error } catch { throw .store(OpLogError.wrap(error)) }
        try replayOps(document, from: at, to: target, state: &state, reducer: reducer)
        return (state, target)
    }

    /// Applies ops `after + 1 ... target` to `state`, a batch at a time.
    func replayOps<R: Reducer>(_ document: DocumentID, from after: Revision, to target: Revision, state: inout R.State, reducer: R) throws(ReplayError) {
        var next = after + 1
        while next <= target {
            let batch: [StoredOp]
            do { batch = try ops(of: document, from: next, limit: Int(min(UInt64(Self.replayBatchOps), target - next + 1))) } catch {
                throw .store(error)
            }
            guard !batch.isEmpty else { throw .store(.beyondHead(document: document, requested: next, head: next - 1)) }
            for op in batch {
                do { try reducer.apply(op, to: &state) } catch {
                    throw .reducerFailed(document: document, revision: op.revision, detail: "\(error)")
                }
            }
            next += UInt64(batch.count)
        }
    }
}
