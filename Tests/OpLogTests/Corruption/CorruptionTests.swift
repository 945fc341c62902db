import Foundation
import OpLog
import OpLogStorage
import OpLogTestSupport
import Testing

/// Goal: damaged stored bytes produce a typed corruption error naming the document and revision,
/// never wrong data or a crash. Method: write a store, close it, change bytes through a raw LMDB
/// handle, reopen, read and verify.
@Suite struct CorruptionTests {
    func makeStore(_ dir: TemporaryDirectory) async throws {
        try await withStore(dir.path) { store async throws in
            _ = try await store.append((1...300).map { op($0, "payload number \($0) with some text to compress") }, to: doc("d"))
            try await store.putSnapshot(Array("state at 100".utf8), of: doc("d"), at: 100)
            _ = try await store.append([op(1000)], to: doc("e"))
        }
    }

    func isCorruption(_ error: any Error, area: String, document: String, revision: UInt64? = nil) -> Bool {
        guard case .corruption(let location, _) = error as? OpLogError else { return false }
        return location.area == area && location.document?.value == document && (revision == nil || location.revision == revision)
    }

    @Test func flippedBytesInEveryRecordAreReported() async throws {
        // Every byte position of the op chunk's frame, one at a time (a sample for long records).
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        try await makeStore(dir)
        let (key, original) = try withRawLMDB(dir.path) { env, dbs in
            try env.read { txn in try txn.withCursor(dbs["ops"]!) { try $0.first()! } }
        }.asTuple
        let positions = Array(
            Set(stride(from: 0, to: original.count, by: max(1, original.count / 64)) + [0, 1, 4, 8, 12, 15, 16, original.count - 1]))
        var options = testOptions()
        options.readOnly = true
        for position in positions.sorted() {
            var damaged = original
            damaged[position] ^= 0x40
            try withRawLMDB(dir.path) { env, dbs in try env.write { txn in try txn.put(dbs["ops"]!, key: key, value: damaged) } }
            let store = try await OpLogStore.open(directory: dir.path, options: options)
            #expect(
                performing: { try store.ops(of: doc("d"), from: 1) }, throws: { isCorruption($0, area: "ops", document: "d", revision: 1) })
            let report = try await store.verify()
            #expect(report.problems.contains { $0.location.area == "ops" && $0.location.document?.value == "d" }, "byte \(position)")
            try await store.close()
        }
        try withRawLMDB(dir.path) { env, dbs in try env.write { txn in try txn.put(dbs["ops"]!, key: key, value: original) } }
        try await withStore(dir.path) { store async throws in
            #expect(try store.ops(of: doc("d"), from: 1, limit: 1000).count == 300)
            await #expect(try store.verify().isClean)
        }
    }

    @Test func recordUnderTheWrongKeyIsReported() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        try await makeStore(dir)
        // Move the snapshot to another revision's key: the bytes are intact, the identity is not.
        try withRawLMDB(dir.path) { env, dbs in
            try env.write { txn in
                let entry = try txn.withCursor(dbs["snapshots"]!) { try $0.first()! }
                var key = entry.key
                key[key.count - 1] &+= 1
                try txn.delete(dbs["snapshots"]!, key: entry.key)
                try txn.put(dbs["snapshots"]!, key: key, value: entry.value)
            }
        }
        var options = testOptions()
        options.readOnly = true
        let store = try await OpLogStore.open(directory: dir.path, options: options)
        #expect(
            performing: { try store.snapshot(of: doc("d")) }, throws: { isCorruption($0, area: "snapshots", document: "d", revision: 101) })
        await #expect(try !store.verify().isClean)
        try await store.close()
    }

    @Test func damagedDocumentRecordAndJournal() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        try await makeStore(dir)
        try withRawLMDB(dir.path) { env, dbs in
            try env.write { txn in
                var value = try txn.get(dbs["documents"]!, key: Array("e".utf8))!
                value[20] ^= 1
                try txn.put(dbs["documents"]!, key: Array("e".utf8), value: value)
            }
        }
        var options = testOptions()
        options.readOnly = true
        let store = try await OpLogStore.open(directory: dir.path, options: options)
        #expect(performing: { try store.head(of: doc("e")) }, throws: { isCorruption($0, area: "documents", document: "e") })
        #expect(try store.head(of: doc("d")) == 300)
        try await store.close()

        // A flipped byte inside an acknowledged journal record followed by more records is
        // corruption, not a torn tail.
        let journalDir = TemporaryDirectory()
        defer { journalDir.remove() }
        let copy = TemporaryDirectory()
        defer { copy.remove() }
        try await withStore(journalDir.path) { store async throws in
            for index in 1...3 { _ = try await store.append([op(UInt64(index), "p\(index)")], to: doc("j")) }
            try FileManager.default.copyItem(atPath: journalDir.path, toPath: copy.path)
        }
        let journalPath = try newestJournalSlot(copy.path).path
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: journalPath)))
        bytes[32 + 30] ^= 0xFF
        try Data(bytes).write(to: URL(fileURLWithPath: journalPath))
        #expect { try OpLogStore.open(directory: copy.path, options: testOptions(durability: .full)) } throws: { error in
            guard case .corruption(let location, _) = error as? OpLogError else { return false }
            return location.area == "journal"
        }
        // In a mode that does not sync every append, the same damage only ends the journal there.
        try await withStore(copy.path) { store async throws in
            #expect(try store.head(of: doc("j")) == 0)  // the damage is in the first record
        }
    }

    @Test func tornJournalTailIsDroppedAndLostCommitsAreDetected() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let copy = TemporaryDirectory()
        defer { copy.remove() }
        try await withStore(dir.path) { store async throws in
            _ = try await store.append([op(1)], to: doc("t"))
            _ = try await store.append([op(2)], to: doc("t"))
            try FileManager.default.copyItem(atPath: dir.path, toPath: copy.path)
        }
        // Tear the last record: cut its final bytes (a write that never completed).
        let (journalPath, end) = try newestJournalSlot(copy.path)
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: journalPath)))
        for index in (end - 5)..<end { bytes[index] = 0 }
        try Data(bytes).write(to: URL(fileURLWithPath: journalPath))
        try await withStore(copy.path) { store async throws in
            #expect(try store.head(of: doc("t")) == 1)
            #expect(try await store.append([op(2)], to: doc("t")).revisions == [2])
        }
        // A journal whose base is past LMDB's applied sequence means LMDB lost commits.
        let lost = TemporaryDirectory()
        defer { lost.remove() }
        try await withStore(lost.path) { store async throws in _ = try await store.append([op(1)], to: doc("t")) }
        // Empty slots based 5 records past what LMDB holds.
        try Journal.create(directory: lost.path, baseSequence: 7, mode: 0o600).close()
        #expect { try OpLogStore.open(directory: lost.path, options: testOptions()) } throws: { error in
            guard case .corruption(let location, let detail) = error as? OpLogError else { return false }
            return location.area == "lmdb" && detail.contains("lost committed transactions")
        }
    }
}

extension Entry {
    var asTuple: ([UInt8], [UInt8]) { (key, value) }
}
