import Foundation
import OpLog
import OpLogTestSupport
import OpLogText
import Testing

/// Goal: a store that reaches its maximum map size refuses appends with `storageFull`, keeps
/// serving reads, still accepts truncations and deletions, and accepts appends again once space
/// is freed. Method: a 4 MiB maximum map filled with incompressible payloads.
@Suite struct StorageFullTests {
    @Test func fullStoreRecoversAfterDeletion() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        var options = testOptions()
        options.mapSizeInitialBytes = 1 << 20
        options.mapSizeMaximumBytes = 4 << 20
        options.reservedBytesForDeletion = 512 << 10
        options.journalApplyBytes = 1 << 20
        var random = SplitMix64(seed: 7)
        func payload() -> [UInt8] { (0..<16_384).map { _ in UInt8(truncatingIfNeeded: random.next()) } }
        try await withStore(dir.path, options: options) { store async throws in
            _ = try await store.append([NewOp(opID: OpID(high: 1, low: 0), author: [], payload: payload())], to: doc("keep"))
            try await store.putSnapshot([1, 2, 3], of: doc("keep"), at: 1)
            var appended = 0
            var full = false
            for index in 1...2_000 {
                do {
                    _ = try await store.append(
                        [NewOp(opID: OpID(high: 2, low: UInt64(index)), author: [], payload: payload())], to: doc("filler"))
                    appended += 1
                } catch OpLogError.storageFull {
                    full = true
                    break
                }
            }
            #expect(full, "the store never reported storage full after \(appended) appends")
            #expect(appended > 20)
            // Reads keep working; truncations and deletions succeed.
            #expect(try store.ops(of: doc("filler"), from: 1, limit: 5).count == 5)
            try await store.truncate(doc("keep"), below: 2)
            try await store.deleteDocument(doc("filler"))
            // Appends work again once space is freed.
            for index in 0..<20 {
                _ = try await store.append(
                    [NewOp(opID: OpID(high: 3, low: UInt64(index)), author: [], payload: payload())], to: doc("after"))
            }
            #expect(try store.head(of: doc("after")) == 20)
            await #expect(try store.verify().isClean)
        }
    }
}
