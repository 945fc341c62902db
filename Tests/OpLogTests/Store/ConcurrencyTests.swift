import Foundation
import OpLog
import OpLogTestSupport
import Testing

/// Goal: many tasks appending at once (overlapping documents, multi-document batches, retries)
/// get gap-free revisions, exactly-once effects, read-after-acknowledge, and a failing caller never
/// fails or changes its batch-mates' outcome.
@Suite struct ConcurrencyTests {
    @Test func concurrentAppendersGetGapFreeExactlyOnceRevisions() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        var options = testOptions(durability: .full)
        options.journalApplyBytes = 1 << 20
        let tasks = 48
        let appendsPerTask = 60
        let documents = (0..<6).map { doc("shared-\($0)") }
        try await withStore(dir.path, options: options) { store async throws in
            try await withThrowingTaskGroup(of: [(DocumentID, OpID, Revision)].self) { group in
                for task in 0..<tasks {
                    group.addTask {
                        var accepted: [(DocumentID, OpID, Revision)] = []
                        for index in 0..<appendsPerTask {
                            let id = OpID(high: UInt64(task), low: UInt64(index))
                            let newOp = NewOp(opID: id, author: [UInt8(task)], payload: Array("t\(task)i\(index)".utf8))
                            let document = documents[(task + index) % documents.count]
                            if index % 10 == 9 {
                                // A batch across two documents, then its retry.
                                let other = documents[(task + index + 1) % documents.count]
                                let second = NewOp(opID: OpID(high: UInt64(task) | 1 << 32, low: UInt64(index)), author: [1], payload: [2])
                                let batch = [
                                    DocumentAppend(document: document, ops: [newOp]), DocumentAppend(document: other, ops: [second]),
                                ]
                                let results = try await store.append(batch: batch)
                                let retried = try await store.append(batch: batch)
                                #expect(retried.map(\.revisions) == results.map(\.revisions) && retried.allSatisfy(\.wasRetry))
                                accepted.append((document, newOp.opID, results[0].revisions[0]))
                                accepted.append((other, second.opID, results[1].revisions[0]))
                                continue
                            }
                            let result = try await store.append([newOp], to: document)
                            // Read-after-acknowledge: this task sees its own op at once.
                            let read = try store.ops(of: document, from: result.revisions[0], limit: 1)
                            #expect(read.first?.opID == id)
                            if index % 7 == 0 {
                                let again = try await store.append([newOp], to: document, expectedHead: 0)
                                #expect(again == AppendResult(revisions: result.revisions, wasRetry: true))
                            }
                            accepted.append((document, id, result.revisions[0]))
                        }
                        return accepted
                    }
                }
                // A caller that always fails (stale expected head) runs alongside.
                group.addTask {
                    for index in 0..<100 {
                        await #expect(throws: OpLogError.self) {
                            try await store.append(
                                [NewOp(opID: OpID(high: 999, low: UInt64(index)), author: [], payload: [])],
                                to: documents[index % documents.count], expectedHead: 1)
                        }
                    }
                    return []
                }
                var all: [(DocumentID, OpID, Revision)] = []
                for try await accepted in group { all += accepted }
                let expectedOps = tasks * appendsPerTask + tasks * (appendsPerTask / 10)
                #expect(all.count == expectedOps)
                for document in documents {
                    let mine = all.filter { $0.0 == document }
                    let head = try store.head(of: document)
                    #expect(head == UInt64(mine.count), "\(document): head \(head), \(mine.count) accepted")
                    #expect(Set(mine.map(\.2)) == Set(1...head), "\(document): revisions not gap-free")
                    let stored = try store.ops(of: document, from: 1, limit: 10_000)
                    for (_, id, revision) in mine { #expect(stored[Int(revision) - 1].opID == id) }
                }
            }
            let counters = store.writerCounters()
            #expect(counters.opsCommitted == tasks * appendsPerTask + tasks * (appendsPerTask / 10) * 2 - tasks * (appendsPerTask / 10))
            print("concurrency: \(counters.groupCommits) group commits for \(counters.opsCommitted) ops")
        }
    }

    @Test func failingCallerDoesNotFailItsGroupMates() async throws {
        // Method: many callers submit at the same moment, half of them invalid in different ways;
        // the valid half must all succeed, whatever group commits they shared.
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        try await withStore(dir.path) { store async throws in
            _ = try await store.append([op(1)], to: doc("x"))
            try await withThrowingTaskGroup(of: Bool.self) { group in
                for index in 0..<200 {
                    group.addTask {
                        let document = doc("m\(index % 10)")
                        switch index % 4 {
                        case 0:
                            _ = try await store.append([op(UInt64(10_000 + index))], to: document)
                            return true
                        case 1:
                            do { _ = try await store.append([op(UInt64(20_000 + index))], to: doc("x"), expectedHead: 99) } catch OpLogError
                                .conflict
                            { return false }
                            return true
                        case 2:
                            do {
                                _ = try await store.append(
                                    [op(UInt64(30_000 + index), String(repeating: "z", count: Limits.payloadBytesMax + 1))], to: document)
                            } catch OpLogError.limitExceeded { return false }
                            return true
                        default:
                            _ = try await store.append(batch: [DocumentAppend(document: document, ops: [op(UInt64(40_000 + index))])])
                            return true
                        }
                    }
                }
                var successes = 0
                for try await succeeded in group where succeeded { successes += 1 }
                #expect(successes == 100)
            }
            #expect(try store.head(of: doc("x")) == 1)
            #expect((0..<10).map { try! store.head(of: doc("m\($0)")) }.reduce(0, +) == 100)
        }
    }
}
