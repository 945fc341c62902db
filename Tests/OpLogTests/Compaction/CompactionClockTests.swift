import Foundation
import OpLog
import OpLogTestSupport
import OpLogText
import Testing

/// Goal: the scheduler's time-bound behaviour follows the store's clock exactly, with no real
/// waiting: the age trigger, keepMilliseconds and the retry delay after a failure.
///
/// Method: a manual clock; the scheduler's op-count and byte triggers set out of reach; `drain()`
/// returns once the scheduler has looked at the clock and found nothing due.
@Suite struct CompactionClockTests {
    static let start: Int64 = 1_800_000_000_000

    static func setUp(_ directory: String, _ clock: ManualClock) throws -> OpLogStore {
        var options = testOptions()
        options.clock = clock
        return try OpLogStore.open(directory: directory, options: options)
    }

    static func patch(_ id: UInt64) -> NewOp {
        NewOp(opID: OpID(high: 11, low: id), author: [1], payload: TextPatch(position: 0, deleted: 0, inserted: "x").jsonBytes())
    }

    @Test func theAgeTriggerFiresWhenTheClockPassesIt() async throws {
        let dir = TemporaryDirectory("oplog-age")
        defer { dir.remove() }
        let clock = ManualClock(startingAt: Self.start)
        let store = try Self.setUp(dir.path, clock)
        var policy = CompactionPolicy()
        policy.snapshotEveryOps = 1_000_000
        policy.snapshotEveryBytes = 1 << 30
        policy.snapshotAfterMilliseconds = 600_000
        let scheduler = try CompactionScheduler(store: store, policy: policy, reducer: TextReducer())
        try scheduler.start()
        _ = try await store.append([Self.patch(1), Self.patch(2)], to: doc("d"))
        await scheduler.drain()
        clock.advance(by: 600_000 - 1)
        await scheduler.drain()
        #expect(try store.snapshots(of: doc("d")).isEmpty, "snapshotted 1 ms before the age trigger")
        clock.advance(by: 1)
        await scheduler.drain()
        #expect(try store.snapshots(of: doc("d")).map(\.revision) == [2], "not snapshotted when the clock reached the trigger")
        #expect(try store.snapshot(of: doc("d"))?.createdAtMilliseconds == Self.start + 600_000)
        await scheduler.stop()
        try await store.close()
    }

    @Test func keepMillisecondsHoldsTruncationUntilTheOpsAreOldEnough() async throws {
        // Method: snapshots every 2 ops, keepOps 0, keepMilliseconds 1 hour: nothing is truncated
        // until the clock is one hour past the ops the floor would drop, then it is.
        let dir = TemporaryDirectory("oplog-keep")
        defer { dir.remove() }
        let clock = ManualClock(startingAt: Self.start)
        let store = try Self.setUp(dir.path, clock)
        var policy = CompactionPolicy()
        policy.snapshotEveryOps = 2
        policy.keepOps = 0
        policy.keepMilliseconds = 3_600_000
        let scheduler = try CompactionScheduler(store: store, policy: policy, reducer: TextReducer())
        try scheduler.start()
        for id in 1...4 as ClosedRange<UInt64> { _ = try await store.append([Self.patch(id)], to: doc("d")) }
        await scheduler.drain()
        #expect(try store.info(of: doc("d"))?.floor == 1)
        clock.advance(by: 3_600_000 - 1)
        await scheduler.drain()
        #expect(try store.info(of: doc("d"))?.floor == 1, "truncated before keepMilliseconds passed")
        clock.advance(by: 1)
        await scheduler.drain()
        #expect(try store.info(of: doc("d"))?.floor ?? 1 > 1, "not truncated once keepMilliseconds passed")
        await scheduler.stop()
        try await store.close()
    }

    @Test func aFailedDocumentIsRetriedWhenTheClockSaysSo() async throws {
        // Method: a reducer that rejects the payload; the document fails once, is left alone for
        // retryAfterFailureMilliseconds of clock time, then tried (and fails) again.
        let dir = TemporaryDirectory("oplog-retry")
        defer { dir.remove() }
        let clock = ManualClock(startingAt: Self.start)
        let store = try Self.setUp(dir.path, clock)
        var policy = CompactionPolicy()
        policy.snapshotEveryOps = 1
        policy.retryAfterFailureMilliseconds = 60_000
        let scheduler = try CompactionScheduler(store: store, policy: policy, reducer: TextReducer())
        try scheduler.start()
        _ = try await store.append([NewOp(opID: OpID(high: 1, low: 1), author: [], payload: Array("not a patch".utf8))], to: doc("d"))
        await scheduler.drain()
        #expect(scheduler.statistics.failures == 1)
        clock.advance(by: 59_999)
        await scheduler.drain()
        #expect(scheduler.statistics.failures == 1)
        clock.advance(by: 1)
        await scheduler.drain()
        #expect(scheduler.statistics.failures == 2)
        await scheduler.stop()
        try await store.close()
    }
}
