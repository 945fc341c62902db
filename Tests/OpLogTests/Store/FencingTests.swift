import Foundation
import OpLog
import OpLogStorage
import OpLogTestSupport
import Testing

/// Fencing epochs: an owner's epoch on its mutations, refused once a newer owner raised the scope's
/// epoch, across group commits, applies, reopens and crashes.
@Suite struct FencingTests {
    /// Two owners append concurrently with epochs 5 and 6: once an op with 6 is accepted, no op with
    /// 5 is, by the order of the revisions the store assigned. Then the same holds after a reopen.
    @Test(arguments: [Durability.full, .lastAppendsMayBeLost])
    func aNewerOwnerFencesTheOlderOneFromItsFirstAcceptedOp(durability: Durability) async throws {
        let directory = TemporaryDirectory("oplog-fencing")
        defer { directory.remove() }
        let document = doc("fenced")
        let options = testOptions(durability: durability)  // 1 MiB applies: two or three during the run
        let (accepted, refusedAfterSix) = try await withStore(directory.path, options: options) { store async throws in
            try await withThrowingTaskGroup(of: [(epoch: UInt64, revision: Revision?)].self) { group in
                for epoch: UInt64 in [5, 6] {
                    group.addTask {
                        var outcomes: [(epoch: UInt64, revision: Revision?)] = []
                        for index in 0..<300 {
                            let id = epoch << 32 | UInt64(index)
                            do {
                                let result = try await store.append(
                                    [op(id, String(repeating: "p", count: 4_000))], to: document, epoch: epoch)
                                outcomes.append((epoch, result.revisions[0]))
                            } catch let error as OpLogError {
                                #expect(error == .staleEpoch(scope: FencingScope(document: document), epoch: 5, current: 6))
                                outcomes.append((epoch, nil))
                            }
                        }
                        return outcomes
                    }
                }
                var all: [(epoch: UInt64, revision: Revision?)] = []
                for try await outcomes in group { all += outcomes }
                return (all.compactMap { $0.revision == nil ? nil : $0 }, all.filter { $0.revision == nil }.count)
            }
        }
        let firstSix = accepted.filter { $0.epoch == 6 }.map { $0.revision! }.min()!
        let lastFive = accepted.filter { $0.epoch == 5 }.map { $0.revision! }.max() ?? 0
        #expect(lastFive < firstSix, "an op with epoch 5 got revision \(lastFive), after epoch 6's first at \(firstSix)")
        #expect(accepted.filter { $0.epoch == 6 }.count == 300)
        #expect(refusedAfterSix == 300 - accepted.filter { $0.epoch == 5 }.count)
        // The stored log holds exactly the accepted ops, and the fence survives the reopen.
        try await withStore(directory.path, options: options) { store async throws in
            #expect(try store.head(of: document) == UInt64(accepted.count))
            #expect(try await store.epoch(of: FencingScope(document: document)) == 6)
            await #expect(throws: OpLogError.staleEpoch(scope: FencingScope(document: document), epoch: 5, current: 6)) {
                try await store.append([op(1 << 40)], to: document, epoch: 5)
            }
            await #expect(throws: OpLogError.epochRequired(scope: FencingScope(document: document), current: 6)) {
                try await store.append([op(1 << 41)], to: document)
            }
            #expect(try await store.append([op(1 << 42)], to: document, epoch: 6).wasRetry == false)
        }
    }

    /// `raiseEpoch` on a scope fences every document the scope function maps to it, including ones
    /// never written; other scopes stay unfenced; a lower raise is stale, the same one a no-op.
    @Test func raisingAGroupScopeFencesEveryDocumentInIt() async throws {
        let directory = TemporaryDirectory("oplog-fencing-scope")
        defer { directory.remove() }
        var options = testOptions(durability: .full)
        options.fencingScope = { document in try! FencingScope("shard-" + String(document.value.prefix(1))) }
        let shardA = try FencingScope("shard-a")
        try await withStore(directory.path, options: options) { store async throws in
            _ = try await store.append([op(1)], to: doc("a-old"))
            try await store.raiseEpoch(7, for: shardA)
            try await store.raiseEpoch(7, for: shardA)
            await #expect(throws: OpLogError.staleEpoch(scope: shardA, epoch: 6, current: 7)) { try await store.raiseEpoch(6, for: shardA) }
            for name in ["a-old", "a-never-written"] {
                await #expect(throws: OpLogError.staleEpoch(scope: shardA, epoch: 6, current: 7)) {
                    try await store.append([op(2)], to: doc(name), epoch: 6)
                }
                await #expect(throws: OpLogError.epochRequired(scope: shardA, current: 7)) {
                    try await store.append([op(3)], to: doc(name))
                }
            }
            #expect(try store.head(of: doc("a-never-written")) == 0)
            _ = try await store.append([op(4)], to: doc("b-free"))
            // A batch with one stale part stores nothing of any part.
            let batch = [
                DocumentAppend(document: doc("b-free"), ops: [op(5)]), DocumentAppend(document: doc("a-old"), ops: [op(6)], epoch: 6),
            ]
            await #expect(throws: OpLogError.staleEpoch(scope: shardA, epoch: 6, current: 7)) { try await store.append(batch: batch) }
            #expect(try store.head(of: doc("b-free")) == 1)
            // A higher epoch on an append raises the scope's with it.
            _ = try await store.append([op(7)], to: doc("a-new"), epoch: 9)
            #expect(try await store.epoch(of: shardA) == 9)
            await #expect(throws: OpLogError.staleEpoch(scope: shardA, epoch: 7, current: 9)) {
                try await store.append([op(8)], to: doc("a-old"), epoch: 7)
            }
        }
    }

    /// Direct mutations (snapshots, deletion) and truncation are fenced too; a document's deletion
    /// keeps its scope's epoch; the epoch survives an apply, a reopen and a read-only open.
    @Test func everyMutationIsFencedAndDeletionKeepsTheEpoch() async throws {
        let directory = TemporaryDirectory("oplog-fencing-mutations")
        defer { directory.remove() }
        let document = doc("owned")
        let scope = FencingScope(document: document)
        try await withStore(directory.path) { store async throws in
            _ = try await store.append([op(1), op(2), op(3)], to: document, epoch: 2)
            let stale = OpLogError.staleEpoch(scope: scope, epoch: 1, current: 2)
            await #expect(throws: stale) { try await store.putSnapshot(Array("s".utf8), of: document, at: 2, epoch: 1) }
            await #expect(throws: OpLogError.epochRequired(scope: scope, current: 2)) {
                try await store.putSnapshot(Array("s".utf8), of: document, at: 2)
            }
            try await store.putSnapshot(Array("s".utf8), of: document, at: 2, epoch: 2)
            await #expect(throws: stale) { try await store.truncate(document, below: 3, epoch: 1) }
            try await store.truncate(document, below: 3, epoch: 3)
            #expect(try await store.epoch(of: scope) == 3)
            await #expect(throws: OpLogError.staleEpoch(scope: scope, epoch: 2, current: 3)) {
                try await store.deleteSnapshot(of: document, at: 2, epoch: 2)
            }
            await #expect(throws: OpLogError.staleEpoch(scope: scope, epoch: 2, current: 3)) {
                try await store.deleteDocument(document, epoch: 2)
            }
            try await store.checkpoint()
            try await store.deleteDocument(document, epoch: 3)
            #expect(try store.head(of: document) == 0)
            #expect(try await store.epoch(of: scope) == 3)
            await #expect(throws: OpLogError.epochRequired(scope: scope, current: 3)) { try await store.append([op(4)], to: document) }
        }
        try await withStore(directory.path) { store async throws in
            #expect(try await store.epoch(of: scope) == 3)
            _ = try await store.append([op(5)], to: document, epoch: 3)
            #expect(try await store.verify().isClean)
            #expect(try await store.verify().epochRecordsChecked == 1)
        }
    }

    /// Raises that only reached the journal (the child kills itself right after their
    /// acknowledgements, before any apply or close) are recovered from it at the next open.
    @Test func journaledRaisesSurviveACrashBeforeTheirApply() async throws {
        let directory = TemporaryDirectory("oplog-fencing-crash")
        defer { directory.remove() }
        let (process, output) = try launchTestKit(
            ["fence-child", "--store", directory.path, "--scope", "group-x", "--epoch", "4", "--document", "crashy"])
        process.waitUntilExit()
        #expect(String(decoding: output.waitForEnd(), as: UTF8.self) == "raised\n")
        #expect(process.terminationReason == .uncaughtSignal && process.terminationStatus == SIGKILL)
        try await withStore(directory.path, options: testOptions(durability: .full)) { store async throws in
            #expect(try await store.epoch(of: FencingScope("group-x")) == 4)
            let scope = FencingScope(document: doc("crashy"))
            #expect(try await store.epoch(of: scope) == 5)
            #expect(try store.head(of: doc("crashy")) == 1)
            await #expect(throws: OpLogError.staleEpoch(scope: scope, epoch: 4, current: 5)) {
                try await store.append([op(9)], to: doc("crashy"), epoch: 4)
            }
        }
        // The recovery's apply wrote the epochs to LMDB: they hold with the journal emptied.
        try await withStore(directory.path) { store async throws in
            #expect(try await store.epoch(of: FencingScope("group-x")) == 4)
            #expect(try await store.verify().epochRecordsChecked == 2)
        }
    }

    @Test func badEpochArgumentsAreRefused() async throws {
        let directory = TemporaryDirectory("oplog-fencing-args")
        defer { directory.remove() }
        #expect(throws: OpLogError.self) { try FencingScope("") }
        #expect(throws: OpLogError.limitExceeded(.fencingScopeBytes, value: 257, maximum: Limits.fencingScopeBytesMax)) {
            try FencingScope(String(repeating: "x", count: 257))
        }
        try await withStore(directory.path) { store async throws in
            await #expect(throws: OpLogError.invalidArgument("epochs start at 1")) { try await store.raiseEpoch(0, for: FencingScope("s")) }
            // Epoch 0 on a mutation means none.
            _ = try await store.append([op(1)], to: doc("zero"), epoch: 0)
            #expect(try await store.epoch(of: FencingScope(document: doc("zero"))) == 0)
        }
    }
}
