import OpLogStorage

/// A follower store applying its primary's change feed (FORMAT.md, "Followers").
///
/// Every change lands at its own position, and a follower's positions are its journal sequences,
/// exactly as on the primary, so the follower's own feed re-serves the same history and its
/// applied position is simply its newest journal sequence, recorded with the change itself:
/// - a group commit's change (appends, truncations, epoch raises) becomes one journal record
///   holding the primary's entries verbatim: revisions, op IDs, authors, client and server times;
/// - an empty change (the primary's direct commit that never happened, or a change erasure left
///   empty) becomes a journal record without entries, which the apply turns into an empty change;
/// - a direct commit's change (a snapshot put or deletion, a document deletion) is committed to
///   LMDB first, with its feed record, and its marker journaled after it. The primary orders the
///   two the other way round because it may fail the commit and then owes its consumers an empty
///   change; a follower must never lose the change it was given, so it commits first, and an open
///   that finds the commit without its marker writes the marker (`completeInterruptedDirectCommit`).
extension Writer {
    /// Whether this open is a follower (`StoreOptions.role`, until `promote()`).
    var isFollower: Bool { followerRole.load(ordering: .acquiring) }

    /// Refuses a client mutation on a follower.
    func requirePrimary(_ operation: String) throws(OpLogError) {
        if isFollower { throw .wrongRole(role: .follower, operation: operation) }
    }

    /// Applies `changes` in order, then syncs once (in `full`; the weaker modes sync as for
    /// appends). On an error the changes before the failing one stay applied and durable; the
    /// failing one and those after it are not applied.
    func applyChanges(_ changes: [Change], epoch: UInt64?) throws(OpLogError) {
        assertOnWriterThread()
        if let failure { throw failure }
        guard isFollower else { throw .wrongRole(role: .primary, operation: "apply") }
        absorbFinishedApply()
        var unsynced = false
        do throws(OpLogError) {
            for change in changes { try applyChange(change, epoch: epoch, unsynced: &unsynced) }
        } catch {
            if unsynced { try? syncFollowerJournal(&unsynced) }
            throw error
        }
        try syncFollowerJournal(&unsynced)
    }

    /// Syncs the journal records written since the last sync, in `full` (the weaker modes leave
    /// them to the next sync, as their appends), and hands their changes to the feed.
    private func syncFollowerJournal(_ unsynced: inout Bool) throws(OpLogError) {
        guard unsynced else { return }
        unsynced = false
        guard options.durability == .full else { return }
        do { try journal?.synchronize() } catch { throw poison("journal sync after applying changes failed: \(error)") }
        feedSynced()
    }

    /// The position the follower needs next: one past its newest journal sequence.
    private var nextPosition: UInt64 { journal?.nextSequence ?? journalBaseToCreate ?? 1 }

    private func applyChange(_ change: Change, epoch: UInt64?, unsynced: inout Bool) throws(OpLogError) {
        let sequence = change.position.sequence
        let lineage = try lineageFor(change)
        guard change.position.lineage == lineage else { throw .foreignLineage(expected: lineage, found: change.position.lineage) }
        let next = nextPosition
        if sequence < next {
            try checkAlreadyApplied(change)
            return
        }
        guard sequence == next else { throw .changeGap(expected: next, found: sequence) }
        let direct = change.events.filter(\.isDirectCommit)
        if direct.isEmpty {
            try applyJournaledChange(change, epoch: epoch, unsynced: &unsynced)
            return
        }
        guard change.events.count == 1, let event = direct.first else {
            throw .invalidArgument(
                "change \(change.position) mixes a snapshot or deletion with other events; a store never makes such a change")
        }
        // The direct commit must not outlive journal records before it, nor reach LMDB beside an apply.
        if options.durability != .full, journal != nil {
            do { try journal?.synchronize() } catch { throw poison("journal sync before a follower's direct commit failed: \(error)") }
            feedSynced()
        }
        try syncFollowerJournal(&unsynced)
        quiesceApplier()
        try applyDirectChange(change, event, epoch: epoch)
    }

    /// The follower's lineage; a follower that holds no change yet adopts its primary's at the first.
    private func lineageFor(_ change: Change) throws(OpLogError) -> StoreLineage {
        guard let current = context.feed.lineage else { throw poison("a follower runs without its feed") }
        guard current != change.position.lineage, nextPosition == 1, context.feed.publishedThrough == 0 else { return current }
        quiesceApplier()
        try writeGrowing { txn in try tables.writeLineage(txn, change.position.lineage) }
        context.feed.adopt(lineage: change.position.lineage)
        options.logger.notice("the follower adopted its primary's lineage", metadata: ["lineage": "\(change.position.lineage)"])
        return change.position.lineage
    }

