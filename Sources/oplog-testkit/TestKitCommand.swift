import ArgumentParser
import OpLog

#if canImport(Glibc)
import Glibc
#endif

/// The tests' child processes: not part of the shipped `oplog` command. Each subcommand is run by
/// one test suite (see its own documentation) and never by a user.
@main
struct TestKitCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "oplog-testkit",
        abstract: "Child processes for OpLog's crash, power-loss, I/O-fault, damage and multi-process tests.",
        subcommands: [
            ReadAll.self, CrashChild.self, PowerChild.self, FaultChild.self, HoldReader.self, SubscriberMemory.self, BudgetMemory.self,
            FenceChild.self, FollowerChild.self,
        ])
}

/// The `--store` option every subcommand takes.
struct StoreOption: ParsableArguments {
    @Option(name: .long, help: "The store's directory.")
    var store: String
}

/// Opens a store read-only.
func openReadOnly(_ path: String) async throws -> OpLogStore {
    var options = StoreOptions()
    options.readOnly = true
    return try await OpLogStore.open(directory: path, options: options)
}

/// Writes a whole string to a file descriptor with plain `write` calls: unbuffered, so a kill
/// loses nothing already written, and each call is one record in the fault layer's log.
enum FileDescriptorWriter {
    static func write(_ string: String, to descriptor: Int32) {
        var bytes = Array(string.utf8)
        bytes.withUnsafeMutableBytes { raw in
            var offset = 0
            while offset < raw.count, let base = raw.baseAddress {
                let written = Glibc.write(descriptor, base + offset, raw.count - offset)
                if written <= 0 { return }
                offset += written
            }
        }
    }
}
