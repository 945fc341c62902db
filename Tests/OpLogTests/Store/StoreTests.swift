import Foundation
import OpLog
import OpLogStorage
import OpLogTestSupport
import Testing

/// Goal: the store's contract for appends, retries, conflicts, batches, reads, snapshots, truncation
/// and deletion, each checked on real LMDB files.
@Suite struct StoreTests {
    @Test func appendAssignsGapFreeRevisionsAndReadsBack() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        try await withStore(dir.path) { store async throws in
            let first = try await store.append([op(1, "a"), op(2, "b")], to: doc("d"))
            #expect(first == AppendResult(revisions: [1, 2], wasRetry: false))
            let second = try await store.append([op(3, "c", clientTime: 42)], to: doc("d"))
            #expect(second.revisions == [3])
            // Read-after-acknowledge: visible the moment append returned.
            let ops = try store.ops(of: doc("d"), from: 1)
            #expect(ops.map(\.revision) == [1, 2, 3])
            #expect(ops.map { String(decoding: $0.payload, as: UTF8.self) } == ["a", "b", "c"])
            #expect(ops[2].clientTimeMilliseconds == 42)
            #expect(ops[0].clientTimeMilliseconds == nil)
            #expect(zip(ops, ops.dropFirst()).allSatisfy { $0.serverTimeMilliseconds <= $1.serverTimeMilliseconds })
            #expect(try store.head(of: doc("d")) == 3)
            #expect(try store.ops(of: doc("d"), from: 2, limit: 1).map(\.revision) == [2])
            #expect(try store.ops(of: doc("d"), from: 4).isEmpty)
            #expect(throws: OpLogError.beyondHead(document: doc("d"), requested: 5, head: 3)) { try store.ops(of: doc("d"), from: 5) }
            #expect(try store.head(of: doc("unknown")) == 0)
            #expect(try store.ops(of: doc("unknown"), from: 1).isEmpty)
        }
    }

    @Test func retriesReturnOriginalRevisionsEvenWithStaleExpectedHead() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        try await withStore(dir.path) { store async throws in
            _ = try await store.append([op(1), op(2)], to: doc("d"))
            _ = try await store.append([op(3)], to: doc("d"))
            let retry = try await store.append([op(1), op(2)], to: doc("d"), expectedHead: 0)
            #expect(retry == AppendResult(revisions: [1, 2], wasRetry: true))
            #expect(try store.head(of: doc("d")) == 3)
            await #expect(throws: OpLogError.partialRetry(document: doc("d"), acceptedCount: 1, newCount: 1)) {
                try await store.append([op(3), op(4)], to: doc("d"))
            }
            await #expect(throws: OpLogError.conflict(document: doc("d"), expectedHead: 2, actualHead: 3)) {
                try await store.append([op(4)], to: doc("d"), expectedHead: 2)
            }
            #expect(try await store.append([op(4)], to: doc("d"), expectedHead: 3).revisions == [4])
            await #expect(
                throws: OpLogError.duplicateInBatch(
                    document: doc("d"), detail: "op ID 000000000000abcd0000000000000005 appears more than once")
            ) {
                try await store.append([op(5), op(5)], to: doc("d"))
            }
        }
        // Remembered across reopen, including after the journal was applied.
        try await withStore(dir.path) { store async throws in
            #expect(try await store.append([op(3)], to: doc("d")) == AppendResult(revisions: [3], wasRetry: true))
        }
    }

    @Test func multiDocumentBatchIsAllOrNothing() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        try await withStore(dir.path) { store async throws in
            _ = try await store.append([op(1)], to: doc("b"))
            let results = try await store.append(batch: [
                DocumentAppend(document: doc("a"), ops: [op(10), op(11)]),
                DocumentAppend(document: doc("b"), ops: [op(12)], expectedHead: 1),
            ])
            #expect(results.map(\.revisions) == [[1, 2], [2]])
            await #expect(throws: OpLogError.conflict(document: doc("b"), expectedHead: 1, actualHead: 2)) {
                try await store.append(batch: [
                    DocumentAppend(document: doc("a"), ops: [op(20)]),
                    DocumentAppend(document: doc("b"), ops: [op(21)], expectedHead: 1),
                ])
            }
            #expect(try store.head(of: doc("a")) == 2)
            #expect(try store.head(of: doc("b")) == 2)
            #expect(try store.documents() == [doc("a"), doc("b")])
            #expect(try store.documents(after: doc("a")) == [doc("b")])
        }
    }

    @Test func snapshotsTruncationAndFloorHints() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        try await withStore(dir.path) { store async throws in
            let d = doc("d")
            _ = try await store.append((1...10).map { op($0) }, to: d)
            await #expect(throws: OpLogError.snapshotRequired(document: d, revision: 4)) { try await store.truncate(d, below: 5) }
            await #expect(throws: OpLogError.beyondHead(document: d, requested: 11, head: 10)) {
                try await store.putSnapshot([1], of: d, at: 11)
            }
            try await store.putSnapshot(Array("s4".utf8), of: d, at: 4)
            try await store.putSnapshot(Array("s8".utf8), of: d, at: 8)
            try await store.truncate(d, below: 5)
            #expect(try store.ops(of: d, from: 5).map(\.revision) == Array(5...10))
            #expect(throws: OpLogError.belowFloor(document: d, requested: 2, floor: 5, latestSnapshot: 4)) { try store.ops(of: d, from: 2) }
            await #expect(throws: OpLogError.snapshotProtected(document: d, revision: 4)) { try await store.deleteSnapshot(of: d, at: 4) }
            #expect(try store.snapshot(of: d, atOrBelow: 7)?.bytes == Array("s4".utf8))
            #expect(try store.snapshot(of: d)?.revision == 8)
            #expect(try store.snapshots(of: d).map(\.revision) == [4, 8])
            try await store.checkpoint()
            try await store.truncate(d, below: 9)
            try await store.deleteSnapshot(of: d, at: 4)
            await #expect(throws: OpLogError.snapshotNotFound(document: d, revision: 4)) { try await store.deleteSnapshot(of: d, at: 4) }
            let info = try #require(try store.info(of: d))
            #expect(info.head == 10 && info.floor == 9 && info.opCount == 2)
            // Truncation never reuses revisions.
            #expect(try await store.append([op(11)], to: d).revisions == [11])
        }
        try await withStore(dir.path) { store async throws in
            #expect(try store.ops(of: doc("d"), from: 9).map(\.revision) == [9, 10, 11])
            #expect(throws: OpLogError.belowFloor(document: doc("d"), requested: 8, floor: 9, latestSnapshot: 8)) {
                try store.ops(of: doc("d"), from: 8)
            }
            await #expect(try store.verify().isClean)
        }
    }

    @Test func deleteDocumentForgetsEverythingAndStartsOver() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        try await withStore(dir.path) { store async throws in
            let d = doc("gone")
            _ = try await store.append([op(1), op(2)], to: d)
            try await store.putSnapshot([9], of: d, at: 2)
            try await store.deleteDocument(d)
            #expect(try store.head(of: d) == 0)
            #expect(try store.snapshots(of: d).isEmpty)
            #expect(try store.info(of: d) == nil)
            // The op ID is forgotten: the same ID is a new op at revision 1.
            #expect(try await store.append([op(1)], to: d) == AppendResult(revisions: [1], wasRetry: false))
        }
        try await withStore(dir.path) { store async throws in
            #expect(try store.head(of: doc("gone")) == 1)
            await #expect(try store.verify().isClean)
        }
    }

    @Test func journalIsRecoveredAfterAnUncleanStop() async throws {
        // Method: copy the files of an open store whose journal holds unapplied ops (what a killed
        // process leaves behind), then open the copy.
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let copy = TemporaryDirectory()
        defer { copy.remove() }
        try await withStore(dir.path) { store async throws in
            _ = try await store.append([op(1), op(2)], to: doc("d"))
            try await store.checkpoint()
            _ = try await store.append([op(3)], to: doc("d"))
            try await store.putSnapshot([3], of: doc("d"), at: 3)
            try await store.truncate(doc("d"), below: 4)
            _ = try await store.append([op(4)], to: doc("e"))
            try FileManager.default.copyItem(atPath: dir.path, toPath: copy.path)
        }
        try await withStore(copy.path) { store async throws in
            #expect(try store.head(of: doc("d")) == 3)
            #expect(try store.info(of: doc("d"))?.floor == 4)
            #expect(try store.ops(of: doc("e"), from: 1).map(\.revision) == [1])
            #expect(try await store.append([op(2)], to: doc("d")).wasRetry)
            await #expect(try store.verify().isClean)
        }
    }

    @Test func openingRefusesForeignDirectoriesAndSecondWriters() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        try FileManager.default.createDirectory(atPath: dir.path, withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: dir.path + "/notes.txt", contents: Data("hi".utf8))
        #expect {
            try OpLogStore.open(directory: dir.path)
        } throws: { error in
            if case .notAStore = error as? OpLogError { return true }
            return false
        }
        let other = TemporaryDirectory()
        defer { other.remove() }
        try FileManager.default.createDirectory(atPath: other.path, withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: other.path + "/data.mdb", contents: Data(repeating: 7, count: 8192))
        #expect {
            try OpLogStore.open(directory: other.path)
        } throws: { error in
            if case .notAStore = error as? OpLogError { return true }
            return false
        }
        let good = TemporaryDirectory()
        defer { good.remove() }
        try await withStore(good.path) { _ async throws in
            // LMDB forbids a second open in one process; another process gets lockedByAnotherProcess
            // (MultiProcessTests).
            #expect(throws: OpLogError.alreadyOpenInThisProcess(path: good.path)) { try OpLogStore.open(directory: good.path) }
            var readOnly = StoreOptions()
            readOnly.readOnly = true
            #expect(throws: OpLogError.alreadyOpenInThisProcess(path: good.path)) {
                try OpLogStore.open(directory: good.path, options: readOnly)
            }
        }
        // Once closed, it opens again.
        try await withStore(good.path) { _ async throws in }
        #expect(throws: OpLogError.invalidArgument("limit must be at least 1, got 0")) {
            let store = try OpLogStore.open(directory: good.path, options: testOptions())
            defer { Task { try? await store.close() } }
            _ = try store.documents(limit: 0)
        }
    }

    @Test func readOnlyStoreSeesJournaledOpsAndRefusesWrites() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        try await withStore(dir.path) { store async throws in
            _ = try await store.append([op(1)], to: doc("d"))
        }
        var options = testOptions()
        options.readOnly = true
        let reader = try await OpLogStore.open(directory: dir.path, options: options)
        #expect(try reader.head(of: doc("d")) == 1)
        await #expect(throws: OpLogError.readOnly) { try await reader.append([op(2)], to: doc("d")) }
        try await reader.close()
    }
}

