import CLMDBBench

/// Candidate layout: `lmdb-naive`'s key layout with group commit added.
///
/// Measures how much of OpLog's advantage over `lmdb-naive` is group commit alone. Same named DBs
/// as `lmdb-naive` (`ops`: `BenchKey` → encoded op, one key per op; `snaps`: `BenchKey` → snapshot
/// bytes), but a dedicated writer thread folds every request queued while the previous commit
/// synced into ONE write transaction. What it still pays per op: a B-tree insert of a ~30-byte
/// key into pages interleaved across documents, so each commit copies (CoW) one leaf per touched
/// document region plus the branch path, and truncation deletes op by op.
public final class LMDBGroupEngine: WorkloadEngine, @unchecked Sendable {
    public let name = "lmdb-group"
    private let file: LMDBCandidateFile
    private let writer: GroupCommitWriter<LayoutRequest>

    /// Opens (creating) an environment in the existing directory `path`.
    public init(path: String) throws {
        let file = try LMDBCandidateFile(engine: "lmdb-group", path: path, databases: ["ops", "snaps"])
        let (ops, snaps) = (file.dbis[0], file.dbis[1])
        self.file = file
        writer = GroupCommitWriter(label: "lmdb-group writer", weight: { $0.weight }) { requests in
            try file.write { txn in
                for request in requests {
                    try Self.apply(request, txn: txn, file: file, ops: ops, snaps: snaps)
                }
            }
        }
    }

    public func append(document: String, revision: UInt64, op: BenchOp) throws {
        try writer.submit(.ops([(document, revision, op)]))
    }

    public func appendBatch(_ ops: [(document: String, revision: UInt64, op: BenchOp)]) throws {
        try writer.submit(.ops(ops))
    }

    public func putSnapshot(document: String, revision: UInt64, bytes: [UInt8]) throws {
        try writer.submit(.putSnapshot(document: document, revision: revision, bytes: bytes))
    }

    public func deleteSnapshot(document: String, revision: UInt64) throws {
        try writer.submit(.deleteSnapshot(document: document, revision: revision))
    }

    public func truncate(document: String, below floor: UInt64) throws {
        try writer.submit(.truncate(document: document, floor: floor))
    }

    public func close() throws {
        let counters = writer.close()
        file.report(counters)
        try file.close()
    }

    /// Applies one request inside the group's transaction (writer thread only).
    private static func apply(
        _ request: LayoutRequest, txn: OpaquePointer?, file: LMDBCandidateFile, ops: MDB_dbi, snaps: MDB_dbi
    ) throws {
        switch request {
        case .ops(let entries):
            for entry in entries {
                try file.put(txn, ops, BenchKey.make(document: entry.document, revision: entry.revision), entry.op.encoded)
            }
        case .putSnapshot(let document, let revision, let bytes):
            try file.put(txn, snaps, BenchKey.make(document: document, revision: revision), bytes)
        case .deleteSnapshot(let document, let revision):
            try file.delete(txn, snaps, BenchKey.make(document: document, revision: revision))
        case .truncate(let document, let floor):
            for key in try file.documentKeys(txn, ops, document: document, below: floor) {
                try file.delete(txn, ops, key)
            }
        }
    }
}

extension LMDBGroupEngine: ReplayingEngine {
    /// W3: the same layout as `lmdb-naive`, read in one read transaction outside the writer thread.
    public func replay(document: String, to revision: UInt64) throws -> String {
        try LMDBReplay.replayPerOpLayout(
            engine: name, env: file.env, ops: file.dbis[0], snaps: file.dbis[1], document: document, to: revision)
    }
}
