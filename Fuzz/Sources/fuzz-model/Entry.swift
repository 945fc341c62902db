import FuzzTargets
import OpLogTestSupport

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    fuzzEntry(data, size) { input async throws(FuzzFinding) in try await FuzzModel.run(input) }
}