    /// A change at or below the applied position: skipped if it is the one held there, or that one
    /// before an erasure this follower applied since; anything else is a divergence. A change
    /// below the feed's retained history cannot be compared and is skipped.
    private func checkAlreadyApplied(_ change: Change) throws(OpLogError) {
        let sequence = change.position.sequence
        let held: Change?
        if let unsynced = unsyncedFeed.first(where: { $0.position.sequence == sequence }) {
            held = unsynced
        } else {
            held = try reader.heldChange(at: sequence)
        }
        guard let held, held.events != change.events else { return }
        if Self.isErasedCopy(held.events, of: change.events) { return }
        throw .divergence(
            position: change.position, detail: "it holds \(held.events.count) events there, the change given has \(change.events.count)")
    }

    /// Whether `held` is `given` with every erasable event of some documents removed (what a
    /// document deletion leaves of a change in the history).
    static func isErasedCopy(_ held: [ChangeEvent], of given: [ChangeEvent]) -> Bool {
        let heldDocuments = Set(held.compactMap(\.erasableDocument))
        let erased = Set(given.compactMap(\.erasableDocument)).subtracting(heldDocuments)
        guard !erased.isEmpty else { return false }
        return given.filter { event in event.erasableDocument.map { !erased.contains($0) } ?? true } == held
    }

    /// Checks a follower's change against the owner epoch it was applied with: refused when the
    /// scope's epoch, with the raises of the change so far, is above it.
    private func checkAppliedEpoch(_ epoch: UInt64?, for document: DocumentID, group: [FencingScope: UInt64]) throws(OpLogError) {
        guard let epoch else { return }
        let scope = options.fencingScope(document)
        let current: UInt64
        if let staged = group[scope] { current = staged } else { current = try currentEpoch(of: scope) }
        guard epoch >= current else { throw .staleEpoch(scope: scope, epoch: epoch, current: current) }
    }

    private func diverged(_ change: Change, _ detail: String) -> OpLogError {
        .divergence(position: change.position, detail: detail)
    }

