import Dispatch
import OpLogTestSupport
import Synchronization

/// Runs one input's async harness work from libFuzzer's synchronous callback and traps on a
/// finding, so that libFuzzer saves the input. (Not part of the harness text that the regression
/// tests copy: they call the harnesses directly.)
public func fuzzEntry(
    _ data: UnsafePointer<UInt8>, _ size: Int, _ harness: @escaping @Sendable ([UInt8]) async throws(FuzzFinding) -> Void
) -> CInt {
    let input = Array(UnsafeBufferPointer(start: data, count: size))
    let outcome = FuzzOutcome()
    let done = DispatchSemaphore(value: 0)
    Task {
        do throws(FuzzFinding) { try await harness(input) } catch { outcome.finding.withLock { $0 = error } }
        done.signal()
    }
    done.wait()
    if let finding = outcome.finding.withLock({ $0 }) { fatalError("fuzz finding: \(finding)") }
    return 0
}

final class FuzzOutcome: Sendable {
    let finding = Mutex<FuzzFinding?>(nil)
}
