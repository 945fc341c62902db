import OpLogStorage

/// The encoding of a `Change` (FORMAT.md, "Change encoding"): what travels between processes, not
/// what a store keeps.
///
///     0        8        12     13      16        32         40          44          48      52
///     | OPLOGCHG| version| codec| 0 0 0 | lineage | sequence | stored len | raw len   | CRC-32 | body ...
///
/// Integers little-endian. The CRC covers bytes 0..<48 and the stored body. The body (raw, or a
/// zlib stream of it):
///
///     eventCount varint, event × eventCount
///     event := kind u8, then
///       1 appended:        document lp, firstRevision varint, count varint, op × count (op encoding)
///       2 truncated:       document lp, floor varint
///       3 snapshotPut:     document lp, revision varint, createdAt zigzag, bytes lp
///       4 snapshotDeleted: document lp, revision varint
///       5 documentDeleted: document lp
///       6 epochRaised:     scope lp, epoch varint
package enum ChangeCoding {
    package static let magic = Array("OPLOGCHG".utf8)
    /// The version this build writes and the newest it reads.
    package static let version: UInt32 = 1
    package static let headerSize = 52

    enum Kind: UInt8 {
        case appended = 1, truncated, snapshotPut, snapshotDeleted, documentDeleted, epochRaised
    }

    static func encode(_ change: Change) throws(OpLogError) -> [UInt8] {
        let raw = try encodeBody(change.events)
        guard raw.count <= Limits.changeBytesMax else {
            throw .limitExceeded(.changeBytes, value: raw.count, maximum: Limits.changeBytesMax)
        }
        var codec = Codec.raw
        var stored = raw
        if raw.count >= RecordFrame.compressionThresholdBytes {
            do {
                let compressed = try Zlib.compress(raw, level: 1)
                // Keep raw unless compression saves at least 1/16, as record frames do.
                if compressed.count + raw.count / 16 < raw.count {
                    codec = .zlib
                    stored = compressed
                }
            } catch {
                throw OpLogError(error)
            }
        }
        return encodeFrame(
            lineage: change.position.lineage, sequence: change.position.sequence, codec: codec, stored: stored, rawLength: raw.count)
    }

    /// The body: the events alone (also the body of a feed record, FORMAT.md "The change feed").
    package static func encodeBody(_ events: [ChangeEvent]) throws(OpLogError) -> [UInt8] {
        var body = ByteWriter(capacity: 256)
        body.varint(UInt64(events.count))
        for event in events {
            try check(event)
            switch event {
            case .appended(let document, let ops):
                body.u8(Kind.appended.rawValue)
                body.lengthPrefixed(document.utf8)
                body.varint(ops[0].revision)
                body.varint(UInt64(ops.count))
                OpSequenceCoding.encode(ops, into: &body)
            case .truncated(let document, let floor):
                body.u8(Kind.truncated.rawValue)
                body.lengthPrefixed(document.utf8)
                body.varint(floor)
            case .snapshotPut(let document, let revision, let createdAt, let bytes):
                body.u8(Kind.snapshotPut.rawValue)
                body.lengthPrefixed(document.utf8)
                body.varint(revision)
                body.signedVarint(createdAt)
                body.lengthPrefixed(bytes)
            case .snapshotDeleted(let document, let revision):
                body.u8(Kind.snapshotDeleted.rawValue)
                body.lengthPrefixed(document.utf8)
                body.varint(revision)
            case .documentDeleted(let document):
                body.u8(Kind.documentDeleted.rawValue)
                body.lengthPrefixed(document.utf8)
            case .epochRaised(let scope, let epoch):
                body.u8(Kind.epochRaised.rawValue)
                body.lengthPrefixed(Array(scope.name.utf8))
                body.varint(epoch)
            }
        }
        return body.bytes
    }

    /// The header and an already-encoded body, with its checksum (also used by the fuzzer).
    package static func encodeFrame(lineage: StoreLineage, sequence: UInt64, codec: Codec, stored: [UInt8], rawLength: Int) -> [UInt8] {
        var writer = ByteWriter(capacity: headerSize + stored.count)
        writer.bytes(magic)
        writer.u32(version)
        writer.u8(codec.rawValue)
        writer.bytes([0, 0, 0])
        writer.bytes(lineage.bytes)
        writer.u64(sequence)
        writer.u32(UInt32(stored.count))
        writer.u32(UInt32(truncatingIfNeeded: rawLength))
        writer.u32(0)
        writer.bytes(stored)
        var encoded = writer.bytes
        let crc = checksum(encoded)
        for index in 0..<4 { encoded[48 + index] = UInt8(truncatingIfNeeded: crc >> (8 * index)) }
        return encoded
    }

    /// What `encode` refuses: events no store could have produced (decode refuses them too).
    private static func check(_ event: ChangeEvent) throws(OpLogError) {
        switch event {
        case .appended(_, let ops):
            guard let first = ops.first, first.revision >= 1 else {
                throw .invalidArgument("an appended event needs ops from revision 1 on")
            }
            for (index, op) in ops.enumerated() {
                guard op.revision == first.revision + UInt64(index) else {
                    throw .invalidArgument("appended ops must have consecutive revisions")
                }
                guard op.author.count <= Limits.authorBytesMax else {
                    throw .limitExceeded(.authorBytes, value: op.author.count, maximum: Limits.authorBytesMax)
                }
                guard op.payload.count <= Limits.payloadBytesMax else {
                    throw .limitExceeded(.payloadBytes, value: op.payload.count, maximum: Limits.payloadBytesMax)
                }
                guard index == 0 || op.serverTimeMilliseconds >= ops[index - 1].serverTimeMilliseconds else {
                    throw .invalidArgument("server times of appended ops never decrease")
                }
            }
            guard first.serverTimeMilliseconds >= 0 else { throw .invalidArgument("server times are not negative") }
        case .truncated(_, let floor):
            guard floor >= 2 else { throw .invalidArgument("a truncation's floor is at least 2") }
        case .snapshotPut(_, let revision, _, let bytes):
            guard revision >= 1 else { throw .invalidArgument("snapshot revisions start at 1") }
            guard bytes.count <= Limits.snapshotBytesMax else {
                throw .limitExceeded(.snapshotBytes, value: bytes.count, maximum: Limits.snapshotBytesMax)
            }
        case .snapshotDeleted(_, let revision):
            guard revision >= 1 else { throw .invalidArgument("snapshot revisions start at 1") }
        case .documentDeleted: break
        case .epochRaised(_, let epoch):
            guard epoch >= 1 else { throw .invalidArgument("epochs start at 1") }
        }
    }

    /// CRC-32 of header bytes 0..<48, then the stored body.
    private static func checksum(_ encoded: [UInt8]) -> UInt32 {
        encoded.withUnsafeBytes { raw in
            let crc = Zlib.crc32(UnsafeRawBufferPointer(rebasing: raw[0..<48]))
            return Zlib.crc32(UnsafeRawBufferPointer(rebasing: raw[headerSize...]), seed: crc)
        }
    }

    static func decode(_ bytes: [UInt8]) throws(OpLogError) -> Change {
        do { return try decodeChecked(bytes) } catch { throw .undecodableChange(detail: error.detail) }
    }

    private static func decodeChecked(_ bytes: [UInt8]) throws(DecodeError) -> Change {
        guard bytes.count >= headerSize else { throw DecodeError("\(bytes.count) bytes are shorter than the 52-byte header") }
        var reader = ByteReader(bytes)
        guard Array(try reader.take(8)) == magic else { throw DecodeError("no OPLOGCHG magic") }
        let encodedVersion = try reader.u32()
        guard encodedVersion >= 1 else { throw DecodeError("encoding version 0") }
        guard encodedVersion <= version else { throw DecodeError("encoding version \(encodedVersion) is newer than \(version)") }
        let codecByte = try reader.u8()
        guard Array(try reader.take(3)) == [0, 0, 0] else { throw DecodeError("reserved header bytes are not zero") }
        guard let lineage = StoreLineage(bytes: Array(try reader.take(16))) else { throw DecodeError("the lineage is all zeros") }
        let sequence = try reader.u64()
        let storedLength = try reader.u32()
        let rawLength = try reader.u32()
        let storedCRC = try reader.u32()
        guard Int(storedLength) == bytes.count - headerSize else {
            throw DecodeError("stored length \(storedLength) does not match the \(bytes.count - headerSize) bytes after the header")
        }
        guard storedCRC == checksum(bytes) else { throw DecodeError("checksum mismatch") }
        guard sequence >= 1 else { throw DecodeError("position 0") }
        guard rawLength <= UInt32(Limits.changeBytesMax) else { throw DecodeError("raw length \(rawLength) exceeds the limit") }
        let body: [UInt8]
        switch Codec(rawValue: codecByte) {
        case .raw:
            guard rawLength == storedLength else {
                throw DecodeError("raw body with raw length \(rawLength) ≠ stored length \(storedLength)")
            }
            body = Array(bytes[headerSize...])
        case .zlib:
            do { body = try Zlib.decompress(bytes[headerSize...], expectedCount: Int(rawLength)) } catch {
                throw DecodeError("compressed body: \(error.description)")
            }
        case nil:
            throw DecodeError("unknown codec \(codecByte)")
        }
        return Change(position: ChangePosition(unchecked: lineage, sequence: sequence), events: try decodeBody(body))
    }

    /// The events of a body (`encodeBody`).
    package static func decodeBody(_ body: [UInt8]) throws(DecodeError) -> [ChangeEvent] {
        var events: [ChangeEvent] = []
        var input = ByteReader(body)
        let count = try input.boundedVarint(maximum: input.remaining / 2, what: "event count")
        for _ in 0..<count { events.append(try event(&input)) }
        try input.expectEnd("change")
        return events
    }

    private static func event(_ reader: inout ByteReader) throws(DecodeError) -> ChangeEvent {
        guard let kind = Kind(rawValue: try reader.u8()) else { throw DecodeError("unknown event kind") }
        if kind == .epochRaised {
            let name = try reader.lengthPrefixed(maximum: Limits.fencingScopeBytesMax, what: "scope length")
            guard let scope = FencingScope(keyBytes: name[...]) else { throw DecodeError("invalid fencing scope") }
            let epoch = try reader.varint()
            guard epoch >= 1 else { throw DecodeError("epoch 0") }
            return .epochRaised(scope: scope, epoch: epoch)
        }
        let id = try reader.lengthPrefixed(maximum: Limits.documentIDBytesMax, what: "document ID length")
        guard let document = DocumentID(keyBytes: id[...]) else { throw DecodeError("invalid document ID") }
        switch kind {
        case .appended:
            let first = try reader.varint()
            let count = try reader.boundedVarint(maximum: reader.remaining / 20 + 1, what: "op count")
            guard count >= 1 else { throw DecodeError("an appended event holds no ops") }
            return .appended(document: document, ops: try OpSequenceCoding.decode(count: count, firstRevision: first, from: &reader))
        case .truncated:
            let floor = try reader.varint()
            guard floor >= 2 else { throw DecodeError("truncation to floor \(floor)") }
            return .truncated(document: document, floor: floor)
        case .snapshotPut:
            let revision = try reader.varint()
            guard revision >= 1 else { throw DecodeError("snapshot at revision 0") }
            let createdAt = try reader.signedVarint()
            let snapshot = try reader.lengthPrefixed(maximum: Limits.snapshotBytesMax, what: "snapshot length")
            return .snapshotPut(document: document, revision: revision, createdAtMilliseconds: createdAt, bytes: snapshot)
        case .snapshotDeleted:
            let revision = try reader.varint()
            guard revision >= 1 else { throw DecodeError("snapshot at revision 0") }
            return .snapshotDeleted(document: document, revision: revision)
        case .documentDeleted:
            return .documentDeleted(document: document)
        case .epochRaised:
            preconditionFailure("handled above")
        }
    }
}
