import ArgumentParser
import Foundation
import OpLog

/// The child of the fencing crash test (hidden): raises a scope's epoch and appends one op with it
/// (both acknowledged durably), prints `raised`, then kills itself with SIGKILL, so the raise exists
/// only in the journal: no apply, no close.
struct FenceChild: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fence-child", abstract: "Raise an epoch, append, then die (fencing tests).", shouldDisplay: false)

    @OptionGroup var storeOption: StoreOption
    @Option var scope: String
    @Option var epoch: UInt64
    @Option var document: String

    func run() async throws {
        var options = StoreOptions()
        options.durability = .full
        options.journalApplyBytes = 64 << 20  // nothing reaches LMDB before the kill
        let store = try await OpLogStore.open(directory: storeOption.store, options: options)
        try await store.raiseEpoch(epoch, for: FencingScope(scope))
        let id = try DocumentID(document)
        _ = try await store.append(
            [NewOp(opID: OpID(high: 0xFE, low: epoch), author: Array("fence".utf8), payload: Array("x".utf8))], to: id,
            epoch: epoch + 1)
        FileDescriptorWriter.write("raised\n", to: 1)
        kill(getpid(), SIGKILL)
    }
}
