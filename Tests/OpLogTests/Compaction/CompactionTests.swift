import Foundation
import OpLog
import OpLogStorage
import OpLogTestSupport
import OpLogText
import Testing

/// Goal: the compaction scheduler keeps every document replayable while it snapshots and truncates
/// under load, and under a steady workload the store's files stop growing.
@Suite struct CompactionTests {
    static var traces: [EditingTrace] {
        get throws {
            guard let directory = tracesDirectory() else { return [EditingTrace.generated(seed: 5, patchCount: 30_000)] }
            return try TraceTests.traceNames.map { try EditingTrace.load(path: "\(directory)/\($0).json.gz") }
        }
    }

    @Test func tracesReplayExactlyWhileTheSchedulerCompacts() async throws {
        // Method: each trace appended one patch = one op (up to 64 ops per append) while an
        // aggressive scheduler runs; 20 random revisions are replayed shortly after they were
        // written (while compaction moves the floor behind them) against text computed here.
        if tracesDirectory() == nil { print("TraceTests: ../shared/traces not found; using a generated session") }
        let dir = TemporaryDirectory("oplog-compaction")
        defer { dir.remove() }
        var policy = CompactionPolicy()
        policy.snapshotEveryOps = 1_000
        policy.keepOps = 100

        try await withStore(dir.path) { store async throws in
            let scheduler = try CompactionScheduler(store: store, policy: policy, reducer: TextReducer())
            try scheduler.start()
            var random = SplitMix64(seed: 17)
            for trace in try Self.traces {
                let document = try DocumentID(trace.name)
                let checks = Set((0..<20).map { _ in Int(random.next() % UInt64(trace.patches.count - 64)) + 1 })
                var pending: [(Revision, String)] = []
                var text = TextBuffer(trace.startContent)
                #expect(trace.startContent.isEmpty, "the store's text reducer starts from empty text")
                var index = 0
                while index < trace.patches.count {
                    let count = min(64, trace.patches.count - index)
                    var ops: [NewOp] = []
                    for offset in 0..<count {
                        let patch = trace.patches[index + offset]
                        try text.apply(patch)
                        if checks.contains(index + offset + 1) { pending.append((Revision(index + offset + 1), text.text)) }
                        ops.append(NewOp(opID: OpID(high: 77, low: UInt64(index + offset)), author: [1], payload: patch.jsonBytes()))
                    }
                    _ = try await store.append(ops, to: document)
                    index += count
                    for (revision, expected) in pending where UInt64(index) >= revision + 50 {
                        do {
                            #expect(
                                try store.replay(document, to: revision, with: TextReducer()).state.text == expected,
                                "\(trace.name) at \(revision)")
                        } catch {
                            let info = try store.info(of: document)
                            Issue.record(
                                Comment(rawValue: "\(trace.name) at \(revision) (appended \(index), head \(info?.head ?? 0), floor "
                                    + "\(info?.floor ?? 0), snapshots \(info?.snapshots.map(\.revision) ?? [])): \(error)")
                            )
                        }
                    }
                    pending.removeAll { UInt64(index) >= $0.0 + 50 }
                }
                await scheduler.drain()
                let final = try store.replay(document, with: TextReducer()).state.text
                #expect(final == trace.endContent ?? text.text, "\(trace.name): final replay differs")
                await #expect(try store.verifySnapshots(of: document, with: TextReducer()).isEmpty)
                let info = try #require(try store.info(of: document))
                #expect(
                    info.floor > 1 && info.snapshots.count <= policy.keepSnapshots + 1,
                    "\(trace.name): floor \(info.floor), \(info.snapshots.count) snapshots")
            }
            await scheduler.stop()
            let statistics = scheduler.statistics
            #expect(statistics.snapshotsWritten > 10 && statistics.opsTruncated > 0 && statistics.failures == 0, "\(statistics)")
            print("compaction: \(statistics)")
            await #expect(try store.verify().isClean)
        }
    }

    @Test func steadyWorkloadStopsGrowingTheFiles() async throws {
        // Method: 16 documents, each a window of the automerge-paper trace (a generated session
        // without the traces) starting from the real text at that point, take 250 ops per round for
        // 16 rounds with the scheduler keeping ~500 ops each and a dedupe window of 1,000 ops. File
        // sizes (data file and journal) are read after each round's checkpoint.
        let dir = TemporaryDirectory("oplog-steady")
        defer { dir.remove() }
        var options = testOptions()
        options.dedupeWindowOps = 1_000
        var policy = CompactionPolicy()
        policy.snapshotEveryOps = 500
        policy.keepOps = 250

        let documents = 16
        let rounds = 16
        let perRound = 250
        let trace =
            try tracesDirectory().map { try EditingTrace.load(path: "\($0)/automerge-paper.json.gz") }
            ?? EditingTrace.generated(seed: 8, patchCount: 120_000, computeEndContent: false)
        // Each document starts with one op inserting the trace's text at its window's start.
        var windows: [[TextPatch]] = []
        var text = TextBuffer(trace.startContent)
        let stride = (trace.patches.count - rounds * perRound) / documents
        for (index, patch) in trace.patches.enumerated() {
            if index % stride == 0 && windows.count < documents {
                windows.append(
                    [TextPatch(position: 0, deleted: 0, inserted: text.text)] + trace.patches[index..<(index + rounds * perRound)])
            }
            try text.apply(patch)
        }
        var sizes: [Int] = []
        var dataFileBytes = 0
        var usage = SpaceUsage()
        try await withStore(dir.path, options: options) { store async throws in
            let scheduler = try CompactionScheduler(store: store, policy: policy, reducer: TextReducer())
            try scheduler.start()
            for round in 0..<rounds {
                for step in 0..<(perRound / 10) {
                    for document in 0..<documents {
                        let first = round * perRound + step * 10 + (round == 0 && step == 0 ? 0 : 1)
                        let last = round * perRound + step * 10 + 10
                        let ops = (first...last).map {
                            NewOp(
                                opID: OpID(high: UInt64(document), low: UInt64($0)), author: [2], payload: windows[document][$0].jsonBytes()
                            )
                        }
                        _ = try await store.append(ops, to: try DocumentID("steady-\(document)"))
                    }
                }
                await scheduler.drain()
                try await store.checkpoint()
                dataFileBytes = File.sizeOf(dir.path + "/data.mdb")!
                sizes.append(dataFileBytes + Journal.fileBytes(in: dir.path))
            }
            await scheduler.stop()
            usage = try await store.spaceUsage()
            let statistics = try store.statistics()
            print("steady state: \(statistics.pagesUsed) pages, \(statistics.freePages) free; compaction \(scheduler.statistics)")
            await #expect(try store.verify().isClean)
        }
        let half = sizes[sizes.count / 2 - 1]
        let growth = Double(sizes.last! - half) / Double(half)
        print(
            "steady state: file sizes \(sizes), growth over the second half \(String(format: "%.1f", growth * 100))%, retained "
                + "\(usage.total) bytes (\(usage)), ratio \(String(format: "%.2f", Double(sizes.last!) / Double(usage.total)))"
        )
        #expect(growth < 0.05, "files grew \(Int(growth * 100))% over the second half: \(sizes)")
        // The journal's slots keep the size they reached (they are reused, not shrunk): the
        // retained-data ratio is the data file's.
        #expect(Double(dataFileBytes) <= 3 * Double(usage.total), "data.mdb \(dataFileBytes) bytes for \(usage.total) retained")
    }
}
