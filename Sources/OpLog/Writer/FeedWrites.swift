import OpLogStorage

/// A change-feed position the active journal slot holds: a group commit's events, or nil for a
/// marker (a direct commit writes its own feed record; the apply writes an empty change only if
/// that commit never happened).
struct FeedRecord: Sendable {
    let sequence: UInt64
    let events: [ChangeEvent]?
    /// When it was journaled (the store's clock): retention by age reads it.
    let committedAt: Int64
}

/// The writer's side of the change feed (FORMAT.md, "The change feed"): every journal record is
/// one position, and its feed record is written to LMDB by the apply (or, for a direct commit, by
/// that commit). Changes are handed to the feed hub once durable.
extension Writer {
    /// Whether this store keeps a change feed (`StoreOptions.feedRetentionBytes`).
    var feedIsOn: Bool { options.feedRetentionBytes != nil }

    /// At open, after recovery: history that does not end at the journal's last position (the
    /// feed was off meanwhile), or any history while the feed is off, is removed, so that the
    /// feed's positions never skip. Everything up to `durableThrough` is in LMDB.
    func resetDiscontinuousFeed(durableThrough: UInt64) throws(OpLogError) {
        guard let feed = tables.feed else { return }
        let newest = try tables.read { txn in
            try txn.withCursor(feed) { cursor in try cursor.last().flatMap { StoreTables.feedSequence($0.key) } }
        }
        guard let newest, !feedIsOn || newest != durableThrough else { return }
        try writeGrowing { txn in
            try txn.withWriteCursor(feed) { cursor in
                while try cursor.first() != nil { try cursor.deleteCurrent() }
            }
            _ = try txn.delete(tables.meta, key: StoreTables.feedStateKey)
        }
        options.logger.notice("the change feed's history was reset", metadata: ["newest": "\(newest)", "journal": "\(durableThrough)"])
    }

    /// The feed's events of a group commit's entries.
    static func feedEvents(_ entries: [JournalEntry]) -> [ChangeEvent] {
        entries.compactMap { entry in
            switch entry {
            case .ops(let document, let ops): return .appended(document: document, ops: ops)
            case .truncate(let document, let floor): return .truncated(document: document, floor: floor)
            case .epoch(let scope, let epoch): return .epochRaised(scope: scope, epoch: epoch)
            case .marker: return nil
            }
        }
    }

    func change(_ sequence: UInt64, _ events: [ChangeEvent]) -> Change {
        guard let lineage = context.feed.lineage else { preconditionFailure("the writer runs before the feed hub is active") }
        return Change(position: ChangePosition(unchecked: lineage, sequence: sequence), events: events)
    }

    /// A group commit's record is in the journal: durable now (synced), or at the next sync.
    func feedJournaled(_ sequence: UInt64, entries: [JournalEntry], synced: Bool) {
        assertOnWriterThread()
        guard feedIsOn else { return }
        let events = Self.feedEvents(entries)
        feedRecords.append(FeedRecord(sequence: sequence, events: events, committedAt: options.clock.now))
        unsyncedFeed.append(change(sequence, events))
        if synced { feedSynced() }
    }

    /// The journal was synced: every change journaled so far is durable.
    func feedSynced() {
        assertOnWriterThread()
        for change in unsyncedFeed { context.feed.ready(change) }
        unsyncedFeed.removeAll(keepingCapacity: true)
    }

    /// Writes and syncs the journal record that holds a direct commit's position, before that
    /// commit: a crash in between leaves the position with an empty change, never a gap.
    func writeMarker(_ commit: MarkedCommit) throws(OpLogError) -> UInt64? {
        assertOnWriterThread()
        guard feedIsOn else { return nil }
        let sequence = try writeJournalRecord([.marker(commit)], sync: true)
        feedRecords.append(FeedRecord(sequence: sequence, events: nil, committedAt: options.clock.now))
        feedSynced()
        return sequence
    }

    /// Writes feed records in `txn`, then applies the retention policy. A marker's record
    /// (`events` nil) is written as an empty change only if its direct commit did not write one.
    ///
    /// `heldThrough`: once `txn` commits, LMDB holds every feed record up to here (an apply: its
    /// last sequence; a direct commit: the applied sequence). A direct commit writes its record
    /// ahead of journaled positions not applied yet, so the history's oldest position is never
    /// above `heldThrough + 1`, and retention removes nothing above `heldThrough`: the positions
    /// still to come from the journal would otherwise be skipped by a reader starting at the
    /// oldest, or left as a gap in the history.
    func writeFeed(_ txn: borrowing WriteTransaction, _ records: [FeedRecord], heldThrough: UInt64, deflater: Deflater?) throws {
        guard options.feedRetentionBytes != nil, let feed = tables.feed, !records.isEmpty else { return }
        var state = try tables.readFeedState(txn) ?? FeedStateRecord(oldest: 1, bytes: 0)
        for record in records {
            let key = StoreTables.feedKey(record.sequence)
            let existing = try txn.get(feed, key: key)
            if record.events == nil && existing != nil { continue }
            let body = try FeedChangeRecord.encode(committedAt: record.committedAt, events: record.events ?? [])
            let value = try RecordFrame.encode(kind: .feedChange, key: key, body: body, deflater: deflater)
            if let existing { state.bytes -= min(state.bytes, UInt64(existing.count)) }
            try txn.put(feed, key: key, value: value)
            state.bytes += UInt64(value.count)
        }
        try applyFeedRetention(txn, &state, heldThrough: heldThrough)
        try tables.writeFeedState(txn, state)
    }

