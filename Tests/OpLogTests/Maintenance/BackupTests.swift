import Foundation
import OpLog
import OpLogTestSupport
import OpLogText
import Synchronization
import Testing

/// Goal: a backup taken while writers append and the scheduler compacts holds every op
/// acknowledged before the backup started, at its revision, and restores to a store that passes
/// `verify` and replays every document to the right text; the CLI's `backup` (from another
/// process, on a live store) and `restore` do the same.
@Suite struct BackupTests {
    static let documentCount = 4
    static let session = EditingTrace.generated(seed: 23, patchCount: 40_000, computeEndContent: false)

    static func name(_ index: Int) -> String { "backup-\(index)" }

    /// The ops of `document`'s patches `range` (one op per patch), with the op IDs the CLI uses.
    static func ops(_ document: String, _ range: Range<Int>) -> [NewOp] {
        range.map { index in
            NewOp(
                opID: CrashTests.opID(document: document, patchIndex: index), author: Array("backup".utf8),
                payload: session.patches[index].jsonBytes())
        }
    }

    /// What the writers share with the test: each document's last acknowledged revision, and stop.
    final class Progress: Sendable {
        let acknowledged = Mutex([Int](repeating: 0, count: BackupTests.documentCount))
        let stop = Atomic(false)
        var minimum: Int { acknowledged.withLock { $0.min() ?? 0 } }
        var snapshot: [Int] { acknowledged.withLock { $0 } }
    }

