import Dispatch
import OpLog
import WorkloadEngines

/// OpLog under the workload harness. The harness calls from OS threads and blocks; OpLog's API is
/// async, so each call runs in a task and the calling thread waits for it. That costs OpLog a
/// thread hop per call that the baselines, called directly, do not pay.
public final class OpLogWorkloadEngine: WorkloadEngine {
    public let name = "oplog"
    let store: OpLogStore

    public init(path: String, options: StoreOptions = StoreOptions()) throws {
        store = try OpLogStore.open(directory: path, options: options)
    }

    public func append(document: String, revision: UInt64, op: BenchOp) throws {
        let id = try DocumentID(document)
        let newOp = try Self.newOp(op)
        let result = try blocking { [store] in try await store.append([newOp], to: id) }
        guard result.revisions == [revision] else {
            throw EngineError(engine: name, call: "append", code: 0, message: "got revision \(result.revisions), harness expected \(revision)")
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
        _ = try blocking { [store] in try await store.append(batch: batch) }
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
        let counters = store.writerCounters()
        try blocking { [store] in try await store.close() }
        let line = "oplog: \(counters.groupCommits) group commits, \(counters.opsCommitted) ops (\(counters.groupCommits > 0 ? counters.opsCommitted / counters.groupCommits : 0)/commit), sync \(counters.syncNanoseconds / 1_000_000) ms, \(counters.lmdbCommits) LMDB commits \(counters.lmdbCommitNanoseconds / 1_000_000) ms, \(counters.journalApplies) applies\n"
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

/// Hands a result from the task to the waiting thread; the semaphore orders the accesses.
final class ResultBox<T>: @unchecked Sendable {
    var result: Result<T, any Error>?
}

import Foundation

enum FileHandleWriter {
    static func standardError(_ text: String) {
        FileHandle.standardError.write(Data(text.utf8))
    }
}
