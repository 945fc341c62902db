import Foundation
import OpLog
import OpLogTestSupport
import OpLogText
import Synchronization
import Testing

/// Goal: a process killed at any moment (SIGKILL) while it appends from several tasks and the
/// compaction scheduler snapshots and truncates leaves a store that opens, passes `verify`, holds
/// every op it acknowledged at its revision, gap-free, and replays every document to the right
/// text. SIGKILL keeps the page cache, so this shows atomicity, not durability (power loss is the
/// reliability suite's). Method: `oplog crash-child` reports acknowledgements on a pipe; the parent
/// kills it after a random delay (seed printed), then checks; the next child resumes the store.
@Suite struct CrashTests {
    @Test(.enabled(if: CLITests.testKit != nil, "needs the built oplog executable"))
    func killedWriterLosesNothingAcknowledged() async throws {
        let seed = ProcessInfo.processInfo.environment["OPLOG_SEED"].flatMap(UInt64.init) ?? UInt64.random(in: 1...UInt64.max)
        let kills = longTests ? 3_000 : 100
        let patchCount = 50_000
        let session = EditingTrace.generated(seed: 99, patchCount: patchCount, computeEndContent: false)
        let documents = (0..<4).map { "crash-\($0)" }
        let dir = TemporaryDirectory("oplog-crash")
        defer { dir.remove() }
        var random = SplitMix64(seed: seed)
        var acknowledged: [String: Revision] = [:]
        var texts = documents.map { _ in TextBuffer() }
        var applied = documents.map { _ in 0 }
        var survivedKills = 0
        for kill in 0..<kills {
            let lines = try runChild(dir.path, killAfterMilliseconds: 20 + Int(random.next() % 150))
            for line in lines {
                let parts = line.split(separator: " ")
                guard parts.count == 3, parts[0] == "ack", let revision = Revision(parts[2]) else { continue }
                acknowledged[String(parts[1])] = max(acknowledged[String(parts[1])] ?? 0, revision)
            }
            var options = StoreOptions()
            options.journalApplyBytes = 1 << 20
            let store = try await OpLogStore.open(directory: dir.path, options: options)
            let report = try await store.verify()
            #expect(report.isClean, "seed \(seed) kill \(kill): \(report.problems)")
            for (index, name) in documents.enumerated() {
                let document = try DocumentID(name)
                let info = try store.info(of: document)
                let head = info?.head ?? 0
                #expect(
                    head >= acknowledged[name] ?? 0,
                    "seed \(seed) kill \(kill): \(name) head \(head) < acknowledged \(acknowledged[name] ?? 0)")
                guard let info, head > 0 else { continue }
                // Every retained op is the patch of its revision, with the op ID derived from it.
                var next = info.floor
                while next <= head {
                    let ops = try store.ops(of: document, from: next, limit: 1_000)
                    for op in ops {
                        #expect(op.payload == session.patches[Int(op.revision) - 1].jsonBytes(), "seed \(seed): \(name)@\(op.revision)")
                        #expect(op.opID == Self.opID(document: name, patchIndex: Int(op.revision) - 1))
                    }
                    #expect(!ops.isEmpty && ops.first?.revision == next, "seed \(seed): gap in \(name) at \(next)")
                    if ops.isEmpty { break }
                    next += UInt64(ops.count)
                }
                while applied[index] < Int(head) {
                    try texts[index].apply(session.patches[applied[index]])
                    applied[index] += 1
                }
                let replayed = try store.replay(document, with: TextReducer())
                #expect(replayed.state.text == texts[index].text, "seed \(seed) kill \(kill): replay of \(name) differs")
            }
            try await store.close()
            survivedKills += 1
        }
        print("crash test: \(survivedKills) kills survived, seed \(seed), heads \(documents.map { acknowledged[$0] ?? 0 })")
        #expect(documents.allSatisfy { (acknowledged[$0] ?? 0) > 0 }, "the children acknowledged nothing: the kills proved nothing")
    }

    /// Runs `oplog crash-child`, kills it after the delay, returns the lines it printed.
    func runChild(_ store: String, killAfterMilliseconds delay: Int, extraArguments: [String] = []) throws -> [String] {
        let (process, output) = try launchTestKit(
            ["crash-child", "--store", store, "--documents", "4", "--patches", "50000"] + extraArguments)
        usleep(useconds_t(delay * 1000))
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        let data = output.waitForEnd()
        // The last line may be cut by the kill; only whole lines count.
        return String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: true).dropLast().map(String.init)
    }

    /// The op ID `oplog demo` and `crash-child` derive from (document, patch index).
    static func opID(document: String, patchIndex: Int) -> OpID {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in document.utf8 { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
        return OpID(high: hash, low: UInt64(patchIndex))
    }
}
