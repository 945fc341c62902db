/// Reads, subscriptions and the commit stream. Reads are synchronous and short (one or a few LMDB
/// read transactions that end before they return), never wait for the writer, and see every
/// acknowledged op.
extension OpLogStore {
    /// Ops of `document` from revision `from` upward, at most `limit` of them, in revision order.
    ///
    /// Returns an empty array for `from == head + 1` (nothing new); an unknown document reads as an
    /// empty one (head 0).
    /// - Throws: `belowFloor` (with the snapshot hint) when `from` was truncated; `beyondHead` when
    ///   `from > head + 1`; `invalidArgument` for `from` 0 or `limit` below 1; `limitExceeded`
    ///   above `Limits.readOpsMax`; `corruption` naming the damaged record; `closed`.
    public func ops(of document: DocumentID, from: Revision, limit: Int = 1_000) throws(OpLogError) -> [StoredOp] {
        try reader.ops(of: document, from: from, limit: limit)
    }

    /// The document's head revision (0 for an unknown document).
    /// - Throws: `corruption`; `closed`.
    public func head(of document: DocumentID) throws(OpLogError) -> Revision {
        try reader.head(of: document)
    }

    /// The document's figures, or nil for an unknown document.
    /// - Throws: `corruption`; `closed`.
    public func info(of document: DocumentID) throws(OpLogError) -> DocumentInfo? {
        try reader.info(of: document)
    }

    /// Document IDs in byte order, starting after `after` (nil: from the first), at most `limit`.
    /// - Throws: `invalidArgument` for a limit below 1; `limitExceeded` above
    ///   `Limits.listDocumentsMax`; `corruption`; `closed`.
    public func documents(after: DocumentID? = nil, limit: Int = 1_000) throws(OpLogError) -> [DocumentID] {
        try reader.documents(after: after, limit: limit)
    }

    /// The newest snapshot of `document` at or below `revision` (default: any), or nil.
    /// - Throws: `corruption`; `closed`.
    public func snapshot(of document: DocumentID, atOrBelow revision: Revision = .max) throws(OpLogError) -> Snapshot? {
        try reader.snapshot(of: document, atOrBelow: revision)
    }

    /// All snapshots of `document`, oldest first.
    /// - Throws: `corruption`; `closed`.
    public func snapshots(of document: DocumentID) throws(OpLogError) -> [SnapshotInfo] {
        try reader.snapshots(of: document)
    }

    /// The state of `document` at `revision` (default: head): the newest snapshot at or below it,
    /// then the ops after it through `reducer`. Memory stays bounded by the state plus one batch of
    /// `Limits.replayBatchOps` ops; the reducer runs outside LMDB transactions.
    /// - Returns: the state and the revision it stands at.
    /// - Throws: `beyondHead`; `belowFloor` when `revision` was truncated and no snapshot covers it;
    ///   `reducerFailed` with the op's revision; `snapshotUndecodable`; `corruption`; `closed`.
    public func replay<R: Reducer>(
        _ document: DocumentID, to revision: Revision? = nil, with reducer: R
    ) throws(OpLogError) -> (state: R.State, revision: Revision) {
        try reader.replay(document, to: revision, with: reducer)
    }

    /// Subscribes to `document` from revision `from` (1 for everything retained, `head + 1` for only
    /// new ops). See `OpSubscription`.
    /// - Throws: `belowFloor` (with the snapshot hint) when `from` was truncated; `beyondHead` when
    ///   `from > head + 1`; `invalidArgument` for a `bufferLimit` outside 1 ... `Limits.readOpsMax`;
    ///   `readOnly` (live ops come from the writing process's writer); `closed`.
    public func subscribe(to document: DocumentID, from: Revision, bufferLimit: Int = 1_000) throws(OpLogError) -> OpSubscription {
        guard (1...Limits.readOpsMax).contains(bufferLimit) else {
            throw .invalidArgument("bufferLimit must be 1 ... \(Limits.readOpsMax)")
        }
        _ = try requireWriter()
        // Fails now, with the same errors as a read, rather than at the first `next()`.
        _ = try reader.ops(of: document, from: from, limit: 1)
        return OpSubscription(reader: reader, document: document, from: from, bufferLimit: bufferLimit)
    }

    /// The store's lineage (see `StoreLineage`): random at creation, kept by backups. Nil only in a
    /// read-only open of a store from before format version 3 (a writable open adds one).
    /// - Throws: `corruption` when the record is damaged, or missing from a version 3 store; `closed`.
    public func lineage() throws(OpLogError) -> StoreLineage? {
        try reader.lineage()
    }

    /// Every change of the store after `position`, in position order, each once: the retained
    /// history first, then live (FORMAT.md, "The change feed"). `nil` starts at the oldest retained
    /// position. A change is one group commit (all its documents), one snapshot put or deletion,
    /// or one document deletion. Only durable changes are delivered: in `full`, at their
    /// acknowledgement; in the weaker modes, at the next journal sync (an apply, a snapshot,
    /// `checkpoint()`, close). The sequence ends when the store closes; in a read-only store, at the
    /// end of its history.
    /// - Throws: `foreignLineage` for a position of another store; `beyondFeed` for one the store
    ///   has not reached; `belowRetention` (with the oldest position kept) when the feed no longer
    ///   holds what follows it (`StoreOptions.feedRetentionBytes`); `closed`.
    public func changes(after position: ChangePosition? = nil) throws(OpLogError) -> ChangeFeed {
        try checkOpen()
        return ChangeFeed(reader: reader, after: try reader.feedStart(after: position))
    }

    /// The consumer's saved position (`savePosition(_:for:)`); nil if it has none.
    /// - Throws: `corruption`; `closed`.
    public func savedPosition(for consumer: String) throws(OpLogError) -> ChangePosition? {
        try checkOpen()
        return try savedPositions()[consumer]
    }

    /// Every saved consumer position, by consumer name.
    /// - Throws: `corruption`; `closed`.
    public func savedPositions() throws(OpLogError) -> [String: ChangePosition] {
        try checkOpen()
        return try reader.tables.read { txn in try reader.tables.readCursors(txn) }
    }

    /// The newest position of the change feed; nil before the first change.
    public func latestPosition() throws(OpLogError) -> ChangePosition? {
        try checkOpen()
        guard let lineage = try lineage() else { return nil }
        let latest = reader.feed.isActive ? reader.feed.publishedThrough : try reader.newestFeedPosition()
        return latest == 0 ? nil : ChangePosition(unchecked: lineage, sequence: latest)
    }

    /// Live subscriptions (for figures and tests).
    public var subscriberCount: Int { reader.subscriptions.count }

    /// Calls `observer` with every commit from now on (appends, truncations, snapshot writes and
    /// deletions, document deletions), once each, in commit order, right after it became durable
    /// and visible to reads. The observer runs on the writer thread and must only record what it
    /// needs and return; a slow observer slows every writer. Ends when the returned observation is
    /// cancelled or released.
    public func observeCommits(_ observer: @escaping @Sendable (StoreCommit) -> Void) -> CommitObservation {
        CommitObservation(events: context.events, token: context.events.add(observer))
    }

    /// What the writer thread has done since open: group commits, ops, sync time, LMDB commits.
    public func writerCounters() -> WriterCounters {
        writer?.counters.withLock { $0 } ?? WriterCounters()
    }
}
