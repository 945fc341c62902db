import Foundation
import OpLog
import OpLogStorage
import OpLogTestSupport

/// fuzz-decode: arbitrary bytes through every decoder of stored data.
///
/// Contract checked: each decoder either returns a value, and then encoding that value and decoding
/// it again gives an equal value, or throws its typed error (`DecodeError`, `StorageError` for zlib);
/// it never traps and never allocates beyond the documented limits (run.sh sets libFuzzer's
/// `-malloc_limit_mb` just above `Limits.recordBodyBytesMax`). The first input byte picks the mode.
/// Modes 6 and 7 wrap the fuzzed body in a frame with a correct checksum, so that lengths, counts,
/// codecs and zlib streams behind the checksum get fuzzed too.
public enum FuzzDecode {
    public static func run(_ data: [UInt8]) throws(FuzzFinding) {
        var input = FuzzInput(data)
        switch input.byte() % 9 {
        case 0: try storedFrame(&input)
        case 1:
            let kind = RecordKind.allCases[input.pick(RecordKind.allCases.count)]
            try body(kind, Array(input.rest()))
        case 2: try fileHeader(Array(input.rest()))
        case 3:
            try journalFrame(input.rest())
            try change(Array(input.rest()), checksumIsRight: false)
        case 4: try journalBody(Array(input.rest()))
        case 5: try zlibStream(&input)
        case 6: try builtRecordFrame(&input)
        case 7: try builtJournalFrame(&input)
        default: try revisionKey(Array(input.rest()))
        }
    }

    /// An LMDB value as stored: key and expected kind from the input, then the frame.
    static func storedFrame(_ input: inout FuzzInput) throws(FuzzFinding) {
        let kind = RecordKind.allCases[input.pick(RecordKind.allCases.count)]
        let key = input.take(input.pick(24))
        try frame(Array(input.rest()), key: key, kind: kind, checksumIsRight: false)
    }

    /// Decodes a record frame; a decoded body must round-trip raw and compressed, then decode as
    /// its kind. A frame whose checksum was computed by the harness must never fail the checksum.
    static func frame(_ bytes: [UInt8], key: [UInt8], kind: RecordKind, checksumIsRight: Bool) throws(FuzzFinding) {
        let decoded: [UInt8]
        do { decoded = try RecordFrame.decode(bytes, key: key, expecting: kind) } catch {
            try fuzzCheck(!checksumIsRight || !error.detail.contains("checksum"), "right checksum refused: \(error)")
            return
        }
        try fuzzCheck(decoded.count <= Limits.recordBodyBytesMax, "body of \(decoded.count) bytes beyond the limit")
        let raw = RecordFrame.encode(kind: kind, codec: .raw, key: key, stored: decoded, rawLength: decoded.count)
        try fuzzCheck(
            (try? RecordFrame.decode(raw, key: key, expecting: kind)) == decoded, "raw re-encoding of a \(kind) body does not decode to it")
        if bytes[1] == Codec.raw.rawValue {
            try fuzzCheck(raw == bytes, "a raw \(kind) frame does not re-encode to the same bytes")
        }
        guard let compressed = try? RecordFrame.encode(kind: kind, key: key, body: decoded, compressionLevel: 6) else {
            throw FuzzFinding("compressing a \(decoded.count)-byte body failed")
        }
        try fuzzCheck(
            (try? RecordFrame.decode(compressed, key: key, expecting: kind)) == decoded,
            "compressed re-encoding of a \(kind) body does not decode to it")
        try body(kind, decoded)
    }

