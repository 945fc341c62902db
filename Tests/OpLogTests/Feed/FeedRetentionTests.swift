import Foundation
import OpLog
import OpLogTestSupport
import OpLogText
import Testing

/// The feed's retention (bytes, age, the hard maximum), saved consumer positions, erasure of a
/// deleted document, a backup's position, and consumers that restart at random.
@Suite struct FeedRetentionTests {
    /// Incompressible payloads: `count` changes of about 2 KB each.
    static func appendIncompressible(_ store: OpLogStore, count: Int, from start: Int, seed: UInt64) async throws {
        var random = SplitMix64(seed: seed)
        for index in start..<(start + count) {
            let payload = (0..<1_000).map { _ in String(random.next() % 256, radix: 16) }.joined()
            _ = try await store.append([op(UInt64(index), payload)], to: doc("big-\(index % 5)"))
        }
    }

    @Test func aSavedPositionHoldsHistoryBackUntilTheMaximum() async throws {
        let directory = TemporaryDirectory("oplog-feed-cursor")
        defer { directory.remove() }
        var options = FeedTests.feedOptions()
        options.feedRetentionBytes = 64 << 10
        options.feedRetentionBytesMax = 256 << 10
        try await withStore(directory.path, options: options) { store async throws in
            try await Self.appendIncompressible(store, count: 5, from: 0, seed: 1)
            let held = try #require(try store.latestPosition())
            try await store.savePosition(held, for: "indexer")
            // About 100 KB more: beyond the 64 KiB kept by bytes, within the 256 KiB maximum.
            try await Self.appendIncompressible(store, count: 50, from: 5, seed: 2)
            try await store.checkpoint()
            #expect(try store.savedPosition(for: "indexer") == held)
            let rest = try await FeedTests.readAll(store, after: held)
            #expect(rest.first?.position.sequence == held.sequence + 1, "the saved position's successor is kept")
            #expect(rest.count == 50)
        }
        try await withStore(directory.path, options: options) { store async throws in
            let held = try #require(try store.savedPosition(for: "indexer"), "the saved position survives a reopen")
            #expect(try await FeedTests.readAll(store, after: held).count == 50)
            // Past the maximum the position is left behind: below retention, never a full disk.
            try await Self.appendIncompressible(store, count: 200, from: 55, seed: 3)
            try await store.checkpoint()
            let oldest = try #require(try await FeedTests.readAll(store).first).position.sequence
            #expect(oldest > held.sequence + 1)
            #expect(throws: OpLogError.belowRetention(requested: held.sequence, oldest: oldest)) { try store.changes(after: held) }
            // Removing the position releases what it held; saving an old one is refused.
            try await store.removeSavedPosition(for: "indexer")
            #expect(try store.savedPositions().isEmpty)
            await #expect(throws: OpLogError.belowRetention(requested: held.sequence, oldest: oldest)) {
                try await store.savePosition(held, for: "indexer")
            }
        }
    }

    @Test func consumerNamesAndPositionsAreChecked() async throws {
        let directory = TemporaryDirectory("oplog-feed-cursor-input")
        let other = TemporaryDirectory("oplog-feed-cursor-other")
        defer { [directory, other].forEach { $0.remove() } }
        let options = FeedTests.feedOptions()
        let foreign = try await withStore(other.path, options: options) { store async throws in
            _ = try await store.append([op(1)], to: doc("o"))
            return try #require(try store.latestPosition())
        }
        try await withStore(directory.path, options: options) { store async throws in
            _ = try await store.append([op(1)], to: doc("a"))
            let latest = try #require(try store.latestPosition())
            await #expect(throws: OpLogError.invalidArgument("a consumer name must not be empty")) {
                try await store.savePosition(latest, for: "")
            }
            let long = String(repeating: "n", count: Limits.feedConsumerNameBytesMax + 1)
            await #expect(
                throws: OpLogError.limitExceeded(.feedConsumerNameBytes, value: long.utf8.count, maximum: Limits.feedConsumerNameBytesMax)
            ) {
                try await store.savePosition(latest, for: long)
            }
            await #expect(throws: OpLogError.foreignLineage(expected: latest.lineage, found: foreign.lineage)) {
                try await store.savePosition(foreign, for: "c")
            }
            let future = try ChangePosition(lineage: latest.lineage, sequence: latest.sequence + 1)
            await #expect(throws: OpLogError.beyondFeed(requested: future.sequence, latest: latest.sequence)) {
                try await store.savePosition(future, for: "c")
            }
            for index in 0..<Limits.feedConsumersMax { try await store.savePosition(latest, for: "c\(index)") }
            await #expect(
                throws: OpLogError.limitExceeded(.feedConsumers, value: Limits.feedConsumersMax + 1, maximum: Limits.feedConsumersMax)
            ) {
                try await store.savePosition(latest, for: "one-too-many")
            }
            try await store.savePosition(latest, for: "c0")  // replacing one is not a new one
            #expect(try store.savedPositions().count == Limits.feedConsumersMax)
        }
    }

    @Test func changesOlderThanTheAgeLeaveTheHistory() async throws {
        let directory = TemporaryDirectory("oplog-feed-age")
        defer { directory.remove() }
        let clock = ManualClock(startingAt: 1_800_000_000_000)
        var options = FeedTests.feedOptions()
        options.clock = clock
        options.feedRetentionMilliseconds = 60_000
        try await withStore(directory.path, options: options) { store async throws in
            for index in 0..<10 { _ = try await store.append([op(UInt64(index))], to: doc("old")) }
            try await store.checkpoint()
            #expect(try await FeedTests.readAll(store).count == 10, "within the age, all kept")
            clock.advance(by: 61_000)
            for index in 10..<13 { _ = try await store.append([op(UInt64(index))], to: doc("new")) }
            try await store.checkpoint()
            let kept = try await FeedTests.readAll(store)
            #expect(kept.map(FeedTests.describe).flatMap { $0 }.allSatisfy { $0.hasPrefix("A new") }, "\(kept.map(FeedTests.describe))")
            #expect(kept.count == 3)
        }
    }

    /// Regression (property seed 7975518391086837403): a snapshot put writes its change to LMDB
    /// at once, ahead of the unsynced appends journaled before it. The history's oldest position
    /// must stay at the first of those, and retention must not run past the applied sequence, or
    /// a consumer starting at the oldest skips them.
    @Test func aDirectCommitAheadOfUnappliedPositionsKeepsTheOldestPosition() async throws {
        let directory = TemporaryDirectory("oplog-feed-direct-ahead")
        defer { directory.remove() }
        let clock = ManualClock(startingAt: 1_800_000_000_000)
        var options = FeedTests.feedOptions(.lastAppendsMayBeLost)
        options.clock = clock
        options.feedRetentionMilliseconds = 60_000
        try await withStore(directory.path, options: options) { store async throws in
            for index in 0..<3 { _ = try await store.append([op(UInt64(index + 1))], to: doc("a")) }
            clock.advance(by: 61_000)
            // Its marker syncs the journal: positions 1 to 3 are durable, 4 is the snapshot's.
            try await store.putSnapshot(Array("s".utf8), of: doc("a"), at: 2)
            let early = try await FeedTests.readAll(store)
            #expect(early.map(\.position.sequence) == [1, 2, 3, 4], "\(early.map(FeedTests.describe))")
            try await store.checkpoint()
            // Now applied, the three appends are older than the age and leave; the snapshot's
            // change is as old as the age and stays.
            let late = try await FeedTests.readAll(store)
            #expect(late.map(\.position.sequence) == [4], "\(late.map(FeedTests.describe))")
        }
    }

    @Test func aDeletedDocumentLeavesOnlyItsTombstoneInTheHistory() async throws {
        let directory = TemporaryDirectory("oplog-feed-erasure")
        defer { directory.remove() }
        try await withStore(directory.path, options: FeedTests.feedOptions()) { store async throws in
            let secret = doc("secret")
            _ = try await store.append([op(1, "MARKER-1")], to: secret)
            _ = try await store.append(batch: [
                DocumentAppend(document: secret, ops: [op(2, "MARKER-2")]),
                DocumentAppend(document: doc("kept"), ops: [op(3, "public")]),
            ])
            try await store.putSnapshot(Array("MARKER-S".utf8), of: secret, at: 2)
            try await store.truncate(secret, below: 3)
            try await store.checkpoint()  // some of it applied, some journaled
            _ = try await store.append([op(4, "MARKER-3")], to: secret)
            let before = try #require(try store.latestPosition())
            try await store.deleteDocument(secret)
            let history = try await FeedTests.readAll(store)
            let described = history.map(FeedTests.describe)
            #expect(!described.flatMap { $0 }.contains { $0.contains("secret") && !$0.hasPrefix("D ") }, "\(described)")
            #expect(described.flatMap { $0 }.contains("A kept [\"1:3:public\"]"))
            #expect(described.last == ["D secret"])
            // Positions stay: the erased changes are there, empty or with the other documents' events.
            #expect(history.count == Int(before.sequence) + 1)
            #expect(zip(history, history.dropFirst()).allSatisfy { $0.position.sequence + 1 == $1.position.sequence })
        }
        // Across a reopen too.
        try await withStore(directory.path, options: FeedTests.feedOptions()) { store async throws in
            let described = try await FeedTests.readAll(store).map(FeedTests.describe).flatMap { $0 }
            #expect(!described.contains { $0.contains("MARKER") })
        }
    }

    @Test func aBackupRecordsThePositionItHolds() async throws {
        let directory = TemporaryDirectory("oplog-feed-backup")
        let copy = TemporaryDirectory("oplog-feed-backup-copy")
        defer { [directory, copy].forEach { $0.remove() } }
        let options = FeedTests.feedOptions()
        let (report, latest) = try await withStore(directory.path, options: options) { store async throws in
            for index in 0..<20 { _ = try await store.append([op(UInt64(index))], to: doc("d\(index % 3)")) }
            try await store.checkpoint()
            for index in 20..<25 { _ = try await store.append([op(UInt64(index))], to: doc("d\(index % 3)")) }
            return (try await store.backup(to: copy.path), try #require(try store.latestPosition()))
        }
        #expect(report.position == latest, "the copy holds everything up to the store's newest position")
        try await withStore(copy.path, options: options) { store async throws in
            #expect(try store.latestPosition() == latest)
            #expect(try store.lineage() == latest.lineage)
        }
    }

    /// Property: random mutations (appends, batches, snapshots, truncations, deletions) with
    /// reopens, and a consumer that restarts at random from its saved position: it sees every
    /// position once, in order, and the union of what it saw is the store's whole history.
    @Test func aConsumerRestartingAtRandomSeesEveryChangeOnce() async throws {
        let seed = UInt64(ProcessInfo.processInfo.environment["OPLOG_SEED"] ?? "") ?? UInt64.random(in: 1...UInt64.max)
        print("feed consumer property: seed \(seed) (OPLOG_SEED=\(seed) repeats it)")
        var random = SplitMix64(seed: seed)
        let directory = TemporaryDirectory("oplog-feed-consumer")
        defer { directory.remove() }
        let options = FeedTests.feedOptions(.lastAppendsMayBeLost)
        var seen: [UInt64] = []
        var restarts = 0
        var mutations = 0
        var nextOp: UInt64 = 1
        for _ in 0..<6 {
            try await withStore(directory.path, options: options) { store async throws in
                for _ in 0..<40 {
                    let document = doc("p\(random.next() % 4)")
                    switch random.next() % 10 {
                    case 0:
                        let head = try store.head(of: document)
                        if head > 1 {
                            try await store.putSnapshot(Array("s".utf8), of: document, at: head - 1)
                            try await store.truncate(document, below: head)
                        }
                    case 1: try await store.deleteDocument(document)
                    case 2:
                        _ = try await store.append(batch: [
                            DocumentAppend(document: doc("b0"), ops: [op(nextOp)]),
                            DocumentAppend(document: doc("b1"), ops: [op(nextOp + 1)]),
                        ])
                        nextOp += 2
                    case 3: try await store.checkpoint()
                    default:
                        _ = try await store.append([op(nextOp)], to: document)
                        nextOp += 1
                    }
                    mutations += 1
                    // The consumer: reads a few changes from its saved position, saves, sometimes restarts.
                    if random.next() % 3 == 0, let latest = try store.latestPosition() {
                        let saved = try store.savedPosition(for: "consumer")
                        var iterator = try store.changes(after: saved).makeAsyncIterator()
                        let take = Int(random.next() % 8) + 1
                        var last = saved
                        for _ in 0..<take {
                            if (last?.sequence ?? 0) >= latest.sequence { break }
                            guard let change = try await iterator.next() else { break }
                            seen.append(change.position.sequence)
                            last = change.position
                        }
                        if let last { try await store.savePosition(last, for: "consumer") }
                        restarts += 1
                    }
                }
            }
        }
        try await withStore(directory.path, options: options) { store async throws in
            let saved = try store.savedPosition(for: "consumer")
            seen += try await FeedTests.readAll(store, after: saved).map(\.position.sequence)
            let latest = try #require(try store.latestPosition())
            #expect(seen == Array(1...latest.sequence), "seed \(seed): the consumer saw \(seen.count) positions of \(latest.sequence)")
        }
        print("feed consumer property: \(mutations) mutations, \(restarts) consumer restarts, \(seen.count) positions each seen once")
    }
}
