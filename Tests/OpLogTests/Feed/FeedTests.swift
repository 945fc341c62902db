import Foundation
import OpLog
import OpLogStorage
import OpLogTestSupport
import OpLogText
import Testing

/// The change feed: every durable change once, in position order, without a gap, from history
/// and live, across group commits, applies, snapshots, deletions, reopens and crashes.
@Suite struct FeedTests {
    static func feedOptions(_ durability: Durability = .full) -> StoreOptions {
        var options = testOptions(durability: durability)
        options.feedRetentionBytes = 64 << 20
        return options
    }

    /// A change as the test compares it: what it did, without server times.
    static func describe(_ change: Change) -> [String] {
        change.events.map { event in
            switch event {
            case .appended(let document, let ops):
                return "A \(document) \(ops.map { "\($0.revision):\($0.opID.low):\(String(decoding: $0.payload, as: UTF8.self))" })"
            case .truncated(let document, let floor): return "T \(document) \(floor)"
            case .snapshotPut(let document, let revision, _, let bytes):
                return "S \(document) \(revision) \(String(decoding: bytes, as: UTF8.self))"
            case .snapshotDeleted(let document, let revision): return "X \(document) \(revision)"
            case .documentDeleted(let document): return "D \(document)"
            case .epochRaised(let scope, let epoch): return "E \(scope) \(epoch)"
            }
        }
    }

    /// Reads the feed after `position` up to the store's newest position.
    static func readAll(_ store: OpLogStore, after position: ChangePosition? = nil) async throws -> [Change] {
        guard let latest = try store.latestPosition() else { return [] }
        let feed = try store.changes(after: position)
        if feed.resumesAfter >= latest.sequence { return [] }
        var changes: [Change] = []
        for try await change in feed {
            changes.append(change)
            if change.position == latest { break }
        }
        return changes
    }

    /// One task's sequential mutations of every kind, with reopens and applies between them: the
    /// feed holds exactly one change per mutation, in order, the same after every reopen, and a
    /// consumer resuming from any position gets exactly the rest.
    @Test(arguments: [Durability.full, .lastAppendsMayBeLost])
    func everyMutationIsOneChangeInOrder(durability: Durability) async throws {
        let directory = TemporaryDirectory("oplog-feed")
        defer { directory.remove() }
        let options = Self.feedOptions(durability)
        var expected: [[String]] = []
        var random = SplitMix64(seed: 0xFEED)
        var next: UInt64 = 0
        func newOp(_ payload: String) -> NewOp {
            next += 1
            return op(next, payload)
        }
        for round in 0..<4 {
            try await withStore(directory.path, options: options) { store async throws in
                for step in 0..<60 {
                    let name = "doc-\(Int(random.next() % 3))"
                    let document = doc(name)
                    let head = try store.head(of: document)
                    switch random.next() % 8 {
                    case 0, 1, 2:
                        let ops = (0..<Int(1 + random.next() % 3)).map { newOp("r\(round)s\(step)p\($0)") }
                        let result = try await store.append(ops, to: document)
                        let described = zip(result.revisions, ops).map { revision, op in
                            "\(revision):\(op.opID.low):\(String(decoding: op.payload, as: UTF8.self))"
                        }
                        expected.append(["A \(name) \(described)"])
                    case 3:
                        let ops = [newOp("b\(step)")]
                        let other = doc("batch-\(step % 2)")
                        let results = try await store.append(batch: [
                            DocumentAppend(document: document, ops: ops), DocumentAppend(document: other, ops: [newOp("c")]),
                        ])
                        expected.append([
                            "A \(name) [\"\(results[0].revisions[0]):\(ops[0].opID.low):b\(step)\"]",
                            "A batch-\(step % 2) [\"\(results[1].revisions[0]):\(next):c\"]",
                        ])
                    case 4 where head >= 2:
                        try await store.putSnapshot(Array("s\(step)".utf8), of: document, at: head - 1)
                        expected.append(["S \(name) \(head - 1) s\(step)"])
                        // A truncation to the floor it has changes nothing, and is no change.
                        let floor = try store.info(of: document)?.floor ?? 1
                        try await store.truncate(document, below: head)
                        if head > floor { expected.append(["T \(name) \(head)"]) }
                    case 5 where head >= 1:
                        try await store.putSnapshot(Array("t".utf8), of: document, at: head)
                        expected.append(["S \(name) \(head) t"])
                        try await store.deleteSnapshot(of: document, at: head)
                        expected.append(["X \(name) \(head)"])
                    case 6:
                        try await store.deleteDocument(document)
                        // Erasure: the document's earlier events leave the history; its positions stay.
                        expected = expected.map { events in events.filter { !$0.dropFirst(2).hasPrefix("\(name) ") } }
                        expected.append(["D \(name)"])
                    case 7:
                        let scope = try FencingScope("scope-\(step % 2)")
                        let epoch = try await store.epoch(of: scope) + 1
                        try await store.raiseEpoch(epoch, for: scope)
                        expected.append(["E scope-\(step % 2) \(epoch)"])
                    default:
                        try await store.checkpoint()
                    }
                }
                // In the weaker modes changes enter the feed at a journal sync: the checkpoint's.
                if durability != .full { try await store.checkpoint() }
                let changes = try await Self.readAll(store)
                #expect(changes.map(Self.describe) == expected, "round \(round)")
                let sequences = changes.map(\.position.sequence)
                #expect(sequences == Array((sequences.first ?? 1)...(sequences.last ?? 0)), "positions skip")
                // Resuming after any position gives exactly the rest.
                for _ in 0..<8 where !changes.isEmpty {
                    let cut = Int(random.next() % UInt64(changes.count))
                    let rest = try await Self.readAll(store, after: changes[cut].position)
                    #expect(rest.map(\.position) == changes[(cut + 1)...].map(\.position))
                    #expect(rest == Array(changes[(cut + 1)...]))
                }
            }
        }
    }

