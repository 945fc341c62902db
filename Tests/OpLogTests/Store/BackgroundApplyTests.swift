import Foundation
import OpLog
import Synchronization
import Testing

/// Goal: the journal's slots are applied to LMDB on the applier's thread while writers go on in the
/// other slot, and reads stay exact throughout: every acknowledged op reads back at its revision
/// whether it sits in the active slot, in a sealed slot being applied, or in LMDB; after a reopen
/// too. Method: writers append enough to seal the slots several times (1 MiB slots) while a reader
/// checks every acknowledged op of a random document; then counters, verify and a reopen.
@Suite struct BackgroundApplyTests {
    /// 400 bytes that zlib cannot shrink (the journal must fill its slots), distinct per op.
    static func payload(_ document: Int, _ revision: UInt64) -> [UInt8] {
        var state = UInt64(document) << 32 ^ revision &* 0x9E37_79B9_7F4A_7C15
        return (0..<400).map { _ in
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return UInt8(truncatingIfNeeded: state >> 56)
        }
    }

    @Test(arguments: [Durability.full, .lastAppendsMayBeLost])
    func readsStayExactWhileSlotsAreApplied(durability: Durability) async throws {
        let dir = TemporaryDirectory("oplog-background-apply")
        defer { dir.remove() }
        var options = testOptions(durability: durability)
        options.journalApplyBytes = 1 << 20
        let documents = 6
        let appendsPerDocument = durability == .full ? 500 : 900
        let acknowledged = AcknowledgedHeads(count: documents)
        try await withStore(dir.path, options: options) { store async throws in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<documents {
                    group.addTask {
                        let document = doc("bg-\(index)")
                        for step in 0..<appendsPerDocument {
                            let revision = UInt64(step * 2 + 1)
                            let ops = [revision, revision + 1].map {
                                NewOp(opID: OpID(high: UInt64(index), low: $0), author: [1], payload: Self.payload(index, $0))
                            }
                            let result = try await store.append(ops, to: document)
                            #expect(result.revisions == [revision, revision + 1])
                            acknowledged.set(index, to: revision + 1)
                        }
                    }
                }
                group.addTask {
                    // Reads meanwhile: whatever was acknowledged before the read began is there, exact.
                    var random = SystemRandomNumberGenerator()
                    for _ in 0..<400 {
                        let index = Int.random(in: 0..<documents, using: &random)
                        let head = acknowledged.get(index)
                        guard head > 0 else {
                            await Task.yield()
                            continue
                        }
                        let ops = try store.ops(of: doc("bg-\(index)"), from: 1, limit: Int(head))
                        #expect(ops.map(\.revision) == Array(1...head), "document \(index)")
                        #expect(ops.allSatisfy { $0.payload == Self.payload(index, $0.revision) }, "document \(index)")
                    }
                }
                try await group.waitForAll()
            }
            let counters = store.writerCounters()
            #expect(counters.journalApplies >= 2, "the slots were applied \(counters.journalApplies) times")
            #expect(counters.journalFillBytes > 0 && counters.journalFillBytes <= 4 << 20, "fill \(counters.journalFillBytes) bytes")
            await #expect(try store.verify().isClean)
        }
        try await withStore(dir.path, options: options) { store async throws in
            for index in 0..<documents {
                let ops = try store.ops(of: doc("bg-\(index)"), from: 1, limit: 100_000)
                #expect(ops.count == appendsPerDocument * 2)
                #expect(ops.allSatisfy { $0.payload == Self.payload(index, $0.revision) })
            }
        }
    }
}

/// Heads the writers have had acknowledged, shared with the reader task.
final class AcknowledgedHeads: Sendable {
    private let heads: Mutex<[UInt64]>
    init(count: Int) { heads = Mutex([UInt64](repeating: 0, count: count)) }
    func set(_ index: Int, to head: UInt64) { heads.withLock { $0[index] = max($0[index], head) } }
    func get(_ index: Int) -> UInt64 { heads.withLock { $0[index] } }
}