    /// Appends the session to every document in batches of 16 until `progress.stop` is set.
    static func runWriters(_ store: OpLogStore, progress: Progress) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<documentCount {
                group.addTask {
                    let document = try DocumentID(name(index))
                    var next = 0
                    while !progress.stop.load(ordering: .relaxed) && next < session.patches.count {
                        let count = min(16, session.patches.count - next)
                        let result = try await store.append(ops(name(index), next..<(next + count)), to: document)
                        #expect(result.revisions.first == Revision(next + 1))
                        next += count
                        progress.acknowledged.withLock { $0[index] = next }
                    }
                }
            }
            try await group.waitForAll()
        }
    }

    /// Checks a restored copy: clean `verify`, every document at least at `acknowledged`, every
    /// retained op the patch of its revision, and the replay at the head equal to the session's text.
    static func checkCopy(_ directory: String, acknowledged: [Int], label: String) async throws {
        try await withStore(directory) { copy async throws in
            let report = try await copy.verify()
            #expect(report.isClean, "\(label): \(report.problems)")
            for index in 0..<documentCount {
                let document = try DocumentID(name(index))
                let info = try #require(try copy.info(of: document), "\(label): \(name(index)) is missing")
                #expect(
                    Int(info.head) >= acknowledged[index],
                    "\(label): \(name(index)) head \(info.head) < acknowledged \(acknowledged[index])")
                var next = info.floor
                while next <= info.head {
                    let ops = try copy.ops(of: document, from: next, limit: 1_000)
                    guard ops.first?.revision == next else {
                        Issue.record("\(label): gap in \(name(index)) at \(next)")
                        break
                    }
                    for op in ops {
                        #expect(op.payload == session.patches[Int(op.revision) - 1].jsonBytes(), "\(label): \(name(index))@\(op.revision)")
                    }
                    next += UInt64(ops.count)
                }
                var text = TextBuffer()
                for patch in session.patches[0..<Int(info.head)] { try text.apply(patch) }
                #expect(try copy.replay(document, with: TextReducer()).state.text == text.text, "\(label): replay of \(name(index))")
            }
        }
    }

    @Test func backupUnderLoadHoldsEverythingAcknowledgedBefore() async throws {
        let dir = TemporaryDirectory("oplog-backup")
        defer { dir.remove() }
        var options = testOptions(durability: .full)
        options.journalApplyBytes = 1 << 20  // applies (journal replacements) race the copies
        var policy = CompactionPolicy()
        policy.snapshotEveryOps = 2_000
        policy.keepOps = 200

        let store = try await OpLogStore.open(directory: dir.path, options: options)
        let scheduler = try CompactionScheduler(store: store, policy: policy, reducer: TextReducer())
        try scheduler.start()
        let progress = Progress()
        let writers = Task { try await Self.runWriters(store, progress: progress) }
        // Journal applies replace the journal under the copies: force them often.
        let checkpoints = Task {
            var count = 0
            while !progress.stop.load(ordering: .relaxed) {
                try await store.checkpoint()
                count += 1
                try await Task.sleep(for: .milliseconds(15))
            }
            return count
        }
        var copies: [(directory: String, acknowledged: [Int], label: String)] = []
        var duringBackups = 0
        for round in 0..<4 {
            // Let the writers get ahead: 2,500 more ops per document each round.
            try await waitUntil("writers at \(2_500 * (round + 1)) ops") { progress.minimum >= 2_500 * (round + 1) }
            let before = progress.snapshot
            let backup = dir.path + "-backup-\(round)"
            let report = try await store.backup(to: backup, compact: round % 2 == 1)
            let after = progress.snapshot
            duringBackups += zip(after, before).reduce(0) { $0 + $1.0 - $1.1 }
            print(
                "backup \(round): data file \(report.dataFileBytes) bytes, journal \(report.journalBytes) bytes "
                    + "(\(report.journalRecords) records, \(report.journalOps) ops), acknowledged before \(before)"
            )
            let restored = dir.path + "-restored-\(round)"
            _ = try await OpLogStore.restore(from: backup, to: restored)
            copies.append((restored, before, "backup \(round)"))
            try? FileManager.default.removeItem(atPath: backup)
        }
        progress.stop.store(true, ordering: .relaxed)
        try await writers.value
        let applies = try await checkpoints.value
        await scheduler.stop()
        try await store.close()
        print(
            "backup under load: \(duringBackups) ops acknowledged while the 4 backups ran, \(applies) checkpoints, \(scheduler.statistics)")
        #expect(scheduler.statistics.snapshotsWritten > 0, "the scheduler never compacted: the test did not race compaction")
        for copy in copies {
            try await Self.checkCopy(copy.directory, acknowledged: copy.acknowledged, label: copy.label)
            try? FileManager.default.removeItem(atPath: copy.directory)
        }
    }

    @Test(.enabled(if: CLITests.binary != nil, "needs the built oplog executable"))
    func cliBackupOfALiveStoreAndRestore() async throws {
        // The store stays open for writing in this process; `oplog backup` opens it read-only
        // from another process while the writers run.
        let dir = TemporaryDirectory("oplog-cli-backup")
        defer { dir.remove() }
        let backup = dir.path + "-backup"
        let restored = dir.path + "-restored"
        defer {
            try? FileManager.default.removeItem(atPath: backup)
            try? FileManager.default.removeItem(atPath: restored)
        }
        let store = try await OpLogStore.open(directory: dir.path, options: testOptions(durability: .full))
        let progress = Progress()
        let writers = Task { try await Self.runWriters(store, progress: progress) }
        try await waitUntil("writers at 3,000 ops") { progress.minimum >= 3_000 }
        let before = progress.snapshot
        let backupRun = try CLITests.run(["backup", "--store", dir.path, "--output", backup])
        progress.stop.store(true, ordering: .relaxed)
        try await writers.value
        try await store.close()
        #expect(backupRun.status == 0, "\(backupRun.output)")
        #expect(backupRun.output.contains("copy: verify clean, 4 documents replayed"), "\(backupRun.output)")
        let restoreRun = try CLITests.run(["restore", "--input", backup, "--store", restored])
        #expect(restoreRun.status == 0, "\(restoreRun.output)")
        let verify = try CLITests.run(["verify", "--store", restored])
        #expect(verify.status == 0, "\(verify.output)")
        try await Self.checkCopy(restored, acknowledged: before, label: "CLI backup")
        // Restoring over a store that holds files is refused, not merged.
        let again = try CLITests.run(["restore", "--input", backup, "--store", restored])
        #expect(again.status != 0)
    }
}
