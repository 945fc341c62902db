/// Replay: the state of a document at a revision, from the newest snapshot at or below it plus the
/// ops after it, through the caller's reducer.
extension Reader {

    /// The state of `document` at `revision` (default: head): the newest snapshot at or below it,
    /// then the ops after it.
    /// - Returns: the state and the revision it stands at.
    func replay<R: Reducer>(
        _ document: DocumentID, to revision: Revision?, with reducer: R
    ) throws(OpLogError) -> (state: R.State, revision: Revision) {
        // Replay reads in several short transactions, so compaction may truncate the ops after the
        // snapshot it started from; it then starts again from the newer snapshot that truncation
        // required. Only a target that itself fell below the floor is an error.
        var attempt = 0
        while true {
            attempt += 1
            do {
                return try replayOnce(document, to: revision, with: reducer)
            } catch .belowFloor(_, let requested, _, _) where attempt < Limits.replayAttemptsMax && requested != (revision ?? 0) {
                continue
            }
        }
    }

    private func replayOnce<R: Reducer>(
        _ document: DocumentID, to revision: Revision?, with reducer: R
    ) throws(OpLogError) -> (state: R.State, revision: Revision) {
        guard let view = try currentView(of: document) else { return (reducer.initialState(), 0) }
        let target = revision ?? view.head
        guard target <= view.head else { throw .beyondHead(document: document, requested: target, head: view.head) }
        var state = reducer.initialState()
        var at: Revision = 0
        if let snapshot = try snapshot(of: document, atOrBelow: target), snapshot.revision >= view.floor - 1 {
            do { state = try reducer.decode(snapshot.bytes) } catch {
                throw .snapshotUndecodable(document: document, revision: snapshot.revision, detail: "\(error)")
            }
            at = snapshot.revision
        } else if view.floor > 1 {
            throw .belowFloor(
                document: document, requested: target, floor: view.floor,
                latestSnapshot: try latestSnapshotRevision(document, atOrBelow: view.floor - 1))
        }
        try replayOps(document, from: at, to: target, state: &state, reducer: reducer)
        return (state, target)
    }

    /// Applies ops `after + 1 ... target` to `state`, a batch at a time.
    func replayOps<R: Reducer>(
        _ document: DocumentID, from after: Revision, to target: Revision, state: inout R.State, reducer: R
    ) throws(OpLogError) {
        var next = after + 1
        while next <= target {
            // Views into the batch's decoded chunks: the reducer reads each op in place.
            let batch = try opViews(of: document, from: next, limit: Int(min(UInt64(Limits.replayBatchOps), target - next + 1)))
            guard !batch.isEmpty else { throw .beyondHead(document: document, requested: next, head: next - 1) }
            for index in batch.indices {
                do { try reducer.apply(batch[index], to: &state) } catch {
                    throw .reducerFailed(document: document, revision: batch[index].revision, detail: "\(error)")
                }
            }
            next += UInt64(batch.count)
        }
    }
}
