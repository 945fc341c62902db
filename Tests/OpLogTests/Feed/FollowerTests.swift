import Foundation
import OpLog
import OpLogTestSupport
import OpLogText
import Testing

/// Follower stores: a store opened as `.follower` reproduces its primary exactly from the
/// primary's feed, idempotently, refusing gaps, foreign lineages, divergence and client writes,
/// resuming after its own reopen, and continuing the history once promoted.
@Suite struct FollowerTests {
    static func followerOptions(_ durability: Durability = .full) -> StoreOptions {
        var options = FeedTests.feedOptions(durability)
        options.role = .follower
        return options
    }

    /// Everything a reader can see of a store, as one comparable text: every document's head,
    /// floor and retained ops (every field), its snapshots with their bytes and times, the
    /// lineage and the newest position.
    static func contents(_ store: OpLogStore) throws -> [String] {
        var lines = [
            "lineage \(try store.lineage().map { "\($0)" } ?? "-")", "latest \(try store.latestPosition().map { "\($0)" } ?? "-")",
        ]
        var after: DocumentID?
        while true {
            let page = try store.documents(after: after, limit: 100)
            for document in page {
                guard let info = try store.info(of: document) else { continue }
                lines.append("doc \(document) head \(info.head) floor \(info.floor) ops \(info.opCount)")
                var from = info.floor
                while from <= info.head {
                    let ops = try store.ops(of: document, from: from, limit: 1_000)
                    for op in ops {
                        lines.append(
                            "  \(op.revision) \(op.opID) \(op.author) \(op.clientTimeMilliseconds.map { "\($0)" } ?? "-") "
                                + "\(op.serverTimeMilliseconds) \(op.payload)")
                    }
                    guard let last = ops.last else { break }
                    from = last.revision + 1
                }
                for snapshot in try store.snapshots(of: document) {
                    let bytes = try store.snapshot(of: document, atOrBelow: snapshot.revision)?.bytes ?? []
                    lines.append("  snapshot \(snapshot.revision) \(snapshot.createdAtMilliseconds) \(bytes)")
                }
            }
            guard let last = page.last, page.count == 100 else { break }
            after = last
        }
        return lines
    }

    /// A primary's history of every kind: batches, retries, truncations behind snapshots, snapshot
    /// deletions, document deletions (with erasure), epoch raises and fenced appends.
    /// `idBase` keeps the op IDs of several histories in one store apart.
    static func makeHistory(_ primary: OpLogStore, seed: UInt64, idBase: UInt64 = 0) async throws {
        var random = SplitMix64(seed: seed)
        var next: UInt64 = idBase
        for step in 0..<120 {
            let document = doc("d\(random.next() % 4)")
            let head = try primary.head(of: document)
            switch random.next() % 10 {
            case 0, 1, 2, 3:
                next += 1
                _ = try await primary.append([op(next, "s\(step)"), op(next + 1000, "t\(step)")], to: document, epoch: 3)
                next += 1
            case 4:
                next += 1
                _ = try await primary.append(batch: [
                    DocumentAppend(document: document, ops: [op(next, "b\(step)")], epoch: 3),
                    DocumentAppend(document: doc("batch"), ops: [op(next + 5000, "c\(step)")], epoch: 3),
                ])
            case 5 where head >= 2:
                try await primary.putSnapshot(Array("state \(step)".utf8), of: document, at: head - 1, epoch: 3)
                try await primary.truncate(document, below: head, epoch: 3)
            case 6 where head >= 1:
                try await primary.putSnapshot(Array("extra \(step)".utf8), of: document, at: head, epoch: 3)
                if random.next() % 2 == 0, try primary.info(of: document)?.floor ?? 1 <= head {
                    try await primary.deleteSnapshot(of: document, at: head, epoch: 3)
                }
            case 7 where head >= 1 && random.next() % 3 == 0:
                try await primary.deleteDocument(document, epoch: 3)
            case 8:
                // A retry of the last op: nothing new, no change.
                if next > idBase, head > 0 { _ = try? await primary.append([op(next, "s")], to: document, epoch: 3) }
            default:
                try await primary.checkpoint()
            }
            if step == 0 { try await primary.raiseEpoch(3, for: FencingScope(document: doc("batch"))) }
        }
    }

