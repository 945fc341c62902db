import Dispatch
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Monotonic time in nanoseconds: cheap enough to read around every append.
enum MonotonicClock {
    static func nanoseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
    }
}

/// Runs writers on dedicated OS threads. Engines block in fsync; on Swift's cooperative pool
/// (one thread per core, two here) blocked writers would serialize, and concurrent-writer
/// behaviour such as group commit would never show.
enum WriterThreads {
    /// Runs `body(index)` for each index on its own thread, joins them all, and returns their
    /// results in index order, or rethrows the first writer's error.
    static func run<Result: Sendable>(count: Int, _ body: @escaping @Sendable (Int) throws -> Result) throws -> [Result] {
        let slots = Slots<Result>()
        let group = DispatchGroup()
        for index in 0..<count {
            group.enter()
            let thread = Thread {
                let outcome = Swift.Result { try body(index) }
                slots.store(outcome, at: index)
                group.leave()
            }
            // 64 writers × 1 MiB: the writers need little stack; the default would reserve 8 MiB each.
            thread.stackSize = 1 << 20
            thread.start()
        }
        group.wait()
        return try slots.ordered(count: count)
    }

    private final class Slots<Value: Sendable>: Sendable {
        private let outcomes = Mutex<[Int: Swift.Result<Value, any Error>]>([:])

        func store(_ outcome: Swift.Result<Value, any Error>, at index: Int) {
            outcomes.withLock { $0[index] = outcome }
        }

        func ordered(count: Int) throws -> [Value] {
            let all = outcomes.withLock { $0 }
            return try (0..<count).map { try all[$0]!.get() }
        }
    }
}

/// Bytes this process caused to be written to storage, from `/proc/self/io`.
///
/// `write_bytes` counts pages the process (all its threads, RocksDB's background threads included)
/// dirtied for write-back; a page re-dirtied after an fsync counts again, as the device sees it.
/// `cancelled_write_bytes` (dirty pages dropped by truncation or deletion) is subtracted. Journal
/// writes by the filesystem's own kernel thread are not counted, for any engine.
enum ProcessIO {
    static func writtenBytes() throws -> Int64 {
        let text = try readSmallFile("/proc/self/io")
        var fields: [Substring: Int64] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 1)
            if parts.count == 2 { fields[parts[0]] = Int64(parts[1].trimmingCharacters(in: .whitespaces)) }
        }
        guard let written = fields["write_bytes"], let cancelled = fields["cancelled_write_bytes"] else {
            throw WorkloadError("/proc/self/io has no write_bytes (not Linux, or no task I/O accounting)")
        }
        return written - cancelled
    }

    /// /proc files report size 0, so read until EOF rather than by size.
    private static func readSmallFile(_ path: String) throws -> String {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw WorkloadError("cannot open \(path): errno \(errno)") }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { break }
            bytes += buffer[..<count]
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// Filesystem helpers for the per-run store directories.
enum StoreDirectory {
    /// The allocated size of everything under `path`, like `du`: the sum of st_blocks × 512.
    static func allocatedBytes(_ path: String) -> Int64 {
        var total: Int64 = 0
        let entries = FileManager.default.enumerator(atPath: path)?.allObjects as? [String] ?? []
        for entry in entries {
            var info = stat()
            if lstat(path + "/" + entry, &info) == 0 { total += Int64(info.st_blocks) * 512 }
        }
        return total
    }

    /// Creates a fresh `prefix-XXXXXX` directory under `parent`.
    static func makeUnique(in parent: String, prefix: String) throws -> String {
        var template = Array((parent + "/" + prefix + "-XXXXXX").utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw WorkloadError("cannot create a directory in \(parent): errno \(errno)")
        }
        return String(cString: made)
    }

    /// Refuses memory-backed filesystems: write_bytes stays 0 on tmpfs, so every WA would read 0.
    /// (Glibc's module does not import statfs, so the type comes from /proc/self/mounts: the
    /// longest mount point containing the path.)
    static func requireRealDisk(_ path: String) throws {
        let resolved = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
        let mounts = (try? String(contentsOfFile: "/proc/self/mounts", encoding: .utf8)) ?? ""
        var best = (mountPoint: "", type: "unknown")
        for line in mounts.split(separator: "\n") {
            let fields = line.split(separator: " ").map(String.init)
            guard fields.count >= 3 else { continue }
            let mountPoint = fields[1]
            let contains = resolved == mountPoint || resolved.hasPrefix(mountPoint == "/" ? "/" : mountPoint + "/")
            if contains && mountPoint.count >= best.mountPoint.count { best = (mountPoint, fields[2]) }
        }
        if ["tmpfs", "ramfs"].contains(best.type) {
            throw WorkloadError("\(path) is on \(best.type), where /proc/self/io counts no writes; pass --dir on a disk")
        }
    }
}

enum Percentile {
    /// Nearest-rank percentile of nanosecond samples, in microseconds.
    static func micros(_ sortedNanos: [UInt64], _ fraction: Double) -> Double {
        guard !sortedNanos.isEmpty else { return 0 }
        let rank = Int((fraction * Double(sortedNanos.count)).rounded(.up))
        return Double(sortedNanos[min(max(rank, 1), sortedNanos.count) - 1]) / 1000
    }
}
