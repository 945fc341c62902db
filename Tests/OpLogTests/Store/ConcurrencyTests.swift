import Foundation
import OpLog
import OpLogTestSupport
import Synchronization
import Testing

/// Goal: many tasks appending at once (overlapping documents, multi-document batches, retries)
/// get gap-free revisions, exactly-once effects, read-after-acknowledge, and a failing caller never
/// fails or changes its batch-mates' outcome.
@Suite struct ConcurrencyTests {
    /// In `full` every append goes through the writer thread; in `lastAppendsMayBeLost` an append
    /// that finds the writer idle runs on its caller's thread, so both paths interleave here.
    @Test(arguments: [Durability.full, .lastAppendsMayBeLost])
    func concurrentAppendersGetGapFreeExactlyOnceRevisions(durability: Durability) async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        var options = testOptions(durability: durability)
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
            print(
                "concurrency [\(durability)]: \(counters.groupCommits) group commits "
                    + "(\(counters.commitsOnCallerThreads) inline) for \(counters.opsCommitted) ops"
            )
            if durability == .full { #expect(counters.commitsOnCallerThreads == 0) }
        }
    }

    @Test(arguments: [Durability.full, .lastAppendsMayBeLost])
    func blockingAppendersLeadGroupCommitsBesideAsyncOnes(durability: Durability) async throws {
        // Method: OS threads append with appendBlocking while tasks append with the async API and
        // one task puts snapshots, truncates and checkpoints (requests only the writer thread
        // runs), all on the same documents; every accepted op must get a gap-free revision, once.
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let threads = 16
        let tasks = 8
        let appendsEach = 150
        let documents = (0..<4).map { doc("mixed-\($0)") }
        try await withStore(dir.path, options: testOptions(durability: durability)) { store async throws in
            let accepted = Collected<(DocumentID, OpID, Revision)>()
            let failures = Collected<String>()
            let finished = DispatchGroup()
            for thread in 0..<threads {
                finished.enter()
                Thread {
                    defer { finished.leave() }
                    for index in 0..<appendsEach {
                        let id = OpID(high: 1 << 40 | UInt64(thread), low: UInt64(index))
                        let document = documents[(thread + index) % documents.count]
                        do {
                            let result = try store.appendBlocking([NewOp(opID: id, author: [1], payload: [2])], to: document)
                            // Read-after-acknowledge on the blocking path too, and a retry is recognised.
                            let read = try store.ops(of: document, from: result.revisions[0], limit: 1)
                            let again = try store.appendBlocking([NewOp(opID: id, author: [1], payload: [2])], to: document)
                            if read.first?.opID != id || again != AppendResult(revisions: result.revisions, wasRetry: true) {
                                failures.append("thread \(thread) op \(index): read \(read), retry \(again)")
                            }
                            accepted.append((document, id, result.revisions[0]))
                        } catch {
                            failures.append("thread \(thread) op \(index): \(error)")
                        }
                    }
                }.start()
            }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for task in 0..<tasks {
                    group.addTask {
                        for index in 0..<appendsEach {
                            let id = OpID(high: 2 << 40 | UInt64(task), low: UInt64(index))
                            let document = documents[(task + index) % documents.count]
                            let result = try await store.append([NewOp(opID: id, author: [3], payload: [4])], to: document)
                            accepted.append((document, id, result.revisions[0]))
                        }
                    }
                }
                group.addTask {
                    for round in 0..<20 {
                        let document = documents[round % documents.count]
                        let head = try store.head(of: document)
                        guard head > 1 else { continue }
                        try await store.putSnapshot(Array("s\(head)".utf8), of: document, at: head - 1)
                        try await store.truncate(document, below: head)
                        if round % 5 == 4 { try await store.checkpoint() }
                    }
                }
                try await group.waitForAll()
            }
            await withCheckedContinuation { continuation in
                DispatchQueue.global().async {
                    finished.wait()
                    continuation.resume()
                }
            }
            #expect(failures.items.isEmpty, "\(failures.items.prefix(5))")
            let all = accepted.items
            #expect(all.count == (threads + tasks) * appendsEach)
            for document in documents {
                let mine = all.filter { $0.0 == document }
                let head = try store.head(of: document)
                #expect(head == UInt64(mine.count) && Set(mine.map(\.2)) == Set(1...head), "\(document): head \(head)")
                let floor = try store.info(of: document)?.floor ?? 1
                let stored = try store.ops(of: document, from: floor, limit: 10_000)
                for (_, id, revision) in mine where revision >= floor { #expect(stored[Int(revision - floor)].opID == id) }
            }
            let counters = store.writerCounters()
            #expect(counters.commitsOnCallerThreads > 0, "\(counters)")
        }
    }

    @Test func inlineAppendsLeaveAppliesToTheWriterThread() async throws {
        // Method: one caller appends sequentially, so the writer is idle at every append and each
        // one runs inline; the journal must still be applied every `journalApplyBytes`, by the
        // writer thread, and everything must survive a reopen.
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let options = testOptions(durability: .lastAppendsMayBeLost)
        let payload = String(repeating: "p", count: 200)
        let appends = 12_000
        try await withStore(dir.path, options: options) { store async throws in
            for index in 0..<appends {
                let result = try await store.append([op(UInt64(index), payload)], to: doc("d\(index % 3)"))
                #expect(result.revisions == [UInt64(index / 3 + 1)])
            }
            let counters = store.writerCounters()
            #expect(
                counters.commitsOnCallerThreads > appends / 2 && counters.commitsOnCallerThreads <= counters.groupCommits, "\(counters)")
            #expect(counters.journalApplies >= 1, "\(counters)")
            // A retry of an early op is still recognised after the applies.
            #expect(try await store.append([op(0, payload)], to: doc("d0")) == AppendResult(revisions: [1], wasRetry: true))
        }
        try await withStore(dir.path, options: options) { store async throws in
            for document in 0..<3 { #expect(try store.head(of: doc("d\(document)")) == UInt64(appends / 3)) }
            #expect(try store.ops(of: doc("d1"), from: 4_000, limit: 1).first?.opID == op(UInt64(3 * 3_999 + 1)).opID)
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

/// Values gathered from several threads.
private final class Collected<Element: Sendable>: Sendable {
    private let storage = Mutex<[Element]>([])
    func append(_ element: Element) { storage.withLock { $0.append(element) } }
    var items: [Element] { storage.withLock { $0 } }
}
