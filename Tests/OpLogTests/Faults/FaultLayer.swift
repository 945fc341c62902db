import Foundation
import OpLog
import OpLogStorage
import OpLogTestSupport
import OpLogText
import Testing

/// Running `oplog` children under the fault-injection layer (Sources/CFaultInjection) and reading
/// the log it writes.
enum FaultLayer {
    /// `libOpLogFaultInjection.so`: `OPLOG_FAULT_LIBRARY`, or beside the `oplog` executable.
    static var library: String? {
        if let path = ProcessInfo.processInfo.environment["OPLOG_FAULT_LIBRARY"] { return path }
        guard let binary = CLITests.testKit else { return nil }
        let beside = URL(fileURLWithPath: binary).deletingLastPathComponent().appendingPathComponent("libOpLogFaultInjection.so").path
        return FileManager.default.fileExists(atPath: beside) ? beside : nil
    }

    static var available: Bool { library != nil && CLITests.testKit != nil }

    struct ChildResult {
        var status: Int32
        /// False when the child died from a signal (a crash).
        var exited: Bool
        var output: String
        var log: [UInt8]
    }

    /// Runs `oplog ARGUMENTS` with the layer tracking `directory`, logging to `scratch/log` and
    /// treating `scratch/marker` as the marker file. `failure` is an `OPLOG_FAULT_FAIL` value.
    static func run(
        _ arguments: [String], directory: String, scratch: String, failure: String? = nil, armByMarker: Bool = false
    ) throws -> ChildResult {
        let preload: String = try #require(Self.library)
        let result = try runProcess(
            try #require(CLITests.testKit), arguments,
            environment: [
                "LD_PRELOAD": preload,
                "OPLOG_FAULT_DIR": directory,
                "OPLOG_FAULT_LOG": scratch + "/log",
                "OPLOG_FAULT_MARKER": scratch + "/marker",
                "OPLOG_FAULT_FAIL": failure,
                "OPLOG_FAULT_ARM": armByMarker ? "marker" : nil,
            ], timeoutSeconds: hangBoundSeconds, withErrors: false)
        let log = FileManager.default.contents(atPath: scratch + "/log").map { [UInt8]($0) } ?? []
        return ChildResult(status: result.status, exited: !result.signaled, output: result.output, log: log)
    }
}

/// What the children acknowledged, read from the marker records before a crash moment.
struct Acknowledged {
    var heads: [String: Revision] = [:]
    var floors: [String: Revision] = [:]
    /// Snapshot puts acknowledged; the workload never deletes one.
    var snapshots: [String: Set<Revision>] = [:]
    var opCount: Int { heads.values.reduce(0) { $0 + Int($1) } }

    mutating func read(_ marker: String) {
        for line in marker.split(separator: "\n") {
            let parts = line.split(separator: " ")
            guard parts.count == 3, let value = Revision(parts[2]) else { continue }
            let document = String(parts[1])
            if parts[0] == "ack" { heads[document] = max(heads[document] ?? 0, value) }
            if parts[0] == "floor" { floors[document] = max(floors[document] ?? 1, value) }
            if parts[0] == "snap" { snapshots[document, default: []].insert(value) }
        }
    }
}
