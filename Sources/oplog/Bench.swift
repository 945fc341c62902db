import ArgumentParser
import Foundation
import OpLog
import OpLogText

/// `oplog bench`: the benchmark package's workload W1 against OpLog alone, on the user's own disk.
///
/// D documents, each replaying a window of an editing trace (document k from patch k * (patches / D),
/// from the real text there, cycling to the start if it runs out); W writer tasks each own the
/// documents k ≡ w (mod W) and append one op at a time, round robin, each append waiting for its
/// acknowledgement (durable: `Durability.full`). At every 500th revision the writer stores the
/// document's text as a snapshot, truncates the ops below the previous snapshot + 1 and deletes the
/// snapshot before that, so each document keeps two snapshots and the last 500+ ops. Everything
/// appended is computed before the clock starts. Bytes written come from /proc/self/io, read before
/// the store is opened and after it is closed.
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure durable appends/s, ack latency and write amplification on this disk (workload W1, OpLog only).",
        discussion: "Results go to standard output, progress to standard error. The store is created fresh and removed afterwards.")

    @Option(help: "A new (or empty) directory for the store; removed afterwards.")
    var store = "./oplog-bench"

    @Option(help: "Concurrent writers; writer w appends to the documents k with k % writers == w.")
    var writers = 64

    @Option(help: "Documents.")
    var documents = 64

    @Option(help: "Ops appended to each document.")
    var opsPerDocument = 1_000

    @Option(help: "An editing trace (.json.gz, e.g. automerge-paper); without it, a seeded generated session.")
    var trace: String?

    @Flag(help: "Keep the store afterwards instead of removing it.")
    var keep = false

    static let snapshotInterval = 500

    func validate() throws {
        guard (1...10_000).contains(writers) else { throw ValidationError("--writers must be 1 ... 10,000") }
        guard (1...100_000).contains(documents) else { throw ValidationError("--documents must be 1 ... 100,000") }
        guard writers <= documents else {
            throw ValidationError("--writers must not exceed --documents (each writer owns at least one document)")
        }
        guard (1...1_000_000).contains(opsPerDocument) else { throw ValidationError("--ops-per-document must be 1 ... 1,000,000") }
        guard documents * opsPerDocument <= 50_000_000 else { throw ValidationError("at most 50,000,000 ops in all") }
    }

    func run() async throws {
        let session = try loadSession()
        let plans = try BenchPlan.documents(session.trace, documents: documents, opsPerDocument: opsPerDocument)
        let opBytes = plans.reduce(0) { $0 + $1.ops.reduce(0) { $0 + BenchPlan.opBytes($1) } }
        let snapshotBytes = plans.reduce(0) { $0 + $1.snapshots.values.reduce(0) { $0 + $1.count } }
        let createdDirectory = try prepareDirectory()
        defer { if !keep { removeStore(createdDirectory: createdDirectory) } }

        let writtenBefore = try ProcessIO.writtenBytes()
        let opened = try await OpLogStore.open(directory: store)
        let progress = BenchProgress(total: plans.reduce(0) { $0 + $1.ops.count })
        progress.start("bench: \(progress.total) durable appends by \(writers) writers into \(store)")
        let clock = ContinuousClock()
        let started = clock.now
        let latencies: [Int64]
        do {
            latencies = try await runWriters(opened, plans: plans, progress: progress)
        } catch {
            progress.finish()
            try? await opened.close()
            throw error
        }
        progress.finish()
        try await opened.close()
        let seconds = (clock.now - started) / .seconds(1)
        let writtenAfter = try ProcessIO.writtenBytes()
        let written: Int64? = if let writtenBefore, let writtenAfter { writtenAfter - writtenBefore } else { nil }

        let sorted = latencies.sorted()
        print(
            "oplog bench: \(writers) writers, \(documents) documents × \(opsPerDocument) ops from \(session.name), durability "
                + "full, store \(store)"
        )
        print(
            "appends/s: \(Int(Double(sorted.count) / seconds)) (\(sorted.count) durable appends in "
                + "\(String(format: "%.2f", seconds)) s, closing included)"
        )
        print("ack latency: p50 \(Self.millis(Self.percentile(sorted, 0.50))) ms, p99 \(Self.millis(Self.percentile(sorted, 0.99))) ms")
        if let written {
            let payload = opBytes + snapshotBytes
            print(
                "written: \(written) bytes for \(opBytes) bytes of ops + \(snapshotBytes) bytes of snapshots: "
                    + "WA \(String(format: "%.2f", Double(written) / Double(max(payload, 1))))")
            print(
                "(WA = bytes this process had written to the disk, from /proc/self/io, per byte of ops and snapshots stored; "
                    + "the filesystem's own journal, written by a kernel thread, is not counted.)")
        } else {
            print("written: unknown (no /proc/self/io on this system), so no WA figure")
        }
    }

    // MARK: - Setup

    private func loadSession() throws -> (name: String, trace: EditingTrace) {
        if let trace {
            let loaded = try EditingTrace.load(path: trace)
            guard !loaded.patches.isEmpty else { throw ValidationError("\(trace) has no patches") }
            return (loaded.name, loaded)
        }
        let generated = EditingTrace.generated(seed: 42, patchCount: max(20_000, 2 * opsPerDocument), computeEndContent: false)
        return ("a generated editing session (seed 42; pass --trace for a real one)", generated)
    }

    /// Creates the store's directory, or accepts an existing empty one (never a non-empty one: it is
    /// removed afterwards). Returns whether it was created here.
    private func prepareDirectory() throws -> Bool {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: store, isDirectory: &isDirectory) {
            guard isDirectory.boolValue, (try FileManager.default.contentsOfDirectory(atPath: store)).isEmpty else {
                throw ValidationError(
                    "\(store) exists and is not an empty directory; bench removes its store afterwards, so give a new path with --store")
            }
            return false
        }
        try FileManager.default.createDirectory(atPath: store, withIntermediateDirectories: true)
        return true
    }

    private func removeStore(createdDirectory: Bool) {
        if createdDirectory {
            try? FileManager.default.removeItem(atPath: store)
        } else {
            for name in (try? FileManager.default.contentsOfDirectory(atPath: store)) ?? [] {
                try? FileManager.default.removeItem(atPath: store + "/" + name)
            }
        }
    }

    // MARK: - The run

    /// Runs the writers; returns every append's acknowledgement latency in nanoseconds.
    private func runWriters(_ store: OpLogStore, plans: [BenchPlan], progress: BenchProgress) async throws -> [Int64] {
        let writerCount = writers
        return try await withThrowingTaskGroup(of: [Int64].self) { group in
            for writer in 0..<writerCount {
                let mine = Array(stride(from: writer, to: plans.count, by: writerCount).map { plans[$0] })
                group.addTask { try await Self.write(mine, to: store, progress: progress) }
            }
            var all: [Int64] = []
            for try await latencies in group { all += latencies }
            return all
        }
    }

    /// One writer: round robin over its documents, one acknowledged append at a time.
    private static func write(_ plans: [BenchPlan], to store: OpLogStore, progress: BenchProgress) async throws -> [Int64] {
        let clock = ContinuousClock()
        var latencies: [Int64] = []
        latencies.reserveCapacity(plans.reduce(0) { $0 + $1.ops.count })
        let steps = plans.map(\.ops.count).max() ?? 0
        for step in 0..<steps {
            for plan in plans where step < plan.ops.count {
                let started = clock.now
                let result = try await store.append([plan.ops[step]], to: plan.document)
                latencies.append(nanoseconds(clock.now - started))
                let revision = Revision(step + 1)
                guard result.revisions == [revision] else {
                    throw ValidationError("\(plan.document) got revision \(result.revisions) for op \(revision): the store is not fresh")
                }
                if revision % Revision(snapshotInterval) == 0 { try await maintainSnapshots(plan, head: revision, store: store) }
            }
            progress.add(plans.count(where: { step < $0.ops.count }))
        }
        return latencies
    }

    /// At head h: snapshot at h, truncate below the previous snapshot + 1, delete the one before it.
    private static func maintainSnapshots(_ plan: BenchPlan, head: Revision, store: OpLogStore) async throws {
        guard let text = plan.snapshots[head] else { return }
        try await store.putSnapshot(text, of: plan.document, at: head)
        let interval = Revision(snapshotInterval)
        guard head >= 2 * interval else { return }
        let previous = head - interval
        try await store.truncate(plan.document, below: previous + 1)
        if previous >= 2 * interval { try await store.deleteSnapshot(of: plan.document, at: previous - interval) }
    }

    // MARK: - Figures

    private static func nanoseconds(_ duration: Duration) -> Int64 {
        duration.components.seconds * 1_000_000_000 + duration.components.attoseconds / 1_000_000_000
    }

    /// Nearest-rank percentile.
    private static func percentile(_ sorted: [Int64], _ fraction: Double) -> Int64 {
        guard !sorted.isEmpty else { return 0 }
        let rank = Int((fraction * Double(sorted.count)).rounded(.up))
        return sorted[min(max(rank, 1), sorted.count) - 1]
    }

    private static func millis(_ nanoseconds: Int64) -> String { String(format: "%.2f", Double(nanoseconds) / 1e6) }
}

