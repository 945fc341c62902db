import Benchmark
import Foundation
import OpLog
import OpLogStorage
import OpLogText

// Micro-benchmarks of OpLog's hot paths, with malloc counts (package-benchmark's malloc interposer):
// `swift package --package-path Benchmarks benchmark`. Each benchmark opens its own store in a fresh
// directory under /var/tmp (a real disk: snapshot puts sync) in its setup and removes it in its teardown.
// Payloads are the automerge-paper trace's patches as `TextPatch` JSON, the ops the workloads append.

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .mallocCountTotal, .mallocBytesCount],
        timeUnits: .microseconds,
        warmupIterations: 10,
        maxDuration: .seconds(2),
        maxIterations: 20_000
    )

    // One op per append, acknowledged when journaled (no fsync per append): the CPU cost of an append.
    Benchmark("append (1 op, lastAppendsMayBeLost)") { benchmark async throws in
        let store = try fixture.store()
        var next = fixture.nextOpNumber
        for _ in benchmark.scaledIterations {
            next += 1
            let op = NewOp(
                opID: OpID(high: 7, low: next), author: Fixture.author, clientTimeMilliseconds: 0,
                payload: Fixture.payloads[Int(next % UInt64(Fixture.payloads.count))])
            blackHole(try await store.append([op], to: Fixture.appendDocument))
        }
        fixture.nextOpNumber = next
    } setup: {
        try fixture.open(durability: .lastAppendsMayBeLost)
    } teardown: {
        try await fixture.close()
    }

    // 1,000 applied ops (two chunks) read back: seek, checksum, inflate, decode.
    Benchmark("read-range (1,000 ops)") { benchmark throws in
        let store = try fixture.store()
        for _ in benchmark.scaledIterations {
            blackHole(try store.ops(of: Fixture.readDocument, from: 1, limit: 1_000))
        }
    } setup: {
        try fixture.open()
        try await fixture.load(Fixture.readDocument, ops: 1_000, batch: 100)
    } teardown: {
        try await fixture.close()
    }

    // One chunk, as full as the writer makes them (just under 32 KiB of ops): the per-chunk read path.
    Benchmark("checksum+decode (store.ops of one chunk)") { benchmark throws in
        let store = try fixture.store()
        let count = Fixture.opsInOneChunk
        for _ in benchmark.scaledIterations {
            blackHole(try store.ops(of: Fixture.readDocument, from: 1, limit: count))
        }
    } setup: {
        try fixture.open()
        try await fixture.load(Fixture.readDocument, ops: Fixture.opsInOneChunk, batch: Fixture.opsInOneChunk)
    } teardown: {
        try await fixture.close()
    }

    // A 32 KiB text replacing the snapshot at revision 1: compress, frame, one synced LMDB commit.
    Benchmark("snapshot put (32 KiB)") { benchmark async throws in
        let store = try fixture.store()
        for _ in benchmark.scaledIterations {
            try await store.putSnapshot(Fixture.snapshotText, of: Fixture.snapshotDocument, at: 1)
        }
    } setup: {
        try fixture.open()
        try await fixture.load(Fixture.snapshotDocument, ops: 1, batch: 1)
    } teardown: {
        try await fixture.close()
    }

    Benchmark("snapshot get (32 KiB)") { benchmark throws in
        let store = try fixture.store()
        for _ in benchmark.scaledIterations {
            blackHole(try store.snapshot(of: Fixture.snapshotDocument))
        }
    } setup: {
        try fixture.open()
        try await fixture.load(Fixture.snapshotDocument, ops: 1, batch: 1)
        try await fixture.store().putSnapshot(Fixture.snapshotText, of: Fixture.snapshotDocument, at: 1)
    } teardown: {
        try await fixture.close()
    }

    // No snapshot: the first 1,000 patches of the trace from its (empty) start text.
    Benchmark("replay (1,000 ops, TextReducer)") { benchmark throws in
        let store = try fixture.store()
        for _ in benchmark.scaledIterations {
            blackHole(try store.replay(Fixture.readDocument, to: 1_000, with: TextReducer()))
        }
    } setup: {
        try fixture.open()
        try await fixture.load(Fixture.readDocument, ops: 1_000, batch: 100)
    } teardown: {
        try await fixture.close()
    }

    // The whole automerge-paper trace (259,778 ops) with no snapshot, from an open store: chunk reads
    // (checksum, inflate, in-place decode) and TextReducer's byte-level patch parsing and gap buffer.
    // Ops per second: the trace's op count over one iteration's wall-clock time.
    Benchmark(
        "replay (whole trace, no snapshot, TextReducer)",
        configuration: .init(warmupIterations: 1, maxDuration: .seconds(10), maxIterations: 20)
    ) { benchmark throws in
        let store = try fixture.store()
        for _ in benchmark.scaledIterations {
            blackHole(try store.replay(Fixture.traceDocument, with: TextReducer()))
        }
    } setup: {
        try fixture.open()
        try await fixture.loadTrace()
    } teardown: {
        try await fixture.close()
    }

    // The same trace read back as owning ops, 10,000 per call (decoded ops per second as above).
    Benchmark(
        "read all ops (whole trace, 10,000 per read)",
        configuration: .init(warmupIterations: 1, maxDuration: .seconds(10), maxIterations: 20)
    ) { benchmark throws in
        let store = try fixture.store()
        for _ in benchmark.scaledIterations {
            var next: Revision = 1
            while true {
                let batch = try store.ops(of: Fixture.traceDocument, from: next, limit: 10_000)
                if batch.isEmpty { break }
                next += UInt64(batch.count)
                blackHole(batch)
            }
        }
    } setup: {
        try fixture.open()
        try await fixture.loadTrace()
    } teardown: {
        try await fixture.close()
    }

    // The store's record compression (level 6, StoreOptions' default) on 32 KiB of patch JSON.
    Benchmark("compress (zlib level 6, 32 KiB trace JSON)") { benchmark throws in
        for _ in benchmark.scaledIterations {
            blackHole(try Zlib.compress(Fixture.compressInput, level: 6))
        }
    }
}

