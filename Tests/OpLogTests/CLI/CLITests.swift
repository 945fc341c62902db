import Foundation
import OpLog
import OpLogStorage
import OpLogTestSupport
import Testing

/// Goal: the `oplog` command works end to end: `demo` then `verify` is clean; after one byte of a
/// stored record changes, `verify` names the damaged record and exits non-zero; `stats --json` and
/// `dump` read the store.
@Suite struct CLITests {
    /// The built `oplog` executable: `OPLOG_BINARY`, or next to the test bundle.
    static var binary: String? {
        if let path = ProcessInfo.processInfo.environment["OPLOG_BINARY"] { return path }
        let beside = Bundle.main.bundleURL.deletingLastPathComponent().appendingPathComponent("oplog").path
        if FileManager.default.isExecutableFile(atPath: beside) { return beside }
        let debug = repositoryRoot.appendingPathComponent(".build/debug/oplog").path
        return FileManager.default.isExecutableFile(atPath: debug) ? debug : nil
    }

    /// The tests' child-process executable `oplog-testkit`, next to `oplog` (never shipped in it).
    static var testKit: String? {
        guard let binary else { return nil }
        let beside = URL(fileURLWithPath: binary).deletingLastPathComponent().appendingPathComponent("oplog-testkit").path
        return FileManager.default.isExecutableFile(atPath: beside) ? beside : nil
    }

    static func runTestKit(_ arguments: [String]) throws -> (status: Int32, output: String) {
        let result = try runProcess(try #require(testKit), arguments, timeoutSeconds: hangBoundSeconds, withErrors: false)
        return (result.status, result.output)
    }

    /// Runs `oplog ARGUMENTS`; `withErrors` adds standard error to the output.
    static func run(_ arguments: [String], withErrors: Bool = false) throws -> (status: Int32, output: String) {
        let result = try runProcess(try #require(binary), arguments, timeoutSeconds: hangBoundSeconds, withErrors: withErrors)
        return (result.status, result.output)
    }

    @Test(.enabled(if: binary != nil, "needs the built oplog executable (swift build)"))
    func demoVerifyAndDamage() throws {
        let dir = TemporaryDirectory("oplog-cli")
        defer { dir.remove() }
        let demo = try Self.run(["demo", "--store", dir.path, "--patches", "3000", "--snapshot-every", "1000"])
        #expect(demo.status == 0, "\(demo.output)")
        #expect(demo.output.contains("matches the session's final text"))
        let clean = try Self.run(["verify", "--store", dir.path])
        #expect(clean.status == 0, "\(clean.output)")
        let stats = try Self.run(["stats", "--store", dir.path, "--json"])
        let json = try JSONSerialization.jsonObject(with: Data(stats.output.utf8)) as? [String: Any]
        let documents = json?["documents"] as? [[String: Any]]
        #expect(documents?.first?["id"] as? String == "generated")
        #expect(documents?.first?["head"] as? Int == 3000)
        // How far the scheduler truncated before the demo closed depends on timing; the dump must
        // hold exactly the retained ops.
        let floor = documents?.first?["floor"] as? Int ?? 0
        #expect(floor > 1, "the demo's scheduler never truncated")
        let dump = try Self.run(["dump", "--store", dir.path, "--document", "generated", "--json"])
        #expect(dump.output.split(separator: "\n").count == 3000 - floor + 1)

        // Change one byte in the body of the first op chunk.
        let revision: UInt64 = try withRawLMDB(dir.path) { env, dbs in
            try env.write { txn in
                let entry = try #require(try txn.withCursor(dbs["ops"]!) { try $0.first() })
                var value = entry.value
                value[value.count / 2] ^= 0x01
                try txn.put(dbs["ops"]!, key: entry.key, value: value)
                return entry.key.suffix(8).reduce(0) { $0 << 8 | UInt64($1) }
            }
        }
        let damaged = try Self.run(["verify", "--store", dir.path])
        #expect(damaged.status == 1)
        #expect(damaged.output.contains("DAMAGED ops document 'generated' revision \(revision)"), "\(damaged.output)")
        let missing = try Self.run(["verify", "--store", dir.path + "-missing"])
        #expect(missing.status == 2)
    }

    @Test(.enabled(if: binary != nil, "needs the built oplog executable (swift build)"))
    func mistakesGiveClearErrorsNotTrapsOrSilence() throws {
        // A store written by a longer session, a mistyped document ID, a test child's name: each a
        // clear message and a non-zero exit, never a trap or an empty success.
        let dir = TemporaryDirectory("oplog-cli-mistakes")
        defer { dir.remove() }
        #expect(try Self.run(["demo", "--store", dir.path, "--patches", "300", "--no-compaction"]).status == 0)
        let shorter = try Self.run(["demo", "--store", dir.path, "--patches", "100"], withErrors: true)
        #expect(shorter.status != 0 && shorter.output.contains("already holds 300 ops"), "\(shorter.output)")
        #expect(!shorter.output.contains("Fatal error"), "\(shorter.output)")
        for command in [["replay", "--document", "nope"], ["replay", "--document", "nope", "--sha256"], ["dump", "--document", "nope"]] {
            let result = try Self.run(command + ["--store", dir.path], withErrors: true)
            #expect(result.status != 0 && result.output.contains("no document 'nope'"), "\(command): \(result.output)")
        }
        for child in ["read-all", "crash-child", "power-child", "fault-child", "hold-reader", "subscriber-memory", "budget-memory"] {
            let result = try Self.run([child, "--help"], withErrors: true)
            #expect(result.status != 0 && result.output.contains("unknown subcommand '\(child)'"), "\(child): \(result.output)")
        }
    }

    @Test(.enabled(if: binary != nil, "needs the built oplog executable (swift build)"))
    func verifyWarnsAboutFilesOthersCanRead() throws {
        // The store is created owner-only; verify warns once a file is made readable by others.
        let dir = TemporaryDirectory("oplog-cli-permissions")
        defer { dir.remove() }
        #expect(try Self.run(["demo", "--store", dir.path, "--patches", "50", "--no-compaction"]).status == 0)
        #expect(File.permissions(of: dir.path) == 0o700)
        for name in ["data.mdb", "lock.mdb", "oplog.lock"] + Journal.slotFileNames {
            #expect(
                File.permissions(of: dir.path + "/" + name) == 0o600,
                "\(name) is \(String(File.permissions(of: dir.path + "/" + name) ?? 0, radix: 8))")
        }
        let clean = try Self.run(["verify", "--store", dir.path])
        #expect(clean.status == 0 && !clean.output.contains("WARNING"), "\(clean.output)")
        try File.setPermissions(dir.path + "/data.mdb", 0o644)
        let warned = try Self.run(["verify", "--store", dir.path])
        #expect(
            warned.status == 0 && warned.output.contains("WARNING \(dir.path)/data.mdb is accessible to other users"), "\(warned.output)")
    }
}