/// Goal: the async variants of the blocking calls give the same answers, and a store's files are
/// private by default and as wide as asked otherwise.
@Suite struct BlockingCallTests {
    @Test func asyncVariantsAnswerLikeTheSynchronousCalls() async throws {
        let dir = TemporaryDirectory("oplog-async")
        defer { dir.remove() }
        let backup = TemporaryDirectory("oplog-async-backup")
        defer { backup.remove() }
        let restored = TemporaryDirectory("oplog-async-restored")
        defer { restored.remove() }
        let store = try await OpLogStore.open(directory: dir.path, options: testOptions())
        _ = try await store.append([op(1), op(2)], to: doc("d"))
        try await store.putSnapshot(Array("s".utf8), of: doc("d"), at: 2)
        try await store.checkpoint()
        let report: VerificationReport = try await store.verify()
        #expect(report.isClean && report.documentsChecked == 1, "\(report)")
        let usage: SpaceUsage = try await store.spaceUsage()
        // The synchronous form, from a synchronous closure (in async code the async one is chosen).
        let synchronous = { () throws -> SpaceUsage in try store.spaceUsage() }
        #expect(usage == (try synchronous()) && usage.opChunkBytes + usage.snapshotBytes > 0)
        let copied: BackupReport = try await store.backup(to: backup.path)
        // The checkpoint above applied the journal: the copy's ops are all in the data file.
        #expect(copied.journalOps == 0 && copied.journalRecords == 0 && copied.dataFileBytes > 0, "\(copied)")
        try await store.close()
        _ = try await OpLogStore.restore(from: backup.path, to: restored.path)
        var readOnly = StoreOptions()
        readOnly.readOnly = true
        let copy = try await OpLogStore.open(directory: restored.path, options: readOnly)
        #expect(try copy.ops(of: doc("d"), from: 1).count == 2)
        try await copy.close()
    }

