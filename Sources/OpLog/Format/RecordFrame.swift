import OpLogStorage

/// What a stored LMDB value holds; the first byte of every frame.
package enum RecordKind: UInt8, Sendable, CaseIterable {
    case format = 1
    case appliedSequence = 2
    case document = 3
    case opChunk = 4
    case snapshot = 5
    case dedupe = 6
    /// A fencing scope's epoch (format version 3).
    case fencingEpoch = 7
    /// The store's lineage (format version 3).
    case lineage = 8
    /// One change of the feed's history (format version 4).
    case feedChange = 9
    /// The feed's retained range and bytes (format version 4).
    case feedState = 10
    /// A consumer's saved feed position (format version 4).
    case feedCursor = 11
}

/// How a frame's body is stored.
package enum Codec: UInt8, Sendable {
    case raw = 0
    /// A zlib stream (RFC 1950) of the raw body.
    case zlib = 1
}

/// The frame around every value OpLog stores in LMDB (FORMAT.md, "Record frame"):
///
///     0      1      2       4                 8                12               16
///     +------+------+-------+-----------------+----------------+----------------+------------+
///     | kind | codec| 0x0000| stored length   | raw length     | CRC-32         | body ...   |
///     +------+------+-------+-----------------+----------------+----------------+------------+
///
/// Lengths and CRC are little-endian u32. The CRC covers the LMDB key, then header bytes 0..<12,
/// then the stored body: a record moved under another key fails its check just like flipped bits.
package enum RecordFrame {
    package static let headerSize = 12 + 4
    /// Bodies shorter than this are never compressed: zlib's own overhead would eat the gain.
    package static let compressionThresholdBytes = 64

    /// Frames `body` for storage under `key`, compressing it when that saves space.
    package static func encode(kind: RecordKind, key: [UInt8], body: [UInt8], compressionLevel: Int32) throws(StorageError) -> [UInt8] {
        try encode(kind: kind, key: key, body: body, deflater: compressionLevel > 0 ? Deflater(level: compressionLevel) : nil)
    }

    /// Frames `body` for storage under `key`, compressing it with `deflater` (nil: never) when that
    /// saves space. The writer passes the one it keeps, so a chunk costs no stream initialisation.
    package static func encode(kind: RecordKind, key: [UInt8], body: [UInt8], deflater: Deflater?) throws(StorageError) -> [UInt8] {
        var codec = Codec.raw
        var stored = body
        if let deflater, body.count >= compressionThresholdBytes {
            let compressed = try deflater.compress(body)
            // Keep raw unless compression saves at least 1/16: decompressing costs on every read.
            if compressed.count + body.count / 16 < body.count {
                codec = .zlib
                stored = compressed
            }
        }
        return encode(kind: kind, codec: codec, key: key, stored: stored, rawLength: body.count)
    }

    /// Frames an already-encoded body (used by the test vectors and the fuzzer).
    package static func encode(kind: RecordKind, codec: Codec, key: [UInt8], stored: [UInt8], rawLength: Int) -> [UInt8] {
        var writer = ByteWriter(capacity: headerSize + stored.count)
        writer.u8(kind.rawValue)
        writer.u8(codec.rawValue)
        writer.u16(0)
        writer.u32(UInt32(stored.count))
        writer.u32(UInt32(rawLength))
        writer.u32(0)
        writer.bytes(stored)
        var frame = writer.bytes
        let crc = checksum(key: key, frame: frame)
        for index in 0..<4 { frame[12 + index] = UInt8(truncatingIfNeeded: crc >> (8 * index)) }
        return frame
    }

    /// The CRC-32 of key ‖ header[0..<12] ‖ stored body.
    package static func checksum(key: [UInt8], frame: [UInt8]) -> UInt32 {
        frame.withUnsafeBytes { raw in
            var crc = Zlib.crc32(key)
            crc = Zlib.crc32(UnsafeRawBufferPointer(rebasing: raw[0..<12]), seed: crc)
            return Zlib.crc32(UnsafeRawBufferPointer(rebasing: raw[headerSize...]), seed: crc)
        }
    }

    /// Checks and unwraps a frame found under `key`, returning the raw body.
    ///
    /// - Throws: `DecodeError` for a short frame, a wrong kind, a bad checksum, an unknown codec,
    ///   a length beyond `Limits.recordBodyBytesMax`, or a compressed stream that does not inflate to
    ///   the declared length.
    package static func decode(_ frame: [UInt8], key: [UInt8], expecting kind: RecordKind) throws(DecodeError) -> [UInt8] {
        var reader = ByteReader(frame)
        guard frame.count >= headerSize else { throw DecodeError("record of \(frame.count) bytes is shorter than its 16-byte header") }
        let kindByte = try reader.u8()
        let codecByte = try reader.u8()
        let reserved = try reader.u16()
        let storedLength = try reader.u32()
        let rawLength = try reader.u32()
        let storedCRC = try reader.u32()
        guard Int(storedLength) == frame.count - headerSize else {
            throw DecodeError("stored length \(storedLength) does not match the record's \(frame.count - headerSize) body bytes")
        }
        let actualCRC = checksum(key: key, frame: frame)
        guard storedCRC == actualCRC else {
            throw DecodeError("checksum mismatch (stored \(hex32(storedCRC)), computed \(hex32(actualCRC)))")
        }
        guard kindByte == kind.rawValue else { throw DecodeError("record kind \(kindByte) where kind \(kind.rawValue) (\(kind)) belongs") }
        guard reserved == 0 else { throw DecodeError("reserved header bytes are \(reserved), not 0") }
        guard rawLength <= UInt32(Limits.recordBodyBytesMax) else {
            throw DecodeError("raw length \(rawLength) exceeds the limit \(Limits.recordBodyBytesMax)")
        }
        let stored = frame[headerSize...]
        switch Codec(rawValue: codecByte) {
        case .raw:
            guard rawLength == storedLength else {
                throw DecodeError("raw record with raw length \(rawLength) ≠ stored length \(storedLength)")
            }
            return Array(stored)
        case .zlib:
            do {
                return try Zlib.decompress(stored, expectedCount: Int(rawLength))
            } catch {
                throw DecodeError("compressed body: \(error.description)")
            }
        case nil:
            throw DecodeError("unknown codec \(codecByte)")
        }
    }
}

package func hex32(_ value: UInt32) -> String { "0x" + String(value, radix: 16).leftPadded(to: 8) }
