import CSyncCeiling
import Foundation
import OpLog
import OpLogEngine
import Synchronization
import WorkloadEngines

#if canImport(Glibc)
import Glibc
#endif

/// W4, scale: N documents of K ops each, loaded by bounded writers in durable multi-document
/// batches, closed, reopened in a fresh process; then the first append per document after the reopen, a warm append to
/// the same documents, and — after every document was touched once more — appends to the documents
/// touched longest ago (evicted from OpLog's memory when the budget cannot hold every index).
///
/// Each (engine, N) runs in two child processes (load, then measure), so that the memory figures are
/// the engine's own and the reopened store's alone:
/// `RssAnon` (the process's heap and stacks) sampled every 10 ms, and `RssFile` (mapped file pages:
/// LMDB's map, RocksDB's and LevelDB's mapped tables) reported beside it. The ops are generated from
/// (document, index) on the fly and never held, so the harness adds almost nothing to the figures.
struct ScaleSettings: Codable, Sendable {
    var engine: String
    var directory: String
    var documents: Int
    var opsPerDocument: Int
    var writers: Int
    var batchOps: Int
    var samples: Int
    /// OpLog's `memoryBudgetBytes` (the baselines ignore it).
    var budgetBytes: Int
    /// OpLog's durability; the baselines always sync (W4 runs them only with `full`).
    var durability: String
    var seed: UInt64
    /// `load` (a fresh store, loaded and closed) or `measure` (the reopen and what follows).
    var phase = "load"
}

/// What the two children of one (engine, N) measured: `load` fills the first group, `measure` the rest.
struct ScaleFigures: Codable, Sendable {
    var settings: ScaleSettings
    var loadSeconds = 0.0
    var dataBytes: Int64 = 0
    /// RssAnon right after the first (empty) open, and its peak while loading.
    var rssAnonFirstOpen = 0
    var rssAnonLoadPeak = 0
    var openSeconds = 0.0
    /// RssAnon of the fresh measuring process before and right after the reopen: the base the
    /// memory bound is measured from is the one after.
    var rssAnonBeforeOpen = 0
    var rssAnonAfterOpen = 0
    /// Peak RssAnon from the reopen to the end (sampled), and at the end.
    var rssAnonPeak = 0
    var rssAnonEnd = 0
    var rssFilePeak = 0
    /// glibc's `mallinfo2` at the end of the measure phase: bytes in live allocations, and bytes free
    /// inside the heap (held from the system, not returned): which part of RssAnon is live data.
    var heapInUseEnd = 0
    var heapFreeEnd = 0
    /// Peak of the bytes in live allocations after the reopen (sampled with RssAnon).
    var heapInUsePeak = 0
    var firstAppendNanos: [UInt64] = []
    var warmAppendNanos: [UInt64] = []
    var evictedAppendNanos: [UInt64] = []
    /// OpLog only: op-ID index loads and evictions over the measured phases.
    var indexLoads: Int?
    var indexEvictions: Int?

    init(settings: ScaleSettings) { self.settings = settings }
}

enum ScaleChild {
    /// Runs one measurement in this process and prints its figures as one JSON line.
    static func run(json: String) throws {
        let settings = try JSONDecoder().decode(ScaleSettings.self, from: Data(json.utf8))
        let figures = try settings.phase == "load" ? load(settings) : measure(settings)
        let encoded = try JSONEncoder().encode(figures)
        print(String(decoding: encoded, as: UTF8.self))
    }

    /// The load phase, in a process of its own: open fresh, load, close.
    static func load(_ settings: ScaleSettings) throws -> ScaleFigures {
        let memory = MemorySampler()
        defer { memory.stop() }
        let opsPerDocument = settings.opsPerDocument
        let engine = try openEngine(settings)
        var figures = ScaleFigures(settings: settings)
        figures.rssAnonFirstOpen = memory.current().anon
        memory.resetPeak()
        let loadStart = MonotonicClock.nanoseconds()
        let loaded = Progress(total: settings.documents * opsPerDocument, label: "\(settings.engine) load")
        try writeAll(
            engine, settings: settings, revisions: { _ in (1...opsPerDocument).map { UInt64($0) } },
            generator: ScaleOps(seed: settings.seed), progress: loaded)
        try engine.close()
        figures.loadSeconds = Double(MonotonicClock.nanoseconds() - loadStart) / 1e9
        figures.rssAnonLoadPeak = memory.peak().anon
        figures.dataBytes = StoreDirectory.allocatedBytes(settings.directory)
        return figures
    }

