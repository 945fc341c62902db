/// A revision number. Per document, revisions start at 1 and are gap-free and strictly increasing
/// forever; 0 means "no ops yet".
public typealias Revision = UInt64

/// A document's identifier: 1 to `Limits.documentIDBytesMax` UTF-8 bytes, no NUL byte.
public struct DocumentID: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The ID as text.
    public let value: String
    let utf8: [UInt8]

    /// Validates and wraps `value`.
    /// - Throws: `OpLogError.invalidArgument` for an empty ID or one containing NUL;
    ///   `OpLogError.limitExceeded` when longer than `Limits.documentIDBytesMax`.
    public init(_ value: String) throws(OpLogError) {
        let bytes = Array(value.utf8)
        guard !bytes.isEmpty else { throw .invalidArgument("a document ID must not be empty") }
        guard bytes.count <= Limits.documentIDBytesMax else {
            throw .limitExceeded(.documentIDBytes, value: bytes.count, maximum: Limits.documentIDBytesMax)
        }
        // NUL separates the ID from the revision in keys, so it cannot appear inside an ID.
        guard !bytes.contains(0) else { throw .invalidArgument("a document ID must not contain a NUL byte") }
        self.value = value
        self.utf8 = bytes
    }

    /// Rebuilds an ID from key bytes; nil when they are not a valid ID (damaged key).
    package init?(keyBytes: ArraySlice<UInt8>) {
        guard let string = String(validating: keyBytes, as: UTF8.self), let id = try? DocumentID(string) else {
            return nil
        }
        self = id
    }

    /// The ID as text.
    public var description: String { value }
    /// Byte order of the UTF-8 bytes, the order `documents(after:limit:)` lists.
    public static func < (lhs: DocumentID, rhs: DocumentID) -> Bool { lhs.utf8.lexicographicallyPrecedes(rhs.utf8) }
    /// Equal when the UTF-8 bytes are.
    public static func == (lhs: DocumentID, rhs: DocumentID) -> Bool { lhs.utf8 == rhs.utf8 }
    /// Hashes the UTF-8 bytes, as one buffer (an array's own hashing combines them byte by byte,
    /// which showed in profiles of the writer's per-document tables).
    public func hash(into hasher: inout Hasher) { utf8.withUnsafeBytes { hasher.combine(bytes: $0) } }
}

/// A client-chosen 16-byte operation ID, used to recognise retries.
public struct OpID: Hashable, Sendable, CustomStringConvertible {
    /// The first 8 bytes, big-endian.
    public let high: UInt64
    /// The last 8 bytes, big-endian.
    public let low: UInt64

    /// An ID from its two halves.
    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// From exactly 16 bytes (big-endian halves, so the bytes read as a UUID would).
    public init(bytes: [UInt8]) throws(OpLogError) {
        guard bytes.count == 16 else { throw .invalidArgument("an op ID has 16 bytes, got \(bytes.count)") }
        self.init(high: bytes[0..<8].reduce(0) { $0 << 8 | UInt64($1) }, low: bytes[8..<16].reduce(0) { $0 << 8 | UInt64($1) })
    }

    /// The 16 bytes, big-endian.
    public var bytes: [UInt8] {
        (0..<8).map { UInt8(truncatingIfNeeded: high >> (56 - 8 * $0)) } + (0..<8).map { UInt8(truncatingIfNeeded: low >> (56 - 8 * $0)) }
    }

    /// The 16 bytes as 32 lowercase hex digits.
    public var description: String { bytes.map { String($0, radix: 16).leftPadded(to: 2) }.joined() }
}

/// An op as a caller submits it. The store adds the revision and the server timestamp.
public struct NewOp: Sendable, Equatable {
    /// Client-chosen ID; appending an ID the document already accepted is a retry.
    public var opID: OpID
    /// Who made the edit (opaque, up to `Limits.authorBytesMax` bytes).
    public var author: [UInt8]
    /// The client's clock in milliseconds, kept for audit only; never used for ordering.
    public var clientTimeMilliseconds: Int64?
    /// The operation itself, opaque to the store (up to `Limits.payloadBytesMax` bytes).
    public var payload: [UInt8]

    /// An op to append.
    public init(opID: OpID, author: [UInt8], clientTimeMilliseconds: Int64? = nil, payload: [UInt8]) {
        self.opID = opID
        self.author = author
        self.clientTimeMilliseconds = clientTimeMilliseconds
        self.payload = payload
    }
}

/// An op as stored: the submitted fields plus its revision and server timestamp.
public struct StoredOp: Sendable, Equatable {
    /// The revision the store assigned.
    public var revision: Revision
    /// The client's ID, as submitted.
    public var opID: OpID
    /// The author, as submitted.
    public var author: [UInt8]
    /// The client's clock, as submitted (audit only).
    public var clientTimeMilliseconds: Int64?
    /// Assigned by the store at acceptance (milliseconds since 1970); never decreases within a document.
    public var serverTimeMilliseconds: Int64
    /// The op, as submitted.
    public var payload: [UInt8]