/// One document's part of the run, computed before the clock starts.
struct BenchPlan: Sendable {
    let document: DocumentID
    /// `ops[r - 1]` is appended as revision r.
    let ops: [NewOp]
    /// Revision (every 500th) → the document's UTF-8 text there.
    let snapshots: [Revision: [UInt8]]

    /// Bytes of an op as the user hands it over: op ID, author, client time (8 bytes) and payload.
    static func opBytes(_ op: NewOp) -> Int { 16 + op.author.count + 8 + op.payload.count }

    /// W1's documents: document k replays `opsPerDocument` patches from patch k * (patches / documents),
    /// from the trace's text there, cycling to patch 0 (and the start text) if it runs out.
    static func documents(_ trace: EditingTrace, documents: Int, opsPerDocument: Int) throws -> [BenchPlan] {
        let patchCount = trace.patches.count
        let starts = (0..<documents).map { $0 * (patchCount / documents) }
        let startTexts = textsAt(Set(starts), of: trace)
        var random = SplitMix64(seed: 42)
        return try starts.enumerated().map { k, start in
            let author = Array("bench\(k % 1000)".utf8.prefix(8))
            var text = TextBuffer(startTexts[start] ?? trace.startContent)
            var ops: [NewOp] = []
            ops.reserveCapacity(opsPerDocument)
            var snapshots: [Revision: [UInt8]] = [:]
            let baseTime = SystemClock().now
            for offset in 0..<opsPerDocument {
                let index = (start + offset) % patchCount
                if index == 0 && offset > 0 { text = TextBuffer(trace.startContent) }
                let patch = trace.patches[index]
                try? text.apply(patch)
                ops.append(
                    NewOp(
                        opID: OpID(high: random.next(), low: random.next()), author: author,
                        clientTimeMilliseconds: baseTime + Int64(offset) * 300, payload: patch.jsonBytes()))
                if (offset + 1) % Bench.snapshotInterval == 0 { snapshots[Revision(offset + 1)] = Array(text.text.utf8) }
            }
            return BenchPlan(document: try DocumentID("bench-\(k)"), ops: ops, snapshots: snapshots)
        }
    }

