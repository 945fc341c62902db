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

    static func run(_ arguments: [String]) throws -> (status: Int32, output: String) {
        let result = try runProcess(try #require(binary), arguments, timeoutSeconds: hangBoundSeconds, withErrors: false)
        return (result.status, result.output)
    }

    @Test(.enabled(if: binary != nil, "needs the built oplog executable (swift build)"))
    func demoVerifyAndDamage() throws {
        let dir = TemporaryDirectory("oplog-cli"); defer { dir.remove() }
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
}
