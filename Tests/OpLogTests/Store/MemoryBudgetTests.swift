import Foundation
import OpLog
import OpLogTestSupport
import Testing

/// Goal: the per-document state a store keeps (the op-ID indexes for plain retries) stays within its
/// memory budget, one store's or one shared by several, and eviction changes no answer: a retry of
/// an evicted document's ops is recognised as before. Method: more documents than the budget holds
/// indexes for, appended to round-robin, then every accepted append retried; counters say how many
/// indexes were loaded and evicted. (The reference-model property test runs half its runs with a
/// budget that evicts every index after each group.)
@Suite struct MemoryBudgetTests {
    /// 300 documents × 40 ops of 8-op appends: about 300 × (160 + 64 × 72) bytes of indexes, over
    /// twice the 1 MiB budget.
    @Test func evictedIndexesStillRecogniseRetries() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        var options = testOptions()
        options.memoryBudgetBytes = 1 << 20
        let documents = (0..<300).map { doc("budget-\($0)") }
        var appended: [(DocumentID, [NewOp], [Revision])] = []
        try await withStore(dir.path, options: options) { store in
            var next: UInt64 = 0
            for round in 0..<5 {
                for document in documents {
                    let ops = (0..<8).map { _ in
                        next += 1
                        return NewOp(opID: OpID(high: 0xB0D, low: next), author: [], payload: Array("op \(next)".utf8))
                    }
                    let result = try await store.append(ops, to: document)
                    #expect(result.revisions == Array(UInt64(round * 8 + 1)...UInt64(round * 8 + 8)))
                    appended.append((document, ops, result.revisions))
                }
            }
            let filled = store.writerCounters()
            #expect(filled.dedupeIndexEvictions > 0, "no index was evicted: \(filled)")
            #expect(filled.dedupeIndexBytes <= options.memoryBudgetBytes, "indexes hold \(filled.dedupeIndexBytes) bytes")
            // Every append again, in a new order: each is a retry answered with its first revisions.
            for (document, ops, revisions) in appended.reversed() {
                let retry = try await store.append(ops, to: document)
                #expect(retry.wasRetry && retry.revisions == revisions, "\(document): retry answered \(retry)")
            }
            for document in documents { #expect(try store.head(of: document) == 40) }
            let after = store.writerCounters()
            #expect(after.dedupeIndexLoads > documents.count, "indexes were never rebuilt after eviction: \(after)")
            #expect(after.dedupeIndexBytes <= options.memoryBudgetBytes)
        }
    }

    /// Two stores share a 1 MiB budget. The first fills it; when the second grows, the first is
    /// asked to trim (on its own writer thread) and the two together end within the budget.
    @Test func aSharedBudgetTrimsTheOtherStore() async throws {
        let first = TemporaryDirectory()
        let second = TemporaryDirectory()
        defer {
            first.remove()
            second.remove()
        }
        let budget = MemoryBudget(bytes: 1 << 20)
        var options = testOptions()
        options.sharedMemoryBudget = budget
        let storeA = try await OpLogStore.open(directory: first.path, options: options)
        let storeB = try await OpLogStore.open(directory: second.path, options: options)
        func fill(_ store: OpLogStore, _ name: String) async throws {
            var next: UInt64 = 0
            for index in 0..<250 {
                let ops = (0..<64).map { _ in
                    next += 1
                    return NewOp(opID: OpID(high: 0x5A, low: next), author: [], payload: [1])
                }
                _ = try await store.append(ops, to: doc("\(name)-\(index)"))
            }
        }
        try await fill(storeA, "a")
        let aFull = storeA.writerCounters().dedupeIndexBytes
        #expect(aFull > (1 << 20) / 2, "the first store holds only \(aFull) bytes of indexes")
        try await fill(storeB, "b")
        // The trim request runs on the first store's writer thread: wait for it, bounded.
        try await waitUntil("the shared budget to hold") { budget.bytesInUse <= 1 << 20 }
        let aAfter = storeA.writerCounters()
        #expect(aAfter.dedupeIndexEvictions > 0 && aAfter.dedupeIndexBytes < aFull, "the first store was never trimmed: \(aAfter)")
        #expect(storeB.writerCounters().dedupeIndexBytes > 0)
        try await storeA.close()
        try await storeB.close()
        #expect(budget.bytesInUse == 0, "closed stores still count \(budget.bytesInUse) bytes")
    }

