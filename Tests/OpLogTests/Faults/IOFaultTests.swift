import Foundation
import OpLog
import OpLogStorage
import OpLogTestSupport
import OpLogText
import Testing

/// Goal: a failing write or sync (EIO, ENOSPC) under the real LMDB and journal never crashes the
/// store, surfaces as a typed error, leaves the operation all-or-nothing after reopen, loses nothing
/// acknowledged before, and — since the effect of a failed write or fdatasync on disk is unknown —
/// makes every later write call fail with `reopenRequired` until the store is reopened.
///
/// Method (SQLite's I/O-error loop): `oplog-testkit fault-child` opens a prepared store, arms the fault layer,
/// runs one operation (or opens a store whose journal holds unapplied acknowledged ops) with the Nth tracked write or sync failing, for
/// N = 1, 2, … until the operation
/// runs without reaching the Nth call; once with a single failure, once failing forever. The errno
/// alternates between EIO and ENOSPC (both for every N with `OPLOG_LONG_TESTS=1`). After each run the
/// test reopens the store without faults and checks it.
@Suite(.serialized) struct IOFaultTests {
    static let callsMax = 400

    @Test(
        .enabled(if: FaultLayer.available, "needs oplog and libOpLogFaultInjection.so (swift build)"),
        arguments: ["append", "checkpoint", "close", "snapshot", "truncate", "recover"])
    func failingNthCall(operation: String) async throws {
        let started = Date()
        let template = TemporaryDirectory("oplog-fault-template")
        defer {
            template.remove()
            try? FileManager.default.removeItem(atPath: template.path + ".marker")
        }
        try await Self.prepare(template.path)
        if operation == "recover" {
            let left = try CLITests.runTestKit([
                "fault-child", "--store", template.path, "--operation", "leave-unapplied", "--marker-file", template.path + ".marker",
            ])
            try #require(left.output.contains("result ok"), "could not leave unapplied ops: \(left.output)")
        }
        var injected = 0
        var runs = 0
        var callsReached: [String: Int] = [:]
        for mode in ["once", "forever"] {
            var call = 1
            while call <= Self.callsMax {
                let codes = longTests ? ["EIO", "ENOSPC"] : [call % 2 == 1 ? "EIO" : "ENOSPC"]
                var reached = false
                for code in codes {
                    let faults = try await runOnce(operation, failure: "write+sync:\(call):\(code):\(mode)", template: template.path)
                    injected += faults
                    runs += 1
                    reached = reached || faults > 0
                }
                if !reached { break }
                call += 1
            }
            #expect(call <= Self.callsMax, "\(operation) still reached call \(Self.callsMax)")
            callsReached[mode] = call - 1
        }
        print(
            "I/O faults [\(operation)]: \(injected) faults injected over \(runs) runs; the operation makes "
                + "\(callsReached["once"] ?? 0) tracked writes and syncs; \(String(format: "%.1f", Date().timeIntervalSince(started))) s"
        )
        #expect(injected > 0, "no fault was injected: the layer did not see the store's calls")
    }

    /// Document `a` at revision 30 (applied), with a snapshot at 20.
    static func prepare(_ directory: String) async throws {
        let store = try await OpLogStore.open(directory: directory, options: StoreOptions())
        for first in stride(from: UInt64(1), through: 21, by: 10) {
            _ = try await store.append((first..<first + 10).map { FaultWorkload.op(document: "a", revision: $0, author: 1) }, to: doc("a"))
        }
        try await store.putSnapshot(FaultWorkload.snapshot(document: "a", revision: 20), of: doc("a"), at: 20)
        try await store.close()
    }

