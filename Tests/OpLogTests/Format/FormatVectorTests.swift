import Foundation
import OpLogStorage
import OpLogTestSupport
import Testing

@testable import OpLog

/// Goal: the byte layouts in FORMAT.md ("Test vectors") are what the code writes and reads.
/// Uncompressed records are checked in both directions; compressed ones decode only, because
/// deflate output is not canonical.
@Suite struct FormatVectorTests {
    static func hex(_ bytes: [UInt8]) -> String { bytes.map { String($0, radix: 16).leftPadded(to: 2) }.joined() }
    static func bytes(_ hex: String) -> [UInt8] {
        let digits = Array(hex.filter { !$0.isWhitespace })
        return stride(from: 0, to: digits.count, by: 2).map { UInt8(String(digits[$0...$0 + 1]), radix: 16)! }
    }

    static let document = try! DocumentID("doc")
    static let ops = [
        StoredOp(
            revision: 1, opID: OpID(high: 0x0102_0304_0506_0708, low: 0x090A_0B0C_0D0E_0F10), author: Array("ann".utf8),
            clientTimeMilliseconds: 1_700_000_000_500, serverTimeMilliseconds: 1_700_000_000_000,
            payload: Array(#"{"p":0,"d":0,"i":"h"}"#.utf8)),
        StoredOp(
            revision: 2, opID: OpID(high: 1, low: 2), author: Array("bo".utf8),
            clientTimeMilliseconds: nil, serverTimeMilliseconds: 1_700_000_000_003, payload: Array(#"{"p":1,"d":0,"i":"i"}"#.utf8)),
    ]

    // The vectors, exactly as FORMAT.md lists them.
    static let documentRecordKey = "646f63"
    static let documentRecordValue =
        "030000002800000028000000135d8361030000000000000002000000000000000068e5cf8b01000064000000000000000100000000000000"
    static let opChunkKey = "646f63000000000000000001"
    static let opChunkValue =
        "0400000060000000600000003586c49c01020102030405060708090a0b0c0d0e0f1080d095ffbc3103616e6e01e807157b2270223a302c2264223a30"
        + "2c2269223a2268227d000000000000000100000000000000020302626f00157b2270223a312c2264223a302c2269223a2269227d"
    /// Version 1's header (base 7), which readers still read, and version 2's (slot 1, base 7).
    static let journalHeader = "4f504c4f474a4e4c0100000000000000070000000000000025f61ade00000000"
    static let journalSlotHeader = "4f504c4f474a4e4c02000000010000000700000000000000b80e776c00000000"
    static let journalFrame =
        "6c0000006c0000000700000000000000000000006797e37d020103646f6301020102030405060708090a0b0c0d0e0f1080d095ffbc3103616e6e01e8"
        + "07157b2270223a302c2264223a302c2269223a2268227d000000000000000100000000000000020302626f00157b2270223a312c2264223a302c2269"
        + "223a2269227d0203646f6302"
    static let compressedChunkValue =
        "04010000f400000006070000d94b895d78da85d1270e42011084e147efbd7758aa40d0cbbb0d090643902484844b701b0ec18d403cc40e6267cd9a6f"
        + "d4ef9b38dec57edff7783f3faf79e0703e3ba59b5cc49d4fe528ee6c2a2771e52af7bf81df517661db80b64bdb06b55dd936a4eddab6616d37b68d68"
        + "bbb56d54db9d6d63daee6d1bf76cd96b31b37102302997044cd2a500937669c0245e0630a997054cf2e500937e79c0246001302958d478410a960093"
        + "8265c0a46005302958054c0ad600938275c0a460033029d8044c0ab60093826d8d97a460073029d8054c0af6009382029814ec032605078049c12160"
        + "52700498141c032605271aaffe0b7e01bcef1249"

    @Test func documentRecordBothWays() throws {
        let record = DocumentRecord(head: 3, floor: 2, lastServerTimeMilliseconds: 1_700_000_000_000, chunkBytes: 100, dedupeFrom: 1)
        let key = KeyCoding.documentKey(Self.document)
        #expect(Self.hex(key) == Self.documentRecordKey)
        #expect(
            Self.hex(
                RecordFrame.encode(kind: .document, codec: .raw, key: key, stored: record.encode(), rawLength: DocumentRecord.encodedBytes))
                == Self.documentRecordValue)
        let body = try RecordFrame.decode(Self.bytes(Self.documentRecordValue), key: key, expecting: .document)
        #expect(try DocumentRecord.decode(body) == record)
    }

    @Test func opChunkBothWays() throws {
        let key = KeyCoding.revisionKey(Self.document, 1)
        #expect(Self.hex(key) == Self.opChunkKey)
        let body = OpChunkRecord.encode(Self.ops[...])
        #expect(
            Self.hex(RecordFrame.encode(kind: .opChunk, codec: .raw, key: key, stored: body, rawLength: body.count)) == Self.opChunkValue)
        #expect(try OpChunkRecord.decode(RecordFrame.decode(Self.bytes(Self.opChunkValue), key: key, expecting: .opChunk)) == Self.ops)
        // The checksum covers the key: the same bytes under revision 2 are damage.
        #expect(throws: DecodeError.self) {
            try RecordFrame.decode(Self.bytes(Self.opChunkValue), key: KeyCoding.revisionKey(Self.document, 2), expecting: .opChunk)
        }
    }

    @Test func journalBothWays() throws {
        #expect(Self.hex(JournalCoding.encodeFileHeader(baseSequence: 7, slot: 0, version: 1)) == Self.journalHeader)
        #expect(try JournalCoding.decodeFileHeader(Self.bytes(Self.journalHeader)) == .init(version: 1, slot: 0, baseSequence: 7))
        #expect(Self.hex(JournalCoding.encodeFileHeader(baseSequence: 7, slot: 1)) == Self.journalSlotHeader)
        #expect(try JournalCoding.decodeFileHeader(Self.bytes(Self.journalSlotHeader)) == .init(version: 2, slot: 1, baseSequence: 7))
        let entries: [JournalEntry] = [.ops(document: Self.document, ops: Self.ops), .truncate(document: Self.document, floor: 2)]
        #expect(
            Self.hex(try JournalCoding.encodeFrame(JournalRecord(sequence: 7, entries: entries), compressionLevel: 0).bytes)
                == Self.journalFrame)
        guard case .record(let record, let length) = JournalCoding.readFrame(Self.bytes(Self.journalFrame)[...]) else {
            Issue.record("the journal vector does not decode")
            return
        }
        #expect(record == JournalRecord(sequence: 7, entries: entries) && length == Self.journalFrame.count / 2)
    }

