/// Where a change stands in a store's history: the store's lineage and a sequence number that
/// grows by one with every change. Positions of one lineage are totally ordered by `sequence`;
/// positions of different lineages are unrelated.
public struct ChangePosition: Hashable, Sendable, CustomStringConvertible {
    /// The lineage of the store whose history this is.
    public let lineage: StoreLineage
    /// 1 for the store's first change, then one more for each.
    public let sequence: UInt64

    /// The position `sequence` (≥ 1) of `lineage`.
    /// - Throws: `invalidArgument` for sequence 0.
    public init(lineage: StoreLineage, sequence: UInt64) throws(OpLogError) {
        guard sequence >= 1 else { throw .invalidArgument("change positions start at 1") }
        self.lineage = lineage
        self.sequence = sequence
    }

    package init(unchecked lineage: StoreLineage, sequence: UInt64) {
        assert(sequence >= 1, "change position 0")
        self.lineage = lineage
        self.sequence = sequence
    }

    /// `<lineage hex>:<sequence>`.
    public var description: String { "\(lineage):\(sequence)" }
}

/// One thing a change did, to one document (or, for an epoch, to one fencing scope).
public enum ChangeEvent: Sendable, Equatable {
    /// Ops appended to a document, with consecutive revisions, as stored.
    case appended(document: DocumentID, ops: [StoredOp])
    /// The document's floor rose to `floor`.
    case truncated(document: DocumentID, floor: Revision)
    /// A snapshot was stored at `revision`, with its bytes.
    case snapshotPut(document: DocumentID, revision: Revision, createdAtMilliseconds: Int64, bytes: [UInt8])
    /// The snapshot at `revision` was deleted.
    case snapshotDeleted(document: DocumentID, revision: Revision)
    /// The document and everything of it was deleted.
    case documentDeleted(document: DocumentID)
    /// The fencing scope's epoch rose to `epoch`.
    case epochRaised(scope: FencingScope, epoch: UInt64)
}

/// Everything one commit of a store made durable, at one position: the unit a change feed hands
/// out and a follower applies, all of it or none. `encode()` and `init(decoding:)` carry it between
/// processes in a versioned, checksummed encoding (FORMAT.md, "Change encoding").
public struct Change: Sendable, Equatable {
    /// The change's position in its store's history.
    public let position: ChangePosition
    /// What it did, in commit order.
    public let events: [ChangeEvent]

    /// A change at `position` doing `events`.
    public init(position: ChangePosition, events: [ChangeEvent]) {
        self.position = position
        self.events = events
    }

    /// The change's encoding: a 52-byte header (magic, version, lineage, sequence, lengths, CRC-32)
    /// and a body compressed with zlib when that saves at least 1/16.
    /// - Throws: `limitExceeded(.changeBytes)` for a change above `Limits.changeBytesMax` encoded;
    ///   `invalidArgument` for an event that could never be stored (ops without consecutive
    ///   revisions, revision 0, a floor below 2, epoch 0).
    public func encode() throws(OpLogError) -> [UInt8] {
        try ChangeCoding.encode(self)
    }

    /// Decodes what `encode()` produced.
    /// - Throws: `undecodableChange` naming what is wrong: bytes cut short or damaged (the checksum),
    ///   a newer encoding version, or content that breaks the encoding's rules. Never traps.
    public init(decoding bytes: [UInt8]) throws(OpLogError) {
        self = try ChangeCoding.decode(bytes)
    }
}
