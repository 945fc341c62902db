import Foundation
import OpLog
import OpLogTestSupport
import OpLogText
import Testing

/// `Change`'s encoding (FORMAT.md, "Change encoding"): every event kind round-trips, raw and
/// compressed; damaged, cut or newer bytes are a typed error and never a trap; what no store could
/// produce is refused when encoding.
@Suite struct ChangeCodingTests {
    static let lineage = StoreLineage(bytes: Array(1...16))!

    static func storedOp(_ revision: Revision, payload: String, author: String = "ann", time: Int64 = 1_700_000_000_000) -> StoredOp {
        StoredOp(
            revision: revision, opID: OpID(high: 7, low: revision), author: Array(author.utf8),
            clientTimeMilliseconds: revision % 2 == 0 ? nil : time - 5, serverTimeMilliseconds: time, payload: Array(payload.utf8))
    }

    static func everyKind(sequence: UInt64, payloadRepeats: Int) throws -> Change {
        let payload = String(repeating: #"{"p":0,"d":0,"i":"é"}"#, count: payloadRepeats)
        return Change(
            position: try ChangePosition(lineage: lineage, sequence: sequence),
            events: [
                .epochRaised(scope: try FencingScope("shard-1"), epoch: 9),
                .appended(document: doc("ünï/1"), ops: (4...6).map { storedOp($0, payload: payload) }),
                .truncated(document: doc("ünï/1"), floor: 5),
                .snapshotPut(document: doc("ünï/1"), revision: 4, createdAtMilliseconds: -3, bytes: Array("state".utf8)),
                .snapshotDeleted(document: doc("b"), revision: 2),
                .documentDeleted(document: doc("c")),
            ])
    }

    @Test func everyEventKindRoundTripsRawAndCompressed() throws {
        for repeats in [1, 200] {
            let change = try Self.everyKind(sequence: 42, payloadRepeats: repeats)
            let bytes = try change.encode()
            #expect(try Change(decoding: bytes) == change)
            // A body of repetitive payloads is deflated (codec byte 1); the vector below is raw.
            if repeats > 1 { #expect(bytes[12] == 1, "codec for \(repeats) repeats") }
        }
        let empty = Change(position: try ChangePosition(lineage: Self.lineage, sequence: 1), events: [])
        #expect(try Change(decoding: empty.encode()) == empty)
    }

    @Test func theFormatVectorDecodesAndEncodes() throws {
        let vector = FormatVectorTests.bytes(Self.vector)
        let change = Change(
            position: try ChangePosition(lineage: Self.lineage, sequence: 7),
            events: [.epochRaised(scope: try FencingScope("shard-1"), epoch: 5), .truncated(document: doc("doc"), floor: 2)])
        #expect(try change.encode() == vector)
        #expect(try Change(decoding: vector) == change)
    }

    /// FORMAT.md's V9.
    static let vector =
        "4f504c4f4743484701000000000000000102030405060708090a0b0c0d0e0f1007000000000000001100000011000000a4e3597d02060773686172642d31"
        + "050203646f6302"

    @Test func cutOrDamagedBytesAreTypedErrors() throws {
        let bytes = try Self.everyKind(sequence: 3, payloadRepeats: 1).encode()
        for length in 0..<bytes.count {
            #expect(throws: OpLogError.self) { try Change(decoding: Array(bytes.prefix(length))) }
        }
        var random = SplitMix64(seed: 0xC4A9_6E)
        for index in bytes.indices {
            var damaged = bytes
            damaged[index] ^= UInt8(1 + random.next() % 255)
            do {
                _ = try Change(decoding: damaged)
                Issue.record("a flip at byte \(index) decoded")
            } catch {
                guard case .undecodableChange = error else {
                    Issue.record("a flip at byte \(index) gave \(error)")
                    continue
                }
            }
        }
        #expect(throws: OpLogError.self) { try Change(decoding: bytes + [0]) }
    }

    @Test func aNewerEncodingVersionIsNamed() throws {
        var bytes = FormatVectorTests.bytes(Self.vector)
        bytes[8] = 2
        do {
            _ = try Change(decoding: bytes)
            Issue.record("version 2 decoded")
        } catch {
            // The version is read right after the magic: a newer encoding may lay out the rest of
            // its header differently, so its checksum is not checked.
            guard case .undecodableChange(let detail) = error else { throw error }
            #expect(detail == "encoding version 2 is newer than 1")
        }
    }

    @Test func whatNoStoreProducesIsRefusedWhenEncoding() throws {
        let position = try ChangePosition(lineage: Self.lineage, sequence: 1)
        let gap = [Self.storedOp(1, payload: "a"), Self.storedOp(3, payload: "b")]
        for event: ChangeEvent in [
            .appended(document: doc("d"), ops: []), .appended(document: doc("d"), ops: gap), .truncated(document: doc("d"), floor: 1),
            .snapshotDeleted(document: doc("d"), revision: 0), .epochRaised(scope: try FencingScope("s"), epoch: 0),
        ] {
            #expect(throws: OpLogError.self) { try Change(position: position, events: [event]).encode() }
        }
        #expect(throws: OpLogError.invalidArgument("change positions start at 1")) {
            try ChangePosition(lineage: Self.lineage, sequence: 0)
        }
    }

    /// Seeded random changes of random events round-trip exactly.
    @Test func randomChangesRoundTrip() throws {
        var random = SplitMix64(seed: 0x5EED_C4A6)
        for round in 0..<300 {
            var events: [ChangeEvent] = []
            for _ in 0..<Int.random(in: 0...5, using: &random) {
                let document = doc("d\(Int.random(in: 0..<4, using: &random))")
                switch Int.random(in: 0..<6, using: &random) {
                case 0:
                    let first = UInt64.random(in: 1...1_000_000, using: &random)
                    var time = Int64.random(in: 0...2_000_000_000_000, using: &random)
                    let ops = (0..<Int.random(in: 1...20, using: &random)).map { index -> StoredOp in
                        time += Int64.random(in: 0...5, using: &random)
                        let payload = (0..<Int.random(in: 0...80, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
                        return StoredOp(
                            revision: first + UInt64(index), opID: OpID(high: random.next(), low: random.next()),
                            author: Array("a\(index % 3)".utf8),
                            clientTimeMilliseconds: Bool.random(using: &random)
                                ? Int64.random(in: Int64.min...Int64.max, using: &random) : nil,
                            serverTimeMilliseconds: time, payload: payload)
                    }
                    events.append(.appended(document: document, ops: ops))
                case 1: events.append(.truncated(document: document, floor: UInt64.random(in: 2...UInt64.max, using: &random)))
                case 2:
                    events.append(
                        .snapshotPut(
                            document: document, revision: UInt64.random(in: 1...9_999, using: &random),
                            createdAtMilliseconds: Int64.random(in: Int64.min...Int64.max, using: &random),
                            bytes: (0..<Int.random(in: 0...300, using: &random)).map { _ in UInt8.random(in: 0...3, using: &random) }))
                case 3: events.append(.snapshotDeleted(document: document, revision: UInt64.random(in: 1...UInt64.max, using: &random)))
                case 4: events.append(.documentDeleted(document: document))
                default:
                    events.append(
                        .epochRaised(scope: try FencingScope("s\(round % 5)"), epoch: UInt64.random(in: 1...UInt64.max, using: &random)))
                }
            }
            let change = Change(position: try ChangePosition(lineage: Self.lineage, sequence: UInt64(round + 1)), events: events)
            #expect(try Change(decoding: change.encode()) == change, "round \(round)")
        }
    }
}
