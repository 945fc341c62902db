import CZlib

/// zlib compression and CRC-32, the only zlib calls in OpLog.
public enum Zlib {
    /// CRC-32 (ISO-HDLC, as zlib computes it), continued from `seed` (0 to start).
    public static func crc32(_ bytes: UnsafeRawBufferPointer, seed: UInt32 = 0) -> UInt32 {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return seed }
        return UInt32(CZlib.crc32(UInt(seed), base.assumingMemoryBound(to: Bytef.self), UInt32(bytes.count)))
    }

    /// CRC-32 of an array, continued from `seed`.
    public static func crc32(_ bytes: [UInt8], seed: UInt32 = 0) -> UInt32 {
        bytes.withUnsafeBytes { crc32($0, seed: seed) }
    }

    /// Compresses `input` into a zlib stream (RFC 1950) at `level` (1–9), with a stream of its own
    /// (for repeated calls, keep a `Deflater`).
    public static func compress(_ input: [UInt8], level: Int32) throws(StorageError) -> [UInt8] {
        try Deflater(level: level).compress(input)
    }

    /// Decompresses a zlib stream that must inflate to exactly `expectedCount` bytes.
    ///
    /// The output buffer is sized by the caller's bound, never by the stream, so a damaged length
    /// cannot make it allocate more than the caller allows.
    public static func decompress(_ input: ArraySlice<UInt8>, expectedCount: Int) throws(StorageError) -> [UInt8] {
        // Deflate cannot expand data more than about 1032:1, so a larger claimed size is damage:
        // refuse it before allocating the output.
        guard expectedCount >= 0, expectedCount <= input.count * 1032 + 64 else {
            throw StorageError(.compression("\(input.count) compressed bytes cannot inflate to \(expectedCount) bytes"), call: .inflate)
        }
        var stream = z_stream()
        var code = inflateInit_(&stream, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size))
        guard code == Z_OK else { throw StorageError(.compression("inflateInit returned \(code)"), call: .inflate) }
        defer { inflateEnd(&stream) }
        // One spare byte detects a stream that inflates to more than expected.
        var output = [UInt8](repeating: 0, count: expectedCount + 1)
        var produced = 0
        var consumedAll = false
        input.withUnsafeBytes { inBytes in
            output.withUnsafeMutableBytes { outBytes in
                stream.next_in = UnsafeMutablePointer(mutating: inBytes.bindMemory(to: Bytef.self).baseAddress)
                stream.avail_in = UInt32(inBytes.count)
                stream.next_out = outBytes.bindMemory(to: Bytef.self).baseAddress
                stream.avail_out = UInt32(outBytes.count)
                code = inflate(&stream, Z_FINISH)
                produced = Int(stream.total_out)
                consumedAll = stream.avail_in == 0
            }
        }
        guard code == Z_STREAM_END else {
            throw StorageError(.compression("malformed or truncated zlib stream (inflate returned \(code))"), call: .inflate)
        }
        guard produced == expectedCount, consumedAll else {
            throw StorageError(.compression("stream inflated to \(produced) bytes, expected \(expectedCount)"), call: .inflate)
        }
        output.removeLast()
        return output
    }
}

