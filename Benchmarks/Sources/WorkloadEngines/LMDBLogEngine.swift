import CLMDBBench
import CZlibBench

/// Candidate layout: one global, append-ordered commit log inside LMDB, plus a per-document index.
///
/// Measures the "log of commits" alternative: every group commit writes ONE record, so the op data
/// lands in freshly appended pages at the right edge of one B-tree instead of in leaves scattered
/// across documents, and is compressed as a whole. Named DBs:
/// - `log`: commit sequence (u64 big-endian, written with MDB_APPEND, which fills pages completely
///   instead of splitting them in half) → varint(raw length) + zlib level 1 of all the commit's ops,
///   each as varint(document length), document bytes, varint(revision), varint(op length), op bytes.
/// - `index`: `BenchKey`(document, first revision of that document in the commit) → commit
///   sequence (u64 big-endian); one entry per document per commit, so a reader can seek to the
///   commits holding a document's ops from a revision on.
/// - `snaps`: as in `lmdb-group`.
///
/// Truncation deletes only index entries. Commit records are shared by every document in the
/// commit, so one can be dropped only when no document still needs it: a real design would keep a
/// per-record reference count (live index entries pointing at it) or rewrite old records during
/// compaction. This engine keeps them all, so its `disk_bytes` grows with every op ever written.
public final class LMDBLogEngine: WorkloadEngine, @unchecked Sendable {
    public let name = "lmdb-log"
    private let file: LMDBCandidateFile
    private let committer: LogCommitter
    private let writer: GroupCommitWriter<LayoutRequest>

    /// Opens (creating) an environment in the existing directory `path`.
    public init(path: String) throws {
        let file = try LMDBCandidateFile(engine: "lmdb-log", path: path, databases: ["log", "index", "snaps"])
        let committer = try LogCommitter(file: file)
        self.file = file
        self.committer = committer
        writer = GroupCommitWriter(label: "lmdb-log writer", weight: { $0.weight }) { requests in
            try committer.commit(requests)
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
        // The writer thread has stopped, so reading the committer's counters here is race-free.
        let ratio = committer.rawBytes > 0 ? Double(committer.storedBytes) / Double(committer.rawBytes) : 0
        file.report(
            counters,
            extra: ", records \(committer.rawBytes) B raw → \(committer.storedBytes) B zlib "
                + "(\(Int(ratio * 100))%)")
        try file.close()
    }
}

/// The writer thread's state for `lmdb-log`: turns one group of requests into one transaction.
/// Used only on the writer thread (and by `close()` after it stopped), so it needs no lock.
private final class LogCommitter: @unchecked Sendable {
    private let file: LMDBCandidateFile
    private let log: MDB_dbi
    private let index: MDB_dbi
    private let snaps: MDB_dbi
    /// The sequence the next record gets; advanced only after its transaction commits.
    private var nextSequence: UInt64
    private(set) var rawBytes = 0
    private(set) var storedBytes = 0

    init(file: LMDBCandidateFile) throws {
        self.file = file
        (log, index, snaps) = (file.dbis[0], file.dbis[1], file.dbis[2])
        // Resume after the last record, so MDB_APPEND keys keep increasing across reopenings.
        let last = try file.lastKey(file.dbis[0]).map { $0.reduce(UInt64(0)) { $0 << 8 | UInt64($1) } }
        nextSequence = (last ?? 0) + 1
    }

    func commit(_ requests: [LayoutRequest]) throws {
        var record: [UInt8] = []
        // First revision per document in this commit, in first-seen order: the index entries.
        var firstRevision: [String: UInt64] = [:]
        var documents: [String] = []
        var stored = 0
        try file.write { txn in
            for request in requests {
                switch request {
                case .ops(let entries):
                    for entry in entries {
                        Self.appendHeader(&record, document: entry.document, revision: entry.revision, op: entry.op)
                        if let first = firstRevision[entry.document] {
                            firstRevision[entry.document] = min(first, entry.revision)
                        } else {
                            firstRevision[entry.document] = entry.revision
                            documents.append(entry.document)
                        }
                    }
                case .putSnapshot(let document, let revision, let bytes):
                    try file.put(txn, snaps, BenchKey.make(document: document, revision: revision), bytes)
                case .deleteSnapshot(let document, let revision):
                    try file.delete(txn, snaps, BenchKey.make(document: document, revision: revision))
                case .truncate(let document, let floor):
                    try truncateIndex(txn, document: document, floor: floor)
                }
            }
            guard !record.isEmpty else { return }
            let sequence = nextSequence.bigEndianBytes
            let value = try Self.deflate(record)
            stored = value.count
            try file.put(txn, log, sequence, value, flags: UInt32(MDB_APPEND))
            for document in documents {
                try file.put(txn, index, BenchKey.make(document: document, revision: firstRevision[document]!), sequence)
            }
        }
        guard !record.isEmpty else { return }
        nextSequence += 1
        rawBytes += record.count
        storedBytes += stored
    }

    /// Entry i covers revisions [first_i, first_{i+1}), so it holds only ops below the floor iff
    /// first_{i+1} <= floor. Among the entries with first <= floor, all but the last qualify; the
    /// last may still hold ops at or above the floor (a commit spanning it), so it stays.
    private func truncateIndex(_ txn: OpaquePointer?, document: String, floor: UInt64) throws {
        let candidates = try file.documentKeys(txn, index, document: document, below: floor + 1)
        for key in candidates.dropLast() { try file.delete(txn, index, key) }
    }

    private static func appendHeader(_ record: inout [UInt8], document: String, revision: UInt64, op: BenchOp) {
        appendVarint(&record, UInt64(document.utf8.count))
        record += document.utf8
        appendVarint(&record, revision)
        appendVarint(&record, UInt64(op.encodedCount))
        record += op.encoded
    }

    /// LEB128: the header stays 3-5 bytes per op instead of 14 with fixed-width fields.
    private static func appendVarint(_ bytes: inout [UInt8], _ value: UInt64) {
        var value = value
        while value >= 0x80 {
            bytes.append(UInt8(value & 0x7F) | 0x80)
            value >>= 7
        }
        bytes.append(UInt8(value))
    }

    /// varint(raw length) + zlib level 1 of `raw`; the length lets a reader size `uncompress`'s buffer.
    private static func deflate(_ raw: [UInt8]) throws -> [UInt8] {
        var value: [UInt8] = []
        appendVarint(&value, UInt64(raw.count))
        let prefix = value.count
        var length = compressBound(uLong(raw.count))
        value += [UInt8](repeating: 0, count: Int(length))
        let rc = value.withUnsafeMutableBufferPointer { out in
            raw.withUnsafeBufferPointer { input in
                compress2(out.baseAddress! + prefix, &length, input.baseAddress, uLong(input.count), 1)
            }
        }
        guard rc == Z_OK else {
            throw EngineError(engine: "lmdb-log", call: "compress2", code: rc, message: "zlib error")
        }
        value.removeLast(value.count - prefix - Int(length))
        return value
    }
}

extension LMDBLogEngine: ReplayingEngine {
    /// W3: the snapshot from `snaps`, then every commit record the document's index entries name from
    /// the one holding `snapshot + 1` on, each inflated whole (it holds other documents' ops too).
    public func replay(document: String, to revision: UInt64) throws -> String {
        try LMDBReplay.replayLogLayout(
            engine: name, env: file.env, log: file.dbis[0], index: file.dbis[1], snaps: file.dbis[2],
            document: document, to: revision)
    }
}