    /// The measured phases, in a fresh process (so that the load's heap, which glibc keeps, is not
    /// in its memory figures): reopen, first appends, warm appends, touch all, evicted appends.
    static func measure(_ settings: ScaleSettings) throws -> ScaleFigures {
        let memory = MemorySampler()
        defer { memory.stop() }
        let documentCount = settings.documents
        let opsPerDocument = settings.opsPerDocument
        let generator = ScaleOps(seed: settings.seed)
        var figures = ScaleFigures(settings: settings)
        let beforeOpen = memory.current().anon
        let openStart = MonotonicClock.nanoseconds()
        let engine = try openEngine(settings)
        figures.openSeconds = Double(MonotonicClock.nanoseconds() - openStart) / 1e9
        figures.rssAnonAfterOpen = memory.current().anon
        figures.rssAnonBeforeOpen = beforeOpen
        memory.resetPeak()
        let countersBefore = (engine as? OpLogWorkloadEngine)?.writerCounters

        // The harness keeps no per-document arrays (they would count in the engines' memory):
        // a sampled document's revisions follow from whether it is sampled.
        var random = SplitMix64(seed: settings.seed ^ 0x5CA1E)
        let sampleCount = min(settings.samples, documentCount / 2)
        var sampledSet = Set<Int>(minimumCapacity: sampleCount)
        var sampled: [Int] = []
        while sampled.count < sampleCount {
            let document = random.next(below: documentCount)
            if sampledSet.insert(document).inserted { sampled.append(document) }
        }
        let base = UInt64(opsPerDocument)

        func timedAppends(_ documents: [Int], revision: UInt64) throws -> [UInt64] {
            var nanos: [UInt64] = []
            nanos.reserveCapacity(documents.count)
            for document in documents {
                let op = generator.op(document: document, index: Int(revision))
                let start = MonotonicClock.nanoseconds()
                try engine.append(document: ScaleNames.name(document), revision: revision, op: op)
                nanos.append(MonotonicClock.nanoseconds() - start)
            }
            return nanos.sorted()
        }

        let first = try timedAppends(sampled, revision: base + 1)
        let warm = try timedAppends(sampled, revision: base + 2)
        // Touch every document once, writer w taking documents w, w + writers, …: the first ones of
        // each writer's share are then the least recently used, the ones an eviction took first.
        memory.noteHeap()
        let touched = Progress(total: documentCount, label: "\(settings.engine) touch", memory: memory)
        let sampledForTouch = sampledSet
        try writeAll(
            engine, settings: settings, revisions: { [sampledForTouch.contains($0) ? base + 3 : base + 1] },
            generator: generator, progress: touched)
        var oldest: [Int] = []
        var position = 0
        while oldest.count < sampleCount && position < documentCount {
            if !sampledSet.contains(position) { oldest.append(position) }
            position += 1
        }
        // `position` walks documents 0, 1, 2, …: each is among the first of its writer's share.
        memory.noteHeap()
        let evicted = try timedAppends(oldest, revision: base + 2)
        memory.noteHeap()
        let countersAfter = (engine as? OpLogWorkloadEngine)?.writerCounters
        figures.rssAnonEnd = memory.current().anon
        let heap = heap_figures_now()
        figures.heapInUseEnd = Int(heap.in_use_bytes)
        figures.heapFreeEnd = Int(heap.free_bytes)
        let peak = memory.peak()
        figures.rssAnonPeak = peak.anon
        figures.rssFilePeak = peak.file
        figures.heapInUsePeak = memory.heapPeak
        figures.firstAppendNanos = first
        figures.warmAppendNanos = warm
        figures.evictedAppendNanos = evicted
        figures.indexLoads = countersAfter.map { $0.dedupeIndexLoads - (countersBefore?.dedupeIndexLoads ?? 0) }
        figures.indexEvictions = countersAfter.map { $0.dedupeIndexEvictions - (countersBefore?.dedupeIndexEvictions ?? 0) }
        try engine.close()
        return figures
    }