extension Zlib {
    /// Decompresses a gzip file's bytes (RFC 1952), refusing output beyond `maximumBytes`.
    public static func gunzip(_ input: [UInt8], maximumBytes: Int) throws(StorageError) -> [UInt8] {
        var stream = z_stream()
        // windowBits 15 + 16 selects the gzip wrapper.
        guard inflateInit2_(&stream, 15 + 16, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw StorageError(.compression("inflateInit2 failed"), call: .gunzip)
        }
        defer { inflateEnd(&stream) }
        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        var code: Int32 = Z_OK
        var failure: StorageError?
        input.withUnsafeBytes { inBytes in
            stream.next_in = UnsafeMutablePointer(mutating: inBytes.bindMemory(to: Bytef.self).baseAddress)
            stream.avail_in = UInt32(inBytes.count)
            while code != Z_STREAM_END {
                let produced: Int = chunk.withUnsafeMutableBytes { outBytes in
                    stream.next_out = outBytes.bindMemory(to: Bytef.self).baseAddress
                    stream.avail_out = UInt32(outBytes.count)
                    code = inflate(&stream, Z_NO_FLUSH)
                    return outBytes.count - Int(stream.avail_out)
                }
                guard code == Z_OK || code == Z_STREAM_END else {
                    failure = StorageError(.compression("malformed gzip data (inflate returned \(code))"), call: .gunzip)
                    return
                }
                output.append(contentsOf: chunk[0..<produced])
                guard output.count <= maximumBytes else {
                    failure = StorageError(.compression("output exceeds \(maximumBytes) bytes"), call: .gunzip)
                    return
                }
                if produced == 0 && stream.avail_in == 0 && code != Z_STREAM_END {
                    failure = StorageError(.compression("truncated gzip data"), call: .gunzip)
                    return
                }
            }
        }
        if let failure { throw failure }
        return output
    }
}

/// A deflate stream kept for reuse: `deflateInit` allocates about 256 KiB of zlib state (more at
/// higher levels), which glibc serves with `mmap` and returns with `munmap`/`madvise` when freed,
/// so compressing every journal record with a fresh stream cost two system calls and a page-fault
/// storm per group commit. One `Deflater` initialises once and calls `deflateReset` per use.
///
/// Not `Sendable`: one owner (the store's writer thread) uses it, one call at a time.
public final class Deflater {
    /// The zlib level (1–9) every call compresses at.
    public let level: Int32
    /// Heap-allocated so that its address never changes: zlib's state points back at its stream
    /// and refuses a stream that moved.
    private let stream: UnsafeMutablePointer<z_stream>
    /// The output buffer, grown to the largest `deflateBound` seen and kept.
    private var output: [UInt8] = []

    /// Initialises a stream at `level` (1–9).
    public init(level: Int32) throws(StorageError) {
        precondition((1...9).contains(level), "a deflate level outside 1...9")
        self.level = level
        stream = .allocate(capacity: 1)
        stream.initialize(to: z_stream())
        let code = deflateInit_(stream, level, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size))
        guard code == Z_OK else {
            stream.deinitialize(count: 1)
            stream.deallocate()
            throw StorageError(.compression("deflateInit returned \(code)"), call: .deflate)
        }
    }

    deinit {
        deflateEnd(stream)
        stream.deinitialize(count: 1)
        stream.deallocate()
    }

    /// Compresses `input` into one zlib stream (RFC 1950), byte-for-byte what `Zlib.compress`
    /// writes at the same level.
    public func compress(_ input: [UInt8]) throws(StorageError) -> [UInt8] {
        var code = deflateReset(stream)
        guard code == Z_OK else { throw StorageError(.compression("deflateReset returned \(code)"), call: .deflate) }
        let bound = Int(deflateBound(stream, UInt(input.count)))
        if output.count < bound { output = [UInt8](repeating: 0, count: bound) }
        var written = 0
        input.withUnsafeBytes { inBytes in
            output.withUnsafeMutableBytes { outBytes in
                stream.pointee.next_in = UnsafeMutablePointer(mutating: inBytes.bindMemory(to: Bytef.self).baseAddress)
                stream.pointee.avail_in = UInt32(inBytes.count)
                stream.pointee.next_out = outBytes.bindMemory(to: Bytef.self).baseAddress
                stream.pointee.avail_out = UInt32(bound)
                code = deflate(stream, Z_FINISH)
                written = Int(stream.pointee.total_out)
            }
        }
        // The stream no longer points into buffers that are about to go away.
        stream.pointee.next_in = nil
        stream.pointee.next_out = nil
        guard code == Z_STREAM_END else { throw StorageError(.compression("deflate returned \(code)"), call: .deflate) }
        assert(written <= bound, "deflate wrote past deflateBound")
        return Array(output[0..<written])
    }
}