    /// The body decoder of `kind`; a value must re-encode to something that decodes to it.
    static func body(_ kind: RecordKind, _ bytes: [UInt8]) throws(FuzzFinding) {
        switch kind {
        case .opChunk:
            let views = try? OpChunkRecord.decodeViews(bytes)
            guard let ops = try? OpChunkRecord.decode(bytes) else {
                try fuzzCheck(views == nil, "in-place decode accepts an op chunk the copying decode rejects")
                return
            }
            try fuzzCheck(views?.map(\.storedOp) == ops, "in-place decode of an op chunk differs from the copying decode")
            // A partial read keeps exactly the requested revisions and reports the chunk's range.
            if let first = ops.first?.revision, ops.count > 1 {
                let keeping = (first + 1)..<(first + UInt64(ops.count) / 2 + 1)
                var kept: [StoredOpView] = []
                let range = try? OpChunkRecord.decodeViews(bytes, keeping: keeping, into: &kept)
                try fuzzCheck(range == first...(first + UInt64(ops.count) - 1), "partial decode reports the wrong revision range")
                try fuzzCheck(
                    kept.map(\.storedOp) == Array(ops.filter { keeping.contains($0.revision) }), "partial decode keeps the wrong ops")
            }
            try opsAreConsistent(ops)
            try fuzzCheck((try? OpChunkRecord.decode(OpChunkRecord.encode(ops[...]))) == ops, "op chunk does not round-trip")
        case .document:
            guard let record = try? DocumentRecord.decode(bytes) else { return }
            try fuzzCheck(
                record.floor >= 1 && record.floor <= record.head &+ 1,
                "document record \(record) breaks 1 ≤ floor ≤ head + 1")
            try fuzzCheck(record.encode() == bytes, "document record does not re-encode to its bytes")
        case .snapshot:
            guard let snapshot = try? SnapshotRecord.decode(bytes) else { return }
            let encoded = SnapshotRecord.encode(
                revision: snapshot.revision, createdAt: snapshot.createdAtMilliseconds, bytes: snapshot.bytes)
            try fuzzCheck(encoded == bytes, "snapshot record does not re-encode to its bytes")
        case .dedupe:
            guard let record = try? DedupeRecord.decode(bytes) else { return }
            try fuzzCheck(!record.entries.isEmpty && record.firstRevision >= 1, "dedupe record without entries or at revision 0")
            try fuzzCheck(
                zip(record.entries, record.entries.dropFirst()).allSatisfy { $0.serverTime <= $1.serverTime },
                "dedupe server times decrease")
            try fuzzCheck((try? DedupeRecord.decode(record.encode())) == record, "dedupe record does not round-trip")
        case .format:
            guard let record = try? FormatRecord.decode(bytes) else { return }
            try fuzzCheck(record.encode() == bytes, "format record does not re-encode to its bytes")
        case .appliedSequence:
            guard let sequence = try? AppliedSequenceRecord.decode(bytes) else { return }
            try fuzzCheck(AppliedSequenceRecord.encode(sequence) == bytes, "applied sequence does not re-encode to its bytes")
        case .feedChange:
            guard let (time, events) = try? FeedChangeRecord.decode(bytes) else { return }
            guard let encoded = try? FeedChangeRecord.encode(committedAt: time, events: events) else {
                throw FuzzFinding("a decoded feed record does not re-encode")
            }
            try fuzzCheck(
                (try? FeedChangeRecord.decode(encoded)).map { $0.0 == time && $0.1 == events } == true, "feed record does not round-trip")
        case .feedCursor:
            guard let position = try? FeedCursorRecord.decode(bytes) else { return }
            try fuzzCheck(FeedCursorRecord.encode(position) == bytes, "cursor record does not re-encode to its bytes")
        case .feedState:
            guard let state = try? FeedStateRecord.decode(bytes) else { return }
            try fuzzCheck(state.encode() == bytes, "feed state does not re-encode to its bytes")
        case .lineage:
            guard let lineage = try? LineageRecord.decode(bytes) else { return }
            try fuzzCheck(LineageRecord.encode(lineage) == bytes, "lineage record does not re-encode to its bytes")
        case .fencingEpoch:
            guard let epoch = try? FencingEpochRecord.decode(bytes) else { return }
            try fuzzCheck(epoch >= 1 && FencingEpochRecord.encode(epoch) == bytes, "fencing epoch record does not re-encode to its bytes")
        }
    }

    /// What every decoded run of ops promises: consecutive revisions from ≥ 1, bounded fields,
    /// server times that never decrease.
    static func opsAreConsistent(_ ops: [StoredOp]) throws(FuzzFinding) {
        guard let first = ops.first else { throw FuzzFinding("a decoded op sequence is empty") }
        try fuzzCheck(first.revision >= 1, "op at revision 0")
        for (index, op) in ops.enumerated() {
            try fuzzCheck(op.revision == first.revision + UInt64(index), "revisions are not consecutive")
            try fuzzCheck(
                op.author.count <= Limits.authorBytesMax && op.payload.count <= Limits.payloadBytesMax, "op field beyond its limit")
            try fuzzCheck(op.serverTimeMilliseconds >= 0, "negative server time")
            if index > 0 { try fuzzCheck(ops[index - 1].serverTimeMilliseconds <= op.serverTimeMilliseconds, "server times decrease") }
        }
    }