    /// The trace's text after patches 0..<i for each i in `indices`, in one pass.
    private static func textsAt(_ indices: Set<Int>, of trace: EditingTrace) -> [Int: String] {
        var texts: [Int: String] = [:]
        var text = TextBuffer(trace.startContent)
        let last = indices.max() ?? 0
        if indices.contains(0) { texts[0] = trace.startContent }
        for (index, patch) in trace.patches.enumerated() where index < last {
            try? text.apply(patch)
            if indices.contains(index + 1) { texts[index + 1] = text.text }
        }
        return texts
    }
}

/// The progress line on standard error: rewritten in place on a terminal, a line every 2 s otherwise.
final class BenchProgress: @unchecked Sendable {
    // Invariant: `done`, `lastPrinted` and `finished` are only touched under `lock`.
    private let lock = NSLock()
    let total: Int
    private var done = 0
    private var lastPrinted: ContinuousClock.Instant
    private var finished = false
    // Progress is a duration: the monotonic clock, never the date.
    private let started = ContinuousClock.now
    private let interactive = isatty(2) == 1

    init(total: Int) {
        self.total = total
        lastPrinted = started
    }

    func start(_ line: String) { write(line + "\n") }

    func add(_ count: Int) {
        lock.lock()
        defer { lock.unlock() }
        done += count
        let now = ContinuousClock.now
        guard !finished, now - lastPrinted >= .milliseconds(interactive ? 500 : 2_000) else { return }
        lastPrinted = now
        let rate = Int(Double(done) / max((now - started) / .seconds(1), 1e-9))
        write("bench: \(done)/\(total) appends, \(rate)/s" + (interactive ? "   \r" : "\n"))
    }

    func finish() {
        lock.lock()
        defer { lock.unlock() }
        guard !finished else { return }
        finished = true
        write("bench: \(done)/\(total) appends, closing the store\n")
    }

    private func write(_ text: String) { FileHandle.standardError.write(Data(text.utf8)) }
}

/// Bytes this process had written to storage: `write_bytes - cancelled_write_bytes` from
/// /proc/self/io (Linux); nil where that file does not exist.
enum ProcessIO {
    static func writtenBytes() throws -> Int64? {
        guard let handle = FileHandle(forReadingAtPath: "/proc/self/io") else { return nil }
        defer { try? handle.close() }
        // /proc files report size 0: read to the end, not by size.
        let text = String(decoding: try handle.readToEnd() ?? Data(), as: UTF8.self)
        var fields: [String: Int64] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 1)
            if parts.count == 2 { fields[String(parts[0])] = Int64(parts[1].trimmingCharacters(in: .whitespaces)) }
        }
        guard let written = fields["write_bytes"], let cancelled = fields["cancelled_write_bytes"] else { return nil }
        return written - cancelled
    }
}
