import Foundation
import OpLog
import OpLogTestSupport
import OpLogText
import Testing

/// Two-phase appends: `prepare` validates against the store and the prepared changes, assigns
/// revisions and positions and writes nothing; `commit` publishes in position order; `abandon`
/// drops a change and those after it; a crash or close before `commit` leaves nothing.
@Suite struct PreparedAppendTests {
    @Test func preparedChangesSeeEachOtherAndCommitInPositionOrder() async throws {
        let directory = TemporaryDirectory("oplog-prepare")
        let followerDirectory = TemporaryDirectory("oplog-prepare-follower")
        defer {
            directory.remove()
            followerDirectory.remove()
        }
        try await withStore(directory.path, options: FeedTests.feedOptions()) { store async throws in
            _ = try await store.append([op(1, "base")], to: doc("y"))
            let before = try #require(try store.latestPosition())
            let first = try await store.prepare([DocumentAppend(document: doc("x"), ops: [op(10, "a"), op(11, "b")], expectedHead: 0)])
            let a = try #require(first.change)
            #expect(a.position.sequence == before.sequence + 1 && first.results == [AppendResult(revisions: [1, 2], wasRetry: false)])
            let second = try await store.prepare([DocumentAppend(document: doc("x"), ops: [op(12, "c")], expectedHead: 2)])
            let b = try #require(second.change)
            #expect(b.position.sequence == before.sequence + 2 && second.results[0].revisions == [3])
            // Expected heads and retries see the prepared changes.
            await #expect(throws: OpLogError.conflict(document: doc("x"), expectedHead: 0, actualHead: 3)) {
                _ = try await store.prepare([DocumentAppend(document: doc("x"), ops: [op(13)], expectedHead: 0)])
            }
            let retry = try await store.prepare([DocumentAppend(document: doc("x"), ops: [op(10, "a"), op(11, "b")])])
            #expect(retry.change == nil && retry.results == [AppendResult(revisions: [1, 2], wasRetry: true)])
            // Nothing is visible or durable yet, and other mutations wait for the prepared ones.
            #expect(try store.head(of: doc("x")) == 0)
            #expect(try store.latestPosition() == before)
            await #expect(throws: OpLogError.preparedChangesPending(oldest: a.position, count: 2)) {
                _ = try await store.append([op(20)], to: doc("z"))
            }
            await #expect(throws: OpLogError.preparedChangesPending(oldest: a.position, count: 2)) {
                try await store.putSnapshot([1], of: doc("y"), at: 1)
            }
            await #expect(throws: OpLogError.self) { try await store.commit(b) }
            try await store.commit(a)
            #expect(try store.head(of: doc("x")) == 2 && store.latestPosition() == a.position)
            try await store.commit(b)
            #expect(try store.ops(of: doc("x"), from: 1).map(\.payload) == [Array("a".utf8), Array("b".utf8), Array("c".utf8)])
            // The feed holds exactly the prepared changes, which a follower applies as any other.
            let feed = try await FeedTests.readAll(store, after: before)
            #expect(feed == [a, b])
            _ = try await store.append([op(21)], to: doc("z"))
            try await withStore(followerDirectory.path, options: FollowerTests.followerOptions()) { follower async throws in
                try await follower.apply(contentsOf: try await FeedTests.readAll(store))
                #expect(try FollowerTests.contents(follower) == FollowerTests.contents(store))
            }
        }
    }

    @Test func abandonDropsTheChangeAndEveryOnePreparedAfterIt() async throws {
        let directory = TemporaryDirectory("oplog-prepare")
        defer { directory.remove() }
        try await withStore(directory.path, options: FeedTests.feedOptions()) { store async throws in
            let a = try #require(try await store.prepare([DocumentAppend(document: doc("x"), ops: [op(1, "a")])]).change)
            let b = try #require(try await store.prepare([DocumentAppend(document: doc("x"), ops: [op(2, "b")])]).change)
            let c = try #require(try await store.prepare([DocumentAppend(document: doc("w"), ops: [op(3, "c")])]).change)
            try await store.abandon(b)
            await #expect(throws: OpLogError.self) { try await store.commit(c) }
            await #expect(throws: OpLogError.self) { try await store.abandon(c) }
            let d = try #require(try await store.prepare([DocumentAppend(document: doc("x"), ops: [op(4, "d")])]).change)
            #expect(d.position == b.position)
            try await store.commit(a)
            try await store.commit(d)
            #expect(try store.ops(of: doc("x"), from: 1).map(\.opID.low) == [1, 4])
            #expect(try store.head(of: doc("w")) == 0)
            // The abandoned ops were never accepted: submitting them again is new, not a retry.
            let again = try await store.append([op(2, "b")], to: doc("x"))
            #expect(!again.wasRetry && again.revisions == [3])
        }
    }

    @Test func aCloseOrCrashBetweenPrepareAndCommitLeavesNothing() async throws {
        let directory = TemporaryDirectory("oplog-prepare")
        defer { directory.remove() }
        let options = FeedTests.feedOptions()
        let prepared = try await withStore(directory.path, options: options) { store async throws in
            _ = try await store.append([op(1)], to: doc("x"))
            return try #require(try await store.prepare([DocumentAppend(document: doc("x"), ops: [op(2)])], epoch: 5).change)
        }
        try await withStore(directory.path, options: options) { store async throws in
            #expect(try store.head(of: doc("x")) == 1)
            #expect(try store.latestPosition()?.sequence == prepared.position.sequence - 1)
            #expect(try await store.epoch(of: FencingScope(document: doc("x"))) == 0)
            await #expect(throws: OpLogError.self) { try await store.commit(prepared) }
            let next = try await store.append([op(3)], to: doc("x"))
            #expect(try next.revisions == [2] && store.latestPosition()?.sequence == prepared.position.sequence)
        }
    }

    /// Random prepares (right and wrong expected heads, retries), commits, abandons and reopens
    /// against a model of the committed and the prepared ops. Seeded (`OPLOG_SEED`).
    @Test func twoPhaseAppendsMatchTheModel() async throws {
        let seed = testSeed()
        print("two-phase model test: seed \(seed) (OPLOG_SEED=\(seed) repeats it)")
        let directory = TemporaryDirectory("oplog-prepare-model")
        defer { directory.remove() }
        var random = SplitMix64(seed: seed)
        var committed: [String: [UInt64]] = [:]  // document → op IDs by revision
        var pending: [(change: Change, document: String, ids: [UInt64])] = []
        var nextID: UInt64 = 1
        var counts = (prepares: 0, commits: 0, abandons: 0, conflicts: 0, retries: 0, reopens: 0)
        func headIncludingPrepared(_ name: String) -> Int {
            (committed[name]?.count ?? 0) + pending.filter { $0.document == name }.reduce(0) { $0 + $1.ids.count }
        }
        for _ in 0..<8 {
            try await withStore(directory.path, options: FeedTests.feedOptions()) { store async throws in
                for _ in 0..<60 {
                    let name = "m\(random.next() % 3)"
                    switch random.next() % 8 {
                    case 0, 1, 2:
                        let head = headIncludingPrepared(name)
                        let wrong = random.next() % 4 == 0
                        let ids = (0..<(1 + random.next() % 3)).map { _ in
                            nextID += 1
                            return nextID
                        }
                        let part = DocumentAppend(
                            document: doc(name), ops: ids.map { op($0) }, expectedHead: Revision(wrong ? head + 1 : head))
                        if wrong {
                            await #expect(
                                throws: OpLogError.conflict(
                                    document: doc(name), expectedHead: Revision(head + 1), actualHead: Revision(head))
                            ) {
                                _ = try await store.prepare([part])
                            }
                            counts.conflicts += 1
                        } else {
                            let result = try await store.prepare([part])
                            let change = try #require(result.change)
                            #expect(result.results[0].revisions == (0..<ids.count).map { Revision(head + 1 + $0) })
                            pending.append((change, name, ids))
                            counts.prepares += 1
                        }
                    case 3:
                        // A retry of prepared or committed ops: their revisions, nothing new.
                        let all = (committed[name] ?? []) + pending.filter { $0.document == name }.flatMap(\.ids)
                        guard let index = all.indices.randomElement(using: &random) else { continue }
                        let result = try await store.prepare([DocumentAppend(document: doc(name), ops: [op(all[index])])])
                        #expect(result.change == nil && result.results[0] == AppendResult(revisions: [Revision(index + 1)], wasRetry: true))
                        counts.retries += 1
                    case 4, 5:
                        guard let first = pending.first else { continue }
                        try await store.commit(first.change)
                        committed[first.document, default: []] += first.ids
                        pending.removeFirst()
                        counts.commits += 1
                    case 6:
                        guard let index = pending.indices.randomElement(using: &random) else { continue }
                        try await store.abandon(pending[index].change)
                        pending.removeSubrange(index...)
                        counts.abandons += 1
                    default:
                        // An apply between a prepare and its commit.
                        try await store.checkpoint()
                    }
                    #expect(try store.head(of: doc(name)) == Revision(committed[name]?.count ?? 0))
                }
            }
            // A close drops what is prepared.
            pending.removeAll()
            counts.reopens += 1
        }
        try await withStore(directory.path, options: FeedTests.feedOptions()) { store async throws in
            for (name, ids) in committed {
                #expect(try store.ops(of: doc(name), from: 1, limit: 10_000).map(\.opID.low) == ids, "seed \(seed): \(name)")
            }
            #expect(try await store.verify().problems.isEmpty)
        }
        print("two-phase model test: \(counts)")
    }
}
