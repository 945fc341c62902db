import OpLogStorage

/// One change carried by a journal record.
package enum JournalEntry: Equatable, Sendable {
    /// Ops appended to a document; revisions are consecutive from `ops[0].revision`.
    case ops(document: DocumentID, ops: [StoredOp])
    /// The document's floor moved up to `floor` (ops below it are truncated).
    case truncate(document: DocumentID, floor: Revision)
    /// The fencing scope's epoch rose to `epoch` (format version 3).
    case epoch(scope: FencingScope, epoch: UInt64)
    /// The record's position is that of a commit made to LMDB directly (format version 3): a
    /// snapshot put or deletion, or a document deletion. The record changes nothing itself; it
    /// holds the change feed's position for that commit (FORMAT.md, "The change feed").
    case marker(MarkedCommit)

    /// The document the entry changes (none for an epoch).
    package var document: DocumentID? {
        switch self {
        case .ops(let document, _), .truncate(let document, _): return document
        case .epoch, .marker: return nil
        }
    }

    /// The ops the entry appends (none for a truncation).
    package var ops: [StoredOp] {
        if case .ops(_, let ops) = self { return ops }
        return []
    }
}

/// A commit made to LMDB directly, which a journal record marks with its position.
package struct MarkedCommit: Equatable, Sendable {
    package enum Kind: UInt8, Sendable {
        case snapshotPut = 3
        case snapshotDeleted = 4
        case documentDeleted = 5
    }
    package var kind: Kind
    package var document: DocumentID
    /// The snapshot's revision; 0 for a document deletion.
    package var revision: Revision
}

/// A group commit: every entry of one journal record became durable with one sync.
package struct JournalRecord: Equatable, Sendable {
    package var sequence: UInt64
    package var entries: [JournalEntry]
}