    private static func openEngine(_ settings: ScaleSettings) throws -> any WorkloadEngine {
        guard settings.engine == "oplog" else {
            guard settings.durability == Durability.full.rawValue else {
                throw WorkloadError("W4 runs \(settings.engine) only with full durability")
            }
            return try Engines.named([settings.engine])[0].open(settings.directory, EngineSetup())
        }
        var options = StoreOptions()
        options.memoryBudgetBytes = settings.budgetBytes
        guard let durability = Durability(rawValue: settings.durability) else {
            throw WorkloadError("unknown durability \(settings.durability)")
        }
        options.durability = durability
        return try OpLogWorkloadEngine(path: settings.directory, options: options)
    }

    /// Appends, for every document, the ops at the revisions `revisions(document)` returns, from
    /// `settings.writers` threads in durable batches of about `settings.batchOps` ops.
    private static func writeAll(
        _ engine: any WorkloadEngine, settings: ScaleSettings, revisions: @escaping @Sendable (Int) -> [UInt64],
        generator: ScaleOps, progress: Progress
    ) throws {
        let writers = settings.writers
        _ = try WriterThreads.run(count: writers) { writer in
            var batch: [(document: String, revision: UInt64, op: BenchOp)] = []
            batch.reserveCapacity(settings.batchOps)
            for document in stride(from: writer, to: settings.documents, by: writers) {
                let name = ScaleNames.name(document)
                for revision in revisions(document) {
                    batch.append((name, revision, generator.op(document: document, index: Int(revision))))
                    if batch.count >= settings.batchOps {
                        try engine.appendBatch(batch)
                        progress.advance(batch.count)
                        batch.removeAll(keepingCapacity: true)
                    }
                }
            }
            if !batch.isEmpty {
                try engine.appendBatch(batch)
                progress.advance(batch.count)
            }
        }
    }
}

/// Document names, `doc-0000042`: built when needed rather than kept, so the harness holds no
/// per-document state.
enum ScaleNames {
    static func name(_ document: Int) -> String {
        let digits = String(document)
        return "doc-" + String(repeating: "0", count: max(0, 7 - digits.count)) + digits
    }
}

/// The ops of W4: about the size of the traces' (16-byte ID, 8-byte author, client time, and a
/// one-character insert as JSON), derived from (document, index) so none is kept in memory.
struct ScaleOps: Sendable {
    let seed: UInt64

    func op(document: Int, index: Int) -> BenchOp {
        var random = SplitMix64(seed: seed ^ (UInt64(document) << 24) ^ UInt64(index))
        let patch = "{\"p\":\(index - 1),\"d\":0,\"i\":\"x\"}"
        return BenchOp(
            opID: random.bytes(16), author: Array("author-\(document % 8)".utf8.prefix(8)),
            clientTime: 1_700_000_000_000 + Int64(index) * 1000, patchJSON: Array(patch.utf8))
    }
}

/// RssAnon and RssFile of this process, sampled every 10 ms on a thread of its own, and the bytes
/// in live heap allocations (glibc's `mallinfo2`: RssAnon minus this is memory the allocator
/// keeps), read between phases and at every tenth of the touch.
final class MemorySampler: Sendable {
    struct Reading: Sendable {
        var anon = 0
        var file = 0
    }

    private struct State {
        var peak = Reading()
        var running = true
    }

    private let state = Mutex(State())
    private let heapPeakBytes = Mutex(0)
    var heapPeak: Int { heapPeakBytes.withLock { $0 } }

