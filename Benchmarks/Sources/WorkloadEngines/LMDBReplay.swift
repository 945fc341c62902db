import CLMDBBench
import CZlibBench

/// W3 reads for the LMDB layouts, each in one short read-only transaction.
enum LMDBReplay {
    /// `lmdb-naive`'s and `lmdb-group`'s layout: snapshots in `snaps`, one key per op in `ops`, both
    /// keyed by `BenchKey`.
    static func replayPerOpLayout(
        engine: String, env: OpaquePointer, ops: MDB_dbi, snaps: MDB_dbi, document: String, to target: UInt64
    ) throws -> String {
        try read(engine: engine, env: env) { txn in
            var replay = try snapshotAtOrBelow(engine: engine, txn: txn, snaps: snaps, document: document, revision: target)
            try scan(engine: engine, txn: txn, dbi: ops, document: document, from: replay.revision + 1, through: target) {
                revision, value in
                try replay.apply(opRevision: revision, encodedOp: value)
            }
            return try replay.text(at: target)
        }
    }

    /// `lmdb-log`'s layout: the index entries of `document` covering `snapshot + 1 ... target` name
    /// commit records in `log`; each record is inflated and its entries for the document applied.
    static func replayLogLayout(
        engine: String, env: OpaquePointer, log: MDB_dbi, index: MDB_dbi, snaps: MDB_dbi, document: String, to target: UInt64
    ) throws -> String {
        try read(engine: engine, env: env) { txn in
            var replay = try snapshotAtOrBelow(engine: engine, txn: txn, snaps: snaps, document: document, revision: target)
            guard replay.revision < target else { return try replay.text(at: target) }
            // Entry i covers [first_i, first_{i+1}): start at the last entry with first <= snapshot + 1.
            var sequences: [[UInt8]] = []
            let startFirst = try atOrBelow(engine: engine, txn: txn, dbi: index, document: document, revision: replay.revision + 1) {
                $0?.revision ?? 0
            }
            try scan(engine: engine, txn: txn, dbi: index, document: document, from: startFirst, through: target) { _, value in
                sequences.append(Array(value))
            }
            let documentBytes = Array(document.utf8)
            for sequence in sequences {
                let record = try logRecord(engine: engine, txn: txn, log: log, sequence: sequence)
                try LogRecordReader.forEach(record, engine: engine) { entryDocument, revision, op in
                    guard revision > replay.revision, revision <= target, entryDocument.elementsEqual(documentBytes) else { return }
                    try replay.apply(opRevision: revision, encodedOp: op)
                }
            }
            return try replay.text(at: target)
        }
    }

    // MARK: - Reads

    private static func read<T>(engine: String, env: OpaquePointer, _ body: (OpaquePointer?) throws -> T) throws -> T {
        var txn: OpaquePointer?
        try check(engine, mdb_txn_begin(env, nil, UInt32(MDB_RDONLY), &txn), "mdb_txn_begin")
        defer { mdb_txn_abort(txn) }
        return try body(txn)
    }

    /// The newest snapshot of `document` at or below `revision`, as a replay starting point.
    private static func snapshotAtOrBelow(
        engine: String, txn: OpaquePointer?, snaps: MDB_dbi, document: String, revision: UInt64
    ) throws -> TextReplay {
        try atOrBelow(engine: engine, txn: txn, dbi: snaps, document: document, revision: revision) { found in
            try TextReplay(engine: engine, document: document, snapshot: found)
        }
    }

    /// Hands `body` the `BenchKey` entry of `document` in `dbi` with the greatest revision at or below
    /// `revision` (nil if none), its value valid only during the call.
    private static func atOrBelow<T>(
        engine: String, txn: OpaquePointer?, dbi: MDB_dbi, document: String, revision: UInt64,
        _ body: ((revision: UInt64, bytes: UnsafeRawBufferPointer)?) throws -> T
    ) throws -> T {
        var cursor: OpaquePointer?
        try check(engine, mdb_cursor_open(txn, dbi, &cursor), "mdb_cursor_open")
        defer { mdb_cursor_close(cursor) }
        var key = MDB_val(mv_size: 0, mv_data: nil)
        var value = MDB_val(mv_size: 0, mv_data: nil)
        // The first key above (document, revision), then one back; past the end, the last key.
        var probe = BenchKey.make(document: document, revision: revision &+ 1)
        var rc = probe.withUnsafeMutableBytes { bytes in
            key = MDB_val(mv_size: bytes.count, mv_data: bytes.baseAddress)
            return mdb_cursor_get(cursor, &key, &value, MDB_SET_RANGE)
        }
        if rc == 0 {
            rc = mdb_cursor_get(cursor, &key, &value, MDB_PREV)
        } else if rc == MDB_NOTFOUND {
            rc = mdb_cursor_get(cursor, &key, &value, MDB_LAST)
        }
        if rc == MDB_NOTFOUND { return try body(nil) }
        try check(engine, rc, "mdb_cursor_get")
        let found = UnsafeRawBufferPointer(start: key.mv_data, count: key.mv_size)
        guard belongs(found, to: document), BenchKey.revision(of: found) <= revision else { return try body(nil) }
        return try body((BenchKey.revision(of: found), UnsafeRawBufferPointer(start: value.mv_data, count: value.mv_size)))
    }

