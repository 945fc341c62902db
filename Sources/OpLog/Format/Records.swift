/// Bodies of the records OpLog stores (FORMAT.md, "Records"). Each `encode` has a `decode` that
/// accepts exactly what `encode` produces and throws `DecodeError` for anything else.

/// The current on-disk format version, recorded in the `meta` database under `format`.
/// Version 2: the journal is two recycled slot files (FORMAT.md, "Journal"); LMDB's records are
/// as in version 1. Version 3 adds fencing epochs: the `epochs` database and journal entry kind 3,
/// and the lineage. Version 4 adds the change feed: the `feed` and `cursors` databases, `meta/feed`
/// and journal entry kind 4 (markers). A writable open upgrades a version 1, 2 or 3 store; a
/// read-only open reads them as they are.
package let formatVersion: UInt32 = 4

/// A run of ops with consecutive revisions, encoded back to back. Shared by op chunks (LMDB) and
/// journal entries. Server times are delta-encoded (they never decrease within a document) and client
/// times are stored relative to the server time, so both are usually one or two bytes.
package enum OpSequenceCoding {
    package static let flagHasClientTime: UInt8 = 0x01

    package static func encode(_ ops: some Collection<StoredOp>, into writer: inout ByteWriter) {
        var previousServerTime: Int64 = 0
        for op in ops {
            writer.opID(op.opID)
            writer.varint(UInt64(op.serverTimeMilliseconds &- previousServerTime))
            previousServerTime = op.serverTimeMilliseconds
            writer.lengthPrefixed(op.author)
            if let clientTime = op.clientTimeMilliseconds {
                writer.u8(flagHasClientTime)
                writer.signedVarint(clientTime &- op.serverTimeMilliseconds)
            } else {
                writer.u8(0)
            }
            writer.lengthPrefixed(op.payload)
        }
    }

    /// Decodes `count` ops numbered from `firstRevision`, as owning copies.
    package static func decode(count: Int, firstRevision: Revision, from reader: inout ByteReader) throws(DecodeError) -> [StoredOp] {
        var ops: [StoredOp] = []
        ops.reserveCapacity(min(count, reader.remaining / 20 + 1))
        try decode(count: count, firstRevision: firstRevision, from: &reader, keeping: 0..<UInt64.max, into: &ops)
        return ops
    }

    /// Appends owning copies of the ops whose revisions lie in `keeping` to `ops`. Consecutive
    /// ops by one author share one author array: about one allocation per op (its payload).
    package static func decode(
        count: Int, firstRevision: Revision, from reader: inout ByteReader, keeping: Range<Revision>, into ops: inout [StoredOp]
    ) throws(DecodeError) {
        var author: [UInt8] = []
        try forEach(count: count, firstRevision: firstRevision, from: &reader, keeping: keeping) { fields, reader in
            if !reader.bytes(in: fields.author, equal: author) { author = reader.copy(fields.author) }
            ops.append(
                StoredOp(
                    revision: fields.revision, opID: fields.opID, author: author, clientTimeMilliseconds: fields.clientTime,
                    serverTimeMilliseconds: fields.serverTime, payload: reader.copy(fields.payload)))
        }
    }

    /// Decodes `count` ops numbered from `firstRevision` in place: authors and payloads are slices
    /// of the reader's bytes, so the only allocation is the returned array.
    package static func decodeViews(
        count: Int, firstRevision: Revision, from reader: inout ByteReader
    ) throws(DecodeError) -> [StoredOpView] {
        var ops: [StoredOpView] = []
        ops.reserveCapacity(min(count, reader.remaining / 20 + 1))
        try decodeViews(count: count, firstRevision: firstRevision, from: &reader, keeping: 0..<UInt64.max, into: &ops)
        return ops
    }

    /// Appends views of the ops whose revisions lie in `keeping` to `ops`.
    package static func decodeViews(
        count: Int, firstRevision: Revision, from reader: inout ByteReader, keeping: Range<Revision>,
        into ops: inout [StoredOpView]
    ) throws(DecodeError) {
        try forEach(count: count, firstRevision: firstRevision, from: &reader, keeping: keeping) { fields, reader in
            ops.append(
                StoredOpView(
                    revision: fields.revision, opID: fields.opID, author: reader.slice(fields.author),
                    clientTimeMilliseconds: fields.clientTime, serverTimeMilliseconds: fields.serverTime,
                    payload: reader.slice(fields.payload)))
        }
    }

    /// One decoded op: its fixed fields, and where its author and payload lie in the reader's bytes.
    package struct Fields {
        var revision: Revision
        var opID: OpID
        var author: Range<Int>
        var clientTime: Int64?
        var serverTime: Int64
        var payload: Range<Int>
    }

    /// The one decoder of op sequences: checks all `count` ops and calls `visit` for those whose
    /// revisions lie in `keeping`, handing it the reader to take bytes from.
    private static func forEach(
        count: Int, firstRevision: Revision, from reader: inout ByteReader, keeping: Range<Revision>,
        _ visit: (Fields, borrowing ByteReader) -> Void
    ) throws(DecodeError) {
        // Each op takes at least 20 bytes, which bounds `count` by the input before allocating.
        guard count <= reader.remaining / 20 + 1 else { throw DecodeError("op count \(count) cannot fit in \(reader.remaining) bytes") }
        guard firstRevision >= 1, firstRevision <= UInt64.max - UInt64(count) else {
            throw DecodeError("revision range starting at \(firstRevision) is invalid")
        }
        var serverTime: Int64 = 0
        for index in 0..<count {
            let opID = try reader.opID()
            let delta = try reader.varint()
            guard delta <= UInt64(Int64.max - serverTime) else { throw DecodeError("server time overflows") }
            serverTime += Int64(delta)
            let author = try reader.skip(reader.boundedVarint(maximum: Limits.authorBytesMax, what: "author length"))
            let flags = try reader.u8()
            guard flags & ~flagHasClientTime == 0 else { throw DecodeError("unknown op flags \(flags)") }
            var clientTime: Int64?
            if flags & flagHasClientTime != 0 {
                clientTime = try reader.signedVarint() &+ serverTime
            }
            let payload = try reader.skip(reader.boundedVarint(maximum: Limits.payloadBytesMax, what: "payload length"))
            let revision = firstRevision + UInt64(index)
            if keeping.contains(revision) {
                visit(
                    Fields(
                        revision: revision, opID: opID, author: author, clientTime: clientTime, serverTime: serverTime,
                        payload: payload), reader)
            }
        }
    }
}

