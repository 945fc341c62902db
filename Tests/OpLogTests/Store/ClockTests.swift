import Foundation
import OpLog
import OpLogTestSupport
import Synchronization
import Testing

/// Goal: the store's time comes from its clock alone, and the clocks do what they promise.
@Suite struct ClockTests {
    static let start: Int64 = 1_800_000_000_000

    @Test func manualClockWakesSleepersExactlyAtTheirDeadline() async throws {
        // Method: a task sleeps until start + 10; the clock is advanced to start + 9 (the sleeper
        // must still wait), then by 1 more (it must have resumed before `advance` returned).
        let clock = ManualClock(startingAt: Self.start)
        let woke = Latch()
        let sleeper = Task {
            try await clock.sleep(until: Self.start + 10)
            woke.set()
        }
        while clock.sleeperCount == 0 { await Task.yield() }
        clock.advance(by: 9)
        #expect(clock.sleeperCount == 1 && !woke.isSet)
        clock.advance(by: 1)
        try await sleeper.value
        #expect(woke.isSet && clock.now == Self.start + 10)
        // A deadline already reached returns at once; a cancelled sleeper throws.
        try await clock.sleep(until: Self.start)
        let cancelled = Task { try await clock.sleep(until: Self.start + 1_000) }
        while clock.sleeperCount == 0 { await Task.yield() }
        cancelled.cancel()
        await #expect(throws: CancellationError.self) { try await cancelled.value }
        #expect(clock.sleeperCount == 0)
    }

    @Test func systemClockOffsetShiftsEveryReading() {
        let base = SystemClock(offsetMilliseconds: 0).now
        let shifted = SystemClock(offsetMilliseconds: 3 * 365 * 86_400_000).now
        let difference = shifted - base - 3 * 365 * 86_400_000
        // Two readings a few instructions apart: the bound only guards against a missing offset.
        #expect(difference >= 0 && difference < 60_000, "offset reading differs by \(difference) ms")
    }

    @Test func serverTimesSnapshotsAndTheStoreComeFromTheClock() async throws {
        // Method: a store on a manual clock stamps exactly the clock's readings; a clock that
        // jumps back never makes a document's server time go down.
        let dir = TemporaryDirectory("oplog-clock")
        defer { dir.remove() }
        let clock = ManualClock(startingAt: Self.start)
        var options = testOptions()
        options.clock = clock
        try await withStore(dir.path, options: options) { store async throws in
            _ = try await store.append([op(1)], to: doc("a"))
            clock.advance(by: 1_234)
            _ = try await store.append([op(2)], to: doc("a"))
            try await store.putSnapshot(Array("s".utf8), of: doc("a"), at: 2)
            clock.set(to: Self.start - 86_400_000)
            _ = try await store.append([op(3)], to: doc("a"))
            let ops = try store.ops(of: doc("a"), from: 1)
            #expect(ops.map(\.serverTimeMilliseconds) == [Self.start, Self.start + 1_234, Self.start + 1_234])
            #expect(try store.snapshot(of: doc("a"))?.createdAtMilliseconds == Self.start + 1_234)
            #expect(try store.info(of: doc("a"))?.lastServerTimeMilliseconds == Self.start + 1_234)
        }
    }
}

/// A flag set once, readable from any task.
final class Latch: Sendable {
    private let flag = Mutex(false)
    func set() { flag.withLock { $0 = true } }
    var isSet: Bool { flag.withLock { $0 } }
}
