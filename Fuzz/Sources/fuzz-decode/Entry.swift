import FuzzTargets
import OpLogTestSupport

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    do { try FuzzDecode.run(Array(UnsafeBufferPointer(start: data, count: size))) } catch {
        fatalError("fuzz finding: \(error)")
    }
    return 0
}
