import ArgumentParser
import Foundation
import OpLog
import OpLogText

/// The child of the crash tests (hidden): appends generated editing sessions to several documents
/// from several tasks, with the compaction scheduler running, and reports every acknowledged op on
/// standard output as `ack <document> <revision>` until it is killed. Each run resumes at the heads.
struct CrashChild: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "crash-child", abstract: "Append and compact until killed (crash tests).", shouldDisplay: false)

    @OptionGroup var storeOption: StoreOption

    @Option var documents: Int = 4
    @Option var patches: Int = 4_000
    @Option var durability: String = "full"
    /// Keep a change feed (the feed's crash test).
    @Flag var feed = false

    func run() async throws {
        guard let mode = Durability(rawValue: durability), (1...64).contains(documents) else { throw ValidationError("bad arguments") }
        var options = StoreOptions()
        options.durability = mode
        options.journalApplyBytes = 1 << 20
        if feed { options.feedRetentionBytes = 64 << 20 }
        let store = try await OpLogStore.open(directory: storeOption.store, options: options)
        var policy = CompactionPolicy()
        policy.snapshotEveryOps = 150
        policy.keepOps = 40
        let scheduler = try CompactionScheduler(store: store, policy: policy, reducer: TextReducer())
        try scheduler.start()
        let session = EditingTrace.generated(seed: 99, patchCount: patches, computeEndContent: false)
        let output = AcknowledgementPrinter()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<documents {
                group.addTask {
                    let document = try DocumentID("crash-\(index)")
                    var next = Int(try store.head(of: document))
                    while next < session.patches.count {
                        // Up to three patches per append: one op each, acknowledged together.
                        let count = min(1 + next % 3, session.patches.count - next)
                        let ops = (next..<(next + count)).map { patchIndex in
                            NewOp(
                                opID: EditingTrace.opID(document: document.value, patchIndex: patchIndex), author: [UInt8(index)],
                                payload: session.patches[patchIndex].jsonBytes())
                        }
                        let result = try await store.append(ops, to: document)
                        output.acknowledge(document.value, result.revisions)
                        next += count
                    }
                }
            }
            try await group.waitForAll()
        }
        await scheduler.drain()
        await scheduler.stop()
        try await store.close()
        output.finish()
    }
}

/// Writes acknowledgement lines straight to the pipe (no buffering a kill could lose).
final class AcknowledgementPrinter: Sendable {
    func acknowledge(_ document: String, _ revisions: [Revision]) {
        FileDescriptorWriter.write(revisions.map { "ack \(document) \($0)\n" }.joined(), to: 1)
    }

    func finish() { FileDescriptorWriter.write("done\n", to: 1) }
}