    init() {
        let thread = Thread { [self] in
            while state.withLock({ $0.running }) {
                let now = Self.read()
                state.withLock { state in
                    state.peak.anon = max(state.peak.anon, now.anon)
                    state.peak.file = max(state.peak.file, now.file)
                }
                usleep(10_000)
            }
        }
        thread.name = "w4-memory"
        thread.start()
    }

    func stop() { state.withLock { $0.running = false } }

    /// Reads the live heap bytes into the heap peak. Not sampled in the loop: `mallinfo2` walks the
    /// heap under the arena locks (milliseconds at 10⁶ documents), which would stall the engine's
    /// allocations in the timed phases; the harness calls this between them instead.
    func noteHeap() {
        let inUse = Int(heap_figures_now().in_use_bytes)
        heapPeakBytes.withLock { $0 = max($0, inUse) }
    }

    /// A reading now (and counted in the peak).
    func current() -> Reading {
        let now = Self.read()
        state.withLock { state in
            state.peak.anon = max(state.peak.anon, now.anon)
            state.peak.file = max(state.peak.file, now.file)
        }
        return now
    }

    func peak() -> Reading {
        _ = current()
        return state.withLock { $0.peak }
    }

    /// Starts a new peak from the reading now.
    func resetPeak() {
        let now = Self.read()
        state.withLock { $0.peak = now }
        let inUse = Int(heap_figures_now().in_use_bytes)
        heapPeakBytes.withLock { $0 = inUse }
    }

    private static func read() -> Reading {
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return Reading() }
        var reading = Reading()
        for line in text.split(separator: "\n") where line.hasPrefix("Rss") {
            let parts = line.split(whereSeparator: { $0 == ":" || $0 == " " || $0 == "\t" })
            guard parts.count >= 2, let kilobytes = Int(parts[1]) else { continue }
            if parts[0] == "RssAnon" { reading.anon = kilobytes * 1024 }
            if parts[0] == "RssFile" { reading.file = kilobytes * 1024 }
        }
        return reading
    }
}

/// Prints a line to stderr at every tenth of `total`.
final class Progress: Sendable {
    private let total: Int
    private let label: String
    private let memory: MemorySampler?
    private let done = Mutex((count: 0, reported: 0))

    /// With `memory`, also reads the live heap at every tenth.
    init(total: Int, label: String, memory: MemorySampler? = nil) {
        self.total = max(total, 1)
        self.label = label
        self.memory = memory
    }

    func advance(_ count: Int) {
        let tenth = done.withLock { state -> Int? in
            state.count += count
            let tenth = state.count * 10 / total
            guard tenth > state.reported else { return nil }
            state.reported = tenth
            return tenth
        }
        guard let tenth else { return }
        memory?.noteHeap()
        progress("\(label): \(tenth * 10)%")
    }
}

/// The parent side: one child per (budget, N, engine), engines alternating, and the table.
enum ScaleRunner {
    struct Plan {
        var documents: [Int]
        var opsPerDocument: Int
        var engines: [String]
        var budgetsMiB: [Int]
        var durability: String
        var writers: Int
        var batchOps: Int
        var samples: Int
        var runs: Int
        var seed: UInt64
        var parent: String
    }

    static func run(_ plan: Plan) throws -> [ScaleFigures] {
        var all: [ScaleFigures] = []
        for documents in plan.documents {
            for round in 0..<plan.runs {
                // Alternate which engine goes first from round to round.
                let engines = plan.engines.indices.map { plan.engines[($0 + round) % plan.engines.count] }
                for engine in engines {
                    // The baselines have no budget: one run per (N, round).
                    let budgets = engine == "oplog" ? plan.budgetsMiB : [plan.budgetsMiB[0]]
                    for budget in budgets {
                        let directory = try StoreDirectory.makeUnique(in: plan.parent, prefix: "w4-\(engine)")
                        defer { try? FileManager.default.removeItem(atPath: directory) }
                        let settings = ScaleSettings(
                            engine: engine, directory: directory, documents: documents, opsPerDocument: plan.opsPerDocument,
                            writers: plan.writers, batchOps: plan.batchOps, samples: plan.samples, budgetBytes: budget << 20,
                            durability: plan.durability, seed: plan.seed)
                        let loaded = try runChild(settings)
                        var measuring = settings
                        measuring.phase = "measure"
                        var figures = try runChild(measuring)
                        figures.loadSeconds = loaded.loadSeconds
                        figures.dataBytes = loaded.dataBytes
                        figures.rssAnonFirstOpen = loaded.rssAnonFirstOpen
                        figures.rssAnonLoadPeak = loaded.rssAnonLoadPeak
                        progress(ScaleTable.row(figures))
                        all.append(figures)
                    }
                }
            }
        }
        return all
    }

