import OpLogTestSupport

/// fuzz-model: the fuzzer's bytes drive OpLog's one reference model (`ReferenceModel` in
/// OpLogTestSupport, which the property tests drive with seeded choices), up to `stepsMax` steps.
public enum FuzzModel {
    public static let stepsMax = 200

    public static func run(_ data: [UInt8]) async throws(FuzzFinding) {
        _ = try await ReferenceModel.run(FuzzInput(data), steps: stepsMax)
    }
}
