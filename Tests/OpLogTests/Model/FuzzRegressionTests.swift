import Foundation
import FuzzTargets
import OpLogTestSupport
import Testing

/// Goal: every fuzz input kept in the repository, the seeds in Fuzz/Corpus and the findings in
/// Fuzz/Regressions, still passes its harness in the normal test run, without libFuzzer.
///
/// Method: each input file goes through the harness entry point the fuzzer calls (the FuzzTargets
/// module, without libFuzzer or sanitizers). A file named `known-*`
/// reproduces an open known issue (Fuzz/README.md): it runs with that issue's tolerance off and must
/// still fail. When it starts passing, the issue is fixed: drop `known-` from its name.
@Suite(.serialized) struct FuzzRegressionTests {
    static let fuzzDirectory = repositoryRoot.appendingPathComponent("Fuzz")

    /// The seed and regression inputs of `target`, named by their path under Fuzz/.
    static func inputs(_ target: String) -> [(name: String, bytes: [UInt8])] {
        var found: [(name: String, bytes: [UInt8])] = []
        for folder in ["Corpus", "Regressions"] {
            let directory = fuzzDirectory.appendingPathComponent(folder).appendingPathComponent(target)
            let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
            let only = ProcessInfo.processInfo.environment["OPLOG_FUZZ_INPUT"]  // reproduce one input by name
            for name in names.sorted() where !name.hasPrefix(".") && (only.map { name.contains($0) } ?? true) {
                guard let data = FileManager.default.contents(atPath: directory.appendingPathComponent(name).path) else { continue }
                found.append(("\(folder)/\(target)/\(name)", [UInt8](data)))
            }
        }
        return found
    }

    @Test func decodeInputs() throws {
        let inputs = Self.inputs("decode")
        #expect(!inputs.isEmpty || ProcessInfo.processInfo.environment["OPLOG_FUZZ_INPUT"] != nil)
        for (name, bytes) in inputs {
            do { try FuzzDecode.run(bytes) } catch { Issue.record("\(name): \(error)") }
        }
    }

    @Test func modelInputs() async throws {
        let inputs = Self.inputs("model")
        #expect(!inputs.isEmpty || ProcessInfo.processInfo.environment["OPLOG_FUZZ_INPUT"] != nil)
        for (name, bytes) in inputs {
            do { try await FuzzModel.run(bytes) } catch { Issue.record("\(name): \(error)") }
        }
        FuzzScratch.remove(FuzzScratch.root)
    }

    @Test func damageInputs() async throws {
        let inputs = Self.inputs("damage")
        #expect(!inputs.isEmpty || ProcessInfo.processInfo.environment["OPLOG_FUZZ_INPUT"] != nil)
        for (name, bytes) in inputs {
            if name.split(separator: "/").last!.hasPrefix("known-") {
                await withKnownIssue("\(name) reproduces a known issue (Fuzz/README.md)") {
                    try await FuzzDamage.run(bytes, tolerateKnownIssues: false)
                }
            } else {
                do { try await FuzzDamage.run(bytes) } catch { Issue.record("\(name): \(error)") }
            }
        }
        FuzzScratch.remove(FuzzScratch.root)
    }
}
