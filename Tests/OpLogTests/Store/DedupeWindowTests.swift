import Foundation
import OpLog
import OpLogTestSupport
import Testing

/// Goal: retries are recognised exactly as documented (README "Retries", FORMAT.md "The dedupe
/// window"), on any date: the window is measured on the document's own history, and `basedOn`
/// retries have no window at all.
///
/// Method: a manual clock drives every server time; the store is reopened between steps so the
/// answers come from stored data (dedupe records, op chunks, the journal), not only from memory.
@Suite struct DedupeWindowTests {
    static let start: Int64 = 1_800_000_000_000
    static let window: Int64 = 60_000

    static func options(_ clock: ManualClock) -> StoreOptions {
        var options = testOptions()
        options.clock = clock
        options.dedupeWindowMilliseconds = window
        return options
    }

    @Test(arguments: [false, true])
    func anIDIsRecognisedOneMillisecondInsideTheWindowAndNotOutside(reopen: Bool) async throws {
        for offset in [-1, 0, 1] as [Int64] {
            let dir = TemporaryDirectory("oplog-window")
            defer { dir.remove() }
            let clock = ManualClock(startingAt: Self.start)
            let options = Self.options(clock)
            try await withStore(dir.path, options: options) { store async throws in
                _ = try await store.append([op(1)], to: doc("d"))
                // The document's newest op is `window + offset` younger than op 1.
                clock.advance(by: Self.window + offset)
                _ = try await store.append([op(2)], to: doc("d"))
            }
            let store = try await OpLogStore.open(directory: dir.path, options: options)
            if !reopen { try await store.checkpoint() }
            let retry = try await store.append([op(1)], to: doc("d"))
            let inside = offset <= 0
            #expect(
                retry == (inside ? AppendResult(revisions: [1], wasRetry: true) : AppendResult(revisions: [3], wasRetry: false)),
                "op 1 is \(Self.window + offset) ms older than the newest op")
            try await store.close()
        }
    }

    @Test func aStoreClosedLongerThanTheWindowForgetsNothing() async throws {
        // Method: close, move the clock a year on (and, separately, a day back), reopen: the
        // retry is recognised, because no op arrived in between. A clock that went back stamps
        // new ops with the document's last server time, so the window does not move either.
        let dir = TemporaryDirectory("oplog-window-closed")
        defer { dir.remove() }
        let clock = ManualClock(startingAt: Self.start)
        try await withStore(dir.path, options: Self.options(clock)) { store async throws in
            _ = try await store.append([op(1), op(2)], to: doc("d"))
        }
        clock.advance(by: 365 * 86_400_000)
        try await withStore(dir.path, options: Self.options(clock)) { store async throws in
            #expect(try await store.append([op(1), op(2)], to: doc("d")) == AppendResult(revisions: [1, 2], wasRetry: true))
        }
        clock.set(to: Self.start - 86_400_000)
        try await withStore(dir.path, options: Self.options(clock)) { store async throws in
            #expect(try await store.append([op(3)], to: doc("d")).revisions == [3])
            #expect(try store.ops(of: doc("d"), from: 3)[0].serverTimeMilliseconds == Self.start)
            #expect(try await store.append([op(1)], to: doc("d")) == AppendResult(revisions: [1], wasRetry: true))
        }
    }

    @Test func basedOnRetriesStayExactAYearLater() async throws {
        // Method: op 5 is accepted and applied; a year later op 6 moves the document's window past
        // it, so a plain retry of op 5 is a new op (documented), while a retry based on revision 4
        // returns 5: from the op chunk, after a reopen, and after op 5 was truncated away and only
        // its ID is left in a dedupe record.
        let dir = TemporaryDirectory("oplog-based-on")
        defer { dir.remove() }
        let clock = ManualClock(startingAt: Self.start)
        let options = Self.options(clock)
        try await withStore(dir.path, options: options) { store async throws in
            _ = try await store.append((1...4).map { op($0) }, to: doc("d"))
            _ = try await store.append([op(5)], to: doc("d"))
            try await store.checkpoint()
            clock.advance(by: 365 * 86_400_000)
            _ = try await store.append([op(6)], to: doc("d"))
            #expect(try await store.append([op(5)], to: doc("d"), basedOn: 4) == AppendResult(revisions: [5], wasRetry: true))
            #expect(try await store.append([op(5)], to: doc("d"), basedOn: 0) == AppendResult(revisions: [5], wasRetry: true))
            await #expect(throws: OpLogError.beyondHead(document: doc("d"), requested: 7, head: 6)) {
                try await store.append([op(5)], to: doc("d"), basedOn: 7)
            }
        }
        try await withStore(dir.path, options: options) { store async throws in
            #expect(try await store.append([op(5)], to: doc("d"), basedOn: 4) == AppendResult(revisions: [5], wasRetry: true))
            // Truncate below 6: the chunk holding 1...5 goes, their op IDs stay in dedupe records.
            try await store.putSnapshot(Array("at 5".utf8), of: doc("d"), at: 5)
            try await store.truncate(doc("d"), below: 6)
            try await store.checkpoint()
        }
        try await withStore(dir.path, options: options) { store async throws in
            #expect(try await store.append([op(5)], to: doc("d"), basedOn: 4) == AppendResult(revisions: [5], wasRetry: true))
            #expect(try store.head(of: doc("d")) == 6)
            await #expect(try store.verify().isClean)
            // Without basedOn the window applies: op 5 is outside it, so this is a new op.
            #expect(try await store.append([op(5)], to: doc("d")) == AppendResult(revisions: [7], wasRetry: false))
        }
    }

    @Test func basedOnBelowWhatTheStoreHoldsIsRefusedAndStoresNothing() async throws {
        // Method: a window of 2 ops; ops 1...10, snapshot at 8, truncation below 9: the dedupe
        // records keep only what is inside the window, so the store can check back to revision 8.
        let dir = TemporaryDirectory("oplog-based-on-gone")
        defer { dir.remove() }
        let clock = ManualClock(startingAt: Self.start)
        var options = Self.options(clock)
        options.dedupeWindowOps = 2
        try await withStore(dir.path, options: options) { store async throws in
            for id in 1...10 as ClosedRange<UInt64> { _ = try await store.append([op(id)], to: doc("d")) }
            try await store.putSnapshot(Array("at 8".utf8), of: doc("d"), at: 8)
            try await store.truncate(doc("d"), below: 9)
            try await store.checkpoint()
            await #expect(throws: OpLogError.retryUnverifiable(document: doc("d"), basedOn: 2, checkableFrom: 8)) {
                try await store.append([op(3)], to: doc("d"), basedOn: 2)
            }
            #expect(try store.head(of: doc("d")) == 10)
            #expect(try await store.append([op(10)], to: doc("d"), basedOn: 8) == AppendResult(revisions: [10], wasRetry: true))
            #expect(try await store.append([op(11)], to: doc("d"), basedOn: 8) == AppendResult(revisions: [11], wasRetry: false))
        }
    }
}
