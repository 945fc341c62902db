import Foundation
import OpLog
import OpLogTestSupport
import OpLogText
import Testing

/// Goal: when the file system (not the map limit) fills up, the writes that do not fit fail with
/// `storageFull` and nothing else; reads keep working; appends resume in the same open store once
/// space is freed; after a reopen `verify` is clean, every acknowledged op is at its revision with no
/// gaps, and each failed append is wholly present or wholly absent.
/// Method: an 8 MiB tmpfs (needs root) holding a 5 MiB filler file and the store, whose map may grow
/// to 64 MiB; durability `.full`; 2-op appends of incompressible 3 KiB payloads over four documents,
/// with a snapshot and a truncation every 25 appends. In `journalWrite` the journal is never applied
/// while filling, so a journal `pwrite` meets ENOSPC; in `lmdbCommit` a checkpoint every 8 appends
/// keeps the journal small, so an LMDB commit (checkpoint or snapshot put) meets it first.
@Suite(.serialized) struct DiskFullTests {
    @Test func journalWriteHitsENOSPC() async throws {
        try await fillFreeAndReopen(.journalWrite)
    }

    @Test func lmdbCommitHitsENOSPC() async throws {
        try await fillFreeAndReopen(.lmdbCommit)
    }

    enum Variant: String { case journalWrite, lmdbCommit }

    func fillFreeAndReopen(_ variant: Variant) async throws {
        let started = ContinuousClock.now
        let mount = try SizeLimitedMount(megabytes: 8)
        defer { mount.unmount() }
        let filler = mount.path + "/filler"
        #expect(
            FileManager.default.createFile(atPath: filler, contents: Data(repeating: 0xA5, count: 5 << 20)),
            "could not write the filler file")
        let storePath = mount.path + "/store"
        var options = StoreOptions()
        options.durability = .full
        options.mapSizeInitialBytes = 1 << 20
        options.mapSizeMaximumBytes = 64 << 20
        options.journalApplyBytes = variant == .journalWrite ? 64 << 20 : 1 << 20
        let documents = (0..<4).map { doc("d\($0)") }
        var work = Workload()
        var report: [String] = []

        try await withStore(storePath, options: options) { store in
            var index = 0
            var refusedInARow = 0
            while refusedInARow < 5 && index < 10_000 {
                if await work.append(store, to: documents[index % documents.count]) {
                    refusedInARow = 0
                } else {
                    if work.failedAppends.count == 1 {
                        report.append(
                            "first refused append after \(work.acknowledgedOps) acknowledged ops (\(work.acknowledgedBytes) payload bytes)")
                    }
                    refusedInARow += 1
                }
                index += 1
                if index % 25 == 0 { await work.snapshotAndTruncate(store, documents[0]) }
                if variant == .lmdbCommit && index % 8 == 0 { await work.checkpoint(store) }
            }
            #expect(refusedInARow == 5, "the file system never filled in \(index) appends")
            report.append(
                "filled after \(index) appends: \(work.acknowledgedOps) ops acknowledged, \(work.failedAppends.count) appends refused")
            let lmdbFailures = work.failures.filter { $0.hasPrefix("checkpoint") || $0.hasPrefix("putSnapshot") }
            switch variant {
            case .journalWrite:
                #expect(
                    work.failures.contains { $0.hasPrefix("append") && $0.contains("journal record") },
                    "no append failed on a journal write: \(work.failures)")
            case .lmdbCommit:
                #expect(
                    lmdbFailures.contains { $0.contains("LMDB commit") || $0.contains("journal could not be replaced") },
                    "no checkpoint or snapshot put failed on an LMDB commit: \(work.failures)")
            }

            // Full: reads still serve everything acknowledged.
            try work.check(store, "while full")

            // Space freed: the same open store takes writes again.
            try FileManager.default.removeItem(atPath: filler)
            var resumed = 0
            for index in 0..<20 {
                if await work.append(store, to: documents[index % documents.count]) { resumed += 1 }
            }
            #expect(resumed == 20, "only \(resumed) of 20 appends succeeded after freeing space")
            let failuresBefore = work.failures.count
            await work.snapshotAndTruncate(store, documents[0])
            await work.checkpoint(store)
            #expect(
                work.failures.count == failuresBefore, "writes after freeing space failed: \(work.failures.suffix(from: failuresBefore))")
            report.append("after freeing space: \(resumed) of 20 appends, a snapshot, a truncation and a checkpoint succeeded")
            try work.check(store, "after freeing space")
        }

        try await withStore(storePath, options: options) { store in
            let verification = try store.verify()
            #expect(verification.isClean, "verify after reopen: \(verification.problems)")
            try work.check(store, "after reopen")
            report.append("reopened: verify clean = \(verification.isClean), \(verification.opsChecked) ops checked")
        }
        var distinct: [String: Int] = [:]
        for failure in work.failures { distinct[failure, default: 0] += 1 }
        print("DiskFullTests.\(variant.rawValue): " + report.joined(separator: "; ") + "; \(ContinuousClock.now - started)")
        for (failure, count) in distinct.sorted(by: { $0.key < $1.key }) { print("  \(count)× \(failure)") }
    }
}

