import ArgumentParser
import Foundation
import OpLog
import OpLogTestSupport
import OpLogText

#if canImport(Glibc)
import Glibc
#endif

/// The child of the power-loss tests (hidden), run under the fault-injection layer: appends
/// `FaultWorkload` ops to several documents from one task each (so group commit coalesces them),
/// snapshots and truncates every 40 appends, checkpoints now and then, and closes.
///
/// Each acknowledgement is written to `--ack-file` right after the call returns: the layer logs that
/// write as a marker between the system calls around it, which is what lets the test count an ack
/// only for crash moments after it. Lines: `ack DOC REV` (every revision up to REV),
/// `snap DOC REV`, `floor DOC FLOOR`, `checkpoint`, `done`.
struct PowerChild: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "power-child", abstract: "Append, snapshot, truncate and apply under the fault layer (power-loss tests).",
        shouldDisplay: false)

    @OptionGroup var storeOption: StoreOption
    @Option var documents: Int = 3
    @Option var appends: Int = 120
    @Option var durability: String = "full"
    @Option var ackFile: String
    /// Only open writable and close (the upgrade's power-loss test: an open upgrades a version 1 store).
    @Flag var openOnly = false

    func run() async throws {
        guard let mode = Durability(rawValue: durability), (1...16).contains(documents), (1...100_000).contains(appends) else {
            throw ValidationError("bad arguments")
        }
        var options = StoreOptions()
        options.durability = mode
        options.journalApplyBytes = 1 << 20
        options.mapSizeInitialBytes = 1 << 20
        let store = try await OpLogStore.open(directory: storeOption.store, options: options)
        let marker = try MarkerFile(path: ackFile)
        if openOnly {
            try await store.close()
            marker.write("done\n")
            return
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<documents {
                group.addTask { try await Self.work(store, index: index, appends: appends, marker: marker) }
            }
            try await group.waitForAll()
        }
        try await store.close()
        marker.write("done\n")
    }

    private static func work(_ store: OpLogStore, index: Int, appends: Int, marker: MarkerFile) async throws {
        let name = "power-\(index)"
        let document = try DocumentID(name)
        var head = try store.head(of: document)
        for step in 0..<appends {
            let count = UInt64(1 + step % 3)
            let ops = (head + 1...head + count).map { FaultWorkload.op(document: name, revision: $0, author: UInt8(index)) }
            let result = try await store.append(ops, to: document)
            guard result.revisions == Array(head + 1...head + count) else {
                throw ValidationError("\(name): expected revisions from \(head + 1), got \(result.revisions)")
            }
            head += count
            marker.write("ack \(name) \(head)\n")
            if step % 40 == 39 && head > 30 {
                let revision = head - 10
                try await store.putSnapshot(FaultWorkload.snapshot(document: name, revision: revision), of: document, at: revision)
                marker.write("snap \(name) \(revision)\n")
                try await store.truncate(document, below: revision + 1)
                marker.write("floor \(name) \(revision + 1)\n")
            }
            if index == 0 && step % 20 == 19 {
                try await store.checkpoint()
                marker.write("checkpoint\n")
            }
        }
    }
}

/// The child of the I/O-fault tests (hidden): opens a prepared store (document `a` at revision 30
/// with a snapshot at 20), arms the fault layer through its marker file, runs one operation,
/// disarms, then tries a follow-up append and checkpoint and closes. `recover` arms before the open
/// (a store left by `leave-unapplied`, whose revisions 31...33 only the journal holds). Prints `result …`,
/// `followup-append …`, `followup-checkpoint …`, `close …`, each `ok` or `error CASE`.
struct FaultChild: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fault-child", abstract: "Run one operation with an armed fault layer (I/O-fault tests).", shouldDisplay: false)

    @OptionGroup var storeOption: StoreOption
    @Option var operation: String
    @Option var markerFile: String

    func run() async throws {
        let marker = try MarkerFile(path: markerFile)
        let document = try DocumentID("a")
        let recovering = operation == "recover"
        // Recovery is the open itself: the faults are armed before it.
        if recovering { marker.write("arm\n") }
        let opened = Result { () throws(OpLogError) -> OpLogStore in
            try OpLogStore.open(directory: storeOption.store, options: StoreOptions())
        }
        if recovering, case .failure(let error) = opened {
            marker.write("disarm\n")
            report("result error \(Self.caseName(error))")
            return
        }
        let store = try opened.get()
        if operation == "leave-unapplied" {
            // Prepares the recover case: acknowledged ops that only the journal holds. Exiting
            // without close leaves them unapplied, as a killed process would.
            _ = try await store.append((31...33).map { FaultWorkload.op(document: "a", revision: $0, author: 1) }, to: document)
            report("result ok")
            Glibc.exit(0)
        }
        if operation == "checkpoint" || operation == "close" {
            _ = try await store.append((31...33).map { FaultWorkload.op(document: "a", revision: $0, author: 1) }, to: document)
        }
        if !recovering { marker.write("arm\n") }
        let result = recovering ? "ok" : await Self.outcome { try await perform(store, document) }
        marker.write("disarm\n")
        report("result \(result)")
        guard operation != "close" else { return }
        let followUp = FaultWorkload.op(document: "b", revision: 1, author: 2)
        report("followup-append \(await Self.outcome { _ = try await store.append([followUp], to: DocumentID("b")) })")
        report("followup-checkpoint \(await Self.outcome { try await store.checkpoint() })")
        report("close \(await Self.outcome { try await store.close() })")
    }

    private func perform(_ store: OpLogStore, _ document: DocumentID) async throws {
        switch operation {
        case "append":
            _ = try await store.append((31...33).map { FaultWorkload.op(document: "a", revision: $0, author: 1) }, to: document)
        case "checkpoint":
            try await store.checkpoint()
        case "close":
            try await store.close()
        case "snapshot":
            try await store.putSnapshot(FaultWorkload.snapshot(document: "a", revision: 25), of: document, at: 25)
        case "truncate":
            try await store.truncate(document, below: 21)
            report("truncated")
            try await store.checkpoint()
        default:
            throw ValidationError("unknown operation \(operation)")
        }
    }

    private func report(_ line: String) { FileDescriptorWriter.write(line + "\n", to: 1) }

    /// `ok`, or `error CASE` naming the OpLogError case (`untyped` for anything else).
    private static func outcome(_ body: () async throws -> Void) async -> String {
        do {
            try await body()
            return "ok"
        } catch let error as OpLogError {
            let name = "\(error)".prefix { $0 != ":" }
            return "error \(caseName(error)) \(name)"
        } catch {
            return "error untyped \(error)"
        }
    }

    private static func caseName(_ error: OpLogError) -> String {
        switch error {
        case .reopenRequired: return "reopenRequired"
        case .storage: return "storage"
        case .storageFull: return "storageFull"
        case .corruption: return "corruption"
        case .closed: return "closed"
        default: return "other"
        }
    }
}

/// The file the children write acknowledgements to. Each line is one `write` call, so the fault
/// layer logs it as one marker at the exact point between the store's system calls.
final class MarkerFile: Sendable {
    private let descriptor: Int32

    init(path: String) throws {
        descriptor = Glibc.open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw ValidationError("cannot open \(path): errno \(errno)") }
    }

    func write(_ line: String) { FileDescriptorWriter.write(line, to: descriptor) }
}
