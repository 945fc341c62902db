import WorkloadEngines

/// What one run of one engine on one configuration measured.
struct RunFigures {
    var seconds: Double
    /// Part of `seconds` spent in `close()` (flushes and checkpoints).
    var closeSeconds: Double
    var writeBytes: Double
    var diskBytes: Double
    var p50Micros: Double
    var p99Micros: Double
    /// Exposes tails the percentiles hide, e.g. SQLite writers starved in its busy handler.
    var meanMicros: Double
    /// Snapshots and truncation of the run: the harness's (the plan's), or the engine's own scheduler's.
    var work: CompactionWork
    /// Who snapshotted: "harness" or "scheduler".
    var snapshotter: String
}

enum Runner {
    /// Opens the engine in `directory`, runs the plan, closes, and measures. The clock covers the
    /// workload and `close()` (deferred work such as RocksDB's flush is part of the cost); the
    /// write counter covers everything from before `open` to after `close`.
    ///
    /// With `compaction` (W1 only), the engine is asked to compact by itself (snapshot every 500 ops,
    /// keep 500 ops and 2 snapshots); an engine that does (OpLog) gets no harness snapshots, and its
    /// row reports its own work. A self-compacting engine that did nothing fails the run.
    static func measure(
        _ factory: EngineFactory, plan: WorkloadPlan, writers: Int, batch: Int, compaction: Bool, directory: String
    ) throws -> RunFigures {
        let interval = plan.workload.snapshotInterval
        let setup = EngineSetup(
            compaction: compaction && plan.workload == .w1
                ? CompactionSetup(
                    snapshotEveryOps: interval, keepOps: interval, keepSnapshots: 2,
                    startTexts: Dictionary(uniqueKeysWithValues: plan.documents.map { ($0.name, $0.startText ?? "") }))
                : nil)
        let writtenBefore = try ProcessIO.writtenBytes()
        let engine = try factory.open(directory, setup)
        let selfCompacting = setup.compaction != nil ? engine as? SelfCompactingEngine : nil
        let start = MonotonicClock.nanoseconds()
        var latencies: [UInt64]
        do {
            switch plan.workload {
            case .w1: latencies = try runWriters(engine, plan: plan, writers: writers, harnessSnapshots: selfCompacting == nil)
            case .w2: latencies = try runBatches(engine, plan: plan, batch: batch)
            case .w3: throw WorkloadError("W3 is measured by measureReplay")
            }
        } catch {
            try? engine.close()
            throw error
        }
        let closeStart = MonotonicClock.nanoseconds()
        try engine.close()
        let end = MonotonicClock.nanoseconds()
        let writtenAfter = try ProcessIO.writtenBytes()
        latencies.sort()
        let work = selfCompacting?.compactionWork ?? plan.harnessWork
        if selfCompacting != nil {
            let expected = plan.harnessWork
            guard (expected.snapshotsWritten == 0 || work.snapshotsWritten > 0) && (expected.opsTruncated == 0 || work.opsTruncated > 0)
            else {
                throw WorkloadError(
                    "\(factory.name): --compaction on, but its scheduler wrote \(work.snapshotsWritten) snapshots and truncated "
                        + "\(work.opsTruncated) ops (the harness would have written \(expected.snapshotsWritten) and truncated "
                            + "\(expected.opsTruncated))"
                )
            }
        }
        return RunFigures(
            seconds: Double(end - start) / 1e9,
            closeSeconds: Double(end - closeStart) / 1e9,
            writeBytes: Double(writtenAfter - writtenBefore),
            diskBytes: Double(StoreDirectory.allocatedBytes(directory)),
            p50Micros: Percentile.micros(latencies, 0.50),
            p99Micros: Percentile.micros(latencies, 0.99),
            meanMicros: latencies.isEmpty ? 0 : Double(latencies.reduce(0, +)) / Double(latencies.count) / 1000,
            work: work,
            snapshotter: selfCompacting == nil ? "harness" : "scheduler"
        )
    }