    static func fileHeader(_ bytes: [UInt8]) throws(FuzzFinding) {
        guard let header = try? JournalCoding.decodeFileHeader(bytes) else { return }
        try fuzzCheck(header.version >= 1 && header.baseSequence >= 1, "journal header \(header) accepted")
        guard header.version <= JournalCoding.version else { return }
        let encoded = JournalCoding.encodeFileHeader(baseSequence: header.baseSequence, slot: header.slot, version: header.version)
        try fuzzCheck((try? JournalCoding.decodeFileHeader(encoded)) == header, "journal header does not round-trip")
        if header.version == JournalCoding.version || header.version == JournalCoding.legacyVersion {
            try fuzzCheck(encoded[...] == bytes.prefix(JournalCoding.fileHeaderSize), "journal header does not re-encode to its bytes")
        }
    }

    /// One journal frame read at the start of `bytes` (a slice whose indices do not start at 0, as
    /// in `Journal.read`). A record must re-encode, raw and compressed, to a frame that reads back
    /// to it. A frame whose checksum the harness computed must never read as invalid.
    static func journalFrame(_ bytes: ArraySlice<UInt8>, checksumIsRight: Bool = false) throws(FuzzFinding) {
        switch JournalCoding.readFrame(bytes) {
        case .record(let record, let frameLength):
            try fuzzCheck(
                frameLength >= JournalCoding.frameHeaderSize && frameLength <= bytes.count, "frame length \(frameLength) outside the input")
            for level: Int32 in [0, 1] {
                guard let encoded = try? JournalCoding.encodeFrame(record, compressionLevel: level).bytes else {
                    throw FuzzFinding("re-encoding journal record \(record.sequence) failed")
                }
                guard case .record(let again, let length) = JournalCoding.readFrame(encoded[...]), again == record, length == encoded.count
                else {
                    throw FuzzFinding("journal record \(record.sequence) does not round-trip at level \(level)")
                }
            }
            for entry in record.entries {
                if case .ops(_, let ops) = entry { try opsAreConsistent(ops) }
            }
        case .undecodable:
            return
        case .invalid(let reason, _):
            try fuzzCheck(!checksumIsRight, "a frame with a right checksum read as invalid: \(reason)")
        }
    }

    static func journalBody(_ bytes: [UInt8]) throws(FuzzFinding) {
        guard let entries = try? JournalCoding.decodeBody(bytes) else { return }
        try fuzzCheck((try? JournalCoding.decodeBody(JournalCoding.encodeBody(entries))) == entries, "journal body does not round-trip")
    }

    /// A zlib stream with a bounded expected size (≤ 1 MiB); output must recompress to itself.
    static func zlibStream(_ input: inout FuzzInput) throws(FuzzFinding) {
        let expected = input.u16() | Int(input.byte() & 0x0F) << 16
        let level = Int32(1 + input.pick(9))
        guard let output = try? Zlib.decompress(input.rest(), expectedCount: expected) else { return }
        try fuzzCheck(output.count == expected, "inflated \(output.count) bytes, expected \(expected)")
        guard let again = try? Zlib.compress(output, level: level) else { throw FuzzFinding("deflate failed") }
        try fuzzCheck((try? Zlib.decompress(again[...], expectedCount: expected)) == output, "zlib round trip differs")
    }

    /// How a harness-built frame is made: read from the input before the body, which is the rest.
    struct FramePlan {
        var codec: Codec
        var level: Int32
        /// Positions (modulo the compressed length) and XOR masks applied to the zlib stream.
        var flips: [(position: Int, mask: UInt8)]
        var cut: Int
        /// 0: the true raw length plus `delta`; 1: `fixed`; 2: one past the limit; 3: UInt32.max.
        var lengthStrategy: Int
        var delta: Int
        var fixed: Int

        init(_ input: inout FuzzInput) {
            codec = input.flag() ? .zlib : .raw
            level = Int32(1 + input.pick(9))
            flips = (0..<input.pick(4)).map { _ in (input.u16(), input.byte() | 1) }
            cut = input.pick(8) == 0 ? 1 + input.pick(8) : 0
            lengthStrategy = [0, 0, 0, 0, 0, 1, 2, 3][input.pick(8)]
            delta = input.pick(5) - 2
            fixed = input.u16()
        }