    /// A group commit's change as one journal record, validated against what the follower holds.
    private func applyJournaledChange(_ change: Change, epoch: UInt64?, unsynced: inout Bool) throws(OpLogError) {
        let bound = Limits.unappliedJournalSlotsMax * options.journalApplyBytes
        if sealedJob != nil, journalBytes >= bound || activeSlotHeldBytes >= bound { quiesceApplier() }
        var scratch: [DocumentID: ScratchDocument] = [:]
        var groupEpochs: [FencingScope: UInt64] = [:]
        var entries: [JournalEntry] = []
        var addedBytes = 0
        for event in change.events {
            switch event {
            case .appended(let document, let ops):
                try checkAppliedEpoch(epoch, for: document, group: groupEpochs)
                var staged = try scratchDocument(document, scratch: scratch)
                guard let first = ops.first, first.revision == staged.head + 1 else {
                    throw diverged(change, "ops of '\(document)' start at revision \(ops.first?.revision ?? 0) after head \(staged.head)")
                }
                guard ops.count <= Limits.opsPerBatchMax, zip(ops, ops.dropFirst()).allSatisfy({ $0.revision + 1 == $1.revision }) else {
                    throw .invalidArgument("the ops of '\(document)' in change \(change.position) are not consecutive revisions")
                }
                for op in ops {
                    guard op.author.count <= Limits.authorBytesMax else {
                        throw .limitExceeded(.authorBytes, value: op.author.count, maximum: Limits.authorBytesMax)
                    }
                    guard op.payload.count <= Limits.payloadBytesMax else {
                        throw .limitExceeded(.payloadBytes, value: op.payload.count, maximum: Limits.payloadBytesMax)
                    }
                    staged.newIDs[op.opID] = op.revision
                    addedBytes += Limits.estimatedStoredBytes(of: op)
                }
                staged.head += UInt64(ops.count)
                staged.lastServerTimeMilliseconds = max(staged.lastServerTimeMilliseconds, ops.map(\.serverTimeMilliseconds).max() ?? 0)
                staged.appended.append(contentsOf: ops)
                scratch[document] = staged
                entries.append(.ops(document: document, ops: ops))
            case .truncated(let document, let floor):
                try checkAppliedEpoch(epoch, for: document, group: groupEpochs)
                var staged = try scratchDocument(document, scratch: scratch)
                guard staged.head > 0, floor > staged.floor, floor <= staged.head + 1 else {
                    throw diverged(change, "'\(document)' cannot move its floor from \(staged.floor) to \(floor) at head \(staged.head)")
                }
                guard try reader.latestSnapshotRevision(document, atOrBelow: floor - 1) == floor - 1 else {
                    throw diverged(change, "'\(document)' has no snapshot at \(floor - 1) for its floor \(floor)")
                }
                staged.floor = floor
                staged.truncated = true
                scratch[document] = staged
                entries.append(.truncate(document: document, floor: floor))
            case .epochRaised(let scope, let raised):
                let current: UInt64
                if let staged = groupEpochs[scope] { current = staged } else { current = try currentEpoch(of: scope) }
                guard raised > current else {
                    throw diverged(change, "scope '\(scope)' is at epoch \(current), the change raises it to \(raised)")
                }
                groupEpochs[scope] = raised
                entries.append(.epoch(scope: scope, epoch: raised))
            case .snapshotPut, .snapshotDeleted, .documentDeleted:
                preconditionFailure("a direct commit's event reached the journaled path")
            }
        }
        assert(Self.feedEvents(entries) == change.events, "a follower's journal record does not hold the change it was given")
        if addedBytes > 0 {
            try syncFollowerJournal(&unsynced)
            applyJournalIfSpaceIsTight(adding: addedBytes)
            try checkSpace(adding: addedBytes)
        }
        let sequence = try writeJournalRecord(entries, deferSync: true)
        assert(sequence == change.position.sequence, "a follower's record at \(sequence) for the change at \(change.position)")
        unsynced = true
        feedJournaled(sequence, entries: entries, synced: false)
        if !entries.isEmpty { publish(scratch, entries: entries) }
        epochs.journaled.merge(groupEpochs, uniquingKeysWith: max)
        if !groupEpochs.isEmpty { epochs.anyRaised = true }
        if sealedJob != nil || activeSlotIsDue(adding: 0) {
            try syncFollowerJournal(&unsynced)
            startApplyIfDue()
        }
    }

    /// A direct commit's change: the LMDB commit with its feed record, then its marker.
    private func applyDirectChange(_ change: Change, _ event: ChangeEvent, epoch: UInt64?) throws(OpLogError) {
        let sequence = change.position.sequence
        let record = FeedRecord(sequence: sequence, events: change.events, committedAt: options.clock.now)
        switch event {
        case .snapshotPut(let document, let revision, let createdAt, let bytes):
            try checkAppliedEpoch(epoch, for: document, group: [:])
            let head = try reader.head(of: document)
            guard revision >= 1, revision <= head else {
                throw diverged(change, "'\(document)' has no revision \(revision) for a snapshot (head \(head))")
            }
            guard bytes.count <= Limits.snapshotBytesMax else {
                throw .limitExceeded(.snapshotBytes, value: bytes.count, maximum: Limits.snapshotBytesMax)
            }
            let frame = try Self.snapshotFrame(
                bytes, of: document, at: revision, createdAt: createdAt, compressionLevel: options.compressionLevel)
            applyJournalIfSpaceIsTight(adding: frame.count)
            try checkSpace(adding: frame.count)
            try writeGrowing { txn in
                try txn.put(tables.snapshots, key: KeyCoding.revisionKey(document, revision), value: frame)
                try writeFeed(txn, [record], heldThrough: try tables.readAppliedSequence(txn), deflater: nil)
            }
            try writeFollowerMarker(MarkedCommit(kind: .snapshotPut, document: document, revision: revision), at: sequence)
            context.feed.ready(change)
            announce([.snapshotWritten(document: document, revision: revision)])
        case .snapshotDeleted(let document, let revision):
            try checkAppliedEpoch(epoch, for: document, group: [:])
            let floor = try reader.currentView(of: document)?.floor ?? 1
            let key = KeyCoding.revisionKey(document, revision)
            guard !(floor > 1 && revision == floor - 1), try tables.read({ txn in try txn.get(tables.snapshots, key: key) }) != nil else {
                throw diverged(change, "'\(document)' has no deletable snapshot at \(revision) (floor \(floor))")
            }
            try writeGrowing { txn in
                _ = try txn.delete(tables.snapshots, key: key)
                try writeFeed(txn, [record], heldThrough: try tables.readAppliedSequence(txn), deflater: nil)
            }
            try writeFollowerMarker(MarkedCommit(kind: .snapshotDeleted, document: document, revision: revision), at: sequence)
            context.feed.ready(change)
            announce([.snapshotDeleted(document: document, revision: revision)])
        case .documentDeleted(let document):
            try checkAppliedEpoch(epoch, for: document, group: [:])
            try applyJournal()
            try deleteDocumentRecords(document, feed: record)
            try writeFollowerMarker(MarkedCommit(kind: .documentDeleted, document: document, revision: 0), at: sequence)
            // The marker applied too: the journal's replacement starts after LMDB's applied sequence.
            try applyJournal()
            context.feed.ready(change)
            dedupe.remove(document)
            do { try resetJournal() } catch {
                options.logger.notice("the journal slots could not be replaced after a deletion", metadata: ["error": "\(error)"])
            }
            announce([.documentDeleted(document: document)])
        case .appended, .truncated, .epochRaised:
            preconditionFailure("a journaled event reached the direct path")
        }
    }

