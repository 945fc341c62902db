/// The contract every engine under test fulfils, so the workloads stay engine-agnostic.
///
/// Every call is blocking and returns only once the change is durable (fsync'd or the engine's
/// equivalent). The harness calls one engine from many OS threads at once (one per writer), never
/// from Swift tasks: the cooperative pool has as many threads as cores, and blocking calls there
/// would serialize the writers and hide each engine's group commit.
///
/// Revisions are assigned by the harness: 1-based and gap-free per document, so engines need no
/// read-before-write to number ops.
public protocol WorkloadEngine: AnyObject, Sendable {
    /// The name rows are reported under, e.g. `lmdb-naive`.
    var name: String { get }
    /// Appends one op durably (returns after fsync).
    func append(document: String, revision: UInt64, op: BenchOp) throws
    /// One durable commit holding many ops (W2).
    func appendBatch(_ ops: [(document: String, revision: UInt64, op: BenchOp)]) throws
    /// Stores the document's full text at `revision`, durably.
    func putSnapshot(document: String, revision: UInt64, bytes: [UInt8]) throws
    /// Removes the snapshot taken at `revision`, durably.
    func deleteSnapshot(document: String, revision: UInt64) throws
    /// Removes ops with revision < floor, durably.
    func truncate(document: String, below floor: UInt64) throws
    /// Flushes everything (RocksDB memtable flush, SQLite checkpoint, ...) and closes. The writes
    /// this causes are measured too: deferring work past the end of a run must not look free.
    func close() throws
}

/// An engine that can open a document at a revision (workload W3): the newest snapshot at or below
/// it, then the ops after that snapshot applied in order. Engines that cannot are reported with null
/// W3 fields, never dropped.
public protocol ReplayingEngine: WorkloadEngine {
    /// The document's text at `revision`. Read-only; called from one harness thread at a time, never
    /// concurrently with writes. Throws when the stored ops after the snapshot are not exactly
    /// `snapshot + 1 ... revision`.
    func replay(document: String, to revision: UInt64) throws -> String
}

/// An engine that snapshots and truncates by itself (OpLog with its `CompactionScheduler`, W1
/// `--compaction on`). The harness then only appends to it and reads back what the engine did.
public protocol SelfCompactingEngine: WorkloadEngine {
    /// What the engine's own compaction did; final after `close()`.
    var compactionWork: CompactionWork { get }
}

/// Snapshots and truncation done during a run, whoever did them (the harness or the engine).
public struct CompactionWork: Sendable, Equatable {
    public var snapshotsWritten: Int
    /// Bytes of the snapshots' contents (the document texts), before any compression.
    public var snapshotBytes: Int
    public var opsTruncated: Int

    public init(snapshotsWritten: Int, snapshotBytes: Int, opsTruncated: Int) {
        self.snapshotsWritten = snapshotsWritten
        self.snapshotBytes = snapshotBytes
        self.opsTruncated = opsTruncated
    }
}

/// How the harness asks an engine to be opened for one run.
public struct EngineSetup: Sendable {
    /// Non-nil: the engine should compact by itself with this policy (engines that cannot ignore it
    /// and the harness snapshots for them).
    public var compaction: CompactionSetup?

    public init(compaction: CompactionSetup? = nil) { self.compaction = compaction }
}

/// The compaction an engine runs itself, and what it needs to know to replay a document from nothing.
public struct CompactionSetup: Sendable {
    public var snapshotEveryOps: Int
    public var keepOps: Int
    public var keepSnapshots: Int
    /// Document name → its text before revision 1 (a W1 document starts mid-trace, from the real text
    /// there; without it a text reducer cannot replay revision 1).
    public var startTexts: [String: String]

    public init(snapshotEveryOps: Int, keepOps: Int, keepSnapshots: Int, startTexts: [String: String]) {
        self.snapshotEveryOps = snapshotEveryOps
        self.keepOps = keepOps
        self.keepSnapshots = keepSnapshots
        self.startTexts = startTexts
    }
}

/// One operation as a collaborative editor would log it.
public struct BenchOp: Sendable {
    /// 16 random bytes, like a UUID.
    public var opID: [UInt8]
    /// 8 bytes naming the author (a replica ID).
    public var author: [UInt8]
    /// The author's wall clock in milliseconds since 1970.
    public var clientTime: Int64
    /// The patch as compact JSON, `{"p":12,"d":0,"i":"x"}`.
    public var patchJSON: [UInt8]

    public init(opID: [UInt8], author: [UInt8], clientTime: Int64, patchJSON: [UInt8]) {
        self.opID = opID
        self.author = author
        self.clientTime = clientTime
        self.patchJSON = patchJSON
    }

    /// All four parts concatenated, the value every baseline stores: what `op_bytes` counts.
    public var encoded: [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(encodedCount)
        bytes += opID
        bytes += author
        withUnsafeBytes(of: UInt64(bitPattern: clientTime).bigEndian) { bytes += $0 }
        bytes += patchJSON
        return bytes
    }

    /// Offset of the patch JSON inside `encoded`: after the op ID, the author and the client time.
    public static let patchOffset = 16 + 8 + 8

    /// The size of `encoded` without building it.
    public var encodedCount: Int { opID.count + author.count + 8 + patchJSON.count }
}

/// A failure reported by a baseline's C library, with the call that failed.
public struct EngineError: Error, CustomStringConvertible {
    public var engine: String
    public var call: String
    public var code: Int32
    public var message: String

    public init(engine: String, call: String, code: Int32, message: String) {
        self.engine = engine
        self.call = call
        self.code = code
        self.message = message
    }

    public var description: String { "\(engine): \(call) failed (\(code)): \(message)" }
}

/// The key layout shared by the key-value baselines: document bytes, 0x00, revision big-endian.
/// Big-endian so byte order equals revision order and a range scan walks a document's ops in order;
/// the 0x00 separator keeps "doc1" from being a prefix of "doc10"'s keys (names never contain NUL).
public enum BenchKey {
    public static func make(prefix: [UInt8] = [], document: String, revision: UInt64) -> [UInt8] {
        var key = prefix
        key.reserveCapacity(prefix.count + document.utf8.count + 9)
        key += document.utf8
        key.append(0)
        withUnsafeBytes(of: revision.bigEndian) { key += $0 }
        return key
    }

    /// Reads the revision back from a key made by `make` for the same document.
    public static func revision(of key: UnsafeRawBufferPointer) -> UInt64 {
        precondition(key.count >= 8, "key shorter than a revision")
        var revision: UInt64 = 0
        for byte in key[(key.count - 8)...] { revision = revision << 8 | UInt64(byte) }
        return revision
    }
}