    /// Removes the oldest changes the policy no longer keeps: beyond `feedRetentionBytes` or older
    /// than `feedRetentionMilliseconds`, unless a saved consumer position still needs them; beyond
    /// `feedRetentionBytesMax` always.
    private func applyFeedRetention(_ txn: borrowing WriteTransaction, _ state: inout FeedStateRecord, heldThrough: UInt64) throws {
        guard let retention = options.feedRetentionBytes, let feed = tables.feed else { return }
        // The slowest consumer needs every change after its saved position.
        let heldAfter = try tables.readCursors(txn).values.map(\.sequence).min()
        let now = options.clock.now
        try txn.withWriteCursor(feed) { cursor in
            var entry = try cursor.first()
            while let current = entry, let sequence = StoreTables.feedSequence(current.key), sequence <= heldThrough {
                let overMax = state.bytes > UInt64(options.feedRetentionBytesMax)
                if !overMax {
                    if let heldAfter, sequence > heldAfter { break }
                    var expired = state.bytes > UInt64(retention)
                    if !expired, let age = options.feedRetentionMilliseconds {
                        expired = now - (try StoreTables.feedCommitTime(current)) > age
                    }
                    if !expired { break }
                }
                state.bytes -= min(state.bytes, UInt64(current.value.count))
                try cursor.deleteCurrent()
                entry = try cursor.first()
            }
            let firstKept = entry.flatMap { StoreTables.feedSequence($0.key) } ?? .max
            state.oldest = min(firstKept, heldThrough + 1)
        }
    }

    /// Saves (or, nil, removes) a consumer's position. Checked in the write transaction, so no
    /// apply can remove the history after the position between the check and the commit.
    func saveFeedPosition(_ position: ChangePosition?, for consumer: String) throws(OpLogError) {
        guard feedIsOn, let cursors = tables.cursors else {
            throw .invalidArgument("the change feed is off: set StoreOptions.feedRetentionBytes to keep one")
        }
        let key = Array(consumer.utf8)
        let latest = context.feed.publishedThrough
        try writeGrowing { txn in
            guard let position else {
                _ = try txn.delete(cursors, key: key)
                return
            }
            let saved = try tables.readCursors(txn)
            if saved[consumer] == nil && saved.count >= Limits.feedConsumersMax {
                throw OpLogError.limitExceeded(.feedConsumers, value: saved.count + 1, maximum: Limits.feedConsumersMax)
            }
            guard let lineage = context.feed.lineage, position.lineage == lineage else {
                throw OpLogError.foreignLineage(expected: context.feed.lineage ?? position.lineage, found: position.lineage)
            }
            guard position.sequence <= latest else { throw OpLogError.beyondFeed(requested: position.sequence, latest: latest) }
            let oldest = try tables.readFeedState(txn)?.oldest ?? context.feed.firstInMemory
            guard position.sequence + 1 >= oldest else { throw OpLogError.belowRetention(requested: position.sequence, oldest: oldest) }
            let body = FeedCursorRecord.encode(position)
            try txn.put(
                cursors, key: key,
                value: RecordFrame.encode(kind: .feedCursor, codec: .raw, key: key, stored: body, rawLength: body.count))
        }
    }

    /// Erasure: removes the document's events from every retained change (the change at the
    /// deletion's own position keeps its tombstone). Runs in the deletion's commit, after the
    /// journal was applied, so LMDB holds every change that could mention the document.
    func eraseFromFeed(_ txn: borrowing WriteTransaction, _ document: DocumentID) throws {
        guard options.feedRetentionBytes != nil, let feed = tables.feed else { return }
        var state = try tables.readFeedState(txn) ?? FeedStateRecord(oldest: 1, bytes: 0)
        var rewritten: [(key: [UInt8], value: [UInt8], oldBytes: Int)] = []
        try txn.withCursor(feed) { cursor in
            var entry = try cursor.first()
            while let current = entry {
                let (_, committedAt, events) = try StoreTables.decodeFeedChange(current)
                let kept = events.filter { $0.erasable(of: document) == false }
                if kept.count != events.count {
                    let body = try FeedChangeRecord.encode(committedAt: committedAt, events: kept)
                    let value = try RecordFrame.encode(kind: .feedChange, key: current.key, body: body, compressionLevel: 1)
                    rewritten.append((current.key, value, current.value.count))
                }
                entry = try cursor.next()
            }
        }
        for record in rewritten {
            try txn.put(feed, key: record.key, value: record.value)
            state.bytes = state.bytes - min(state.bytes, UInt64(record.oldBytes)) + UInt64(record.value.count)
        }
        if !rewritten.isEmpty { try tables.writeFeedState(txn, state) }
    }
}

extension ChangeEvent {
    /// Whether erasing `document` removes this event: everything of the document but its
    /// deletion, the tombstone that stays.
    func erasable(of document: DocumentID) -> Bool {
        switch self {
        case .appended(let owner, _), .truncated(let owner, _), .snapshotPut(let owner, _, _, _), .snapshotDeleted(let owner, _):
            return owner == document
        case .documentDeleted, .epochRaised:
            return false
        }
    }
}