    /// The marker of a follower's direct commit, after the commit: not synced, because an open that
    /// finds the commit without it writes it (`completeInterruptedDirectCommit`).
    private func writeFollowerMarker(_ commit: MarkedCommit, at sequence: UInt64) throws(OpLogError) {
        let written = try writeJournalRecord([.marker(commit)], deferSync: true)
        assert(written == sequence, "a follower's marker at \(written) for the change at \(sequence)")
        feedRecords.append(FeedRecord(sequence: written, events: nil, committedAt: options.clock.now))
    }

    /// At open, with the journal open for appending: a feed record at the journal's next position
    /// is a follower's direct commit whose marker a crash kept from the journal. The marker is
    /// written now, so the position is the follower's and its primary's next change follows it. (A
    /// primary journals every marker before its commit and never leaves such a record.)
    func completeInterruptedDirectCommit() throws(OpLogError) {
        guard feedIsOn, let database = tables.feed, let journal else { return }
        let next = journal.nextSequence
        let key = StoreTables.feedKey(next)
        let stored = try tables.read { txn in try txn.withCursor(database) { cursor in try cursor.seek(atOrAfter: key) } }
        guard let stored, stored.key == key else { return }
        let (_, _, events) = try StoreTables.decodeFeedChange(stored)
        let commit: MarkedCommit
        switch events.first {
        case .snapshotPut(let document, let revision, _, _) where events.count == 1:
            commit = MarkedCommit(kind: .snapshotPut, document: document, revision: revision)
        case .snapshotDeleted(let document, let revision) where events.count == 1:
            commit = MarkedCommit(kind: .snapshotDeleted, document: document, revision: revision)
        case .documentDeleted(let document) where events.count == 1:
            commit = MarkedCommit(kind: .documentDeleted, document: document, revision: 0)
        default:
            throw .corruption(
                CorruptionLocation(area: "feed", revision: next),
                detail: "feed record \(next) lies beyond the journal's end and is no direct commit's")
        }
        _ = try writeJournalRecord([.marker(commit)], sync: true)
        feedRecords.append(FeedRecord(sequence: next, events: nil, committedAt: options.clock.now))
        options.logger.notice("completed a follower's direct commit interrupted before its marker", metadata: ["position": "\(next)"])
    }

    /// Makes the follower a primary: from now on it takes client mutations, continuing its
    /// lineage, positions and revisions, and recognises retries of every op it applied.
    func promote() {
        assertOnWriterThread()
        followerRole.store(false, ordering: .releasing)
        options.logger.notice("the follower was promoted to primary")
    }
}

extension ChangeEvent {
    /// Whether a store makes this event by a direct LMDB commit, alone in its change.
    var isDirectCommit: Bool {
        switch self {
        case .snapshotPut, .snapshotDeleted, .documentDeleted: return true
        case .appended, .truncated, .epochRaised: return false
        }
    }

    /// The document whose erasure removes this event (see `erasable(of:)`), if any.
    var erasableDocument: DocumentID? {
        switch self {
        case .appended(let document, _), .truncated(let document, _), .snapshotPut(let document, _, _, _),
            .snapshotDeleted(let document, _):
            return document
        case .documentDeleted, .epochRaised: return nil
        }
    }
}