    /// A stored op (for reducers' tests and tools).
    public init(
        revision: Revision, opID: OpID, author: [UInt8], clientTimeMilliseconds: Int64?, serverTimeMilliseconds: Int64, payload: [UInt8]
    ) {
        self.revision = revision
        self.opID = opID
        self.author = author
        self.clientTimeMilliseconds = clientTimeMilliseconds
        self.serverTimeMilliseconds = serverTimeMilliseconds
        self.payload = payload
    }
}

/// A stored op read in place: its author and payload are slices of the decoded chunk they were
/// read from, so reading one copies and allocates nothing. `Reducer.apply(_:to:)` receives ops
/// this way during replay; `op.payload.span` (or `withUnsafeBufferPointer`) reads the bytes
/// without a copy, and `storedOp` makes an owning `StoredOp` where one is needed.
///
/// Holding a view keeps its whole chunk (up to about 32 KiB) alive: copy what must outlive the call.
public struct StoredOpView: Sendable, Equatable {
    /// The revision the store assigned.
    public let revision: Revision
    /// The client's ID, as submitted.
    public let opID: OpID
    /// The author, as submitted.
    public let author: ArraySlice<UInt8>
    /// The client's clock, as submitted (audit only).
    public let clientTimeMilliseconds: Int64?
    /// Assigned by the store at acceptance (milliseconds since 1970).
    public let serverTimeMilliseconds: Int64
    /// The op, as submitted.
    public let payload: ArraySlice<UInt8>

    /// A view of the fields of `op` (no copy: the slices share `op`'s arrays).
    public init(_ op: StoredOp) {
        self.init(
            revision: op.revision, opID: op.opID, author: op.author[...], clientTimeMilliseconds: op.clientTimeMilliseconds,
            serverTimeMilliseconds: op.serverTimeMilliseconds, payload: op.payload[...])
    }

    package init(
        revision: Revision, opID: OpID, author: ArraySlice<UInt8>, clientTimeMilliseconds: Int64?, serverTimeMilliseconds: Int64,
        payload: ArraySlice<UInt8>
    ) {
        self.revision = revision
        self.opID = opID
        self.author = author
        self.clientTimeMilliseconds = clientTimeMilliseconds
        self.serverTimeMilliseconds = serverTimeMilliseconds
        self.payload = payload
    }

    /// An owning copy.
    public var storedOp: StoredOp {
        StoredOp(
            revision: revision, opID: opID, author: Array(author), clientTimeMilliseconds: clientTimeMilliseconds,
            serverTimeMilliseconds: serverTimeMilliseconds, payload: Array(payload))
    }
}

/// Ops for one document inside an append or a multi-document batch.
public struct DocumentAppend: Sendable {
    /// The document appended to.
    public var document: DocumentID
    /// The ops, in the order they get revisions.
    public var ops: [NewOp]
    /// If set, the append fails with `OpLogError.conflict` unless the head equals this revision.
    public var expectedHead: Revision?
    /// The revision the client's ops were based on, if known. Then the op IDs are checked against
    /// every op the document accepted after it, with no time window, so a client that comes back
    /// after any time with unacknowledged ops is still exactly-once; the append fails with
    /// `OpLogError.retryUnverifiable` if the store no longer holds the op IDs that far back.
    /// Without it, retries are recognised within the dedupe window (`StoreOptions`).
    public var basedOn: Revision?
    /// The appending owner's fencing epoch for the document's scope (`StoreOptions.fencingScope`).
    /// Below the scope's epoch the append fails with `OpLogError.staleEpoch`; above it, the scope's
    /// epoch rises to it with the append (durably, in the same group commit). Once a scope has an
    /// epoch, an append without one fails with `OpLogError.epochRequired`.
    public var epoch: UInt64?

    /// Ops for one document, with an optional expected head, base revision and fencing epoch.
    public init(document: DocumentID, ops: [NewOp], expectedHead: Revision? = nil, basedOn: Revision? = nil, epoch: UInt64? = nil) {
        self.document = document
        self.ops = ops
        self.expectedHead = expectedHead
        self.basedOn = basedOn
        self.epoch = epoch
    }
}

/// The unit a fencing epoch guards: one document by default, or a group of documents named by
/// `StoreOptions.fencingScope` (a shard, a tenant). An owner raises the scope's epoch when it takes
/// ownership; the store then refuses every mutation carrying a lower one, so an owner that lost its
/// lease while paused cannot write after waking (FORMAT.md, "Fencing epochs").
public struct FencingScope: Hashable, Sendable, CustomStringConvertible {
    /// The scope's name: 1 ... `Limits.fencingScopeBytesMax` UTF-8 bytes.
    public let name: String