    private static func runChild(_ settings: ScaleSettings) throws -> ScaleFigures {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        let json = String(decoding: try JSONEncoder().encode(settings), as: UTF8.self)
        process.arguments = ["--workload", "W4", "--scale-child", json]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0, process.terminationReason == .exit else {
            throw WorkloadError("W4 child for \(settings.engine) × \(settings.documents) failed (status \(process.terminationStatus))")
        }
        guard let line = String(decoding: data, as: UTF8.self).split(separator: "\n").last else {
            throw WorkloadError("W4 child for \(settings.engine) printed nothing")
        }
        return try JSONDecoder().decode(ScaleFigures.self, from: Data(line.utf8))
    }
}

/// W4's table (Markdown, as the notes quote it) and CSV.
enum ScaleTable {
    static let header = [
        "documents", "ops/doc", "engine", "budget MiB", "load ops/s", "data B/op", "open ms", "RssAnon after open MB",
        "RssAnon peak - open MB", "RssAnon end - open MB", "heap in use peak MB", "RssFile peak MB", "first append p50 us",
        "first append p99 us",
        "warm p50 us", "warm p99 us", "evicted p50 us", "evicted p99 us", "index evictions",
    ]

    static func fields(_ figures: ScaleFigures) -> [String] {
        let settings = figures.settings
        let ops = settings.documents * settings.opsPerDocument
        func megabytes(_ bytes: Int) -> String { String(format: "%.1f", Double(bytes) / 1e6) }
        func micros(_ nanos: [UInt64], _ fraction: Double) -> String { String(Int(Percentile.micros(nanos, fraction))) }
        return [
            String(settings.documents), String(settings.opsPerDocument), settings.engine,
            settings.engine == "oplog" ? String(settings.budgetBytes >> 20) : "-",
            String(Int(Double(ops) / figures.loadSeconds)), String(format: "%.1f", Double(figures.dataBytes) / Double(ops)),
            String(format: "%.1f", figures.openSeconds * 1000), megabytes(figures.rssAnonAfterOpen),
            megabytes(figures.rssAnonPeak - figures.rssAnonAfterOpen), megabytes(figures.rssAnonEnd - figures.rssAnonAfterOpen),
            megabytes(figures.heapInUsePeak), megabytes(figures.rssFilePeak), micros(figures.firstAppendNanos, 0.5),
            micros(figures.firstAppendNanos, 0.99),
            micros(figures.warmAppendNanos, 0.5), micros(figures.warmAppendNanos, 0.99), micros(figures.evictedAppendNanos, 0.5),
            micros(figures.evictedAppendNanos, 0.99), figures.indexEvictions.map(String.init) ?? "-",
        ]
    }

    static func row(_ figures: ScaleFigures) -> String { "| " + fields(figures).joined(separator: " | ") + " |" }

    static func markdown(_ all: [ScaleFigures]) -> String {
        (["| " + header.joined(separator: " | ") + " |", "|" + String(repeating: "---|", count: header.count)] + all.map(row))
            .joined(separator: "\n")
    }

    static func csv(_ all: [ScaleFigures]) -> String {
        ([header.joined(separator: ",")] + all.map { fields($0).joined(separator: ",") }).joined(separator: "\n") + "\n"
    }
}