    /// W1: documents are dealt to writers (document k → writer k % writers); each writer appends
    /// one op at a time, round robin across its documents, waiting for each to be durable.
    /// Returns every append's latency. Without `harnessSnapshots` the engine compacts by itself.
    private static func runWriters(
        _ engine: any WorkloadEngine, plan: WorkloadPlan, writers: Int, harnessSnapshots: Bool
    ) throws -> [UInt64] {
        let perWriter = try WriterThreads.run(count: writers) { writer in
            let mine = Array(stride(from: writer, to: plan.documents.count, by: writers).map { plan.documents[$0] })
            var latencies: [UInt64] = []
            latencies.reserveCapacity(mine.reduce(0) { $0 + $1.ops.count })
            let steps = mine.map(\.ops.count).max() ?? 0
            for step in 0..<steps {
                for document in mine where step < document.ops.count {
                    let revision = step + 1
                    let start = MonotonicClock.nanoseconds()
                    try engine.append(document: document.name, revision: UInt64(revision), op: document.ops[step])
                    latencies.append(MonotonicClock.nanoseconds() - start)
                    if harnessSnapshots && revision % plan.workload.snapshotInterval == 0 {
                        try maintainSnapshots(engine, document: document, head: revision, interval: plan.workload.snapshotInterval)
                    }
                }
            }
            return latencies
        }
        return perWriter.flatMap { $0 }
    }

    /// W2: one writer thread commits `batch` ops at a time, op i going to document i % documents.
    /// Snapshots follow the commit holding their revision. Returns every commit's latency
    /// (each op in a batch is acknowledged when its batch commits).
    private static func runBatches(_ engine: any WorkloadEngine, plan: WorkloadPlan, batch: Int) throws -> [UInt64] {
        try WriterThreads.run(count: 1) { _ in
            let documents = plan.documents
            var heads = [Int](repeating: 0, count: documents.count)
            var latencies: [UInt64] = []
            var next = 0
            var entries: [(document: String, revision: UInt64, op: BenchOp)] = []
            while next < plan.totalOps {
                let headsBefore = heads
                entries.removeAll(keepingCapacity: true)
                while entries.count < batch && next < plan.totalOps {
                    let index = next % documents.count
                    next += 1
                    guard heads[index] < documents[index].ops.count else { continue }
                    heads[index] += 1
                    entries.append((documents[index].name, UInt64(heads[index]), documents[index].ops[heads[index] - 1]))
                }
                let start = MonotonicClock.nanoseconds()
                try engine.appendBatch(entries)
                latencies.append(MonotonicClock.nanoseconds() - start)
                for index in documents.indices {
                    let interval = plan.workload.snapshotInterval
                    for head in stride(from: (headsBefore[index] / interval + 1) * interval, through: heads[index], by: interval) {
                        try maintainSnapshots(engine, document: documents[index], head: head, interval: interval)
                    }
                }
            }
            return latencies
        }[0]
    }

    /// At head h (a multiple of the interval): store the snapshot at h, drop ops up to the previous
    /// snapshot p (floor p + 1, so the last interval's ops stay to replay from p), and delete the
    /// snapshot before p. A document thus keeps two snapshots and between one and two intervals of ops.
    static func maintainSnapshots(_ engine: any WorkloadEngine, document: DocumentPlan, head: Int, interval: Int) throws {
        guard let text = document.snapshots[head] else { throw WorkloadError("\(document.name): no snapshot text at \(head)") }
        try engine.putSnapshot(document: document.name, revision: UInt64(head), bytes: text)
        let previous = head - interval
        if previous >= interval { try engine.truncate(document: document.name, below: UInt64(previous + 1)) }
        let older = previous - interval
        if older >= interval { try engine.deleteSnapshot(document: document.name, revision: UInt64(older)) }
    }
}