    /// A scope named `name` (a shard's or tenant's name, say).
    /// - Throws: `invalidArgument` for an empty name; `limitExceeded(.fencingScopeBytes)` beyond the limit.
    public init(_ name: String) throws(OpLogError) {
        guard !name.isEmpty else { throw .invalidArgument("a fencing scope needs a name") }
        guard name.utf8.count <= Limits.fencingScopeBytesMax else {
            throw .limitExceeded(.fencingScopeBytes, value: name.utf8.count, maximum: Limits.fencingScopeBytesMax)
        }
        self.name = name
    }

    /// The default scope of `document`: the document alone.
    public init(document: DocumentID) {
        // Document IDs are 1 ... documentIDBytesMax bytes, within the scope limit.
        self.name = document.value
    }

    package init?(keyBytes: ArraySlice<UInt8>) {
        guard !keyBytes.isEmpty, keyBytes.count <= Limits.fencingScopeBytesMax,
            let name = String(validating: keyBytes, as: UTF8.self)
        else { return nil }
        self.name = name
    }

    /// The name.
    public var description: String { name }
}

/// A store's lineage: 16 random bytes drawn when the store was created, kept by its backups (and,
/// with the change feed, its followers). It tells copies of one store's history from unrelated
/// stores whose revisions merely look alike.
public struct StoreLineage: Hashable, Sendable, CustomStringConvertible {
    /// The 16 bytes.
    public let bytes: [UInt8]

    /// The lineage with these 16 bytes; nil for another length or all zeros.
    public init?(bytes: [UInt8]) {
        guard bytes.count == 16, bytes.contains(where: { $0 != 0 }) else { return nil }
        self.bytes = bytes
    }

    /// The lineage written as 32 lowercase hex digits (its `description`); nil for anything else.
    public init?(hex: String) {
        let digits = Array(hex.utf8)
        guard digits.count == 32 else { return nil }
        var bytes: [UInt8] = []
        for index in stride(from: 0, to: 32, by: 2) {
            guard let byte = UInt8(String(decoding: digits[index..<(index + 2)], as: UTF8.self), radix: 16) else { return nil }
            bytes.append(byte)
        }
        self.init(bytes: bytes)
    }

    /// A new random lineage.
    static func random() -> StoreLineage {
        var generator = SystemRandomNumberGenerator()
        while true {
            let bytes = (0..<16).map { _ in UInt8.random(in: 0...255, using: &generator) }
            if let lineage = StoreLineage(bytes: bytes) { return lineage }
        }
    }

    /// 32 lowercase hex digits.
    public var description: String {
        bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
    }
}

/// What an append did for one document.
public struct AppendResult: Sendable, Equatable {
    /// The revision of each op, in the order submitted.
    public var revisions: [Revision]
    /// True when every op ID had been accepted before: nothing was written and `revisions` are the
    /// revisions they got the first time.
    public var wasRetry: Bool

    /// A result with these revisions.
    public init(revisions: [Revision], wasRetry: Bool) {
        self.revisions = revisions
        self.wasRetry = wasRetry
    }
}

/// A stored snapshot: opaque state bytes of a document as of `revision`.
public struct Snapshot: Sendable, Equatable {
    /// The revision whose state the bytes hold.
    public var revision: Revision
    /// When it was stored (the store's clock, milliseconds since 1970).
    public var createdAtMilliseconds: Int64
    /// The reducer's encoded state.
    public var bytes: [UInt8]
}

/// A snapshot's identity and size, without its bytes.
public struct SnapshotInfo: Sendable, Equatable {
    /// The revision whose state it holds.
    public var revision: Revision
    /// When it was stored (the store's clock, milliseconds since 1970).
    public var createdAtMilliseconds: Int64
    /// The snapshot's own length (before compression).
    public var sizeBytes: Int
    /// Bytes the record occupies as stored (after compression and framing).
    public var storedBytes: Int
}

/// A document's figures.
public struct DocumentInfo: Sendable, Equatable {
    /// The document.
    public var id: DocumentID
    /// Highest revision (0 for none).
    public var head: Revision
    /// Lowest retained revision; ops below it were truncated. `head + 1` when no op is retained.
    public var floor: Revision
    /// Retained ops (`head - floor + 1`).
    public var opCount: Int
    /// Bytes of retained ops as stored (after compression and framing), plus ops not yet moved into
    /// LMDB counted as their journal encoding.
    public var storedBytes: Int
    /// Its snapshots, oldest first.
    public var snapshots: [SnapshotInfo]
    /// Server time of the newest op (0 for none).
    public var lastServerTimeMilliseconds: Int64
}

extension String {
    func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