    // Format version 3: a fencing epoch record, and a journal record carrying an epoch entry.
    static let epochRecordKey = "73686172642d31"
    static let epochRecordValue = "070000000800000008000000b6234fc50500000000000000"
    static let epochJournalFrame = "110000001100000008000000000000000000000092cededb02030773686172642d31050203646f6302"

    @Test func fencingEpochRecordBothWays() throws {
        let key = Array("shard-1".utf8)
        #expect(Self.hex(key) == Self.epochRecordKey)
        let body = FencingEpochRecord.encode(5)
        #expect(
            Self.hex(RecordFrame.encode(kind: .fencingEpoch, codec: .raw, key: key, stored: body, rawLength: body.count))
                == Self.epochRecordValue)
        #expect(
            try FencingEpochRecord.decode(RecordFrame.decode(Self.bytes(Self.epochRecordValue), key: key, expecting: .fencingEpoch)) == 5)
        #expect(throws: DecodeError.self) { try FencingEpochRecord.decode(FencingEpochRecord.encode(0)) }
    }

    @Test func journalEpochEntryBothWays() throws {
        let entries: [JournalEntry] = [.epoch(scope: try FencingScope("shard-1"), epoch: 5), .truncate(document: Self.document, floor: 2)]
        #expect(
            Self.hex(try JournalCoding.encodeFrame(JournalRecord(sequence: 8, entries: entries), compressionLevel: 0).bytes)
                == Self.epochJournalFrame)
        guard case .record(let record, _) = JournalCoding.readFrame(Self.bytes(Self.epochJournalFrame)[...]) else {
            Issue.record("the epoch journal vector does not decode")
            return
        }
        #expect(record == JournalRecord(sequence: 8, entries: entries))
    }

    static let lineageRecordValue = "08000000100000001000000036adff330102030405060708090a0b0c0d0e0f10"

    @Test func lineageRecordBothWays() throws {
        let lineage = try #require(StoreLineage(bytes: Array(1...16)))
        let key = StoreTables.lineageKey
        #expect(Self.hex(key) == "6c696e65616765")
        let body = LineageRecord.encode(lineage)
        #expect(
            Self.hex(RecordFrame.encode(kind: .lineage, codec: .raw, key: key, stored: body, rawLength: body.count))
                == Self.lineageRecordValue)
        #expect(try LineageRecord.decode(RecordFrame.decode(Self.bytes(Self.lineageRecordValue), key: key, expecting: .lineage)) == lineage)
        #expect(throws: DecodeError.self) { try LineageRecord.decode([UInt8](repeating: 0, count: 16)) }
    }

    @Test func compressedChunkDecodes() throws {
        let key = KeyCoding.revisionKey(Self.document, 1)
        let ops = try OpChunkRecord.decode(RecordFrame.decode(Self.bytes(Self.compressedChunkValue), key: key, expecting: .opChunk))
        #expect(ops.count == 40)
        #expect(
            ops.last
                == StoredOp(
                    revision: 40, opID: OpID(high: 9, low: 40), author: Array("ann".utf8), clientTimeMilliseconds: nil,
                    serverTimeMilliseconds: 1_700_000_000_000, payload: Array(#"{"p":40,"d":0,"i":"x"}"#.utf8)))
    }

    @Test func printVectors() throws {
        // Regenerates the vectors (run with OPLOG_PRINT_VECTORS=1 after a deliberate format change).
        guard ProcessInfo.processInfo.environment["OPLOG_PRINT_VECTORS"] == "1" else { return }
        let record = DocumentRecord(head: 3, floor: 2, lastServerTimeMilliseconds: 1_700_000_000_000, chunkBytes: 100, dedupeFrom: 1)
        let key = KeyCoding.documentKey(Self.document)
        print(
            "documentRecord", Self.hex(key),
            Self.hex(
                RecordFrame.encode(kind: .document, codec: .raw, key: key, stored: record.encode(), rawLength: DocumentRecord.encodedBytes))
        )
        let chunkKey = KeyCoding.revisionKey(Self.document, 1)
        let body = OpChunkRecord.encode(Self.ops[...])
        print(
            "opChunk", Self.hex(chunkKey),
            Self.hex(RecordFrame.encode(kind: .opChunk, codec: .raw, key: chunkKey, stored: body, rawLength: body.count)))
        print("journalSlotHeader", Self.hex(JournalCoding.encodeFileHeader(baseSequence: 7, slot: 1)))
        let entries: [JournalEntry] = [.ops(document: Self.document, ops: Self.ops), .truncate(document: Self.document, floor: 2)]
        print(
            "journalFrame", Self.hex(try JournalCoding.encodeFrame(JournalRecord(sequence: 7, entries: entries), compressionLevel: 0).bytes)
        )
        let many = (1...40).map { index in
            StoredOp(
                revision: UInt64(index), opID: OpID(high: 9, low: UInt64(index)), author: Array("ann".utf8), clientTimeMilliseconds: nil,
                serverTimeMilliseconds: 1_700_000_000_000, payload: Array(#"{"p":\#(index),"d":0,"i":"x"}"#.utf8))
        }
        print(
            "compressedChunk",
            Self.hex(try RecordFrame.encode(kind: .opChunk, key: chunkKey, body: OpChunkRecord.encode(many[...]), compressionLevel: 9)))
    }
}