    /// One run; returns how many faults the layer injected.
    func runOnce(_ operation: String, failure: String, template: String) async throws -> Int {
        let dir = TemporaryDirectory("oplog-fault")
        defer { dir.remove() }
        let scratch = TemporaryDirectory("oplog-fault-log")
        defer { scratch.remove() }
        try FileManager.default.createDirectory(atPath: scratch.path, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: dir.path, withIntermediateDirectories: true)
        for name in ["data.mdb"] + Journal.fileNames where FileManager.default.fileExists(atPath: template + "/" + name) {
            try FileManager.default.copyItem(atPath: template + "/" + name, toPath: dir.path + "/" + name)
        }
        let child = try FaultLayer.run(
            ["fault-child", "--store", dir.path, "--operation", operation, "--marker-file", scratch.path + "/marker"],
            directory: dir.path, scratch: scratch.path, failure: failure, armByMarker: true)
        let label = "\(operation) \(failure)"
        try #require(child.exited && child.status == 0, "\(label): the child crashed or failed (status \(child.status)): \(child.output)")
        let faults = try SyscallEvent.parse(child.log).filter { $0.kind == .fault }.count
        var lines: [String: String] = [:]
        for line in child.output.split(separator: "\n") {
            let parts = line.split(separator: " ", maxSplits: 1)
            lines[String(parts[0])] = parts.count > 1 ? String(parts[1]) : ""
        }
        let result = try #require(lines["result"], "\(label): no result line in \(child.output)")
        #expect(!result.hasPrefix("error untyped"), "\(label): untyped error \(result)")
        if faults > 0 {
            #expect(result.hasPrefix("error"), "\(label): a fault was injected and the operation still succeeded")
        }
        if result.hasPrefix("error") && operation != "close" && operation != "recover" {
            // A failed sync or an unknown write leaves the store unusable until reopened. A write
            // that failed with ENOSPC and was undone (the journal cut back, or LMDB's transaction
            // aborted) is `storageFull` and leaves it usable: later calls succeed or fail alike.
            let usable = result.hasPrefix("error storageFull")
            for call in ["followup-append", "followup-checkpoint"] {
                let line = lines[call] ?? "nothing"
                let allowed = usable ? ["ok", "error storageFull", "error reopenRequired"] : ["error reopenRequired"]
                #expect(
                    allowed.contains { line.hasPrefix($0) },
                    "\(label): after '\(result)', \(call) gave '\(line)'")
            }
            if usable { #expect(failure.contains("ENOSPC"), "\(label): storageFull for a fault that is not ENOSPC") }
        }
        try await checkReopened(
            dir.path, operation: operation, succeeded: result == "ok", truncated: lines["truncated"] != nil,
            followUpSucceeded: lines["followup-append"] == "ok", label: label)
        return faults
    }

    /// Reopens without faults: clean, all-or-nothing, nothing acknowledged lost.
    func checkReopened(
        _ path: String, operation: String, succeeded: Bool, truncated: Bool, followUpSucceeded: Bool, label: String
    ) async throws {
        let store = try await OpLogStore.open(directory: path, options: StoreOptions())
        do {
            let report = try await store.verify()
            #expect(report.isClean, "\(label): \(report.problems.prefix(3))")
            let info = try #require(try store.info(of: doc("a")), "\(label): document a is gone")
            #expect(try PowerLossTests.checkContents(store, "a", doc("a"), floor: info.floor, head: info.head) == nil, "\(label): contents")
            switch operation {
            case "append":
                #expect(info.head == 30 || info.head == 33, "\(label): head \(info.head), not all-or-nothing")
                if succeeded { #expect(info.head == 33, "\(label): acknowledged append lost") }
            case "checkpoint", "close", "recover":
                #expect(info.head == 33, "\(label): head \(info.head); the acknowledged append before the fault was lost")
            case "snapshot":
                let snapshot = try store.snapshot(of: doc("a"), atOrBelow: 25)
                let stored = snapshot?.revision == 25
                if stored { #expect(snapshot?.bytes == FaultWorkload.snapshot(document: "a", revision: 25), "\(label): snapshot bytes") }
                if succeeded { #expect(stored, "\(label): acknowledged snapshot lost") }
            case "truncate":
                #expect(info.floor == 1 || info.floor == 21, "\(label): floor \(info.floor)")
                if truncated { #expect(info.floor == 21, "\(label): acknowledged truncation lost") }
            default:
                Issue.record("unknown operation \(operation)")
            }
            #expect(info.head >= 30, "\(label): ops acknowledged before the fault were lost")
            if followUpSucceeded { #expect(try store.head(of: doc("b")) == 1, "\(label): acknowledged follow-up append lost") }
        } catch {
            try? await store.close()
            throw error
        }
        try await store.close()
    }
}
