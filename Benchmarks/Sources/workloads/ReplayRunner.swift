import OpLogText
import WorkloadEngines

/// What one W3 run of one engine measured; nil fields in the row when the engine cannot replay.
struct ReplayFigures {
    /// Sorted nanoseconds of each open at head, and at a past revision.
    var headNanos: [UInt64]
    var pastNanos: [UInt64]
    /// Ops applied on top of snapshots, over all opens.
    var replayedOps: Int
    /// Time spent inside all opens.
    var openNanos: UInt64
    /// Loading the documents (appends, snapshots, truncation) and closing.
    var loadSeconds: Double
    var diskBytes: Double
}

/// One planned open: a document, a revision, and what the text there must hash to.
struct PlannedOpen: Sendable {
    var document: Int
    var revision: UInt64
    var atHead: Bool
    /// Ops the open replays on top of the snapshot it starts from.
    var replayedOps: Int
    var expectedChecksum: UInt64
}

/// W3 "replay": load W1-like documents, close, reopen, then open every document at head and at
/// random past retained revisions, timing each open.
enum ReplayRunner {
    /// Loads `plan` into a fresh store in `directory`, closes and reopens it, and times the opens.
    /// Returns nil (after loading, so the load still runs and fails loudly if broken) when the engine
    /// does not implement `ReplayingEngine`.
    static func measure(_ factory: EngineFactory, plan: WorkloadPlan, opens: [PlannedOpen], directory: String) throws -> ReplayFigures? {
        let loadStart = MonotonicClock.nanoseconds()
        let loader = try factory.open(directory, EngineSetup())
        do { try load(loader, plan: plan) } catch {
            try? loader.close()
            throw error
        }
        try loader.close()
        let loadSeconds = Double(MonotonicClock.nanoseconds() - loadStart) / 1e9
        // Reopened, as a server would after a restart: everything is read from the engine's files
        // (OpLog has applied its journal at close, RocksDB flushed its memtable).
        let engine = try factory.open(directory, EngineSetup())
        defer { try? engine.close() }
        guard let replaying = engine as? ReplayingEngine else { return nil }
        let names = plan.documents.map(\.name)
        let timed = try WriterThreads.run(count: 1) { _ in
            var head: [UInt64] = []
            var past: [UInt64] = []
            for open in opens {
                let start = MonotonicClock.nanoseconds()
                let text = try replaying.replay(document: names[open.document], to: open.revision)
                let elapsed = MonotonicClock.nanoseconds() - start
                if open.atHead { head.append(elapsed) } else { past.append(elapsed) }
                guard Checksum.fnv1a(text) == open.expectedChecksum else {
                    throw WorkloadError("\(factory.name): \(names[open.document]) at \(open.revision) replays to a different text")
                }
            }
            return (head.sorted(), past.sorted())
        }[0]
        return ReplayFigures(
            headNanos: timed.0, pastNanos: timed.1,
            replayedOps: opens.reduce(0) { $0 + $1.replayedOps },
            openNanos: timed.0.reduce(0, +) + timed.1.reduce(0, +),
            loadSeconds: loadSeconds,
            diskBytes: Double(StoreDirectory.allocatedBytes(directory)))
    }

    /// W1's commits, without W1's threads: round r appends op r of every document in one commit
    /// (what W1 with one writer per document groups into a commit), then takes the snapshots due.
    private static func load(_ engine: any WorkloadEngine, plan: WorkloadPlan) throws {
        let interval = plan.workload.snapshotInterval
        _ = try WriterThreads.run(count: 1) { _ in
            let steps = plan.documents.map(\.ops.count).max() ?? 0
            for step in 0..<steps {
                let round = plan.documents.filter { step < $0.ops.count }.map { ($0.name, UInt64(step + 1), $0.ops[step]) }
                try engine.appendBatch(round)
                guard (step + 1) % interval == 0 else { continue }
                for document in plan.documents where step < document.ops.count {
                    try Runner.maintainSnapshots(engine, document: document, head: step + 1, interval: interval)
                }
            }
        }
    }

    /// `perDocument` opens at head and as many at past revisions for every document, shuffled, with
    /// the text each must return, all computed before anything is timed. Past revisions are drawn
    /// from the document's retained range: from its oldest retained snapshot (revisions below it are
    /// truncated, or precede the first snapshot and need the window's start text, which no engine
    /// stores) to head - 1.
    static func plan(_ plan: WorkloadPlan, perDocument: Int, seed: UInt64) throws -> [PlannedOpen] {
        let interval = plan.workload.snapshotInterval
        var random = SplitMix64(seed: seed ^ 0x0_0BE5)
        var opens: [PlannedOpen] = []
        for (index, document) in plan.documents.enumerated() {
            let head = document.ops.count
            let newest = head / interval * interval
            let retained = [newest - interval, newest].filter { $0 >= interval }
            guard let oldest = retained.first else { throw WorkloadError("\(document.name): no snapshot to open from") }
            let past = (0..<perDocument).map { _ in oldest + random.next(below: head - oldest) }
            let targets = Array(repeating: head, count: perDocument) + past
            let checksums = try textChecksums(document, at: Set(targets))
            for (number, target) in targets.enumerated() {
                let base = retained.last { $0 <= target }!
                opens.append(
                    PlannedOpen(
                        document: index, revision: UInt64(target), atHead: number < perDocument,
                        replayedOps: target - base, expectedChecksum: checksums[target]!))
            }
        }
        for index in opens.indices.reversed() where index > 0 {
            opens.swapAt(index, random.next(below: index + 1))
        }
        return opens
    }

    /// The checksum of the document's text at each revision in `targets`, from its start text and
    /// every op (no snapshot involved), so a wrong snapshot or a lost op shows as a mismatch.
    private static func textChecksums(_ document: DocumentPlan, at targets: Set<Int>) throws -> [Int: UInt64] {
        var buffer = TextBuffer(document.startText ?? "")
        var checksums: [Int: UInt64] = [:]
        for (offset, op) in document.ops.enumerated() {
            try buffer.apply(TextPatch(json: op.patchJSON))
            if targets.contains(offset + 1) { checksums[offset + 1] = Checksum.fnv1a(buffer.text) }
        }
        return checksums
    }
}

enum Checksum {
    /// FNV-1a over the UTF-8 bytes: comparing texts without keeping thousands of them in memory.
    static func fnv1a(_ text: String) -> UInt64 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in text.utf8 { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
        return hash
    }
}
