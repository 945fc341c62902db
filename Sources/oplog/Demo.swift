import ArgumentParser
import Foundation
import OpLog
import OpLogText

/// Appends an editing session one patch = one op = one durable append, with snapshots and
/// truncation, reads it back and prints the store's figures. Resumable: run it again after a kill.
struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Append an editing session to a store, one durable append per patch.")

    @OptionGroup var storeOption: StoreOption

    @Option(help: "An editing trace (.json.gz); without it, a seeded generated session is used.")
    var trace: String?

    @Option(help: "Take a snapshot every N ops of the document.")
    var snapshotEvery: Int = 1_000

    @Option(help: "Durability: full, lastAppendsMayBeLost or mayCorruptOnSystemCrash.")
    var durability: String = "full"

    @Option(help: "Patches in the generated session (without --trace).")
    var patches: Int = 20_000

    @Flag(help: "Append without the compaction scheduler (no snapshots, nothing truncated).")
    var noCompaction = false

    func run() async throws {
        guard snapshotEvery >= 1 else { throw ValidationError("--snapshot-every must be at least 1") }
        guard let mode = Durability(rawValue: durability) else { throw ValidationError("unknown durability '\(durability)'") }
        let session: EditingTrace
        if let trace {
            session = try EditingTrace.load(path: trace)
            print("trace: \(trace) (\(session.patches.count) patches)")
        } else {
            guard (1...10_000_000).contains(patches) else { throw ValidationError("--patches must be 1 ... 10,000,000") }
            session = EditingTrace.generated(patchCount: patches)
            print("no --trace given: using a generated editing session (seed 42, \(session.patches.count) patches)")
        }
        var options = StoreOptions()
        options.durability = mode
        let store = try await OpLogStore.open(directory: storeOption.store, options: options)
        var policy = CompactionPolicy()
        policy.snapshotEveryOps = snapshotEvery
        policy.keepOps = snapshotEvery / 2
        let scheduler = try CompactionScheduler(store: store, policy: policy, reducer: TextReducer())
        do {
            if !noCompaction { try scheduler.start() }
            try await append(session, to: store, scheduler: scheduler)
            try await store.close()
        } catch {
            await scheduler.stop()
            try? await store.close()
            throw error
        }
    }

    private func append(_ session: EditingTrace, to store: OpLogStore, scheduler: CompactionScheduler) async throws {
        let document = try DocumentID(session.name)
        let reducer = TextReducer()
        let resumed = try store.replay(document, with: reducer)
        var text = resumed.state
        let start = Int(resumed.revision)
        guard start <= session.patches.count else {
            throw ValidationError(
                "'\(document)' in \(storeOption.store) already holds \(start) ops, more than this session's "
                    + "\(session.patches.count) patches: it was written by another session; use another --store"
            )
        }
        if start > 0 { print("resuming '\(document)' at revision \(start) (head = patches applied)") }
        let clock = ContinuousClock()
        let began = clock.now
        for index in start..<session.patches.count {
            let patch = session.patches[index]
            try text.apply(patch)
            let op = NewOp(
                opID: Self.opID(document: session.name, patchIndex: index), author: Array("demo".utf8),
                clientTimeMilliseconds: SystemClock().now, payload: patch.jsonBytes())
            let result = try await store.append([op], to: document)
            let revision = result.revisions[0]
            guard revision == UInt64(index + 1) else {
                throw ValidationError("revision \(revision) for patch \(index + 1): the document holds other ops")
            }
            if (index + 1) % 20_000 == 0 { printError("… \(index + 1)/\(session.patches.count) patches") }
        }
        let appended = session.patches.count - start
        let seconds = (clock.now - began) / .seconds(1)
        await scheduler.drain()
        await scheduler.stop()
        let compaction = scheduler.statistics
        print(
            "appended \(appended) ops in \(String(format: "%.2f", seconds)) s "
                + "(\(appended > 0 ? Int(Double(appended) / max(seconds, 1e-9)) : 0) appends/s, durability \(durability), one "
                    + "append per patch)"
        )
        print(
            "compaction scheduler (snapshot every \(snapshotEvery) ops, keep \(snapshotEvery / 2) below it): "
                + "\(compaction.snapshotsWritten) snapshots (\(formatBytes(compaction.snapshotBytesWritten))), "
                    + "\(compaction.opsTruncated) ops truncated, \(compaction.snapshotsDeleted) old snapshots deleted, "
                        + "\(compaction.failures) failures"
        )
        try await readBack(store, document, session: session)
    }

    private func readBack(_ store: OpLogStore, _ document: DocumentID, session: EditingTrace) async throws {
        guard let info = try store.info(of: document) else { return }
        let replayed = try store.replay(document, with: TextReducer()).state.text
        let matches = session.endContent.map { $0 == replayed } ?? true
        print(
            "document '\(document)': head \(info.head), floor \(info.floor), \(info.opCount) ops retained "
                + "(\(formatBytes(info.storedBytes))), snapshots at \(info.snapshots.map(\.revision))"
        )
        print(
            "replay to head: \(replayed.unicodeScalars.count) characters, \(matches ? "matches" : "DOES NOT MATCH") the "
                + "session's final text"
        )
        let tail = try store.ops(of: document, from: info.head > 2 ? info.head - 2 : 1, limit: 3)
        for op in tail {
            print("  op \(op.revision): \(String(decoding: op.payload, as: UTF8.self))")
        }
        try await store.checkpoint()
        let stats = try store.statistics()
        print(
            "store: data file \(formatBytes(stats.dataFileBytes)) (\(formatBytes(stats.dataFileAllocatedBytes)) allocated), map "
                + "\(formatBytes(stats.mapSizeBytes)), \(stats.freePages) free pages, journal \(formatBytes(stats.journalBytes))"
        )
        if !matches { throw ExitCode(1) }
    }

    /// A stable op ID per (document, patch index): rerunning after a kill repeats the same IDs, so the
    /// append that was in flight is recognised as a retry.
    static func opID(document: String, patchIndex: Int) -> OpID {
        EditingTrace.opID(document: document, patchIndex: patchIndex)
    }
}