    /// Calls `body` for each `BenchKey` of `document` in `dbi` with revision in `from ... through`,
    /// in order, with the value (valid only during the call).
    private static func scan(
        engine: String, txn: OpaquePointer?, dbi: MDB_dbi, document: String, from: UInt64, through: UInt64,
        _ body: (UInt64, UnsafeRawBufferPointer) throws -> Void
    ) throws {
        guard from <= through else { return }
        var cursor: OpaquePointer?
        try check(engine, mdb_cursor_open(txn, dbi, &cursor), "mdb_cursor_open")
        defer { mdb_cursor_close(cursor) }
        var key = MDB_val(mv_size: 0, mv_data: nil)
        var value = MDB_val(mv_size: 0, mv_data: nil)
        var start = BenchKey.make(document: document, revision: from)
        var rc = start.withUnsafeMutableBytes { bytes in
            key = MDB_val(mv_size: bytes.count, mv_data: bytes.baseAddress)
            return mdb_cursor_get(cursor, &key, &value, MDB_SET_RANGE)
        }
        while rc == 0 {
            let found = UnsafeRawBufferPointer(start: key.mv_data, count: key.mv_size)
            guard belongs(found, to: document) else { break }
            let revision = BenchKey.revision(of: found)
            guard revision <= through else { break }
            try body(revision, UnsafeRawBufferPointer(start: value.mv_data, count: value.mv_size))
            rc = mdb_cursor_get(cursor, &key, &value, MDB_NEXT)
        }
        if rc != 0 && rc != MDB_NOTFOUND { try check(engine, rc, "mdb_cursor_get") }
    }

    private static func belongs(_ key: UnsafeRawBufferPointer, to document: String) -> Bool {
        let count = document.utf8.count
        return key.count == count + 9 && key[count] == 0 && key.prefix(count).elementsEqual(document.utf8)
    }

    /// The inflated commit record at `sequence` (varint raw length, then zlib).
    private static func logRecord(engine: String, txn: OpaquePointer?, log: MDB_dbi, sequence: [UInt8]) throws -> [UInt8] {
        var sequence = sequence
        var value = MDB_val(mv_size: 0, mv_data: nil)
        let rc = sequence.withUnsafeMutableBytes { bytes in
            var key = MDB_val(mv_size: bytes.count, mv_data: bytes.baseAddress)
            return mdb_get(txn, log, &key, &value)
        }
        try check(engine, rc, "mdb_get(log)")
        let stored = UnsafeRawBufferPointer(start: value.mv_data, count: value.mv_size)
        var offset = 0
        let rawLength = try LogRecordReader.varint(stored, &offset, engine: engine)
        var raw = [UInt8](repeating: 0, count: Int(rawLength))
        var length = uLongf(rawLength)
        let zrc = raw.withUnsafeMutableBufferPointer { out in
            uncompress(
                out.baseAddress, &length, stored.baseAddress!.assumingMemoryBound(to: Bytef.self) + offset, uLong(stored.count - offset))
        }
        guard zrc == Z_OK, length == uLongf(rawLength) else {
            throw EngineError(engine: engine, call: "uncompress", code: zrc, message: "commit record does not inflate")
        }
        return raw
    }

    static func check(_ engine: String, _ rc: Int32, _ call: String) throws {
        guard rc != 0 else { return }
        throw EngineError(engine: engine, call: call, code: rc, message: String(cString: mdb_strerror(rc)))
    }
}

/// Parses `lmdb-log`'s commit records: per op varint(document length), document, varint(revision),
/// varint(op length), op.
enum LogRecordReader {
    static func forEach(
        _ record: [UInt8], engine: String, _ body: (UnsafeRawBufferPointer, UInt64, UnsafeRawBufferPointer) throws -> Void
    ) throws {
        try record.withUnsafeBytes { bytes in
            var offset = 0
            while offset < bytes.count {
                let documentLength = Int(try varint(bytes, &offset, engine: engine))
                let document = try slice(bytes, &offset, documentLength, engine: engine)
                let revision = try varint(bytes, &offset, engine: engine)
                let opLength = Int(try varint(bytes, &offset, engine: engine))
                let op = try slice(bytes, &offset, opLength, engine: engine)
                try body(document, revision, op)
            }
        }
    }

    static func varint(_ bytes: UnsafeRawBufferPointer, _ offset: inout Int, engine: String) throws -> UInt64 {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while offset < bytes.count, shift < 64 {
            let byte = bytes[offset]
            offset += 1
            value |= UInt64(byte & 0x7F) << shift
            if byte < 0x80 { return value }
            shift += 7
        }
        throw EngineError(engine: engine, call: "replay", code: 0, message: "truncated varint in a commit record")
    }

    private static func slice(
        _ bytes: UnsafeRawBufferPointer, _ offset: inout Int, _ count: Int, engine: String
    ) throws -> UnsafeRawBufferPointer {
        guard count >= 0, offset + count <= bytes.count else {
            throw EngineError(engine: engine, call: "replay", code: 0, message: "truncated commit record")
        }
        defer { offset += count }
        return UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + count)])
    }
}