    /// Property test: a random history of every kind on the primary; a follower applying its feed
    /// in uneven batches, each delivered twice, with reopens between them, ends identical to the
    /// primary, `verify` clean on both, and its own feed re-serves the primary's, position for
    /// position. Seeded (`OPLOG_SEED` repeats a run).
    @Test(arguments: [Durability.full, .lastAppendsMayBeLost])
    func aFollowerApplyingTheFeedEndsIdenticalAndReservesIt(durability: Durability) async throws {
        let seed = testSeed()
        print("follower property test (\(durability)): seed \(seed) (OPLOG_SEED=\(seed) repeats it)")
        let primaryDirectory = TemporaryDirectory("oplog-primary")
        let followerDirectory = TemporaryDirectory("oplog-follower")
        defer {
            primaryDirectory.remove()
            followerDirectory.remove()
        }
        try await withStore(primaryDirectory.path, options: FeedTests.feedOptions(durability)) { primary async throws in
            try await Self.makeHistory(primary, seed: seed)
            // In the weaker mode the last changes enter the feed at the next journal sync.
            try await primary.checkpoint()
            let changes = try await FeedTests.readAll(primary)
            #expect(!changes.isEmpty)
            var random = SplitMix64(seed: seed ^ 0x5EED)
            var index = 0
            var reopens = 0
            while index < changes.count {
                try await withStore(followerDirectory.path, options: Self.followerOptions(durability)) { follower async throws in
                    #expect(follower.role == .follower)
                    // Where the follower resumes: its newest position, whatever it was told before.
                    index = Int(try follower.latestPosition()?.sequence ?? 0)
                    for _ in 0..<(1 + random.next() % 6) where index < changes.count {
                        let end = min(changes.count, index + 1 + Int(random.next() % 9))
                        // Delivered twice, the second time from a little earlier.
                        try await follower.apply(contentsOf: Array(changes[index..<end]))
                        try await follower.apply(contentsOf: Array(changes[max(0, index - Int(random.next() % 3))..<end]))
                        index = end
                    }
                }
                reopens += 1
            }
            try await withStore(followerDirectory.path, options: Self.followerOptions(durability)) { follower async throws in
                try await follower.checkpoint()
                let followerContents = try Self.contents(follower)
                let primaryContents = try Self.contents(primary)
                #expect(followerContents == primaryContents)
                #expect(try await follower.verify().problems.isEmpty)
                #expect(try await primary.verify().problems.isEmpty)
                // The follower's own feed re-serves the primary's history, position for position.
                let served = try await FeedTests.readAll(follower)
                #expect(served == changes)
                // Everything again, at once: all skipped as already applied.
                try await follower.apply(contentsOf: changes)
                #expect(try Self.contents(follower) == primaryContents)
            }
            print("follower property test: \(changes.count) changes, \(reopens) follower reopens")
        }
    }