    /// The options refuse a budget too small to hold an index.
    @Test func aBudgetBelowTheMinimumIsRefused() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        var options = testOptions()
        options.memoryBudgetBytes = Limits.memoryBudgetBytesMin - 1
        await #expect(throws: OpLogError.self) { _ = try await OpLogStore.open(directory: dir.path, options: options) }
    }
}

/// Goal: memory stays bounded by the budget, not by the documents ever touched. Method:
/// `oplog-testkit budget-memory` in a process of its own (other tests' memory would blur RSS):
/// 50,000 documents of 16 ops each stream past a store with a 16 MiB budget; `RssAnon`, sampled
/// every 500 documents, must stay within the budget + 64 MiB above its value right after open.
@Suite struct BudgetMemoryTests {
    @Test(.enabled(if: CLITests.testKit != nil, "needs the built oplog-testkit executable"))
    func fiftyThousandDocumentsStayWithinTheBudget() throws {
        let dir = TemporaryDirectory("oplog-budget")
        defer { dir.remove() }
        let run = try CLITests.runTestKit(["budget-memory", "--store", dir.path])
        #expect(run.status == 0, "\(run.output)")
        let result = try #require(try JSONSerialization.jsonObject(with: Data(run.output.utf8)) as? [String: Int])
        print("memory budget: \(result)")
        let afterOpen = try #require(result["rss_anon_after_open"])
        let peak = try #require(result["rss_anon_peak"])
        let budget = try #require(result["budget_bytes"])
        #expect(peak - afterOpen <= budget + 64 << 20, "RssAnon grew by \(peak - afterOpen) bytes under a \(budget)-byte budget")
        #expect(try #require(result["index_evictions"]) > 0, "no index was evicted")
        #expect(try #require(result["index_bytes_end"]) <= budget)
    }

    /// An index rebuilt while the applier commits the ops it reads. The writer takes the document's
    /// view (with its unapplied ops) under its turn, then reads LMDB; the applier may commit those
    /// ops in between, so LMDB's head can be past the view's first unapplied revision. W4 hit this
    /// as a false "op chunks hold revisions 1..<11 where the document record requires 1..<13". Method:
    /// every index evicted after each group, 64 documents per group so the writer spends its time
    /// rebuilding, 1 MiB applies every few groups, for a bounded number of groups. (Before the fix
    /// it failed in most runs.)
    @Test func indexesRebuiltWhileAnApplyCommitsAgreeWithLMDB() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        var options = testOptions()
        options.durability = .lastAppendsMayBeLost
        options.journalApplyBytes = 1 << 20
        options.sharedMemoryBudget = MemoryBudget(evictingEverythingForTesting: ())
        // A short window: each rebuild reads a chunk or two, not the document's whole history.
        options.dedupeWindowOps = 8
        let documents = (0..<64).map { doc("rebuild-\($0)") }
        let payload = [UInt8](repeating: UInt8(ascii: "r"), count: 2048)
        try await withStore(dir.path, options: options) { store in
            var next: UInt64 = 0
            for round in 1...300 {
                let batch = documents.map { document in
                    next += 1
                    return DocumentAppend(
                        document: document, ops: [NewOp(opID: OpID(high: 0x4EB, low: next), author: [], payload: payload)])
                }
                let results = try await store.append(batch: batch)
                #expect(results.allSatisfy { $0.revisions == [UInt64(round)] })
            }
            let counters = store.writerCounters()
            #expect(counters.journalApplies >= 25, "too few applies to overlap the rebuilds: \(counters)")
            #expect(counters.dedupeIndexLoads >= 300 * 64)
        }
    }
}