/// `ops` database value: consecutive ops of one document, first revision = the key's revision.
///
///     varint firstRevision | varint count | op × count
package enum OpChunkRecord {
    package static func encode(_ ops: ArraySlice<StoredOp>) -> [UInt8] {
        var writer = ByteWriter(capacity: 64 * ops.count)
        writer.varint(ops.first?.revision ?? 0)
        writer.varint(UInt64(ops.count))
        OpSequenceCoding.encode(ops, into: &writer)
        return writer.bytes
    }

    package static func decode(_ body: [UInt8]) throws(DecodeError) -> [StoredOp] {
        var ops: [StoredOp] = []
        _ = try decode(body, keeping: 0..<UInt64.max, into: &ops)
        return ops
    }

    /// Appends owning copies of the chunk's ops whose revisions lie in `keeping` to `ops`.
    /// - Returns: the chunk's first and last revisions.
    package static func decode(
        _ body: [UInt8], keeping: Range<Revision>, into ops: inout [StoredOp]
    ) throws(DecodeError)
        -> ClosedRange<Revision>
    {
        try decodeBody(body) { count, first, reader throws(DecodeError) in
            try OpSequenceCoding.decode(count: count, firstRevision: first, from: &reader, keeping: keeping, into: &ops)
        }
    }

    /// The chunk's ops in place: slices of `body`.
    package static func decodeViews(_ body: [UInt8]) throws(DecodeError) -> [StoredOpView] {
        var ops: [StoredOpView] = []
        _ = try decodeViews(body, keeping: 0..<UInt64.max, into: &ops)
        return ops
    }

    /// Appends the chunk's ops whose revisions lie in `keeping` to `ops`, as slices of `body`.
    /// - Returns: the chunk's first and last revisions.
    package static func decodeViews(
        _ body: [UInt8], keeping: Range<Revision>, into ops: inout [StoredOpView]
    ) throws(DecodeError) -> ClosedRange<Revision> {
        try decodeBody(body) { count, first, reader throws(DecodeError) in
            try OpSequenceCoding.decodeViews(count: count, firstRevision: first, from: &reader, keeping: keeping, into: &ops)
        }
    }

    /// Reads the chunk's header, lets `decodeOps` read the ops, and checks that nothing follows.
    private static func decodeBody(
        _ body: [UInt8], _ decodeOps: (Int, Revision, inout ByteReader) throws(DecodeError) -> Void
    ) throws(DecodeError) -> ClosedRange<Revision> {
        var reader = ByteReader(body)
        let first = try reader.varint()
        let count = try reader.boundedVarint(maximum: Limits.chunkRawBytesTarget + Limits.batchPayloadBytesMax, what: "op count")
        guard count >= 1 else { throw DecodeError("op chunk holds no ops") }
        try decodeOps(count, first, &reader)
        try reader.expectEnd("op chunk")
        return first...(first + UInt64(count) - 1)
    }
}