    /// Four tasks append while a consumer follows the feed live: each op arrives exactly once,
    /// in revision order per document, at consecutive positions.
    @Test func aLiveConsumerSeesEveryConcurrentAppendOnce() async throws {
        let directory = TemporaryDirectory("oplog-feed-live")
        defer { directory.remove() }
        let perWriter = 300
        try await withStore(directory.path, options: Self.feedOptions()) { store async throws in
            let feed = try store.changes()
            let consumer = Task { () throws -> [Change] in
                var seen: [Change] = []
                var ops = 0
                for try await change in feed {
                    seen.append(change)
                    for case .appended(_, let appended) in change.events { ops += appended.count }
                    if ops == 4 * perWriter { break }
                }
                return seen
            }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for writer in 0..<4 {
                    group.addTask {
                        for index in 0..<perWriter {
                            _ = try await store.append([op(UInt64(writer * 10_000 + index))], to: doc("live-\(writer)"))
                        }
                    }
                }
                try await group.waitForAll()
            }
            let seen = try await consumer.value
            let sequences = seen.map(\.position.sequence)
            #expect(sequences == Array(sequences.first!...sequences.last!))
            for writer in 0..<4 {
                let revisions = seen.flatMap(\.events).flatMap { event -> [Revision] in
                    guard case .appended(let document, let ops) = event, document == doc("live-\(writer)") else { return [] }
                    return ops.map(\.revision)
                }
                #expect(revisions == Array(1...Revision(perWriter)), "writer \(writer)")
            }
        }
    }

    /// A child appending with the feed on is killed; after the reopen every acknowledged op is in
    /// the feed at a position that a second reopen keeps.
    @Test func acknowledgedChangesSurviveAKillAtStablePositions() async throws {
        let directory = TemporaryDirectory("oplog-feed-crash")
        defer { directory.remove() }
        let lines = try CrashTests().runChild(directory.path, killAfterMilliseconds: 1_500, extraArguments: ["--feed"])
        var acknowledged: [String: Revision] = [:]
        for line in lines where line.hasPrefix("ack ") {
            let parts = line.split(separator: " ")
            acknowledged[String(parts[1]), default: 0] = max(acknowledged[String(parts[1])] ?? 0, Revision(parts[2])!)
        }
        #expect(!acknowledged.isEmpty, "the child acknowledged nothing before the kill")
        var options = Self.feedOptions()
        options.journalApplyBytes = 1 << 20
        let first = try await withStore(directory.path, options: options) { store async throws in try await Self.readAll(store) }
        var heads: [String: Revision] = [:]
        for change in first {
            for case .appended(let document, let ops) in change.events {
                #expect(ops.first!.revision == (heads[document.value] ?? 0) + 1, "\(document): revisions skip in the feed")
                heads[document.value] = ops.last!.revision
            }
        }
        for (document, revision) in acknowledged {
            #expect((heads[document] ?? 0) >= revision, "\(document): acknowledged \(revision), the feed has \(heads[document] ?? 0)")
        }
        let second = try await withStore(directory.path, options: options) { store async throws in try await Self.readAll(store) }
        #expect(second.prefix(first.count).elementsEqual(first), "positions changed across a reopen")
    }

    @Test func retentionAndBadPositionsAreTypedErrors() async throws {
        let directory = TemporaryDirectory("oplog-feed-retention")
        let other = TemporaryDirectory("oplog-feed-other")
        defer { [directory, other].forEach { $0.remove() } }
        var options = Self.feedOptions()
        options.feedRetentionBytes = 64 << 10
        let foreign = try await withStore(other.path, options: options) { store async throws in
            _ = try await store.append([op(1)], to: doc("o"))
            return try #require(try store.latestPosition())
        }
        try await withStore(directory.path, options: options) { store async throws in
            // Incompressible payloads, so that 200 changes take about 400 KB, beyond the 64 KiB kept.
            var random = SplitMix64(seed: 0xBEEF)
            for index in 0..<200 {
                let payload = (0..<1_000).map { _ in String(random.next() % 256, radix: 16) }.joined()
                _ = try await store.append([op(UInt64(index), payload)], to: doc("big-\(index % 7)"))
            }
            try await store.checkpoint()
            let latest = try #require(try store.latestPosition())
            let history = try await Self.readAll(store)
            #expect(history.last?.position == latest && history.count < 200, "retention kept \(history.count) of 200 changes")
            let oldest = history.first!.position.sequence
            #expect(throws: OpLogError.belowRetention(requested: 1, oldest: oldest)) {
                try store.changes(after: try ChangePosition(lineage: latest.lineage, sequence: 1))
            }
            #expect(throws: OpLogError.beyondFeed(requested: latest.sequence + 1, latest: latest.sequence)) {
                try store.changes(after: try ChangePosition(lineage: latest.lineage, sequence: latest.sequence + 1))
            }
            #expect(throws: OpLogError.foreignLineage(expected: latest.lineage, found: foreign.lineage)) {
                try store.changes(after: foreign)
            }
        }
        // With the feed off there is none, and turning it on again starts its history over.
        try await withStore(directory.path) { store async throws in
            #expect(throws: OpLogError.self) { try store.changes() }
            _ = try await store.append([op(900)], to: doc("after"))
        }
        try await withStore(directory.path, options: options) { store async throws in
            #expect(try await Self.readAll(store).isEmpty)
            _ = try await store.append([op(901)], to: doc("after"))
            #expect(try await Self.readAll(store).map(Self.describe) == [["A after [\"2:901:x\"]"]])
        }
    }
}
