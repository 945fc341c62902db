import Foundation
import OpLog
import OpLogStorage
import OpLogTestSupport
import Testing

/// A fresh directory under the system temp dir, removed when the test ends (via `defer`).
struct TemporaryDirectory {
    let path: String

    /// `inMemory`: on tmpfs (`/dev/shm`) when there is one with room to spare, for tests whose point
    /// is not the disk and that sync a lot (the property test). A container's `/dev/shm` may be as
    /// small as 64 MiB, and a full tmpfs answers a first touch of a mapped page (LMDB's lock file)
    /// with SIGBUS instead of an error, so a small or busy one is not used.
    init(_ name: String = "oplog-test", inMemory: Bool = false) {
        let useMemory = inMemory && access("/dev/shm", W_OK) == 0 && (File.availableBytes("/dev/shm") ?? 0) >= Self.inMemoryFreeBytesMin
        path = (useMemory ? "/dev/shm/" : NSTemporaryDirectory()) + "\(name)-\(UUID().uuidString)"
    }

    static let inMemoryFreeBytesMin = 1 << 30

    func remove() { try? FileManager.default.removeItem(atPath: path) }
}

/// Options for tests: small map, no per-append sync unless a test needs it.
func testOptions(durability: Durability = .lastAppendsMayBeLost) -> StoreOptions {
    var options = StoreOptions()
    options.durability = durability
    options.mapSizeInitialBytes = 1 << 20
    options.journalApplyBytes = 1 << 20
    return options
}

func doc(_ name: String) -> DocumentID { try! DocumentID(name) }

func op(_ id: UInt64, _ payload: String = "x", author: String = "a", clientTime: Int64? = nil) -> NewOp {
    NewOp(opID: OpID(high: 0xABCD, low: id), author: Array(author.utf8), clientTimeMilliseconds: clientTime, payload: Array(payload.utf8))
}

/// Opens a store in `directory`, runs `body`, and always closes it.
@discardableResult
func withStore<T>(_ directory: String, options: StoreOptions = testOptions(), _ body: (OpLogStore) async throws -> T) async throws -> T {
    let store = try await OpLogStore.open(directory: directory, options: options)
    do {
        let result = try await body(store)
        try await store.close()
        return result
    } catch {
        try? await store.close()
        throw error
    }
}

/// Raw access to a closed store's LMDB file, for corruption tests: opens the environment directly.
func withRawLMDB<T>(_ directory: String, _ body: (Environment, [String: Database]) throws -> T) throws -> T {
    let environment = try Environment(directory: directory, configuration: EnvironmentConfiguration(mapSizeBytes: 64 << 20))
    defer { environment.close() }
    var databases: [String: Database] = [:]
    for name in StoreTables.names {
        // `epochs` exists from format version 3 on, `feed` and `cursors` from 4; an older store's image lacks them.
        if ["epochs", "feed", "cursors"].contains(name) {
            databases[name] = try? environment.openDatabase(named: name, create: false)
        } else {
            databases[name] = try environment.openDatabase(named: name, create: false)
        }
    }
    return try body(environment, databases)
}

/// Starts `oplog-testkit` with `arguments`: standard output collected, standard error discarded,
/// no backtrace on the crash the child may be meant to have.
func launchTestKit(_ arguments: [String]) throws -> (process: Process, output: PipeCollector) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: try #require(CLITests.testKit))
    process.arguments = arguments
    var environment = ProcessInfo.processInfo.environment
    environment["SWIFT_BACKTRACE"] = "enable=no"
    process.environment = environment
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = FileHandle.nullDevice
    let output = PipeCollector(pipe.fileHandleForReading)
    try process.run()
    return (process, output)
}

/// The repository's root: the nearest directory above this file that holds `Package.swift`.
let repositoryRoot: URL = {
    var url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    while url.path != "/" && !FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) {
        url.deleteLastPathComponent()
    }
    return url
}()

/// The path of `shared/traces` when present (CI has it; a user's clone may not).
func tracesDirectory() -> String? {
    let candidate = repositoryRoot.deletingLastPathComponent().appendingPathComponent("shared/traces").path
    if let override = ProcessInfo.processInfo.environment["OPLOG_TRACES"] { return override }
    return FileManager.default.fileExists(atPath: candidate) ? candidate : nil
}

/// Polls `condition` (every 5 ms) until it holds; fails with `what` after `hangBoundSeconds`.
func waitUntil(_ what: String, _ condition: () throws -> Bool) async throws {
    let deadline = ContinuousClock.now + .seconds(hangBoundSeconds)
    while try !condition() {
        guard ContinuousClock.now < deadline else { throw WaitTimedOut(description: "\(what): not reached in \(Int(hangBoundSeconds)) s") }
        try await Task.sleep(for: .milliseconds(5))
    }
}

struct WaitTimedOut: Error, CustomStringConvertible { let description: String }

/// Whether long variants of tests run (`OPLOG_LONG_TESTS=1`).
var longTests: Bool { ProcessInfo.processInfo.environment["OPLOG_LONG_TESTS"] == "1" }

/// The journal slot file holding the newest records, and the offset where its run ends: for tests
/// that damage the journal's last records.
func newestJournalSlot(_ directory: String) throws -> (path: String, endOffset: Int) {
    let contents = try Journal.read(directory: directory, strict: false)
    let newest = try #require(contents.slots.max { ($0.records.last?.sequence ?? 0) < ($1.records.last?.sequence ?? 0) })
    return (directory + "/" + Journal.slotFileNames[newest.index], newest.endOffset)
}
