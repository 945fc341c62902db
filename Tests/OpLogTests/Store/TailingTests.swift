import Foundation
import OpLog
import OpLogTestSupport
import OpLogText
import Synchronization
import Testing

/// Goal: subscriptions deliver exactly the committed sequence (no gaps, no duplicates, only durable
/// ops) across group commits and compaction, refuse positions below the floor with the snapshot
/// hint, and keep memory bounded with thousands of subscribers, stalled ones included.
@Suite struct TailingTests {
    @Test func subscriberSeesExactlyTheCommittedSequence() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        var policy = CompactionPolicy()
        policy.snapshotEveryOps = 200
        policy.keepOps = 1_500  // enough history for the slow reader below, which truncation must not overtake

        let session = EditingTrace.generated(seed: 4, patchCount: 4_000, computeEndContent: false)
        try await withStore(dir.path) { store async throws in
            let document = doc("tail")
            _ = try await store.append(
                [NewOp(opID: OpID(high: 1, low: 0), author: [], payload: session.patches[0].jsonBytes())], to: document)
            let scheduler = try CompactionScheduler(store: store, policy: policy, reducer: TextReducer())
            try scheduler.start()
            // Two subscribers: one from the start (catch-up then live), one from the live head; one
            // slow reader with a tiny buffer that must fall back to reading the store.
            let fromStart = try store.subscribe(to: document, from: 1)
            let fromHead = try store.subscribe(to: document, from: 2)
            let slow = try store.subscribe(to: document, from: 1, bufferLimit: 8)
            let total = session.patches.count
            async let seenFromStart = Self.collect(fromStart, count: total)
            async let seenFromHead = Self.collect(fromHead, count: total - 1)
            // The slow reader's position: writers stay within 1,000 ops of it, so truncation
            // (1,500 ops behind the newest snapshot) can never overtake it, however fast appends are.
            let slowPosition = ReaderPosition()
            async let seenSlow = Self.collect(slow, count: total, pauseEvery: 97, progress: slowPosition)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for writer in 0..<8 {
                    group.addTask {
                        for index in stride(from: 1 + writer, to: total, by: 8) {
                            while try store.head(of: document) > slowPosition.value + 1_000 { try await Task.sleep(for: .milliseconds(1)) }
                            // Appends race, so revision order is not patch order: every op inserts at 0.
                            let patch = TextPatch(position: 0, deleted: 0, inserted: "w\(writer)")
                            _ = try await store.append(
                                [NewOp(opID: OpID(high: 1, low: UInt64(index)), author: [], payload: patch.jsonBytes())], to: document)
                        }
                    }
                }
                try await group.waitForAll()
            }
            let stored = try await seenFromStart
            #expect(stored.map(\.revision) == Array(1...UInt64(total)))
            #expect(try await seenFromHead.map(\.revision) == Array(2...UInt64(total)))
            #expect(try await seenSlow.map(\.revision) == Array(1...UInt64(total)))
            await scheduler.drain()
            await scheduler.stop()
            #expect(scheduler.statistics.opsTruncated > 0, "compaction ran during the test: \(scheduler.statistics)")
        }
    }

    static func collect(
        _ subscription: OpSubscription, count: Int, pauseEvery: Int = 0, progress: ReaderPosition? = nil
    ) async throws -> [StoredOp] {
        var seen: [StoredOp] = []
        for try await op in subscription {
            seen.append(op)
            progress?.value = op.revision
            if pauseEvery > 0 && seen.count % pauseEvery == 0 { try await Task.sleep(for: .milliseconds(2)) }
            if seen.count == count { break }
        }
        return seen
    }

    @Test func subscribingBelowTheFloorGivesTheSnapshotHint() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        try await withStore(dir.path) { store async throws in
            _ = try await store.append((1...10).map { op($0) }, to: doc("d"))
            try await store.putSnapshot([1], of: doc("d"), at: 6)
            try await store.truncate(doc("d"), below: 7)
            #expect(throws: OpLogError.belowFloor(document: doc("d"), requested: 3, floor: 7, latestSnapshot: 6)) {
                try store.subscribe(to: doc("d"), from: 3)
            }
            #expect(throws: OpLogError.beyondHead(document: doc("d"), requested: 12, head: 10)) {
                try store.subscribe(to: doc("d"), from: 12)
            }
            // A subscriber overtaken by truncation while stalled ends with the same hint.
            let stalled = try store.subscribe(to: doc("d"), from: 7, bufferLimit: 2)
            _ = try await store.append((11...20).map { op($0) }, to: doc("d"))
            try await store.putSnapshot([2], of: doc("d"), at: 15)
            try await store.truncate(doc("d"), below: 16)
            var iterator = stalled.makeAsyncIterator()
            await #expect(throws: OpLogError.belowFloor(document: doc("d"), requested: 7, floor: 16, latestSnapshot: 15)) {
                _ = try await iterator.next()
            }
        }
    }

    @Test(.enabled(if: CLITests.testKit != nil, "needs the built oplog executable"))
    func tenThousandSubscribersStayWithinTheMemoryBound() throws {
        // Method: `oplog subscriber-memory` in a process of its own (so that other tests' memory does
        // not blur RSS): 10,000 idle subscribers over 1,000 documents, then 2,000 ops to the tenth
        // whose subscribers never read (their buffers must overflow and drop, not grow), then timed
        // ops to 900 live subscribers.
        let dir = TemporaryDirectory("oplog-subscribers")
        defer { dir.remove() }
        let run = try CLITests.runTestKit(["subscriber-memory", "--store", dir.path])
        #expect(run.status == 0)
        let result = try #require(try JSONSerialization.jsonObject(with: Data(run.output.utf8)) as? [String: Int])
        print("tailing: \(result)")
        #expect(try #require(result["bytes_per_idle_subscriber"]) < 16_384)
        // The stalled buffers hold at most 1,000 ops each before dropping: 1,000 × 100 ops ≈ bytes.
        #expect(try #require(result["stalled_growth_bytes"]) < 64 << 20)
        #expect(result["deliveries"] == 9_000 * 2)
    }

    static func residentBytes() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
        let fields = text.split(separator: " ")
        return (Int(fields[1]) ?? 0) * 4096
    }
}

/// What the subscriber tasks record, shared with the test body.
final class SharedResults: Sendable {
    let received = Mutex<[Int: [UInt64]]>([:])
    let ackTimes = Mutex<[UInt64: UInt64]>([:])
    let latencies = Mutex<[UInt64]>([])
}

/// A revision one task publishes and others read.
final class ReaderPosition: Sendable {
    private let state = Mutex<Revision>(0)
    var value: Revision {
        get { state.withLock { $0 } }
        set { state.withLock { $0 = newValue } }
    }
}
