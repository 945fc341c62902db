/// What the scheduler knows about one document's need for compaction.
struct CompactionBacklog: Sendable {
    var opsSinceSnapshot: UInt64 = 0
    var bytesSinceSnapshot = 0
    /// Server time of the oldest op not yet covered by a snapshot.
    var oldestUnsnapshottedMilliseconds: Int64?
    /// A snapshot was written or more exist than the policy keeps: truncation and deletion are due.
    var needsRetention = false
    /// Retention waits for the ops below a candidate floor to age past `keepMilliseconds`.
    var retentionAfterMilliseconds: Int64?
    /// After a failure the document is left alone until then.
    var retryAfterMilliseconds: Int64 = 0

    /// Whether the policy asks for a snapshot now.
    func wantsSnapshot(_ policy: CompactionPolicy, now: Int64) -> Bool {
        opsSinceSnapshot >= UInt64(policy.snapshotEveryOps) || bytesSinceSnapshot >= policy.snapshotEveryBytes
            || (oldestUnsnapshottedMilliseconds.map { now - $0 >= policy.snapshotAfterMilliseconds } ?? false)
    }

    /// Whether anything is due now.
    func isDue(_ policy: CompactionPolicy, now: Int64) -> Bool {
        guard retryAfterMilliseconds <= now else { return false }
        return wantsSnapshot(policy, now: now) || (needsRetention && (retentionAfterMilliseconds.map { $0 <= now } ?? true))
    }

    /// Adds back a backlog that a failed step had taken, so the document is retried in full.
    mutating func absorb(_ other: CompactionBacklog) {
        opsSinceSnapshot += other.opsSinceSnapshot
        bytesSinceSnapshot += other.bytesSinceSnapshot
        oldestUnsnapshottedMilliseconds = [oldestUnsnapshottedMilliseconds, other.oldestUnsnapshottedMilliseconds].compactMap { $0 }.min()
        needsRetention = needsRetention || other.needsRetention
    }

    /// The earliest future time at which this document becomes due by the clock alone, if any.
    func nextDeadline(_ policy: CompactionPolicy, now: Int64) -> Int64? {
        if retryAfterMilliseconds > now { return retryAfterMilliseconds }
        var deadlines: [Int64] = []
        if let oldest = oldestUnsnapshottedMilliseconds { deadlines.append(oldest + policy.snapshotAfterMilliseconds) }
        if needsRetention, let after = retentionAfterMilliseconds { deadlines.append(after) }
        return deadlines.filter { $0 > now }.min()
    }
}

/// The scheduler's bookkeeping: the backlog per document and what it has done.
struct CompactionBook: Sendable {
    var backlog: [DocumentID: CompactionBacklog] = [:]
    var statistics = CompactionStatistics()

    /// Records what the store made durable.
    mutating func record(_ events: [StoreEvent]) {
        for event in events {
            switch event {
            case .appended(let document, let ops):
                var entry = backlog[document] ?? CompactionBacklog()
                entry.opsSinceSnapshot += UInt64(ops.count)
                entry.bytesSinceSnapshot += ops.reduce(0) { $0 + $1.payload.count }
                if entry.oldestUnsnapshottedMilliseconds == nil {
                    entry.oldestUnsnapshottedMilliseconds = ops.first?.serverTimeMilliseconds
                }
                backlog[document] = entry
            case .snapshotWritten(let document, _):
                backlog[document, default: CompactionBacklog()].needsRetention = true
            case .documentDeleted(let document):
                backlog[document] = nil
            case .truncated, .snapshotDeleted:
                break
            }
        }
    }

    /// Documents due now, the largest backlog first.
    func dueDocuments(_ policy: CompactionPolicy, now: Int64) -> [DocumentID] {
        backlog.filter { $0.value.isDue(policy, now: now) }
            .sorted { $0.value.opsSinceSnapshot > $1.value.opsSinceSnapshot }
            .map(\.key)
    }

    /// When the clock alone will next make a document due.
    func nextDeadline(_ policy: CompactionPolicy, now: Int64) -> Int64? {
        backlog.values.compactMap { $0.nextDeadline(policy, now: now) }.min()
    }
}
