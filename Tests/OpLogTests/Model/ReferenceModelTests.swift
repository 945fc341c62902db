import Foundation
import OpLog
import OpLogTestSupport
import OpLogText
import Testing

/// Goal: random sequences of every store operation give the same answers as the reference model —
/// the same model fuzz-model runs (`ReferenceModel` in OpLogTestSupport).
///
/// Method: seeded streams of decisions drive appends (new ops, plain and based-on retries, stale and
/// correct expected heads, multi-document batches), snapshots, truncations (valid and invalid),
/// snapshot and document deletions, reads, replays, checkpoints, reopens and clock steps across
/// dedupe time windows; every answer is compared with the model's, the whole state every few steps,
/// and `verify` runs at the end of each run. The seed is printed; rerun with `OPLOG_SEED=<seed>`.
@Suite struct ReferenceModelTests {
    @Test func randomOperationsMatchTheModel() async throws {
        let seed = ProcessInfo.processInfo.environment["OPLOG_SEED"].flatMap(UInt64.init) ?? UInt64.random(in: 1...UInt64.max)
        let runs = longTests ? 100 : 20  // of 500 steps each
        let stepsPerRun = 500
        var random = SplitMix64(seed: seed)
        var counts: [String: Int] = [:]
        for run in 0..<runs {
            let runSeed = random.next()
            do {
                let dir = TemporaryDirectory("oplog-model", inMemory: true)
                let ran = try await ReferenceModel.run(FuzzInput(seed: runSeed), steps: stepsPerRun, directory: dir.path)
                counts.merge(ran, uniquingKeysWith: +)
            } catch {
                Issue.record("seed \(seed), run \(run) (run seed \(runSeed)): \(error)")
                break
            }
        }
        // Refusals (staleEpoch, epochRequired) are counted beside the steps they happened in.
        let total = counts.filter { FuzzModelRunner.stepNames.contains($0.key) }.values.reduce(0, +)
        print(
            "reference model: \(runs) runs of \(stepsPerRun) steps (\(total) in all), seed \(seed), "
                + "\(counts.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))"
        )
    }
}
