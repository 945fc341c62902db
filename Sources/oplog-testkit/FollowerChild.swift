import ArgumentParser
import Foundation
import OpLog

/// The child of the follower crash test (hidden): opens `--store` as a follower and applies the
/// changes of `--changes` (each a 4-byte little-endian length, then `Change.encode()`'s bytes) from
/// its newest position on, one `apply` each, printing `applied <sequence>` after each returns,
/// until it is killed or has applied them all (`done`).
struct FollowerChild: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "follower-child", abstract: "Apply a primary's changes until killed (follower crash test).", shouldDisplay: false)

    @OptionGroup var storeOption: StoreOption
    @Option var changes: String

    func run() async throws {
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: changes)))
        var decoded: [Change] = []
        var offset = 0
        while offset + 4 <= bytes.count {
            let length = bytes[offset..<(offset + 4)].enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
            decoded.append(try Change(decoding: Array(bytes[(offset + 4)..<(offset + 4 + length)])))
            offset += 4 + length
        }
        var options = StoreOptions()
        options.role = .follower
        options.feedRetentionBytes = 64 << 20
        options.journalApplyBytes = 1 << 20
        let store = try await OpLogStore.open(directory: storeOption.store, options: options)
        let start = Int(try store.latestPosition()?.sequence ?? 0)
        for change in decoded.dropFirst(start) {
            try await store.apply(change)
            FileDescriptorWriter.write("applied \(change.position.sequence)\n", to: 1)
        }
        try await store.close()
        FileDescriptorWriter.write("done\n", to: 1)
    }
}
