import Dispatch
import Foundation
import OpLog
import OpLogText
import WorkloadEngines

/// OpLog under the workload harness. The harness calls from OS threads and blocks, so appends use
/// `appendBlocking` (committed on the calling thread when the writer is idle, as the baselines'
/// writes are; by OpLog's writer thread when others are queued); the rarer calls (snapshots,
/// truncations, close) run in a task that the calling thread waits for.
///
/// With `EngineSetup.compaction` it runs a `CompactionScheduler` (TextReducer, started at open,
/// drained and stopped at close) and the harness only appends.
public final class OpLogWorkloadEngine: ReplayingEngine, SelfCompactingEngine {
    public let name: String
    let store: OpLogStore
    let scheduler: CompactionScheduler?
    private let finalWork = ResultBox<CompactionWork>()

    public init(path: String, options: StoreOptions = StoreOptions(), setup: EngineSetup = EngineSetup(), name: String = "oplog") throws {
        self.name = name
        store = try OpLogStore.open(directory: path, options: options)
        guard let compaction = setup.compaction else {
            scheduler = nil
            return
        }
        var policy = CompactionPolicy()
        policy.snapshotEveryOps = compaction.snapshotEveryOps
        policy.keepOps = compaction.keepOps
        policy.keepSnapshots = compaction.keepSnapshots
        // One reducer per document: TextReducer from the document's start text (see WindowTextReducer).
        let reducers = compaction.startTexts.mapValues { AnyReducer(WindowTextReducer(startText: $0)) }
        do {
            let scheduler = try CompactionScheduler(store: store, policy: policy) { reducers[$0.value] }
            try scheduler.start()
            self.scheduler = scheduler
        } catch {
            try? blocking { [store] in try await store.close() }
            throw error
        }
    }

    /// The scheduler's statistics after `close()` (zero without a scheduler).
    public var compactionWork: CompactionWork {
        finalWork.result.flatMap { try? $0.get() } ?? CompactionWork(snapshotsWritten: 0, snapshotBytes: 0, opsTruncated: 0)
    }

    /// The writer's counters now (W4 reads the dedupe index loads and evictions from them).
    public var writerCounters: WriterCounters { store.writerCounters() }

    /// W3: `store.replay(document, to:, with: TextReducer())`, the text of the state.
    public func replay(document: String, to revision: UInt64) throws -> String {
        try store.replay(DocumentID(document), to: revision, with: TextReducer()).state.text
    }

    public func append(document: String, revision: UInt64, op: BenchOp) throws {
        let id = try DocumentID(document)
        let newOp = try Self.newOp(op)
        let result = try store.appendBlocking([newOp], to: id)
        guard result.revisions == [revision] else {
            throw EngineError(
                engine: name, call: "append", code: 0, message: "got revision \(result.revisions), harness expected \(revision)")
        }
    }

    public func appendBatch(_ ops: [(document: String, revision: UInt64, op: BenchOp)]) throws {
        var order: [String] = []
        var parts: [String: [NewOp]] = [:]
        for entry in ops {
            if parts[entry.document] == nil { order.append(entry.document) }
            parts[entry.document, default: []].append(try Self.newOp(entry.op))
        }
        let batch = try order.map { DocumentAppend(document: try DocumentID($0), ops: parts[$0] ?? []) }
        _ = try store.appendBlocking(batch: batch)
    }

    public func putSnapshot(document: String, revision: UInt64, bytes: [UInt8]) throws {
        let id = try DocumentID(document)
        try blocking { [store] in try await store.putSnapshot(bytes, of: id, at: revision) }
    }

    public func deleteSnapshot(document: String, revision: UInt64) throws {
        let id = try DocumentID(document)
        try blocking { [store] in try await store.deleteSnapshot(of: id, at: revision) }
    }

    public func truncate(document: String, below floor: UInt64) throws {
        let id = try DocumentID(document)
        try blocking { [store] in try await store.truncate(id, below: floor) }
    }

    public func close() throws {
        if let scheduler {
            // Deferred work counts: the scheduler finishes what is due before the store closes.
            try blocking {
                await scheduler.drain()
                await scheduler.stop()
            }
            let statistics = scheduler.statistics
            finalWork.result = .success(
                CompactionWork(
                    snapshotsWritten: statistics.snapshotsWritten, snapshotBytes: statistics.snapshotBytesWritten,
                    opsTruncated: Int(statistics.opsTruncated)))
            FileHandleWriter.standardError(
                "oplog compaction: \(statistics.snapshotsWritten) snapshots (\(statistics.snapshotBytesWritten) B), "
                    + "\(statistics.opsTruncated) ops truncated, \(statistics.snapshotsDeleted) snapshots deleted, "
                    + "\(statistics.failures) failures, "
                    + "\(statistics.compactionNanoseconds / 1_000_000) ms compacting\n")
        }
        let counters = store.writerCounters()
        try blocking { [store] in try await store.close() }
        let line =
            "\(name): \(counters.groupCommits) group commits, \(counters.opsCommitted) ops "
            + "(\(counters.groupCommits > 0 ? counters.opsCommitted / counters.groupCommits : 0)/commit), sync "
            + "\(counters.syncNanoseconds / 1_000_000) ms, \(counters.lmdbCommits) LMDB commits "
            + "\(counters.lmdbCommitNanoseconds / 1_000_000) ms, \(counters.journalApplies) applies, "
            + "journal fill \(counters.journalFillBytes) B\n"
        FileHandleWriter.standardError(line)
    }

    static func newOp(_ op: BenchOp) throws -> NewOp {
        NewOp(opID: try OpID(bytes: op.opID), author: op.author, clientTimeMilliseconds: op.clientTime, payload: op.patchJSON)
    }
}

/// Runs `body` in a task and blocks the calling thread until it finishes.
func blocking<T: Sendable>(_ body: @Sendable @escaping () async throws -> T) throws -> T {
    let semaphore = DispatchSemaphore(value: 0)
    let box = ResultBox<T>()
    Task {
        do { box.result = .success(try await body()) } catch { box.result = .failure(error) }
        semaphore.signal()
    }
    semaphore.wait()
    return try box.result!.get()
}

/// `TextReducer` whose state before revision 1 is `startText` instead of the empty text. A W1
/// document replays a window of the trace starting mid-way, from the real text there; that text is
/// not in the log, so a plain `TextReducer` could not replay revision 1. Everything else (patch
/// decoding, snapshot encoding) is TextReducer's.
struct WindowTextReducer: Reducer {
    let startText: String

    func initialState() -> TextBuffer { TextBuffer(startText) }
    func apply(_ op: StoredOp, to state: inout TextBuffer) throws { try TextReducer().apply(op, to: &state) }
    func encode(_ state: TextBuffer) throws -> [UInt8] { try TextReducer().encode(state) }
    func decode(_ bytes: [UInt8]) throws -> TextBuffer { try TextReducer().decode(bytes) }
}

/// Hands a result from the task to the waiting thread; the semaphore orders the accesses.
final class ResultBox<T>: @unchecked Sendable {
    var result: Result<T, any Error>?
}

enum FileHandleWriter {
    static func standardError(_ text: String) {
        FileHandle.standardError.write(Data(text.utf8))
    }
}
