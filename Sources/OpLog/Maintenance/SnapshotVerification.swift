/// Checking snapshots against the log: the state a snapshot claims must be what replaying the
/// retained ops produces.
extension Maintenance {
    /// Replays from each retained snapshot (or from the initial state when nothing was truncated)
    /// to the next snapshot's revision and compares the encoded state with that snapshot's bytes.
    /// Snapshots below the floor's cover have no ops to check them with and are skipped.
    /// - Returns: one problem per snapshot that diverges or cannot be rebuilt, naming its revision.
    func verifySnapshots<R: Reducer>(of document: DocumentID, with reducer: R) throws(OpLogError) -> [VerificationProblem] {
        guard let info = try reader.info(of: document) else { return [] }
        let checkable = info.snapshots.map(\.revision).filter { $0 + 1 >= info.floor }
        guard !checkable.isEmpty else { return [] }
        var problems: [VerificationProblem] = []
        var state = reducer.initialState()
        var at: Revision = 0
        if info.floor > 1 {
            guard let first = try reader.snapshot(of: document, atOrBelow: checkable[0]) else { return [] }
            do { state = try reducer.decode(first.bytes) } catch {
                return [
                    VerificationProblem(
                        location: CorruptionLocation(area: "snapshots", document: document, revision: first.revision),
                        detail: "the reducer cannot decode the snapshot: \(error)")
                ]
            }
            at = first.revision
        }
        for target in checkable where target > at {
            do {
                try reader.replayOps(document, from: at, to: target, state: &state, reducer: reducer)
                let expected = try reducer.encode(state)
                guard let stored = try reader.snapshot(of: document, atOrBelow: target), stored.revision == target else { continue }
                if stored.bytes != expected {
                    problems.append(
                        VerificationProblem(
                            location: CorruptionLocation(area: "snapshots", document: document, revision: target),
                            detail:
                                "snapshot differs from replaying the log from revision \(at) (\(stored.bytes.count) stored "
                                    + "bytes, \(expected.count) replayed)"
                        ))
                    // Continue from the stored snapshot so one bad snapshot is not blamed on the next.
                    state = try reducer.decode(stored.bytes)
                }
                at = target
            } catch let error as OpLogError {
                // A reducer that rejects the log is a finding about the data; a store error is not.
                guard case .reducerFailed = error else { throw error }
                problems.append(
                    VerificationProblem(
                        location: CorruptionLocation(area: "ops", document: document, revision: at), detail: error.description))
                return problems
            } catch {
                problems.append(
                    VerificationProblem(
                        location: CorruptionLocation(area: "snapshots", document: document, revision: target), detail: "\(error)"))
                return problems
            }
        }
        return problems
    }
}