/// `documents` database value: the document's state as applied to LMDB (ops still in the journal
/// are not counted here).
///
///     u64 head | u64 floor | i64 lastServerTime | u64 chunkBytes
package struct DocumentRecord: Equatable, Sendable {
    package var head: Revision
    package var floor: Revision
    package var lastServerTimeMilliseconds: Int64
    /// Stored bytes of the document's op chunks.
    package var chunkBytes: UInt64
    /// The first revision held by the document's `dedupe` records, 0 if it has none. The records
    /// cover `dedupeFrom` up to the first retained op without a gap, so a record lost to a damaged
    /// key is detected instead of silently forgetting op IDs.
    package var dedupeFrom: Revision

    package init(head: Revision, floor: Revision, lastServerTimeMilliseconds: Int64, chunkBytes: UInt64, dedupeFrom: Revision = 0) {
        self.head = head
        self.floor = floor
        self.lastServerTimeMilliseconds = lastServerTimeMilliseconds
        self.chunkBytes = chunkBytes
        self.dedupeFrom = dedupeFrom
    }

    package static let empty = DocumentRecord(head: 0, floor: 1, lastServerTimeMilliseconds: 0, chunkBytes: 0)
    /// The encoded body's size.
    package static let encodedBytes = 40

    package func encode() -> [UInt8] {
        var writer = ByteWriter(capacity: Self.encodedBytes)
        writer.u64(head)
        writer.u64(floor)
        writer.u64(UInt64(bitPattern: lastServerTimeMilliseconds))
        writer.u64(chunkBytes)
        writer.u64(dedupeFrom)
        return writer.bytes
    }

    package static func decode(_ body: [UInt8]) throws(DecodeError) -> DocumentRecord {
        var reader = ByteReader(body)
        let record = DocumentRecord(
            head: try reader.u64(), floor: try reader.u64(),
            lastServerTimeMilliseconds: Int64(bitPattern: try reader.u64()), chunkBytes: try reader.u64(),
            dedupeFrom: try reader.u64())
        try reader.expectEnd("document record")
        guard record.floor >= 1, record.floor <= record.head &+ 1, record.head < UInt64.max else {
            throw DecodeError("floor \(record.floor) is not within 1...head+1 (head \(record.head))")
        }
        guard record.dedupeFrom < record.floor else {
            throw DecodeError("dedupeFrom \(record.dedupeFrom) is not below the floor \(record.floor)")
        }
        return record
    }
}

/// `snapshots` database value.
///
///     u64 revision | i64 createdAt | snapshot bytes
package enum SnapshotRecord {
    package static func encode(revision: Revision, createdAt: Int64, bytes: [UInt8]) -> [UInt8] {
        var writer = ByteWriter(capacity: 16 + bytes.count)
        writer.u64(revision)
        writer.u64(UInt64(bitPattern: createdAt))
        writer.bytes(bytes)
        return writer.bytes
    }

    package static func decode(_ body: [UInt8]) throws(DecodeError) -> Snapshot {
        var reader = ByteReader(body)
        let revision = try reader.u64()
        let createdAt = Int64(bitPattern: try reader.u64())
        return Snapshot(revision: revision, createdAtMilliseconds: createdAt, bytes: Array(try reader.take(reader.remaining)))
    }
}

