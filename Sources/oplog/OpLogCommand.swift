import ArgumentParser
import Foundation
import OpLog

@main
struct OpLogCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "oplog",
        abstract: "A durable operation log and snapshot store for collaborative documents, on LMDB.",
        subcommands: [
            Demo.self, Bench.self, Stats.self, Dump.self, Verify.self, Replay.self, Compact.self, Backup.self, Restore.self,
            VerifyScan.self,
        ])

    /// Refuses an unknown subcommand even when `--help` follows it (the argument parser would show
    /// the general help and succeed), so a mistyped or removed command never looks like it ran.
    static func main() async {
        if let first = CommandLine.arguments.dropFirst().first, !first.hasPrefix("-"), first != "help",
            !configuration.subcommands.contains(where: { $0._commandName == first })
        {
            printError("error: unknown subcommand '\(first)'; see 'oplog --help'")
            Foundation.exit(ExitCode.validationFailure.rawValue)
        }
        await main(nil)
    }
}

/// The `--store` option every subcommand takes.
struct StoreOption: ParsableArguments {
    @Option(name: .long, help: "The store's directory (relative paths are from the working directory).")
    var store: String = "./oplog-data"
}

/// Prints to standard error (progress and diagnostics; results go to standard output).
func printError(_ message: String) {
    var standardError = StandardError()
    print(message, to: &standardError)
}

struct StandardError: TextOutputStream {
    mutating func write(_ string: String) {
        FileDescriptorWriter.write(string, to: 2)
    }
}

enum FileDescriptorWriter {
    static func write(_ string: String, to descriptor: Int32) {
        var bytes = Array(string.utf8)
        bytes.withUnsafeMutableBytes { raw in
            var offset = 0
            while offset < raw.count {
                let written = systemWrite(descriptor, raw.baseAddress! + offset, raw.count - offset)
                if written <= 0 { return }
                offset += written
            }
        }
    }
}

/// Runs `body` with the store at `path` open read-only (the CLI's readers never block a running
/// writer), and closes it afterwards.
func withReadOnlyStore<T>(_ path: String, _ body: (OpLogStore) async throws -> T) async throws -> T {
    var options = StoreOptions()
    options.readOnly = true
    let store = try await OpLogStore.open(directory: path, options: options)
    do {
        let result = try await body(store)
        try await store.close()
        return result
    } catch {
        try? await store.close()
        throw error
    }
}

/// Every document ID of a store, in pages of 1,000 (so the listing never holds a long read).
func forEachDocument(_ store: OpLogStore, _ body: (DocumentID) throws -> Void) throws {
    var after: DocumentID?
    while true {
        let page = try store.documents(after: after, limit: 1_000)
        for document in page { try body(document) }
        guard page.count == 1_000 else { return }
        after = page.last
    }
}

func formatBytes(_ bytes: Int) -> String {
    if bytes >= 1 << 20 { return String(format: "%.1f MiB", Double(bytes) / Double(1 << 20)) }
    if bytes >= 1 << 10 { return String(format: "%.1f KiB", Double(bytes) / Double(1 << 10)) }
    return "\(bytes) B"
}
