/// Fencing epochs as the writer sees them (FORMAT.md, "Fencing epochs"). An epoch rises through the
/// journal, like an append: a journal entry in the group commit that raised it, then a record in the
/// `epochs` database when that record is applied. Until then it lives here.
///
/// Writer-thread state (the turn); see `Writer`.
struct FencingEpochs {
    /// Raised by journal records that are not yet part of a sealed apply job.
    var journaled: [FencingScope: UInt64] = [:]
    /// Raised by the sealed job's records, until its apply commits.
    var sealed: [FencingScope: UInt64] = [:]
    /// Applied epochs read from LMDB or moved here after an apply (0: the scope has none). A cache,
    /// dropped whole at `Limits.fencingEpochsCachedMax` entries: LMDB holds every one of them.
    var applied: [FencingScope: UInt64] = [:]
    /// Whether any scope may have an epoch: nil until the `epochs` database was looked at once,
    /// then true from the first record or raise on. While false, no lookup reads LMDB, so a store
    /// that never sees an epoch pays no read per new document.
    var anyRaised: Bool?

    /// Seals the journaled raises into a job's.
    mutating func seal() -> [FencingScope: UInt64] {
        sealed.merge(journaled, uniquingKeysWith: max)
        journaled.removeAll(keepingCapacity: true)
        return sealed
    }

    /// After the sealed job's apply committed: LMDB holds its raises.
    mutating func sealedWereApplied() {
        for (scope, epoch) in sealed { cacheApplied(scope, epoch) }
        sealed.removeAll(keepingCapacity: true)
    }

    mutating func cacheApplied(_ scope: FencingScope, _ epoch: UInt64) {
        if applied.count >= Limits.fencingEpochsCachedMax && applied[scope] == nil { applied.removeAll(keepingCapacity: true) }
        applied[scope] = max(applied[scope] ?? 0, epoch)
    }
}

extension Writer {
    /// The scope's epoch as committed (journaled or applied); 0 if it has none.
    func currentEpoch(of scope: FencingScope) throws(OpLogError) -> UInt64 {
        assertOnWriterThread()
        if let epoch = epochs.journaled[scope] ?? epochs.sealed[scope] ?? epochs.applied[scope] { return epoch }
        if epochs.anyRaised == nil {
            epochs.anyRaised = try tables.read { txn in try tables.epochs.map { try txn.entryCount($0) > 0 } ?? false }
        }
        guard epochs.anyRaised == true else { return 0 }
        // Not raised since this open's apply of it: LMDB's record is current (an apply in flight
        // writes only `sealed` scopes).
        let stored = try tables.read { txn in try tables.readEpoch(txn, scope) }
        epochs.cacheApplied(scope, stored)
        return stored
    }

    /// Checks a mutation's epoch against its document's scope, as the group so far leaves it.
    /// - Returns: the raise to journal with the mutation, if its epoch is above the scope's.
    /// - Throws: `staleEpoch` below the scope's epoch; `epochRequired` for no epoch in a fenced scope.
    func checkEpoch(
        _ epoch: UInt64?, for document: DocumentID, group: [FencingScope: UInt64]
    ) throws(OpLogError) -> (FencingScope, UInt64)? {
        let scope = options.fencingScope(document)
        var current: UInt64
        if let staged = group[scope] { current = staged } else { current = try currentEpoch(of: scope) }
        guard let epoch, epoch > 0 else {
            if current > 0 { throw .epochRequired(scope: scope, current: current) }
            return nil
        }
        guard epoch >= current else { throw .staleEpoch(scope: scope, epoch: epoch, current: current) }
        return epoch > current ? (scope, epoch) : nil
    }

    /// The check for mutations that commit to LMDB directly (snapshot writes and deletions, document
    /// deletion): they are refused below the scope's epoch, but do not raise it (`raiseEpoch` or a
    /// journaled mutation does), since a raise must be journaled before anything it fences.
    func checkDirectMutation(_ epoch: UInt64?, for document: DocumentID) throws(OpLogError) {
        _ = try checkEpoch(epoch, for: document, group: [:])
    }

    /// Stages `raiseEpoch`: an epoch below the scope's is stale; the same one changes nothing.
    func stageEpochRaise(
        _ scope: FencingScope, to epoch: UInt64, epochs groupEpochs: inout [FencingScope: UInt64], entries: inout [JournalEntry]
    ) throws(OpLogError) {
        var current: UInt64
        if let staged = groupEpochs[scope] { current = staged } else { current = try currentEpoch(of: scope) }
        guard epoch >= current else { throw .staleEpoch(scope: scope, epoch: epoch, current: current) }
        guard epoch > current else { return }
        groupEpochs[scope] = epoch
        entries.append(.epoch(scope: scope, epoch: epoch))
    }
}