    @Test func aFollowerResumesAfterItsReopenAndRefusesGapsForeignLineagesAndDivergence() async throws {
        let primaryDirectory = TemporaryDirectory("oplog-primary")
        let followerDirectory = TemporaryDirectory("oplog-follower")
        let otherDirectory = TemporaryDirectory("oplog-other")
        defer {
            primaryDirectory.remove()
            followerDirectory.remove()
            otherDirectory.remove()
        }
        try await withStore(primaryDirectory.path, options: FeedTests.feedOptions()) { primary async throws in
            try await Self.makeHistory(primary, seed: 0xBEEF)
            let changes = try await FeedTests.readAll(primary)
            let half = changes.count / 2
            try await withStore(followerDirectory.path, options: Self.followerOptions()) { follower async throws in
                try await follower.apply(contentsOf: Array(changes[..<half]))
            }
            try await withStore(followerDirectory.path, options: Self.followerOptions()) { follower async throws in
                #expect(try follower.latestPosition() == changes[half - 1].position)
                #expect(try follower.lineage() == primary.lineage())
                let before = try Self.contents(follower)
                // A gap.
                await #expect(
                    throws: OpLogError.changeGap(expected: changes[half].position.sequence, found: changes[half + 1].position.sequence)
                ) {
                    try await follower.apply(changes[half + 1])
                }
                // Another lineage.
                let foreign = try ChangePosition(
                    lineage: StoreLineage(bytes: Array(repeating: 0x5A, count: 16))!, sequence: changes[half].position.sequence)
                await #expect(throws: OpLogError.foreignLineage(expected: try primary.lineage()!, found: foreign.lineage)) {
                    try await follower.apply(Change(position: foreign, events: changes[half].events))
                }
                // Another change at an applied position.
                let applied = changes[half - 2]
                let other = Change(position: applied.position, events: [.epochRaised(scope: FencingScope(document: doc("x")), epoch: 99)])
                await #expect(throws: OpLogError.self) { try await follower.apply(other) }
                do {
                    try await follower.apply(other)
                } catch let error as OpLogError {
                    guard case .divergence(let position, _) = error else {
                        Issue.record("expected a divergence, got \(error)")
                        return
                    }
                    #expect(position == applied.position)
                }
                // Ops that do not continue the head, at the next position.
                let wrongOps = StoredOp(
                    revision: 77, opID: OpID(high: 1, low: 1), author: [], clientTimeMilliseconds: nil, serverTimeMilliseconds: 1,
                    payload: [1])
                let contradicting = Change(position: changes[half].position, events: [.appended(document: doc("d0"), ops: [wrongOps])])
                await #expect(throws: OpLogError.self) { try await follower.apply(contradicting) }
                #expect(try Self.contents(follower) == before)
                try await follower.apply(contentsOf: Array(changes[half...]))
                try await primary.checkpoint()
                #expect(try Self.contents(follower) == Self.contents(primary))
            }
            // A store with a history of its own does not adopt another lineage.
            try await withStore(otherDirectory.path, options: FeedTests.feedOptions()) { other async throws in
                _ = try await other.append([op(1)], to: doc("own"))
            }
            var asFollower = Self.followerOptions()
            asFollower.role = .follower
            try await withStore(otherDirectory.path, options: asFollower) { other async throws in
                await #expect(throws: OpLogError.self) { try await other.apply(changes[0]) }
            }
        }
    }

    /// The resync recipe for a follower: a backup of the primary, restored and opened as a
    /// follower, continues from the position the backup records.
    @Test func aFollowerSeededFromABackupContinuesAfterItsPosition() async throws {
        let primaryDirectory = TemporaryDirectory("oplog-primary")
        let backupDirectory = TemporaryDirectory("oplog-backup")
        let followerDirectory = TemporaryDirectory("oplog-follower")
        defer {
            primaryDirectory.remove()
            backupDirectory.remove()
            followerDirectory.remove()
        }
        try await withStore(primaryDirectory.path, options: FeedTests.feedOptions()) { primary async throws in
            try await Self.makeHistory(primary, seed: 0xBAC0)
            let report = try await primary.backup(to: backupDirectory.path)
            try await Self.makeHistory(primary, seed: 0xBAC1, idBase: 100_000)
            let position = try #require(report.position)
            _ = try await OpLogStore.restore(from: backupDirectory.path, to: followerDirectory.path)
            try await withStore(followerDirectory.path, options: Self.followerOptions()) { follower async throws in
                #expect(try follower.latestPosition() == position)
                let rest = try await FeedTests.readAll(primary, after: position)
                try await follower.apply(contentsOf: rest)
                try await primary.checkpoint()
                #expect(try Self.contents(follower) == Self.contents(primary))
            }
        }
    }

    @Test func aFollowerRefusesClientWritesAndCompactionAndAPrimaryRefusesApply() async throws {
        let primaryDirectory = TemporaryDirectory("oplog-primary")
        let followerDirectory = TemporaryDirectory("oplog-follower")
        defer {
            primaryDirectory.remove()
            followerDirectory.remove()
        }
        try await withStore(primaryDirectory.path, options: FeedTests.feedOptions()) { primary async throws in
            _ = try await primary.append([op(1), op(2)], to: doc("a"))
            try await primary.putSnapshot([1], of: doc("a"), at: 1)
            let changes = try await FeedTests.readAll(primary)
            await #expect(throws: OpLogError.wrongRole(role: .primary, operation: "apply")) { try await primary.apply(changes[0]) }
            try await withStore(followerDirectory.path, options: Self.followerOptions()) { follower async throws in
                try await follower.apply(contentsOf: changes)
                let before = try Self.contents(follower)
                let refused: [(String, () async throws -> Void)] = [
                    ("append", { _ = try await follower.append([op(3)], to: doc("a")) }),
                    ("append", { _ = try follower.appendBlocking([op(4)], to: doc("a")) }),
                    ("truncate", { try await follower.truncate(doc("a"), below: 2) }),
                    ("raiseEpoch", { try await follower.raiseEpoch(2, for: FencingScope(document: doc("a"))) }),
                    ("putSnapshot", { try await follower.putSnapshot([2], of: doc("a"), at: 2) }),
                    ("deleteSnapshot", { try await follower.deleteSnapshot(of: doc("a"), at: 1) }),
                    ("deleteDocument", { try await follower.deleteDocument(doc("a")) }),
                ]
                for (operation, call) in refused {
                    await #expect(throws: OpLogError.wrongRole(role: .follower, operation: operation)) { try await call() }
                }
                let scheduler = try CompactionScheduler(store: follower, reducer: CountingReducer())
                await #expect(throws: OpLogError.wrongRole(role: .follower, operation: "compaction")) { try await scheduler.run() }
                #expect(try Self.contents(follower) == before)
            }
        }
    }

    @Test func aPromotedFollowerContinuesTheHistoryAndRecognisesRetries() async throws {
        let primaryDirectory = TemporaryDirectory("oplog-primary")
        let followerDirectory = TemporaryDirectory("oplog-follower")
        defer {
            primaryDirectory.remove()
            followerDirectory.remove()
        }
        try await withStore(primaryDirectory.path, options: FeedTests.feedOptions()) { primary async throws in
            let first = try await primary.append([op(1, "a"), op(2, "b")], to: doc("a"), epoch: 4)
            _ = try await primary.append([op(3, "c")], to: doc("b"), epoch: 4)
            let changes = try await FeedTests.readAll(primary)
            try await withStore(followerDirectory.path, options: Self.followerOptions()) { follower async throws in
                try await follower.apply(contentsOf: changes)
                // Applied with an older owner's epoch: refused.
                let late = StoredOp(
                    revision: 3, opID: OpID(high: 7, low: 7), author: [], clientTimeMilliseconds: nil, serverTimeMilliseconds: 1,
                    payload: [7])
                let position = try ChangePosition(lineage: try primary.lineage()!, sequence: changes.last!.position.sequence + 1)
                await #expect(throws: OpLogError.staleEpoch(scope: FencingScope(document: doc("a")), epoch: 2, current: 4)) {
                    try await follower.apply(Change(position: position, events: [.appended(document: doc("a"), ops: [late])]), epoch: 2)
                }
                try await follower.promote()
                #expect(follower.role == .primary)
                // A client's retry of an op the follower applied gets its original revisions.
                let retried = try await follower.append([op(1, "a"), op(2, "b")], to: doc("a"), epoch: 4)
                #expect(retried.wasRetry && retried.revisions == first.revisions)
                // Epochs came with the feed: an older owner is refused.
                await #expect(throws: OpLogError.staleEpoch(scope: FencingScope(document: doc("a")), epoch: 3, current: 4)) {
                    _ = try await follower.append([op(9)], to: doc("a"), epoch: 3)
                }
                let next = try await follower.append([op(10, "d")], to: doc("a"), epoch: 4)
                #expect(next.revisions == [3])
                #expect(try follower.latestPosition()?.sequence == changes.last!.position.sequence + 1)
                #expect(try follower.latestPosition()?.lineage == primary.lineage())
                await #expect(throws: OpLogError.wrongRole(role: .primary, operation: "apply")) { try await follower.apply(changes[0]) }
            }
        }
    }
}

/// A reducer for the scheduler test: counts ops.
private struct CountingReducer: Reducer {
    func initialState() -> Int { 0 }
    func apply(_ op: StoredOp, to state: inout Int) throws { state += 1 }
    func encode(_ state: Int) -> [UInt8] { Array(String(state).utf8) }
    func decode(_ bytes: [UInt8]) throws -> Int { Int(String(decoding: bytes, as: UTF8.self)) ?? 0 }
}
