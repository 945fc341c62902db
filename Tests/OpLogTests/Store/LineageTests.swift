import Foundation
import OpLog
import OpLogStorage
import OpLogTestSupport
import Testing

/// The store's lineage: random at creation, the same across reopens and in backups, and its loss is
/// reported as damage rather than replaced.
@Suite struct LineageTests {
    @Test func lineageIsRandomPerStoreStableAndKeptByBackups() async throws {
        let first = TemporaryDirectory("oplog-lineage-a")
        let second = TemporaryDirectory("oplog-lineage-b")
        let copy = TemporaryDirectory("oplog-lineage-backup")
        defer { [first, second, copy].forEach { $0.remove() } }
        let lineage = try await withStore(first.path) { store async throws in
            _ = try await store.append([op(1)], to: doc("d"))
            _ = try await store.backup(to: copy.path)
            return try #require(try store.lineage())
        }
        let other = try await withStore(second.path) { store async throws in try store.lineage() }
        #expect(other != nil && other != lineage)
        try await withStore(first.path) { store async throws in #expect(try store.lineage() == lineage) }
        try await withStore(copy.path) { store async throws in #expect(try store.lineage() == lineage) }
        #expect(StoreLineage(hex: lineage.description) == lineage)
        #expect(StoreLineage(hex: "00000000000000000000000000000000") == nil && StoreLineage(bytes: [1, 2]) == nil)
    }

    @Test func aMissingLineageRecordIsDamage() async throws {
        let directory = TemporaryDirectory("oplog-lineage-missing")
        defer { directory.remove() }
        try await withStore(directory.path) { store async throws in _ = try await store.append([op(1)], to: doc("d")) }
        try withRawLMDB(directory.path) { environment, databases in
            try environment.write { txn in _ = try txn.delete(databases["meta"]!, key: Array("lineage".utf8)) }
        }
        var readOnly = testOptions()
        readOnly.readOnly = true
        let reader = try await OpLogStore.open(directory: directory.path, options: readOnly)
        #expect(throws: OpLogError.self) { try reader.lineage() }
        #expect(try await !reader.verify().isClean)
        try await reader.close()
        await #expect(throws: OpLogError.self) { try await OpLogStore.open(directory: directory.path, options: testOptions()) }
    }
}
