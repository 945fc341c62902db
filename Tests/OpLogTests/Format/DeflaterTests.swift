import Foundation
import OpLogStorage
import OpLogText
import Testing

@testable import OpLog

/// Goal: the writer's kept deflate stream writes what a fresh stream writes, call after call, and
/// journal records are compressed only from `journalCompressionThresholdBytes` on.
@Suite struct DeflaterTests {
    @Test func aKeptStreamMatchesAFreshOneOnEveryCall() throws {
        var random = SplitMix64(seed: 15)
        for level: Int32 in [1, 6, 9] {
            let deflater = try Deflater(level: level)
            // Sizes up and down, so the kept output buffer is both grown and reused.
            for size in [0, 1, 300, 70_000, 5, 4_096, 200_000, 17] {
                let input = (0..<size).map { index in index % 7 == 0 ? UInt8(truncatingIfNeeded: random.next()) : UInt8(index % 31) }
                let kept = try deflater.compress(input)
                #expect(kept == (try Zlib.compress(input, level: level)), "level \(level), \(size) bytes")
                #expect(try Zlib.decompress(kept[...], expectedCount: size) == input)
            }
        }
    }

    @Test func journalRecordsBelowTheThresholdStayRaw() throws {
        let document = try DocumentID("doc")
        func record(payloadBytes: Int) -> JournalRecord {
            let op = StoredOp(
                revision: 1, opID: OpID(high: 1, low: 2), author: Array("ann".utf8), clientTimeMilliseconds: nil,
                serverTimeMilliseconds: 1_700_000_000_000, payload: [UInt8](repeating: UInt8(ascii: "a"), count: payloadBytes))
            return JournalRecord(sequence: 1, entries: [.ops(document: document, ops: [op])])
        }
        let deflater = try Deflater(level: 1)
        let small = record(payloadBytes: 100)
        #expect(JournalCoding.encodeBody(small.entries).count < Limits.journalCompressionThresholdBytes)
        let smallFrame = try JournalCoding.encodeFrame(small, deflater: deflater)
        #expect(smallFrame.bytes[16] == 0 && smallFrame.bytes.count == JournalCoding.frameHeaderSize + smallFrame.rawLength)
        let large = record(payloadBytes: 2_000)
        let largeFrame = try JournalCoding.encodeFrame(large, deflater: deflater)
        #expect(largeFrame.bytes[16] == 1 && largeFrame.bytes.count < largeFrame.rawLength)
        for frame in [smallFrame, largeFrame] {
            guard case .record(let decoded, _) = JournalCoding.readFrame(frame.bytes[...]) else {
                Issue.record("a frame the writer encoded does not read back")
                continue
            }
            #expect(decoded == (frame.bytes[16] == 0 ? small : large))
        }
    }
}
