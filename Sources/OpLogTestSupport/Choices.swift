import Foundation
import OpLog
import OpLogStorage
import OpLogText
import Synchronization

/// A broken contract seen by a harness: the fuzz entry points trap on it (libFuzzer saves the
/// input), the regression tests record it as an issue.
public struct FuzzFinding: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Throws a finding unless `condition` holds.
package func fuzzCheck(_ condition: Bool, _ message: @autoclosure () -> String) throws(FuzzFinding) {
    if !condition { throw FuzzFinding(message()) }
}

/// A stream of small decisions: the fuzzer's bytes (past the end every read is 0, so any input,
/// however short, describes a complete run), or a seeded generator for the property tests, which
/// never ends.
package struct FuzzInput {
    package let bytes: [UInt8]
    private(set) var offset = 0
    private var generator: SplitMix64?

    package init(_ bytes: [UInt8]) { self.bytes = bytes }

    /// An endless stream of seeded random decisions.
    package init(seed: UInt64) {
        bytes = []
        generator = SplitMix64(seed: seed)
    }

    package var isAtEnd: Bool { generator == nil && offset >= bytes.count }

    package mutating func byte() -> UInt8 {
        if generator != nil { return UInt8(truncatingIfNeeded: generator!.next()) }
        guard offset < bytes.count else { return 0 }
        defer { offset += 1 }
        return bytes[offset]
    }

    /// A number in 0..<n (n ≤ 256).
    package mutating func pick(_ n: Int) -> Int { n <= 1 ? 0 : Int(byte()) % n }
    package mutating func flag() -> Bool { byte() & 1 == 1 }
    package mutating func u16() -> Int { Int(byte()) | Int(byte()) << 8 }
    package mutating func u32() -> UInt32 { UInt32(u16()) | UInt32(u16()) << 16 }
    package mutating func u64() -> UInt64 { UInt64(u32()) | UInt64(u32()) << 32 }

    /// Up to `count` bytes (fewer at the end of the input).
    package mutating func take(_ count: Int) -> [UInt8] {
        if generator != nil { return (0..<max(0, count)).map { _ in byte() } }
        let end = min(bytes.count, offset + max(0, count))
        defer { offset = max(offset, end) }
        return offset < end ? Array(bytes[offset..<end]) : []
    }

    /// Everything not read yet, as a slice of the input (its indices do not start at 0).
    package mutating func rest() -> ArraySlice<UInt8> {
        defer { offset = bytes.count }
        return offset < bytes.count ? bytes[offset...] : []
    }
}

/// Where the harnesses' manual clocks start (2027-01-15), so that no run depends on the date.
package let fuzzClockStart: Int64 = 1_800_000_000_000

/// Deterministic filler bytes (xorshift): payloads and snapshots whose content the input chooses
/// with a seed instead of spelling out, so inputs stay small.
package func fuzzFiller(seed: UInt64, count: Int, compressible: Bool) -> [UInt8] {
    var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
    return (0..<count).map { index in
        if compressible { return UInt8(truncatingIfNeeded: 97 + (Int(seed) &+ index / 7) % 26) }
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        return UInt8(truncatingIfNeeded: state)
    }
}

/// A reducer whose state is the list of payloads, so a replay's answer can be compared op by op.
/// Snapshot bytes: per payload, a u32 LE length and the bytes.
package struct FuzzPayloadListReducer: Reducer {
    package struct Malformed: Error {}

    package init() {}

    package func initialState() -> [[UInt8]] { [] }
    package func apply(_ op: StoredOp, to state: inout [[UInt8]]) throws { state.append(op.payload) }

    package func encode(_ state: [[UInt8]]) throws -> [UInt8] {
        var writer = ByteWriter()
        for payload in state {
            writer.u32(UInt32(payload.count))
            writer.bytes(payload)
        }
        return writer.bytes
    }

    package func decode(_ bytes: [UInt8]) throws -> [[UInt8]] {
        var reader = ByteReader(bytes)
        var state: [[UInt8]] = []
        while !reader.isAtEnd {
            let count = Int(try reader.u32())
            guard count <= reader.remaining else { throw Malformed() }
            state.append(Array(try reader.take(count)))
        }
        return state
    }
}

/// Where harnesses put their stores: `OPLOG_FUZZ_SCRATCH` (run.sh sets it and removes it
/// afterwards), else /dev/shm (tmpfs: syncs cost nothing), else the temporary directory.
/// Where the harnesses put their temporary stores (tmpfs when available, for speed).
public enum FuzzScratch {
    /// This process's scratch folder.
    public static let root: String = {
        let base: String
        if let configured = ProcessInfo.processInfo.environment["OPLOG_FUZZ_SCRATCH"], !configured.isEmpty {
            base = configured
        } else if access("/dev/shm", W_OK) == 0 {
            base = "/dev/shm"
        } else {
            base = NSTemporaryDirectory()
        }
        return base + "/oplog-fuzz-\(getpid())"
    }()
    private static let counter = Mutex(0)

    /// A new, not yet existing path under the scratch root.
    package static func newDirectory(_ name: String) -> String {
        let number = counter.withLock { value in
            value += 1
            return value
        }
        try? FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        return root + "/\(name)-\(number)"
    }

    /// Removes a scratch path, ignoring errors.
    public static func remove(_ path: String) { try? FileManager.default.removeItem(atPath: path) }

    /// Copies the files of a closed store (never `lock.mdb`: LMDB makes a fresh one).
    package static func copyStore(from source: String, to destination: String) throws {
        try FileManager.default.createDirectory(atPath: destination, withIntermediateDirectories: true)
        for name in ["data.mdb"] + Journal.fileNames where FileManager.default.fileExists(atPath: source + "/" + name) {
            try FileManager.default.copyItem(atPath: source + "/" + name, toPath: destination + "/" + name)
        }
    }
}

/// Whether two errors are the same answer: the same case and the same structured fields. Free-text
/// details (invalid arguments, storage-full explanations) are not compared.
package func fuzzSameError(_ lhs: OpLogError, _ rhs: OpLogError) -> Bool {
    switch (lhs, rhs) {
    case (.invalidArgument, .invalidArgument), (.storageFull, .storageFull): return true
    case (.duplicateInBatch(let left, _), .duplicateInBatch(let right, _)): return left == right
    case (.corruption(let left, _), .corruption(let right, _)): return left == right
    default: return lhs == rhs
    }
}

package func fuzzIsCorruption(_ error: any Error) -> Bool {
    if case .corruption = error as? OpLogError { return true }
    return false
}
