import OpLogStorage

/// Reading the change feed: LMDB's `feed` database for applied positions, the feed hub's memory
/// for published ones not applied yet, and waiting at the hub for new ones.
extension Reader {
    /// Where a feed read that resumes after `position` starts; nil starts at the oldest retained.
    /// - Throws: `foreignLineage`, `belowRetention`, `beyondFeed`.
    func feedStart(after position: ChangePosition?) throws(OpLogError) -> UInt64 {
        if !feed.isActive && !context.options.readOnly {
            throw .invalidArgument("the change feed is off: set StoreOptions.feedRetentionBytes to keep one")
        }
        let (stored, state) = try tables.read { txn in (try tables.readLineage(txn), try tables.readFeedState(txn)) }
        var found = feed.lineage
        if found == nil { found = stored }
        guard let lineage = found else {
            // From version 3 on the lineage is written with the format record: its absence is damage.
            if let format = try tables.read({ txn in try tables.readFormat(txn) }), format.version >= 3 {
                throw .corruption(CorruptionLocation(area: "meta"), detail: "the store's lineage record is missing (damaged key?)")
            }
            throw .invalidArgument("this store has no change feed yet (format version 2, opened read-only)")
        }
        let newest = feed.isActive ? feed.publishedThrough : try newestStoredPosition()
        // Without history in LMDB, the feed starts with what memory holds.
        let oldest = state?.oldest ?? (feed.isActive ? feed.firstInMemory : newest + 1)
        guard let position else { return oldest - 1 }
        guard position.lineage == lineage else { throw .foreignLineage(expected: lineage, found: position.lineage) }
        guard position.sequence <= newest else { throw .beyondFeed(requested: position.sequence, latest: newest) }
        guard position.sequence + 1 >= oldest else { throw .belowRetention(requested: position.sequence, oldest: oldest) }
        return position.sequence
    }

    /// The change at `sequence` as this store's feed holds it (published in memory, or in LMDB);
    /// nil when it is below the retained history or not published.
    func heldChange(at sequence: UInt64) throws(OpLogError) -> Change? {
        assert(sequence >= 1, "feed position 0")
        switch feed.source(after: sequence - 1, limit: 1) {
        case .memory(let changes): return changes.first
        case .store(let through):
            do throws(OpLogError) {
                return try storedChanges(after: sequence - 1, through: through, limit: 1).first
            } catch {
                if case .belowRetention = error { return nil }
                throw error
            }
        case .waitForMore, .closed: return nil
        }
    }

    /// The newest feed record LMDB holds (a read-only store's newest position).
    func newestFeedPosition() throws(OpLogError) -> UInt64 { try newestStoredPosition() }

    /// The newest position LMDB's history holds without a gap: at most the applied sequence. A
    /// direct commit (a snapshot put) writes its record at once, ahead of journaled positions
    /// still unapplied, which a read-only store cannot see.
    private func newestStoredPosition() throws(OpLogError) -> UInt64 {
        guard let database = tables.feed else { return 0 }
        return try tables.read { txn in
            let last = try txn.withCursor(database) { cursor in try cursor.last().flatMap { StoreTables.feedSequence($0.key) } ?? 0 }
            return min(last, try tables.readAppliedSequence(txn))
        }
    }

    /// Up to `limit` changes after `after`, in order, waiting for the next one if none is
    /// published yet. Empty once the store closes (or, read-only, at the end of LMDB's history).
    func feedBatch(after: UInt64, limit: Int) async throws(OpLogError) -> [Change] {
        while true {
            if Task.isCancelled { return [] }
            guard feed.isActive else { return try storedChanges(after: after, through: try newestStoredPosition(), limit: limit) }
            switch feed.source(after: after, limit: limit) {
            case .store(let through): return try storedChanges(after: after, through: through, limit: limit)
            case .memory(let changes): return changes
            case .closed: return []
            case .waitForMore: await feed.waitForMore(after: after)
            }
        }
    }

    /// Feed records after `after` up to `through` from LMDB, consecutive from `after + 1`.
    private func storedChanges(after: UInt64, through: UInt64, limit: Int) throws(OpLogError) -> [Change] {
        var found = feed.lineage
        if found == nil { found = try tables.read { txn in try tables.readLineage(txn) } }
        guard let database = tables.feed, let lineage = found else { return [] }
        let (entries, oldest) = try tables.read { txn in
            let oldest = try tables.readFeedState(txn)?.oldest ?? 1
            let entries = try txn.withCursor(database) { cursor in
                var entries: [Entry] = []
                var entry = try cursor.seek(atOrAfter: StoreTables.feedKey(after + 1))
                while let current = entry, entries.count < limit, let sequence = StoreTables.feedSequence(current.key), sequence <= through
                {
                    entries.append(current)
                    entry = try cursor.next()
                }
                return entries
            }
            return (entries, oldest)
        }
        var changes: [Change] = []
        changes.reserveCapacity(entries.count)
        for entry in entries {
            let (sequence, _, events) = try StoreTables.decodeFeedChange(entry)
            let expected = after + 1 + UInt64(changes.count)
            guard sequence == expected else {
                // Retention removed the position while the reader was behind, or a record is missing.
                if expected < oldest { throw .belowRetention(requested: after, oldest: oldest) }
                throw .corruption(CorruptionLocation(area: "feed", revision: expected), detail: "feed record \(expected) is missing")
            }
            changes.append(Change(position: ChangePosition(unchecked: lineage, sequence: sequence), events: events))
        }
        if changes.isEmpty, after + 1 < oldest { throw .belowRetention(requested: after, oldest: oldest) }
        if changes.isEmpty, through != .max, after < through {
            throw .corruption(CorruptionLocation(area: "feed", revision: after + 1), detail: "feed record \(after + 1) is missing")
        }
        return changes
    }
}

/// The store's changes in position order, each once, only durable ones: retained history first,
/// then live (see `OpLogStore.changes(after:)`). Iterating never holds LMDB pages between calls and
/// buffers at most `Limits.feedBatchChanges` changes: a slow consumer reads from the store at its
/// own pace instead of filling memory.
public struct ChangeFeed: AsyncSequence, Sendable {
    /// One change at one position.
    public typealias Element = Change
    let reader: Reader
    let after: UInt64

    /// The sequence the feed resumes after: its first change is at `resumesAfter + 1`.
    public var resumesAfter: UInt64 { after }

    /// An iterator from `resumesAfter` on.
    public func makeAsyncIterator() -> Iterator { Iterator(reader: reader, last: after) }

    /// Reads the feed in batches.
    public struct Iterator: AsyncIteratorProtocol {
        let reader: Reader
        var last: UInt64
        var buffer: [Change] = []
        var index = 0

        /// The next change; nil once the store closes (or a read-only store's history ends) or the
        /// task is cancelled.
        /// - Throws: `belowRetention` when the consumer fell behind the feed's retention;
        ///   `corruption` for a damaged feed record.
        public mutating func next() async throws -> Change? {
            if index == buffer.count {
                buffer = try await reader.feedBatch(after: last, limit: Limits.feedBatchChanges)
                index = 0
                if buffer.isEmpty { return nil }
            }
            let change = buffer[index]
            index += 1
            assert(change.position.sequence == last + 1, "the feed skipped from \(last) to \(change.position.sequence)")
            last = change.position.sequence
            return change
        }
    }
}