/// The store a benchmark runs against, and the data every benchmark uses.
///
/// `@unchecked Sendable`: package-benchmark runs one benchmark at a time (setup, iterations,
/// teardown), so `current` and `nextOpNumber` are never touched concurrently.
final class Fixture: @unchecked Sendable {
    private var current: (store: OpLogStore, directory: String)?
    var nextOpNumber: UInt64 = 0

    static let appendDocument = try! DocumentID("micro-append")
    static let readDocument = try! DocumentID("micro-read")
    static let snapshotDocument = try! DocumentID("micro-snapshot")
    static let traceDocument = try! DocumentID("micro-trace")
    static let author = Array("micro-01".utf8)

    /// The trace's patches, as the JSON payloads the workloads append (from the empty start text).
    static let trace: EditingTrace = {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().path
        let path =
            ProcessInfo.processInfo.environment["OPLOG_TRACES"].map { $0 + "/automerge-paper.json.gz" }
            ?? root + "/../shared/traces/automerge-paper.json.gz"
        if let trace = try? EditingTrace.load(path: path) { return trace }
        FileHandle.standardError.write(Data("OpLogMicro: \(path) not found; using a generated editing session\n".utf8))
        return EditingTrace.generated(patchCount: 20_000)
    }()
    static let payloads: [[UInt8]] = trace.patches.prefix(20_000).map { $0.jsonBytes() }

    /// The largest prefix of `payloads` one journal apply stores as a single chunk: the writer fills a
    /// chunk until Σ(payload + author + 24) reaches 32 KiB (FORMAT.md), so stay just below that.
    static let opsInOneChunk: Int = {
        var total = 0
        for (index, payload) in payloads.enumerated() {
            total += payload.count + author.count + 24
            if total >= 32 << 10 { return index }
        }
        return payloads.count
    }()

    /// 32 KiB of the document's text (UTF-8), replayed from the trace.
    static let snapshotText: [UInt8] = {
        var text = TextBuffer(trace.startContent)
        for patch in trace.patches {
            try? text.apply(patch)
            if text.count >= 40_000 { break }
        }
        return Array(Array(text.text.utf8).prefix(32 << 10))
    }()

    /// 32 KiB of concatenated patch JSON.
    static let compressInput: [UInt8] = {
        var bytes: [UInt8] = []
        for payload in payloads where bytes.count < 32 << 10 { bytes += payload }
        return Array(bytes.prefix(32 << 10))
    }()

    func open(durability: Durability = .full) throws {
        let directory = "/var/tmp/oplog-micro-\(UUID().uuidString)"
        var options = StoreOptions()
        options.durability = durability
        current = (try OpLogStore.open(directory: directory, options: options), directory)
    }

    func store() throws -> OpLogStore {
        guard let current else { throw OpLogError.closed }
        return current.store
    }

    /// Appends the first `ops` payloads to `document` in appends of `batch` ops, then applies the
    /// journal so reads come from LMDB's chunks.
    func load(_ document: DocumentID, ops: Int, batch: Int) async throws {
        let store = try store()
        for start in stride(from: 0, to: ops, by: batch) {
            let newOps = (start..<min(start + batch, ops)).map { index in
                NewOp(
                    opID: OpID(high: 1, low: UInt64(index)), author: Fixture.author, clientTimeMilliseconds: 0,
                    payload: Fixture.payloads[index % Fixture.payloads.count])
            }
            _ = try await store.append(newOps, to: document)
        }
        try await store.checkpoint()
    }

    /// Appends every patch of the trace to `traceDocument` (1,000 per append), applies the journal,
    /// and checks that a replay gives the trace's final text (when the trace has one).
    func loadTrace() async throws {
        let store = try store()
        let patches = Fixture.trace.patches
        for start in stride(from: 0, to: patches.count, by: 1_000) {
            let newOps = (start..<min(start + 1_000, patches.count)).map { index in
                NewOp(
                    opID: OpID(high: 2, low: UInt64(index)), author: Fixture.author, clientTimeMilliseconds: 0,
                    payload: patches[index].jsonBytes())
            }
            _ = try await store.append(newOps, to: Fixture.traceDocument)
        }
        try await store.checkpoint()
        let replayed = try store.replay(Fixture.traceDocument, with: TextReducer()).state.text
        if Fixture.trace.startContent.isEmpty, let end = Fixture.trace.endContent, replayed != end {
            throw OpLogError.invalidArgument("replay of the trace does not give its final text")
        }
    }

    func close() async throws {
        guard let current else { return }
        self.current = nil
        try await current.store.close()
        try FileManager.default.removeItem(atPath: current.directory)
    }
}

let fixture = Fixture()
