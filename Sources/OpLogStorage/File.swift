#if canImport(Glibc)
import Glibc
#endif

/// A file descriptor with the few calls the journal and lock file need. Every call goes through
/// `retryingEINTR`, and every failure becomes a `StorageError` carrying the errno.
///
/// Thread safety: not synchronised; the engine uses one `File` from one thread at a time.
public final class File: @unchecked Sendable {
    // Invariant: `descriptor` is set once and closed once, by close() or deinit.
    private var descriptor: Int32
    public let path: String

    /// Opens `path` for reading, or reading and writing; `create` creates it with permissions `mode`
    /// (owner-only by default: a store's files hold every document).
    public init(path: String, writable: Bool, create: Bool, mode: UInt32 = 0o600) throws(StorageError) {
        var flags = (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC
        if create { flags |= O_CREAT }
        let fd = retryingEINTR { open(path, flags, mode_t(mode)) }
        guard fd >= 0 else { throw StorageError(.system(errno), call: .openFile, detail: path) }
        descriptor = fd
        self.path = path
    }

    deinit { close() }

    public func close() {
        if descriptor >= 0 {
            _ = Glibc.close(descriptor)
            descriptor = -1
        }
    }

    /// Current size in bytes.
    public func size() throws(StorageError) -> Int {
        var info = stat()
        guard fstat(descriptor, &info) == 0 else { throw StorageError(.system(errno), call: .statFile, detail: path) }
        return Int(info.st_size)
    }

    /// Reads up to `count` bytes at `offset`; fewer only at end of file.
    public func read(at offset: Int, count: Int) throws(StorageError) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: count)
        var done = 0
        var failure: Int32 = 0
        buffer.withUnsafeMutableBytes { bytes in
            while done < count {
                let n = retryingEINTR { pread(descriptor, bytes.baseAddress! + done, count - done, off_t(offset + done)) }
                if n < 0 {
                    failure = errno
                    return
                }
                if n == 0 { return }
                done += n
            }
        }
        if failure != 0 { throw StorageError(.system(failure), call: .readFile, detail: path) }
        buffer.removeSubrange(done...)
        return buffer
    }

    /// Writes all of `bytes` at `offset` (partial writes are continued).
    public func write(_ bytes: [UInt8], at offset: Int) throws(StorageError) {
        var done = 0
        var failure: Int32 = 0
        bytes.withUnsafeBytes { raw in
            while done < raw.count {
                let n = retryingEINTR { pwrite(descriptor, raw.baseAddress! + done, raw.count - done, off_t(offset + done)) }
                if n < 0 {
                    failure = errno
                    return
                }
                done += n
            }
        }
        if failure != 0 { throw StorageError(.system(failure), call: .writeFile, detail: path) }
    }

    /// Writes `bytes` and then `zeroCount` zero bytes at `offset` in one `pwritev` (partial writes
    /// are continued), so a caller can end a record with a zeroed marker without copying it.
    public func write(_ bytes: [UInt8], followedByZeros zeroCount: Int, at offset: Int) throws(StorageError) {
        precondition(zeroCount <= File.zeros.count, "at most \(File.zeros.count) trailing zeros")
        let total = bytes.count + zeroCount
        var failure: Int32 = 0
        var done = 0
        bytes.withUnsafeBytes { raw in
            File.zeros.withUnsafeBytes { zeros in
                while done < total {
                    var vectors: [iovec] = []
                    if done < raw.count {
                        vectors.append(
                            iovec(iov_base: UnsafeMutableRawPointer(mutating: raw.baseAddress! + done), iov_len: raw.count - done))
                    }
                    let zerosDone = max(0, done - raw.count)
                    vectors.append(iovec(iov_base: UnsafeMutableRawPointer(mutating: zeros.baseAddress!), iov_len: zeroCount - zerosDone))
                    let n = retryingEINTR { pwritev(descriptor, vectors, Int32(vectors.count), off_t(offset + done)) }
                    if n < 0 {
                        failure = errno
                        return
                    }
                    done += n
                }
            }
        }
        if failure != 0 { throw StorageError(.system(failure), call: .writeFile, detail: path) }
    }

    /// Zero bytes for `write(_:followedByZeros:at:)`.
    private static let zeros = [UInt8](repeating: 0, count: 4096)

    /// `fdatasync`: the data written so far (and the size) reach stable storage before it returns.
    public func synchronizeData() throws(StorageError) {
        guard retryingEINTR({ fdatasync(descriptor) }) == 0 else {
            throw StorageError(.system(errno), call: .syncFileData, detail: path)
        }
    }

    /// `fsync`: data and all metadata.
    public func synchronize() throws(StorageError) {
        guard retryingEINTR({ fsync(descriptor) }) == 0 else {
            throw StorageError(.system(errno), call: .syncFile, detail: path)
        }
    }

    /// Truncates (or extends with zeros) to `size` bytes.
    public func truncate(to size: Int) throws(StorageError) {
        guard retryingEINTR({ ftruncate(descriptor, off_t(size)) }) == 0 else {
            throw StorageError(.system(errno), call: .truncateFile, detail: path)
        }
    }

    /// Takes an exclusive advisory lock without waiting; false if another process holds it.
    /// The lock lasts until the descriptor closes (including when the process dies).
    public func tryLockExclusive() throws(StorageError) -> Bool {
        if retryingEINTR({ flock(descriptor, LOCK_EX | LOCK_NB) }) == 0 { return true }
        if errno == EWOULDBLOCK { return false }
        throw StorageError(.system(errno), call: .lockFile, detail: path)
    }

    /// Atomically replaces `destination` with `source` and makes the rename durable by syncing
    /// the directory that holds both.
    public static func replace(_ destination: String, with source: String, directory: String) throws(StorageError) {
        guard rename(source, destination) == 0 else {
            throw StorageError(.system(errno), call: .rename, detail: destination)
        }
        try synchronizeDirectory(directory)
    }

    /// fsyncs a directory so that entries created or renamed in it are durable.
    public static func synchronizeDirectory(_ directory: String) throws(StorageError) {
        let fd = retryingEINTR { open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        guard fd >= 0 else { throw StorageError(.system(errno), call: .openFile, detail: directory) }
        defer { _ = Glibc.close(fd) }
        guard retryingEINTR({ fsync(fd) }) == 0 else {
            throw StorageError(.system(errno), call: .syncDirectory, detail: directory)
        }
    }

    /// True if `path` exists.
    public static func exists(_ path: String) -> Bool {
        access(path, F_OK) == 0
    }

    /// Creates `directory` if missing, with permissions `mode`, and its missing parents (0755).
    public static func createDirectory(_ directory: String, mode: UInt32 = 0o700) throws(StorageError) {
        var prefix = directory.hasPrefix("/") ? "/" : ""
        let components = directory.split(separator: "/")
        for (index, component) in components.enumerated() {
            prefix += component + "/"
            let permissions = index == components.count - 1 ? mode_t(mode) : 0o755
            if mkdir(prefix, permissions) != 0 && errno != EEXIST {
                throw StorageError(.system(errno), call: .makeDirectory, detail: prefix)
            }
        }
    }

    /// Removes a file; a missing file is not an error.
    public static func remove(_ path: String) throws(StorageError) {
        if unlink(path) != 0 && errno != ENOENT {
            throw StorageError(.system(errno), call: .removeFile, detail: path)
        }
    }

    /// Bytes allocated on disk for `path` (st_blocks × 512, as `du` counts), or 0 if missing.
    public static func allocatedBytes(_ path: String) -> Int {
        var info = stat()
        guard stat(path, &info) == 0 else { return 0 }
        return Int(info.st_blocks) * 512
    }

    /// Apparent size of `path` in bytes, or nil if missing.
    public static func sizeOf(_ path: String) -> Int? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return Int(info.st_size)
    }

    /// Bytes an unprivileged writer may still allocate on the file system holding `path`
    /// (`statvfs`: `f_bavail × f_frsize`), or nil if it cannot be asked.
    public static func availableBytes(_ path: String) -> Int? {
        var info = statvfs()
        guard statvfs(path, &info) == 0 else { return nil }
        return Int(info.f_bavail) * Int(info.f_frsize)
    }

    /// The permission bits of `path` (`st_mode & 0o7777`), or nil if it is missing.
    public static func permissions(of path: String) -> UInt32? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return UInt32(info.st_mode) & 0o7777
    }

    /// Sets the permission bits of `path`.
    public static func setPermissions(_ path: String, _ mode: UInt32) throws(StorageError) {
        guard chmod(path, mode_t(mode)) == 0 else { throw StorageError(.system(errno), call: .changeMode, detail: path) }
    }

    /// True if `path` is a directory.
    public static func isDirectory(_ path: String) -> Bool {
        var info = stat()
        guard stat(path, &info) == 0 else { return false }
        return (info.st_mode & S_IFMT) == S_IFDIR
    }
}

/// Retries a system call while it fails with EINTR.
@inline(__always)
func retryingEINTR<T: BinaryInteger>(_ call: () -> T) -> T {
    while true {
        let result = call()
        if result == -1 && errno == EINTR { continue }
        return result
    }
}
