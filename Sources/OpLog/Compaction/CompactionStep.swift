/// One document's compaction: snapshot if the policy asks, truncate to what it keeps, delete the
/// snapshots it does not keep. Each step is one public store call.
extension CompactionScheduler {
    func compactDocument(_ document: DocumentID) async throws {
        guard let reducer = reducerFor(document), let before = try store.info(of: document) else {
            book.withLock { _ = $0.backlog.removeValue(forKey: document) }
            return
        }
        let now = clock.now
        let trigger = book.withLock { book in
            // Reset what this step handles before the work: appends that arrive meanwhile count
            // toward the next snapshot. A retention-only step keeps the snapshot backlog.
            var entry = book.backlog[document] ?? CompactionBacklog()
            let wantsSnapshot = entry.wantsSnapshot(policy, now: now)
            if wantsSnapshot {
                entry = CompactionBacklog()
            } else {
                entry.needsRetention = false
                entry.retentionAfterMilliseconds = nil
            }
            book.backlog[document] = entry
            return wantsSnapshot
        }
        let newest = before.snapshots.last?.revision ?? 0
        if trigger && before.head > newest {
            let (bytes, revision) = try reducer.makeSnapshot(store, document)
            if revision > newest {
                try await store.putSnapshot(bytes, of: document, at: revision, epoch: epochFor(document))
                metrics.snapshots.increment()
                book.withLock { book in
                    book.statistics.snapshotsWritten += 1
                    book.statistics.snapshotBytesWritten += bytes.count
                    // This snapshot's own event set needsRetention; the retention below handles it.
                    book.backlog[document]?.needsRetention = false
                }
            }
        }
        try await applyRetention(document, before: before)
    }

    private func applyRetention(_ document: DocumentID, before: DocumentInfo) async throws {
        let snapshots = try store.snapshots(of: document).map(\.revision)
        guard let newest = snapshots.last else { return }
        var floor = try store.info(of: document)?.floor ?? 1
        // The highest snapshot that leaves keepOps ops (and every op younger than keepMilliseconds)
        // between it and the newest snapshot becomes the floor's cover.
        let now = clock.now
        for candidate in snapshots.reversed() where candidate + UInt64(policy.keepOps) <= newest && candidate + 1 > floor {
            if policy.keepMilliseconds > 0, let last = try store.ops(of: document, from: candidate, limit: 1).first,
                now - last.serverTimeMilliseconds < policy.keepMilliseconds
            {
                // Too young for now: come back when the clock says the op has aged enough.
                let due = last.serverTimeMilliseconds + policy.keepMilliseconds
                book.withLock { book in
                    book.backlog[document, default: CompactionBacklog()].needsRetention = true
                    let previous = book.backlog[document]?.retentionAfterMilliseconds ?? .max
                    book.backlog[document]?.retentionAfterMilliseconds = min(previous, due)
                }
                continue
            }
            try await store.truncate(document, below: candidate + 1, epoch: epochFor(document))
            let truncated = candidate + 1 - floor
            floor = candidate + 1
            metrics.opsTruncated.increment(by: Int64(truncated))
            book.withLock { $0.statistics.opsTruncated += truncated }
            break
        }
        // Kept: the newest keepSnapshots, milestones, the floor's cover, and the oldest snapshot above
        // the floor — the next floor's cover once keepOps newer ops exist, so truncation progresses
        // even when keepOps spans more than keepSnapshots snapshots.
        let nextCover = snapshots.first { $0 + 1 > floor }
        let kept = Set(snapshots.suffix(policy.keepSnapshots)).union(
            snapshots.filter { revision in
                revision + 1 == floor || revision == nextCover || (policy.milestoneEveryRevisions.map { revision % $0 == 0 } ?? false)
            })
        for revision in snapshots where !kept.contains(revision) && revision + 1 != floor {
            try await store.deleteSnapshot(of: document, at: revision, epoch: epochFor(document))
            book.withLock { $0.statistics.snapshotsDeleted += 1 }
        }
        if let after = try store.info(of: document) {
            let reclaimed = max(0, before.storedBytes - after.storedBytes)
            metrics.bytesReclaimed.increment(by: Int64(reclaimed))
            book.withLock { $0.statistics.bytesReclaimed += reclaimed }
        }
    }
}