/// `dedupe` database value: op IDs of truncated ops still inside the dedupe window, so a retry of a
/// truncated op still gets its original revision.
///
///     varint firstRevision | varint count | (opID 16 bytes | varint serverTimeDelta) × count
package struct DedupeRecord: Equatable, Sendable {
    package var firstRevision: Revision
    package var entries: [(opID: OpID, serverTime: Int64)]

    package static func == (lhs: DedupeRecord, rhs: DedupeRecord) -> Bool {
        lhs.firstRevision == rhs.firstRevision
            && lhs.entries.elementsEqual(rhs.entries) { $0.opID == $1.opID && $0.serverTime == $1.serverTime }
    }

    package func encode() -> [UInt8] {
        var writer = ByteWriter(capacity: 8 + 20 * entries.count)
        writer.varint(firstRevision)
        writer.varint(UInt64(entries.count))
        var previous: Int64 = 0
        for entry in entries {
            writer.opID(entry.opID)
            writer.varint(UInt64(entry.serverTime &- previous))
            previous = entry.serverTime
        }
        return writer.bytes
    }

    package static func decode(_ body: [UInt8]) throws(DecodeError) -> DedupeRecord {
        var reader = ByteReader(body)
        let first = try reader.varint()
        let count = try reader.boundedVarint(maximum: reader.remaining / 17, what: "dedupe entry count")
        guard count >= 1, first >= 1, first <= UInt64.max - UInt64(count) else { throw DecodeError("dedupe record range is invalid") }
        var entries: [(opID: OpID, serverTime: Int64)] = []
        entries.reserveCapacity(count)
        var time: Int64 = 0
        for _ in 0..<count {
            let id = try reader.opID()
            let delta = try reader.varint()
            guard delta <= UInt64(Int64.max - time) else { throw DecodeError("server time overflows") }
            time += Int64(delta)
            entries.append((id, time))
        }
        try reader.expectEnd("dedupe record")
        return DedupeRecord(firstRevision: first, entries: entries)
    }
}

/// `meta` database, key `format`: which format wrote the store.
///
///     8 bytes "OPLOGFMT" | u32 version | i64 createdAt
package struct FormatRecord: Equatable {
    package static let magic = Array("OPLOGFMT".utf8)
    package var version: UInt32
    package var createdAtMilliseconds: Int64

    package func encode() -> [UInt8] {
        var writer = ByteWriter(capacity: 20)
        writer.bytes(Self.magic)
        writer.u32(version)
        writer.u64(UInt64(bitPattern: createdAtMilliseconds))
        return writer.bytes
    }

    package static func decode(_ body: [UInt8]) throws(DecodeError) -> FormatRecord {
        var reader = ByteReader(body)
        guard Array(try reader.take(8)) == magic else { throw DecodeError("format record lacks the OPLOGFMT magic") }
        let record = FormatRecord(version: try reader.u32(), createdAtMilliseconds: Int64(bitPattern: try reader.u64()))
        try reader.expectEnd("format record")
        return record
    }
}

/// `meta` database, key `lineage` (format version 3): the store's lineage, 16 random bytes drawn
/// when the store was created (or upgraded to version 3). Copies made by backup keep it.
///
///     16 bytes, not all zero
package enum LineageRecord {
    package static let encodedBytes = 16

    package static func encode(_ lineage: StoreLineage) -> [UInt8] { lineage.bytes }

    package static func decode(_ body: [UInt8]) throws(DecodeError) -> StoreLineage {
        guard let lineage = StoreLineage(bytes: body) else {
            throw DecodeError("lineage of \(body.count) bytes (16 expected, not all zero)")
        }
        return lineage
    }
}

/// `meta` database, key `feed` (format version 4): what the `feed` database retains. Absent
/// until the first feed record is written.
///
///     u64 oldest retained sequence | u64 stored bytes of the feed records
package struct FeedStateRecord: Equatable, Sendable {
    package var oldest: UInt64
    package var bytes: UInt64
    package static let encodedBytes = 16

    package func encode() -> [UInt8] {
        var writer = ByteWriter(capacity: Self.encodedBytes)
        writer.u64(oldest)
        writer.u64(bytes)
        return writer.bytes
    }

    package static func decode(_ body: [UInt8]) throws(DecodeError) -> FeedStateRecord {
        var reader = ByteReader(body)
        let record = FeedStateRecord(oldest: try reader.u64(), bytes: try reader.u64())
        try reader.expectEnd("feed state record")
        guard record.oldest >= 1 else { throw DecodeError("feed state with oldest sequence 0") }
        return record
    }
}