/// Journal file layout (FORMAT.md, "Journal").
///
/// File header, 32 bytes:
///
///     0         8        12       16              24        28        32
///     | OPLOGJNL | version | slot   | base sequence | CRC-32  | 0       |
///
/// Version 1 (one file, `journal`, replaced at every apply) has slot 0. Version 2 (two slot files,
/// `journal.0` and `journal.1`, recycled) has the slot's index; its base sequence is the lowest
/// sequence any frame in the slot may have, written once when the slot file is created.
///
/// Record frame, 24-byte header then the stored body:
///
///     0              4           8          16     17      20       24
///     | stored length| raw length| sequence | codec| 0 0 0 | CRC-32  | body ...
///
/// Integers little-endian. The header CRC covers header bytes 0..<24; the record CRC covers frame
/// bytes 0..<20 and the stored body.
package enum JournalCoding {
    package static let magic = Array("OPLOGJNL".utf8)
    /// The version this build writes.
    package static let version: UInt32 = 2
    /// The single-file journal of format version 1, which a writable open upgrades.
    package static let legacyVersion: UInt32 = 1
    package static let fileHeaderSize = 32
    package static let frameHeaderSize = 24
    package static let entryOps: UInt8 = 1
    package static let entryTruncate: UInt8 = 2
    /// Since format version 3: a fencing scope's epoch rose.
    package static let entryEpoch: UInt8 = 3
    /// Since format version 3: a direct commit's position.
    package static let entryMarker: UInt8 = 4

    package static func encodeFileHeader(baseSequence: UInt64, slot: UInt32, version: UInt32 = version) -> [UInt8] {
        assert(version == legacyVersion ? slot == 0 : slot < 2, "journal slot \(slot) in a version \(version) header")
        var writer = ByteWriter(capacity: fileHeaderSize)
        writer.bytes(magic)
        writer.u32(version)
        writer.u32(slot)
        writer.u64(baseSequence)
        let crc = Zlib.crc32(writer.bytes)
        writer.u32(crc)
        writer.u32(0)
        return writer.bytes
    }

    /// A decoded journal file header.
    package struct FileHeader: Equatable, Sendable {
        package var version: UInt32
        package var slot: UInt32
        package var baseSequence: UInt64
    }

    /// Returns the journal format version, slot and base sequence. The caller decides what to do
    /// with a version it does not know (the slot word is checked only for versions 1 and 2).
    package static func decodeFileHeader(_ bytes: [UInt8]) throws(DecodeError) -> FileHeader {
        guard bytes.count >= fileHeaderSize else { throw DecodeError("journal header is truncated (\(bytes.count) bytes)") }
        var reader = ByteReader(bytes[0..<fileHeaderSize])
        guard Array(try reader.take(8)) == magic else { throw DecodeError("journal lacks the OPLOGJNL magic") }
        let fileVersion = try reader.u32()
        let slot = try reader.u32()
        let base = try reader.u64()
        let crc = try reader.u32()
        let reservedTail = try reader.u32()
        guard crc == Zlib.crc32(Array(bytes[0..<24])) else { throw DecodeError("journal header checksum mismatch") }
        guard reservedTail == 0 else { throw DecodeError("journal header reserved word is not zero") }
        guard fileVersion >= 1 else { throw DecodeError("journal version 0") }
        if fileVersion == legacyVersion, slot != 0 { throw DecodeError("version 1 journal header with slot word \(slot)") }
        if fileVersion == version, slot > 1 { throw DecodeError("journal slot \(slot) (a store has slots 0 and 1)") }
        guard base >= 1 else { throw DecodeError("journal base sequence is 0") }
        return FileHeader(version: fileVersion, slot: slot, baseSequence: base)
    }

    package static func encodeBody(_ entries: [JournalEntry]) -> [UInt8] {
        var writer = ByteWriter(capacity: 256)
        writer.varint(UInt64(entries.count))
        for entry in entries {
            switch entry {
            case .ops(let document, let ops):
                writer.u8(entryOps)
                writer.lengthPrefixed(document.utf8)
                writer.varint(ops.first?.revision ?? 0)
                writer.varint(UInt64(ops.count))
                OpSequenceCoding.encode(ops, into: &writer)
            case .truncate(let document, let floor):
                writer.u8(entryTruncate)
                writer.lengthPrefixed(document.utf8)
                writer.varint(floor)
            case .epoch(let scope, let epoch):
                writer.u8(entryEpoch)
                writer.lengthPrefixed(Array(scope.name.utf8))
                writer.varint(epoch)
            case .marker(let commit):
                writer.u8(entryMarker)
                writer.u8(commit.kind.rawValue)
                writer.lengthPrefixed(commit.document.utf8)
                writer.varint(commit.revision)
            }
        }
        return writer.bytes
    }

    package static func decodeBody(_ body: [UInt8]) throws(DecodeError) -> [JournalEntry] {
        var reader = ByteReader(body)
        let count = try reader.boundedVarint(maximum: reader.remaining / 3, what: "journal entry count")
        var entries: [JournalEntry] = []
        for _ in 0..<count {
            let kind = try reader.u8()
            if kind == entryEpoch {
                let scopeBytes = try reader.lengthPrefixed(maximum: Limits.fencingScopeBytesMax, what: "fencing scope length")
                guard let scope = FencingScope(keyBytes: scopeBytes[...]) else {
                    throw DecodeError("journal entry has an invalid fencing scope")
                }
                let epoch = try reader.varint()
                guard epoch >= 1 else { throw DecodeError("journal epoch entry with epoch 0") }
                entries.append(.epoch(scope: scope, epoch: epoch))
                continue
            }
            if kind == entryMarker {
                guard let commitKind = MarkedCommit.Kind(rawValue: try reader.u8()) else { throw DecodeError("unknown marker kind") }
                let id = try reader.lengthPrefixed(maximum: Limits.documentIDBytesMax, what: "document ID length")
                guard let document = DocumentID(keyBytes: id[...]) else { throw DecodeError("journal marker has an invalid document ID") }
                let revision = try reader.varint()
                guard (commitKind == .documentDeleted) == (revision == 0) else {
                    throw DecodeError("journal marker of kind \(commitKind) with revision \(revision)")
                }
                entries.append(.marker(MarkedCommit(kind: commitKind, document: document, revision: revision)))
                continue
            }
            let idBytes = try reader.lengthPrefixed(maximum: Limits.documentIDBytesMax, what: "document ID length")
            guard let document = DocumentID(keyBytes: idBytes[...]) else { throw DecodeError("journal entry has an invalid document ID") }
            switch kind {
            case entryOps:
                let first = try reader.varint()
                let opCount = try reader.boundedVarint(maximum: reader.remaining / 20 + 1, what: "op count")
                guard opCount >= 1 else { throw DecodeError("journal ops entry holds no ops") }
                entries.append(
                    .ops(document: document, ops: try OpSequenceCoding.decode(count: opCount, firstRevision: first, from: &reader)))
            case entryTruncate:
                let floor = try reader.varint()
                guard floor >= 2 else { throw DecodeError("journal truncation to floor \(floor)") }
                entries.append(.truncate(document: document, floor: floor))
            default:
                throw DecodeError("unknown journal entry kind \(kind)")
            }
        }
        try reader.expectEnd("journal record")
        return entries
    }

    /// An encoded record frame and the raw length of its body.
    package struct Frame {
        package var bytes: [UInt8]
        package var rawLength: Int
    }

    package static func encodeFrame(_ record: JournalRecord, compressionLevel: Int32) throws(StorageError) -> Frame {
        try encodeFrame(record, deflater: compressionLevel > 0 ? Deflater(level: compressionLevel) : nil)
    }

    /// Frames a record, compressing its body with `deflater` (nil: never) if the body is at least
    /// `Limits.journalCompressionThresholdBytes` long and compression saves at least 1/16.
    package static func encodeFrame(_ record: JournalRecord, deflater: Deflater?) throws(StorageError) -> Frame {
        let body = encodeBody(record.entries)
        var codec = Codec.raw
        var stored = body
        if let deflater, body.count >= Limits.journalCompressionThresholdBytes {
            let compressed = try deflater.compress(body)
            if compressed.count + body.count / 16 < body.count {
                codec = .zlib
                stored = compressed
            }
        }
        return Frame(
            bytes: encodeFrame(sequence: record.sequence, codec: codec, stored: stored, rawLength: body.count), rawLength: body.count)
    }

    package static func encodeFrame(sequence: UInt64, codec: Codec, stored: [UInt8], rawLength: Int) -> [UInt8] {
        var writer = ByteWriter(capacity: frameHeaderSize + stored.count)
        writer.u32(UInt32(stored.count))
        writer.u32(UInt32(rawLength))
        writer.u64(sequence)
        writer.u8(codec.rawValue)
        writer.bytes([0, 0, 0])
        writer.u32(0)
        writer.bytes(stored)
        var frame = writer.bytes
        let crc = frameChecksum(frame[...])
        frame.withUnsafeMutableBytes { raw in
            for index in 0..<4 { raw[20 + index] = UInt8(truncatingIfNeeded: crc >> (8 * index)) }
        }
        return frame
    }

    package static func frameChecksum(_ frame: ArraySlice<UInt8>) -> UInt32 {
        frame.withUnsafeBytes { raw in
            let crc = Zlib.crc32(UnsafeRawBufferPointer(rebasing: raw[0..<20]))
            return Zlib.crc32(UnsafeRawBufferPointer(rebasing: raw[frameHeaderSize...]), seed: crc)
        }
    }

    /// The outcome of reading one frame at an offset.
    package enum FrameRead {
        case record(JournalRecord, frameLength: Int)
        /// Not a valid frame: the end of the written journal, or damage; the caller decides which.
        case invalid(reason: String, claimedLength: Int?)
        /// The checksum matched but the body does not decode: written wrongly, never torn.
        case undecodable(reason: String)
    }

    /// Reads the frame starting at `bytes.startIndex`.
    package static func readFrame(_ bytes: ArraySlice<UInt8>) -> FrameRead {
        guard bytes.count >= frameHeaderSize else { return .invalid(reason: "truncated frame header", claimedLength: nil) }
        var reader = ByteReader(bytes)
        do {
            let storedLength = Int(try reader.u32())
            let rawLength = Int(try reader.u32())
            let sequence = try reader.u64()
            let codecByte = try reader.u8()
            let reserved = try reader.take(3)
            let crc = try reader.u32()
            guard storedLength <= Limits.journalRecordBytesMax, rawLength <= Limits.journalRecordBytesMax else {
                return .invalid(reason: "frame length \(storedLength) exceeds the limit", claimedLength: nil)
            }
            let frameLength = frameHeaderSize + storedLength
            guard bytes.count >= frameLength else { return .invalid(reason: "truncated frame body", claimedLength: frameLength) }
            let frame = bytes[bytes.startIndex..<(bytes.startIndex + frameLength)]
            guard crc == frameChecksum(frame) else { return .invalid(reason: "frame checksum mismatch", claimedLength: frameLength) }
            guard reserved.allSatisfy({ $0 == 0 }) else { throw DecodeError("reserved frame bytes are not zero") }
            let stored = Array(try reader.take(storedLength))
            let body: [UInt8]
            switch Codec(rawValue: codecByte) {
            case .raw:
                guard rawLength == storedLength else { throw DecodeError("raw frame with raw length ≠ stored length") }
                body = stored
            case .zlib:
                do { body = try Zlib.decompress(stored[...], expectedCount: rawLength) } catch {
                    throw DecodeError("compressed journal body: \(error)")
                }
            case nil:
                throw DecodeError("unknown codec \(codecByte)")
            }
            return .record(JournalRecord(sequence: sequence, entries: try decodeBody(body)), frameLength: frameLength)
        } catch {
            // A frame whose checksum matched but whose body does not decode was written by a buggy
            // writer or damaged before the checksum was computed; callers report it as corruption.
            return .undecodable(reason: "checksummed frame does not decode: \(error)")
        }
    }
}
