import ArgumentParser
import Crypto
import OpLog
import OpLogText

struct Replay: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print a text document at a revision (latest snapshot at or below it + the ops after it).")

    @OptionGroup var storeOption: StoreOption

    @Option(help: "The document.")
    var document: String

    @Option(help: "The revision (default: the head).")
    var revision: UInt64?

    @Flag(help: "Print the SHA-256 of the text's UTF-8 bytes (hex) instead of the text.")
    var sha256 = false

    func run() async throws {
        try await withReadOnlyStore(storeOption.store) { store in
            let id = try DocumentID(document)
            guard try store.info(of: id) != nil else { throw ValidationError("no document '\(document)' in \(storeOption.store)") }
            let (text, _) = try store.replay(id, to: revision, with: TextReducer())
            if sha256 {
                print(SHA256.hash(data: Array(text.text.utf8)).map { String(format: "%02x", $0) }.joined())
            } else {
                print(text.text, terminator: "")
            }
        }
    }
}

struct Compact: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a compacted copy of a store (LMDB's compacting copy plus the journal), then verify it.")

    @OptionGroup var storeOption: StoreOption

    @Option(help: "A new or empty directory for the copy.")
    var output: String

    func run() async throws {
        try await copyAndVerify(from: storeOption.store, to: output, compact: true, verb: "compacted")
    }
}

struct Backup: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Copy a live store consistently (every op acknowledged before it started), then verify the copy.")

    @OptionGroup var storeOption: StoreOption

    @Option(help: "A new or empty directory for the copy.")
    var output: String

    func run() async throws {
        try await copyAndVerify(from: storeOption.store, to: output, compact: false, verb: "backed up")
    }
}

struct Restore: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Restore a backup into a new or empty store directory, then verify it.")

    @Option(help: "The backup directory.")
    var input: String

    @OptionGroup var storeOption: StoreOption

    func run() async throws {
        try await copyAndVerify(from: input, to: storeOption.store, compact: false, verb: "restored")
    }
}

/// Copies with `backup`, then checks the copy: `verify`, and every document replayed with the text reducer.
func copyAndVerify(from source: String, to destination: String, compact: Bool, verb: String) async throws {
    let clock = ContinuousClock()
    let started = clock.now
    let report = try await withReadOnlyStore(source) { store in try await store.backup(to: destination, compact: compact) }
    let seconds = (clock.now - started) / .seconds(1)
    print(
        "\(verb) \(source) to \(destination) in \(String(format: "%.2f", seconds)) s: data file "
            + "\(formatBytes(report.dataFileBytes)), journal \(formatBytes(report.journalBytes)) (\(report.journalRecords) "
                + "records, \(report.journalOps) ops after applied sequence \(report.appliedSequence))"
    )
    let (verification, replayed) = try await withReadOnlyStore(destination) { copy in
        let verification = try await copy.verify()
        var replayed = 0
        try forEachDocument(copy) { document in
            _ = try copy.replay(document, with: TextReducer())
            replayed += 1
        }
        return (verification, replayed)
    }
    for problem in verification.problems { print("DAMAGED \(problem)") }
    print(
        "copy: verify \(verification.isClean ? "clean" : "found \(verification.problems.count) problem(s)"), \(replayed) documents replayed"
    )
    if !verification.isClean { throw ExitCode(1) }
}