    @Test func filesArePrivateUnlessWidened() async throws {
        let dir = TemporaryDirectory("oplog-private")
        defer { dir.remove() }
        let backup = TemporaryDirectory("oplog-private-backup")
        defer { backup.remove() }
        try await withStore(dir.path) { store async throws in
            _ = try await store.append([op(1)], to: doc("d"))
            _ = try await store.backup(to: backup.path)
        }
        #expect(File.permissions(of: dir.path) == 0o700)
        for path in (["data.mdb", "lock.mdb", "oplog.lock"] + Journal.slotFileNames).map({ dir.path + "/" + $0 })
            + (["data.mdb"] + Journal.slotFileNames).map({ backup.path + "/" + $0 })
        {
            #expect(File.permissions(of: path) == 0o600, "\(path)")
        }
        let wide = TemporaryDirectory("oplog-group")
        defer { wide.remove() }
        var options = testOptions()
        options.filePermissions = 0o640
        options.directoryPermissions = 0o750
        try await withStore(wide.path, options: options) { store async throws in _ = try await store.append([op(1)], to: doc("d")) }
        #expect(File.permissions(of: wide.path) == 0o750 && File.permissions(of: wide.path + "/journal.1") == 0o640)
        options.filePermissions = 0o666 | 0o100
        #expect(throws: OpLogError.self) { try OpLogStore.open(directory: wide.path, options: options) }
    }
}