/// `epochs` database value (format version 3), under the scope's UTF-8 name: the scope's fencing
/// epoch, which only ever rises.
///
///     u64 epoch (≥ 1)
package enum FencingEpochRecord {
    package static let encodedBytes = 8

    package static func encode(_ epoch: UInt64) -> [UInt8] {
        var writer = ByteWriter(capacity: encodedBytes)
        writer.u64(epoch)
        return writer.bytes
    }

    package static func decode(_ body: [UInt8]) throws(DecodeError) -> UInt64 {
        var reader = ByteReader(body)
        let epoch = try reader.u64()
        try reader.expectEnd("fencing epoch record")
        guard epoch >= 1 else { throw DecodeError("fencing epoch 0 is stored (epochs start at 1)") }
        return epoch
    }
}

/// `meta` database, key `applied`: the highest journal sequence number whose effects LMDB holds.
///
///     u64 sequence
package enum AppliedSequenceRecord {
    package static func encode(_ sequence: UInt64) -> [UInt8] {
        var writer = ByteWriter(capacity: 8)
        writer.u64(sequence)
        return writer.bytes
    }

    package static func decode(_ body: [UInt8]) throws(DecodeError) -> UInt64 {
        var reader = ByteReader(body)
        let value = try reader.u64()
        try reader.expectEnd("applied-sequence record")
        return value
    }
}

/// `feed` database value (format version 4), under the position's sequence (u64 big-endian): when
/// the change was committed, then its events as in a `Change` body.
///
///     i64 committed at (ms, the store's clock) | change body (FORMAT.md, "Change encoding")
package enum FeedChangeRecord {
    package static func encode(committedAt: Int64, events: [ChangeEvent]) throws(OpLogError) -> [UInt8] {
        var writer = ByteWriter(capacity: 64)
        writer.u64(UInt64(bitPattern: committedAt))
        writer.bytes(try ChangeCoding.encodeBody(events))
        return writer.bytes
    }

    package static func decode(_ body: [UInt8]) throws(DecodeError) -> (committedAt: Int64, events: [ChangeEvent]) {
        guard body.count >= 8 else { throw DecodeError("feed record of \(body.count) bytes") }
        var reader = ByteReader(Array(body[0..<8]))
        let committedAt = Int64(bitPattern: try reader.u64())
        return (committedAt, try ChangeCoding.decodeBody(Array(body[8...])))
    }

    /// Only the commit time (retention by age reads no more).
    package static func committedAt(_ body: [UInt8]) throws(DecodeError) -> Int64 {
        guard body.count >= 8 else { throw DecodeError("feed record of \(body.count) bytes") }
        var reader = ByteReader(Array(body[0..<8]))
        return Int64(bitPattern: try reader.u64())
    }
}

/// `cursors` database value (format version 4), under the consumer's UTF-8 name: its saved feed
/// position.
///
///     bytes(16) lineage | u64 sequence (≥ 1)
package enum FeedCursorRecord {
    package static let encodedBytes = 24

    package static func encode(_ position: ChangePosition) -> [UInt8] {
        var writer = ByteWriter(capacity: encodedBytes)
        writer.bytes(position.lineage.bytes)
        writer.u64(position.sequence)
        return writer.bytes
    }

    package static func decode(_ body: [UInt8]) throws(DecodeError) -> ChangePosition {
        guard body.count == encodedBytes else { throw DecodeError("cursor record of \(body.count) bytes, expected \(encodedBytes)") }
        var reader = ByteReader(Array(body[16...]))
        let sequence = try reader.u64()
        guard sequence >= 1, let lineage = StoreLineage(bytes: Array(body[0..<16])) else {
            throw DecodeError("cursor record with sequence \(sequence)")
        }
        return ChangePosition(unchecked: lineage, sequence: sequence)
    }
}
