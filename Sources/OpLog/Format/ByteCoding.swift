/// Why a byte sequence failed to decode. Turned into `OpLogError.corruption` with a location by the
/// caller, which knows which record it was reading.
package struct DecodeError: Error, Equatable, CustomStringConvertible {
    package let detail: String
    package init(_ detail: String) { self.detail = detail }
    package var description: String { detail }
}

/// Appends little-endian integers, LEB128 varints and byte strings. Big-endian appears only in keys
/// (`KeyCoding`), where byte order must follow numeric order.
package struct ByteWriter {
    package private(set) var bytes: [UInt8] = []

    package init(capacity: Int = 64) { bytes.reserveCapacity(capacity) }

    package mutating func u8(_ value: UInt8) { bytes.append(value) }
    package mutating func u16(_ value: UInt16) { littleEndian(value) }
    package mutating func u32(_ value: UInt32) { littleEndian(value) }
    package mutating func u64(_ value: UInt64) { littleEndian(value) }
    package mutating func bytes(_ value: some Collection<UInt8>) { bytes.append(contentsOf: value) }

    /// An op ID as its 16 bytes in order (big-endian halves), the way clients and UUIDs write it.
    package mutating func opID(_ id: OpID) {
        for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: id.high >> UInt64(shift))) }
        for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: id.low >> UInt64(shift))) }
    }

    package mutating func varint(_ value: UInt64) {
        var rest = value
        while rest >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: rest) | 0x80)
            rest >>= 7
        }
        bytes.append(UInt8(rest))
    }

    /// Zig-zag varint: small magnitudes of either sign stay short.
    package mutating func signedVarint(_ value: Int64) {
        varint(UInt64(bitPattern: (value << 1) ^ (value >> 63)))
    }

    /// A varint length followed by the bytes.
    package mutating func lengthPrefixed(_ value: [UInt8]) {
        varint(UInt64(value.count))
        bytes.append(contentsOf: value)
    }

    package mutating func overwriteU32(_ value: UInt32, at offset: Int) {
        for index in 0..<4 { bytes[offset + index] = UInt8(truncatingIfNeeded: value >> (8 * index)) }
    }

    private mutating func littleEndian<T: FixedWidthInteger>(_ value: T) {
        var rest = value
        for _ in 0..<MemoryLayout<T>.size {
            bytes.append(UInt8(truncatingIfNeeded: rest))
            rest >>= 8
        }
    }
}

/// Reads what `ByteWriter` wrote, checking every length against the bytes left and the caller's
/// limit, so damaged input throws `DecodeError` and never traps or over-allocates.
package struct ByteReader {
    private let bytes: ArraySlice<UInt8>
    private(set) var offset: Int

    package init(_ bytes: ArraySlice<UInt8>) {
        self.bytes = bytes
        self.offset = bytes.startIndex
    }

    package init(_ bytes: [UInt8]) { self.init(bytes[...]) }

    package var remaining: Int { bytes.endIndex - offset }
    package var isAtEnd: Bool { offset == bytes.endIndex }

    package mutating func u8() throws(DecodeError) -> UInt8 {
        guard remaining >= 1 else { throw DecodeError("truncated: expected 1 byte at offset \(offset - bytes.startIndex)") }
        defer { offset += 1 }
        return bytes[offset]
    }

    package mutating func u16() throws(DecodeError) -> UInt16 { try littleEndian() }
    package mutating func u32() throws(DecodeError) -> UInt32 { try littleEndian() }
    package mutating func u64() throws(DecodeError) -> UInt64 { try littleEndian() }

    package mutating func take(_ count: Int) throws(DecodeError) -> ArraySlice<UInt8> {
        guard count >= 0, remaining >= count else {
            throw DecodeError("truncated: \(count) bytes needed at offset \(offset - bytes.startIndex), \(remaining) left")
        }
        defer { offset += count }
        return bytes[offset..<(offset + count)]
    }

    /// Skips `count` bytes (checked like `take`), returning where they lie.
    package mutating func skip(_ count: Int) throws(DecodeError) -> Range<Int> {
        guard count >= 0, remaining >= count else {
            throw DecodeError("truncated: \(count) bytes needed at offset \(offset - bytes.startIndex), \(remaining) left")
        }
        defer { offset += count }
        return offset..<(offset + count)
    }

    /// Bytes `skip` passed over, as a slice (no copy).
    package func slice(_ range: Range<Int>) -> ArraySlice<UInt8> { bytes[range] }

    /// Bytes `skip` passed over, copied.
    package func copy(_ range: Range<Int>) -> [UInt8] { Array(bytes[range]) }

    /// Whether the bytes at `range` equal `other`.
    package func bytes(in range: Range<Int>, equal other: [UInt8]) -> Bool {
        guard range.count == other.count else { return false }
        var index = range.lowerBound
        for byte in other {
            if bytes[index] != byte { return false }
            index += 1
        }
        return true
    }

    package mutating func opID() throws(DecodeError) -> OpID {
        let slice = try take(16)
        var high: UInt64 = 0
        var low: UInt64 = 0
        var index = slice.startIndex
        for _ in 0..<8 {
            high = high << 8 | UInt64(slice[index])
            low = low << 8 | UInt64(slice[index + 8])
            index += 1
        }
        return OpID(high: high, low: low)
    }

    package mutating func varint() throws(DecodeError) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            let byte = try u8()
            // The tenth byte may only carry the top bit of a 64-bit value.
            if shift == 63 && byte > 1 { throw DecodeError("varint overflows 64 bits") }
            result |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return result }
            shift += 7
        }
    }

    package mutating func signedVarint() throws(DecodeError) -> Int64 {
        let raw = try varint()
        return Int64(bitPattern: (raw >> 1) ^ (0 &- (raw & 1)))
    }

    /// A varint that must not exceed `maximum` (a count or a length).
    package mutating func boundedVarint(maximum: Int, what: String) throws(DecodeError) -> Int {
        let value = try varint()
        guard value <= UInt64(maximum) else { throw DecodeError("\(what) \(value) exceeds the limit \(maximum)") }
        return Int(value)
    }

    package mutating func lengthPrefixed(maximum: Int, what: String) throws(DecodeError) -> [UInt8] {
        Array(try lengthPrefixedSlice(maximum: maximum, what: what))
    }

    /// A varint length followed by that many bytes, as a slice of the input (no copy).
    package mutating func lengthPrefixedSlice(maximum: Int, what: String) throws(DecodeError) -> ArraySlice<UInt8> {
        let count = try boundedVarint(maximum: maximum, what: what)
        return try take(count)
    }

    package func expectEnd(_ what: String) throws(DecodeError) {
        guard isAtEnd else { throw DecodeError("\(remaining) unexpected trailing bytes after \(what)") }
    }

    private mutating func littleEndian<T: FixedWidthInteger>() throws(DecodeError) -> T {
        let slice = try take(MemoryLayout<T>.size)
        var value: T = 0
        var shift = 0
        for byte in slice {
            value |= T(byte) << shift
            shift += 8
        }
        return value
    }
}