        /// The stored body: the body itself (raw), or its zlib stream damaged as planned.
        func stored(_ body: [UInt8]) -> [UInt8] {
            guard codec == .zlib, var stored = try? Zlib.compress(body, level: level) else { return body }
            for flip in flips where !stored.isEmpty { stored[flip.position % stored.count] ^= flip.mask }
            stored.removeLast(min(stored.count, cut))
            return stored
        }

        /// The raw length the frame declares: usually near the truth, sometimes past the limit.
        /// Never a huge length under the limit: that allocation is legal but would slow the run.
        func rawLength(_ body: [UInt8], limit: Int) -> Int {
            switch lengthStrategy {
            case 0: return max(0, body.count + delta)
            case 1: return fixed
            case 2: return limit + 1
            default: return Int(UInt32.max)
            }
        }
    }

    /// Mode 6: a record frame with a right checksum around a fuzzed body.
    static func builtRecordFrame(_ input: inout FuzzInput) throws(FuzzFinding) {
        let kind = RecordKind.allCases[input.pick(RecordKind.allCases.count)]
        let expected = input.pick(8) == 0 ? RecordKind.allCases[input.pick(RecordKind.allCases.count)] : kind
        let plan = FramePlan(&input)
        let key = input.take(input.pick(24))
        let body = Array(input.rest())
        let frame = RecordFrame.encode(
            kind: kind, codec: plan.codec, key: key, stored: plan.stored(body),
            rawLength: plan.rawLength(body, limit: Limits.recordBodyBytesMax))
        try self.frame(frame, key: key, kind: expected, checksumIsRight: true)
    }

    /// Mode 7: a journal frame with a right checksum around a fuzzed body.
    static func builtJournalFrame(_ input: inout FuzzInput) throws(FuzzFinding) {
        let sequence = input.flag() ? UInt64(input.byte()) : input.u64()
        let plan = FramePlan(&input)
        let body = Array(input.rest())
        let raw = plan.rawLength(body, limit: Limits.journalRecordBytesMax)
        let frame = JournalCoding.encodeFrame(sequence: sequence, codec: plan.codec, stored: plan.stored(body), rawLength: raw)
        try journalFrame(frame[...], checksumIsRight: raw <= Limits.journalRecordBytesMax)
        // The same body as a change's, behind a right checksum.
        let lineage = StoreLineage(bytes: Array(1...16))!
        try change(
            ChangeCoding.encodeFrame(
                lineage: lineage, sequence: max(sequence, 1), codec: plan.codec, stored: plan.stored(body), rawLength: raw),
            checksumIsRight: true)
    }

    /// `Change(decoding:)`: a decoded change re-encodes to bytes that decode to it; one whose
    /// checksum the harness computed never fails the checksum.
    static func change(_ bytes: [UInt8], checksumIsRight: Bool) throws(FuzzFinding) {
        let decoded: Change
        do { decoded = try Change(decoding: bytes) } catch {
            if case .undecodableChange(let detail) = error {
                try fuzzCheck(!checksumIsRight || !detail.contains("checksum"), "right checksum refused: \(detail)")
            } else {
                throw FuzzFinding("change decoding threw \(error), not undecodableChange")
            }
            return
        }
        guard let encoded = try? decoded.encode() else { throw FuzzFinding("re-encoding a decoded change failed") }
        try fuzzCheck((try? Change(decoding: encoded)) == decoded, "a change does not round-trip")
    }

    /// Mode 8: an LMDB key of the revision-keyed databases; a parsed key must rebuild to itself.
    static func revisionKey(_ bytes: [UInt8]) throws(FuzzFinding) {
        if let id = DocumentID(keyBytes: bytes[...]) {
            try fuzzCheck(KeyCoding.documentKey(id) == bytes, "document key does not round-trip")
        }
        guard let (document, revision) = KeyCoding.parseRevisionKey(bytes) else { return }
        try fuzzCheck(KeyCoding.revisionKey(document, revision) == bytes, "revision key does not round-trip")
        try fuzzCheck(KeyCoding.belongs(bytes, to: document), "a parsed key does not belong to its document")
    }
}
