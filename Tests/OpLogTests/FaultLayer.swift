import Foundation
import OpLog
import OpLogStorage
import OpLogText
import Testing

/// Running `oplog` children under the fault-injection layer (Sources/CFaultInjection) and reading
/// the log it writes.
enum FaultLayer {
    /// `libOpLogFaultInjection.so`: `OPLOG_FAULT_LIBRARY`, or beside the `oplog` executable.
    static var library: String? {
        if let path = ProcessInfo.processInfo.environment["OPLOG_FAULT_LIBRARY"] { return path }
        guard let binary = CLITests.binary else { return nil }
        let beside = URL(fileURLWithPath: binary).deletingLastPathComponent().appendingPathComponent("libOpLogFaultInjection.so").path
        return FileManager.default.fileExists(atPath: beside) ? beside : nil
    }

    static var available: Bool { library != nil && CLITests.binary != nil }

    struct ChildResult {
        var status: Int32
        /// False when the child died from a signal (a crash).
        var exited: Bool
        var output: String
        var log: [UInt8]
    }

    /// Runs `oplog ARGUMENTS` with the layer tracking `directory`, logging to `scratch/log` and
    /// treating `scratch/marker` as the marker file. `failure` is an `OPLOG_FAULT_FAIL` value.
    static func run(_ arguments: [String], directory: String, scratch: String, failure: String? = nil, armByMarker: Bool = false) throws -> ChildResult {
        let preload: String = try #require(Self.library)
        let result = try runProcess(try #require(CLITests.binary), arguments, environment: [
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

/// One record of the layer's log (see CFaultInjection.h for the layout).
struct SyscallEvent {
    enum Kind: UInt32 {
        case open = 1, write, sync, truncate, rename, unlink, marker, fault
    }

    var kind: Kind
    var flags: UInt32
    var inode: UInt64
    var offset: UInt64
    var payload: ArraySlice<UInt8>

    var created: Bool { flags & 1 != 0 }
    /// A write through an O_DSYNC/O_SYNC descriptor: durable when it returned.
    var synchronous: Bool { flags & 2 != 0 }
    var failed: Bool { flags & 1 != 0 }
    var text: String { String(decoding: payload, as: UTF8.self) }

    /// Parses a whole log; a truncated last record (a killed child) is dropped.
    static func parse(_ bytes: [UInt8]) throws -> [SyscallEvent] {
        func field(_ at: Int, _ size: Int) -> UInt64 {
            (0..<size).reduce(0) { $0 | UInt64(bytes[at + $1]) << (8 * $1) }
        }
        var events: [SyscallEvent] = []
        var offset = 0
        while offset + 32 <= bytes.count {
            let length = Int(field(offset + 24, 8))
            guard offset + 32 + length <= bytes.count else { break }
            let kind = try #require(Kind(rawValue: UInt32(field(offset, 4))), "unknown record kind at offset \(offset)")
            events.append(SyscallEvent(kind: kind, flags: UInt32(field(offset + 4, 4)), inode: field(offset + 8, 8),
                                       offset: field(offset + 16, 8), payload: bytes[(offset + 32)..<(offset + 32 + length)]))
            offset += 32 + length
        }
        return events
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