/// What the test did and what the store acknowledged.
struct Workload {
    var random = SplitMix64(seed: 0xD15C)
    var nextOpID: UInt64 = 0
    /// Acknowledged ops by document and revision.
    var acknowledged: [DocumentID: [Revision: NewOp]] = [:]
    var heads: [DocumentID: Revision] = [:]
    var floors: [DocumentID: Revision] = [:]
    var acknowledgedOps = 0
    var acknowledgedBytes = 0
    var failedAppends: [(document: DocumentID, ops: [NewOp])] = []
    var failedFloors: [DocumentID: Set<Revision>] = [:]
    /// "operation: error" for every failed call, in order.
    var failures: [String] = []

    mutating func bytes(_ count: Int) -> [UInt8] {
        (0..<count).map { _ in UInt8(truncatingIfNeeded: random.next()) }
    }

    /// Two ops of 3 KiB; true if acknowledged with the next revisions.
    mutating func append(_ store: OpLogStore, to document: DocumentID) async -> Bool {
        var ops: [NewOp] = []
        for _ in 0..<2 {
            nextOpID += 1
            ops.append(NewOp(opID: OpID(high: 0xD15C, low: nextOpID), author: Array("w".utf8), payload: bytes(3_000)))
        }
        do throws(OpLogError) {
            let result = try await store.append(ops, to: document)
            let head = heads[document, default: 0]
            #expect(result.revisions == Array(head + 1...head + UInt64(ops.count)), "unexpected revisions for \(document)")
            for (revision, op) in zip(result.revisions, ops) { acknowledged[document, default: [:]][revision] = op }
            heads[document] = result.revisions.last ?? head
            acknowledgedOps += ops.count
            acknowledgedBytes += ops.reduce(0) { $0 + $1.payload.count }
            return true
        } catch {
            failedAppends.append((document, ops))
            record(error, "append")
            return false
        }
    }

    /// A snapshot at head − 1 (a direct LMDB commit), then a truncation below head (journaled).
    mutating func snapshotAndTruncate(_ store: OpLogStore, _ document: DocumentID) async {
        let head = heads[document, default: 0]
        guard head >= 2 else { return }
        do throws(OpLogError) {
            try await store.putSnapshot(bytes(2_000), of: document, at: head - 1)
        } catch {
            record(error, "putSnapshot")
            return
        }
        do throws(OpLogError) {
            try await store.truncate(document, below: head)
            floors[document] = head
        } catch {
            failedFloors[document, default: []].insert(head)
            record(error, "truncate")
        }
    }

    mutating func checkpoint(_ store: OpLogStore) async {
        do throws(OpLogError) { try await store.checkpoint() } catch { record(error, "checkpoint") }
    }

