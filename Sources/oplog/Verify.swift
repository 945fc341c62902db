import ArgumentParser
import Foundation
import OpLog
import OpLogText

/// `oplog verify`: runs the scan in a child process, so that damage to LMDB's own pages that makes
/// LMDB crash is reported as damage instead of killing the command. Exit 0 clean, 1 problems, 2
/// could not run.
struct Verify: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check every checksum and invariant (exit 0 clean, 1 problems, 2 could not run).")

    @OptionGroup var storeOption: StoreOption

    @Flag(help: "Skip checking snapshots against the log (they are replayed with the text reducer).")
    var noReplay = false

    func run() async throws {
        let child = Process()
        child.executableURL = URL(
            fileURLWithPath: CommandLine.arguments[0].contains("/")
                ? CommandLine.arguments[0] : "/proc/self/exe")
        child.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        child.arguments = ["verify-scan", "--store", storeOption.store] + (noReplay ? ["--no-replay"] : [])
        var environment = ProcessInfo.processInfo.environment
        environment["SWIFT_BACKTRACE"] = "enable=no"
        child.environment = environment
        do { try child.run() } catch {
            printError("verify: could not start the scanning process: \(error)")
            throw ExitCode(2)
        }
        child.waitUntilExit()
        if child.terminationReason == .uncaughtSignal {
            print("verify: the scan crashed with signal \(child.terminationStatus): LMDB's own page structure is damaged")
            throw ExitCode(1)
        }
        throw ExitCode(child.terminationStatus)
    }
}

/// The scanning child of `verify` (hidden).
struct VerifyScan: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify-scan", abstract: "Run the verification scan in this process.", shouldDisplay: false)

    @OptionGroup var storeOption: StoreOption

    @Flag var noReplay = false

    func run() async throws {
        var options = StoreOptions()
        options.readOnly = true
        let store: OpLogStore
        do { store = try await OpLogStore.open(directory: storeOption.store, options: options) } catch {
            if case .corruption = error {
                print("verify: \(error)")
                throw ExitCode(1)
            }
            printError("verify: cannot open the store: \(error)")
            throw ExitCode(2)
        }
        var report = try store.verify { checked in printError("verify: \(checked) records checked …") }
        var documentsReplayed = 0
        if !noReplay {
            // Snapshots against the log: replay from each snapshot to the next and compare.
            try forEachDocument(store) { document in
                do { report.problems += try store.verifySnapshots(of: document, with: TextReducer()) } catch {
                    report.problems.append(
                        VerificationProblem(location: CorruptionLocation(area: "snapshots", document: document), detail: "\(error)"))
                }
                documentsReplayed += 1
            }
        }
        try? await store.close()
        for warning in report.warnings { print("WARNING \(warning)") }
        for problem in report.problems { print("DAMAGED \(problem)") }
        if !noReplay { print("verify: snapshots of \(documentsReplayed) documents checked against their logs (text reducer)") }
        print(
            "verify: \(report.documentsChecked) documents, \(report.chunksChecked) op chunks (\(report.opsChecked) ops), "
                + "\(report.snapshotsChecked) snapshots, \(report.dedupeRecordsChecked) dedupe records: "
                    + "\(report.isClean ? "clean" : "\(report.problems.count) problem(s)")"
        )
        if !report.isClean { throw ExitCode(1) }
    }
}
