import ArgumentParser
import Foundation

@main
struct WorkloadsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "workloads",
        abstract: "Replays real editing traces against storage engines; measures appends/s, latency and write amplification.",
        discussion: "Result rows go to stdout as JSON lines (medians across runs); progress goes to stderr."
    )

    @Option(
        help: """
            Workloads to run, comma-separated: W1 (concurrent writers), W2 (batched commits), W3 (replay: opening documents), \
            W4 (scale: N documents of K ops, reopen, first and evicted appends, memory; see the --scale-* options), \
            sync-ceiling (a C write + fdatasync loop, no engine; W1 measures it before and after its runs anyway).
            """
    )
    var workload = "W1,W2,W3"
    @Option(help: "W1: concurrent writer threads to sweep.")
    var writers = "1,8,64"
    @Option(help: "W2: ops per commit to sweep.")
    var batch = "10,100,1000"
    @Option(help: "Engines, comma-separated.")
    var engines = Engines.all.map(\.name).joined(separator: ",")
    @Option(help: "Runs per configuration; engines alternate within a run and each figure is the median.")
    var runs = 3
    @Flag(help: "64k ops per workload run instead of 512k.")
    var quick = false
    @Option(
        help: """
            W1: off (the harness snapshots for every engine), on (OpLog runs its CompactionScheduler instead), \
            or off,on (both, side by side).
            """
    )
    var compaction = "off"
    @Option(help: "W3: opens per document at head, and as many at random past revisions.")
    var opens = 8
    @Option(help: "W1 and W3: number of documents.")
    var documents = 64
    @Option(help: "Ops per workload run (overrides --quick's 65,536 and the full 524,288).")
    var ops: Int?
    @Option(help: "Seed for op IDs, authors and the generated fallback trace.")
    var seed: UInt64 = 42
    @Option(help: "sync-ceiling (and W1's ceilings): write + fdatasync rounds per loop, 100 bytes each.")
    var syncs = 3_000
    @Option(help: "Parent of the per-run store directories; must be a real disk (default /var/tmp).")
    var dir = "/var/tmp"
    @Option(help: "Folder of the *.json.gz traces (default: ../shared/traces from the repository root).")
    var traces: String?
    @Flag(help: "Keep each run's store directory (and print its path) for inspection.")
    var keep = false
    @Option(help: "W4: document counts to sweep (K ops each).")
    var scaleDocuments = "10000,100000,1000000"
    @Option(help: "W4: ops per document.")
    var scaleOps = 10
    @Option(help: "W4: engines (OpLog, and the key-per-op baselines).")
    var scaleEngines = "oplog,rocksdb,leveldb"
    @Option(help: "W4: OpLog memory budgets to sweep, in MiB.")
    var scaleBudgets = "256,64"
    @Option(help: "W4: OpLog's durability, full or lastAppendsMayBeLost (then OpLog alone: the baselines always sync).")
    var scaleDurability = "full"
    @Option(help: "W4: writer threads loading and touching the documents.")
    var scaleWriters = 16
    @Option(help: "W4: ops per durable batch while loading and touching.")
    var scaleBatch = 1000
    @Option(help: "W4: documents timed one append at a time in each measured phase.")
    var scaleSamples = 2000
    @Option(help: "W4: rounds, engines alternating.")
    var scaleRuns = 1
    @Option(help: .hidden)
    var scaleChild: String?
    @Option(help: "CSV output (default Benchmarks/results/<workloads>[-quick].csv).")
    var csv: String?
    @Option(help: "SVG plot output (default next to the CSV).")
    var plot: String?

    func run() throws {
        if let scaleChild {
            try ScaleChild.run(json: scaleChild)
            return
        }
        let names = try list(workload)
        let ceilingRequested = names.contains { $0.lowercased() == SyncCeiling.workloadName }
        let scaleRequested = names.contains { $0.uppercased() == "W4" }
        let workloads = try names.filter { $0.lowercased() != SyncCeiling.workloadName && $0.uppercased() != "W4" }.map { name in
            guard let workload = Workload(rawValue: name.uppercased()) else { throw ValidationError("unknown workload \(name)") }
            return workload
        }
        guard syncs >= 1 else { throw ValidationError("--syncs must be at least 1") }
        let factories = try Engines.named(list(engines))
        let writerCounts = try list(writers).map(positive)
        let batchSizes = try list(batch).map(positive)
        let compactionModes = try list(compaction).map { mode -> Bool in
            switch mode.lowercased() {
            case "off": return false
            case "on": return true
            default: throw ValidationError("--compaction takes off, on or off,on (got \(mode))")
            }
        }
        guard runs >= 1, documents >= 1, opens >= 1 else { throw ValidationError("--runs, --documents and --opens must be at least 1") }
        let totalOps = ops ?? (quick ? 65_536 : 524_288)

        let plans = try workloads.map { try makePlan($0, totalOps: totalOps) }
        try StoreDirectory.requireRealDisk(dir)
        let parent = try StoreDirectory.makeUnique(in: dir, prefix: "oplog-workloads")
        defer { if !keep { try? FileManager.default.removeItem(atPath: parent) } }
        if scaleRequested {
            try runScale(parent: parent)
            if workloads.isEmpty && !ceilingRequested { return }
        }
        if workloads.isEmpty {
            // sync-ceiling alone: no engine, no plan, no CSV.
            print(try SyncCeiling.measure(phase: "alone", in: parent, syncs: syncs).jsonLine)
            return
        }
        // Before the first run and after the last, on the same disk: W1's appends/s can then be
        // divided by the ceiling of the same invocation, and the two show how much the disk drifted.
        let measuresCeiling = ceilingRequested || workloads.contains(.w1)
        let ceilingBefore = measuresCeiling ? try SyncCeiling.measure(phase: "before", in: parent, syncs: syncs) : nil

        let configurations = plans.flatMap { plan -> [(WorkloadPlan, Int, Int, Bool)] in
            switch plan.workload {
            case .w1: compactionModes.flatMap { mode in writerCounts.map { (plan, $0, 1, mode) } }
            case .w2: batchSizes.map { (plan, 1, $0, false) }
            case .w3: []
            }
        }
        let replayPlans = try plans.filter { $0.workload == .w3 }.map { ($0, try ReplayRunner.plan($0, perDocument: opens, seed: seed)) }
        var figures = [[RunFigures]](repeating: [], count: configurations.count * factories.count)
        var replayFigures = [[ReplayFigures?]](repeating: [], count: replayPlans.count * factories.count)
        // Engines alternate inside each run, so drift on the machine (page cache, host write cache)
        // spreads over all engines instead of landing on whichever ran last.
        for run in 1...runs {
            for (configIndex, (plan, writerCount, batchSize, compacts)) in configurations.enumerated() {
                for (engineIndex, factory) in factories.enumerated() {
                    let store = try StoreDirectory.makeUnique(in: parent, prefix: factory.name)
                    defer { if keep { progress("kept \(store)") } else { try? FileManager.default.removeItem(atPath: store) } }
                    let result = try Runner.measure(
                        factory, plan: plan, writers: writerCount, batch: batchSize, compaction: compacts, directory: store)
                    figures[configIndex * factories.count + engineIndex].append(result)
                    let compaction = plan.workload == .w1 ? "compaction=\(compacts ? "on" : "off") " : ""
                    let rate = Int(Double(plan.totalOps) / result.seconds)
                    let writeAmplification = result.writeBytes / Double(plan.opBytes + result.work.snapshotBytes)
                    let configuration = "\(plan.workload.rawValue) writers=\(writerCount) batch=\(batchSize) \(compaction)"
                    let figures = "\(rate) ops/s, p99 \(Int(result.p99Micros)) us, wa \(String(format: "%.2f", writeAmplification))"
                    progress("run \(run)/\(runs) \(configuration)\(factory.name): \(figures), \(String(format: "%.1f", result.seconds)) s")
                }
            }
            for (planIndex, (plan, planned)) in replayPlans.enumerated() {
                for (engineIndex, factory) in factories.enumerated() {
                    let store = try StoreDirectory.makeUnique(in: parent, prefix: factory.name)
                    defer { if keep { progress("kept \(store)") } else { try? FileManager.default.removeItem(atPath: store) } }
                    let result = try ReplayRunner.measure(factory, plan: plan, opens: planned, directory: store)
                    replayFigures[planIndex * factories.count + engineIndex].append(result)
                    progress(
                        "run \(run)/\(runs) W3 \(factory.name): "
                            + (result.map { result in
                                "open at head p50 \(Int(Percentile.micros(result.headNanos, 0.5))) us, past p50 "
                                    + "\(Int(Percentile.micros(result.pastNanos, 0.5))) us, "
                                    + "\(Int(Double(result.replayedOps) / (Double(result.openNanos) / 1e9))) replayed ops/s, "
                                    + "load \(String(format: "%.1f", result.loadSeconds)) s"
                            } ?? "cannot replay (null fields)"))
                }
            }
        }

        let ceilingAfter = measuresCeiling ? try SyncCeiling.measure(phase: "after", in: parent, syncs: syncs) : nil

        var rows: [ResultRow] = []
        for (configIndex, (plan, writerCount, batchSize, compacts)) in configurations.enumerated() {
            for (engineIndex, factory) in factories.enumerated() {
                rows.append(
                    ResultRow(
                        engine: factory.name, plan: plan, writers: writerCount, batch: batchSize, compaction: compacts,
                        runs: figures[configIndex * factories.count + engineIndex]))
            }
        }
        for (planIndex, (plan, _)) in replayPlans.enumerated() {
            for (engineIndex, factory) in factories.enumerated() {
                rows.append(
                    ResultRow(
                        engine: factory.name, plan: plan, opensPerDocument: opens,
                        replayRuns: replayFigures[planIndex * factories.count + engineIndex]))
            }
        }
        if let ceilingBefore { print(ceilingBefore.jsonLine) }
        for row in rows { print(row.jsonLine) }
        if let ceilingAfter { print(ceilingAfter.jsonLine) }
        try writeOutputs(rows, workloads: workloads)
    }

    private func runScale(parent: String) throws {
        let plan = ScaleRunner.Plan(
            documents: try list(scaleDocuments).map(positive), opsPerDocument: scaleOps,
            engines: scaleDurability == "full" ? try list(scaleEngines) : ["oplog"], budgetsMiB: try list(scaleBudgets).map(positive),
            durability: scaleDurability, writers: scaleWriters, batchOps: scaleBatch, samples: scaleSamples, runs: scaleRuns,
            seed: seed, parent: parent)
        guard plan.opsPerDocument >= 1, plan.writers >= 1, plan.batchOps >= 1, plan.samples >= 1, plan.runs >= 1 else {
            throw ValidationError("the --scale-* counts must be at least 1")
        }
        let figures = try ScaleRunner.run(plan)
        print(ScaleTable.markdown(figures))
        let resultsFolder = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("results").path
        let path = csv ?? resultsFolder + "/W4" + (scaleDurability == "full" ? "" : "-\(scaleDurability)") + ".csv"
        try ScaleTable.csv(figures).write(toFile: path, atomically: true, encoding: .utf8)
        progress("wrote \(path)")
    }

    private func makePlan(_ workload: Workload, totalOps: Int) throws -> WorkloadPlan {
        let start = Date()
        let names = workload == .w2 ? TraceLoader.names : [TraceLoader.names[0]]
        let loaded: [Trace]
        if let folder = TraceLoader.locate(explicit: traces) {
            loaded = try names.map { try TraceLoader.load(name: $0, folder: folder) }
        } else {
            progress(
                "traces folder not found (\(traces ?? "../shared/traces"); set --traces): "
                    + "using a seeded generated editing session instead of the real traces")
            loaded = names.enumerated().map { TraceLoader.generated(name: $1, patches: 100_000, seed: seed &+ UInt64($0)) }
        }
        let plan =
            switch workload {
            case .w1: PlanBuilder.w1(trace: loaded[0], documents: documents, totalOps: totalOps, seed: seed)
            case .w2: PlanBuilder.w2(traces: loaded, totalOps: totalOps, seed: seed)
            case .w3: try PlanBuilder.w3(trace: loaded[0], documents: documents, totalOps: totalOps, seed: seed)
            }
        progress(
            "\(workload.rawValue): \(plan.documents.count) documents, \(plan.totalOps) ops, "
                + "\(plan.opBytes) op bytes, \(plan.snapshotBytes) snapshot bytes "
                + "(prepared in \(String(format: "%.1f", Date().timeIntervalSince(start))) s)")
        return plan
    }

    private func writeOutputs(_ rows: [ResultRow], workloads: [Workload]) throws {
        let resultsFolder = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("results").path
        let stem = resultsFolder + "/" + workloads.map(\.rawValue).joined(separator: "-") + (quick && ops == nil ? "-quick" : "")
        let csvPath = csv ?? stem + ".csv"
        let plotPath = plot ?? (csvPath.hasSuffix(".csv") ? String(csvPath.dropLast(4)) : csvPath) + ".svg"
        let drawn = Plot.hasPanels(rows)
        for path in drawn ? [csvPath, plotPath] : [csvPath] {
            try FileManager.default.createDirectory(
                atPath: URL(fileURLWithPath: path).deletingLastPathComponent().path,
                withIntermediateDirectories: true)
        }
        try ResultRow.csv(rows).write(toFile: csvPath, atomically: true, encoding: .utf8)
        if drawn { try Plot.svg(rows).write(toFile: plotPath, atomically: true, encoding: .utf8) }
        progress("wrote \(csvPath)" + (drawn ? " and \(plotPath)" : " (W3 has no plot)"))
    }

    private func list(_ text: String) throws -> [String] {
        let items = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard !items.isEmpty else { throw ValidationError("empty list: \(text)") }
        return items
    }

    private func positive(_ text: String) throws -> Int {
        guard let value = Int(text), value > 0 else { throw ValidationError("not a positive integer: \(text)") }
        return value
    }
}

/// Progress and notes go to stderr so stdout stays one JSON row per line.
func progress(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}