    mutating func record(_ error: OpLogError, _ operation: String) {
        failures.append("\(operation): \(error)")
        guard case .storageFull = error else {
            Issue.record("\(operation) failed with \(error), expected storageFull")
            return
        }
    }

    /// Every acknowledged op at or above the floor is readable at its revision; revisions run from
    /// floor to head without gaps; every op read was acknowledged or belongs to a failed append,
    /// and each failed append is wholly present or wholly absent.
    func check(_ store: OpLogStore, _ context: String) throws {
        let failedIDs = Dictionary(
            failedAppends.enumerated().flatMap { index, attempt in attempt.ops.map { ($0.opID, index) } },
            uniquingKeysWith: { first, _ in first })
        for (document, head) in heads {
            let info = try #require(try store.info(of: document), "\(context): \(document) missing")
            let floor = floors[document, default: 1]
            #expect(
                info.floor == floor || failedFloors[document, default: []].contains(info.floor),
                "\(context): \(document) floor \(info.floor), acknowledged \(floor)")
            #expect(info.head >= head, "\(context): \(document) head \(info.head) below acknowledged \(head)")
            var read: [StoredOp] = []
            while info.floor + UInt64(read.count) <= info.head {
                let page = try store.ops(of: document, from: info.floor + UInt64(read.count), limit: 500)
                if page.isEmpty { break }
                read.append(contentsOf: page)
            }
            #expect(read.map(\.revision) == Array(info.floor..<info.head + 1), "\(context): \(document) revisions have gaps")
            var presentPerAttempt: [Int: Int] = [:]
            for op in read {
                if let expected = acknowledged[document]?[op.revision] {
                    #expect(
                        op.opID == expected.opID && op.payload == expected.payload && op.author == expected.author,
                        "\(context): \(document) revision \(op.revision) differs from what was acknowledged")
                } else if let attempt = failedIDs[op.opID] {
                    presentPerAttempt[attempt, default: 0] += 1
                } else {
                    Issue.record("\(context): \(document) revision \(op.revision) holds an op never appended")
                }
            }
            for revision in (acknowledged[document] ?? [:]).keys where revision >= info.floor {
                #expect(read.contains { $0.revision == revision }, "\(context): \(document) acknowledged revision \(revision) missing")
            }
            for (attempt, count) in presentPerAttempt {
                #expect(count == failedAppends[attempt].ops.count, "\(context): failed append \(attempt) is partly present (\(count) ops)")
            }
        }
    }
}

/// A size-limited tmpfs on a fresh directory. `unmount` must run whatever happens (use `defer`).
struct SizeLimitedMount {
    struct Refused: Error, CustomStringConvertible { let description: String }
    let path: String

    init(megabytes: Int) throws {
        path = NSTemporaryDirectory() + "oplog-diskfull-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        let (status, output) = Self.run("/usr/bin/mount", ["-t", "tmpfs", "-o", "size=\(megabytes)m", "tmpfs", path])
        guard status == 0 else {
            try? FileManager.default.removeItem(atPath: path)
            throw Refused(description: "mount -t tmpfs -o size=\(megabytes)m tmpfs \(path) was refused (status \(status)): \(output)")
        }
    }

    func unmount() {
        var (status, output) = Self.run("/usr/bin/umount", [path])
        if status != 0 {
            Issue.record("umount \(path) failed (status \(status)): \(output); detaching it lazily")
            (status, output) = Self.run("/usr/bin/umount", ["-l", path])
        }
        if status == 0 { try? FileManager.default.removeItem(atPath: path) }
    }

    private static func run(_ executable: String, _ arguments: [String]) -> (Int32, String) {
        do {
            let result = try runProcess(executable, arguments)
            return (result.status, result.output.trimmingCharacters(in: .whitespacesAndNewlines))
        } catch {
            return (-1, "\(error)")
        }
    }
}
