import CLevelDB

/// Baseline: LevelDB 1.23 (Debian's `libleveldb-dev`) with default options and `sync = true` on
/// every write.
///
/// The same layout as `rocksdb`: ops under key `o` + `BenchKey`, snapshots under `s` + `BenchKey`,
/// in one keyspace, and one DB handle shared by all writer threads, so LevelDB's own group commit
/// (the writer queue in `DBImpl::Write`) folds concurrent writers into one log `fdatasync`.
/// LevelDB has no range delete, so truncation finds the document's ops below the floor with an
/// iterator and deletes them one key at a time in a single synced write batch. `close()` flushes
/// the memtable to a table file before closing, as `rocksdb` does, so that deferred write is
/// measured too.
///
/// `@unchecked Sendable`: the handles are created in `init` and destroyed only in `close()`, after
/// all writers have returned; LevelDB's `DB` is thread-safe and the option objects are only read.
public final class LevelDBEngine: ReplayingEngine, @unchecked Sendable {
    public let name = "leveldb"
    private let db: OpaquePointer
    private let options: OpaquePointer
    private let writeOptions: OpaquePointer
    private let readOptions: OpaquePointer
    private static let opPrefix: [UInt8] = [UInt8(ascii: "o")]
    private static let snapshotPrefix: [UInt8] = [UInt8(ascii: "s")]

    /// Opens (creating) a database in the directory `path`.
    public init(path: String) throws {
        guard let options = leveldb_options_create(), let writeOptions = leveldb_writeoptions_create(),
            let readOptions = leveldb_readoptions_create()
        else { throw EngineError(engine: "leveldb", call: "leveldb_*_create", code: 0, message: "no options object") }
        self.options = options
        self.writeOptions = writeOptions
        self.readOptions = readOptions
        leveldb_options_set_create_if_missing(options, 1)
        // sync=1: the log is fdatasynced before the write returns, the durability all engines promise.
        leveldb_writeoptions_set_sync(writeOptions, 1)
        var error: UnsafeMutablePointer<CChar>?
        let db = leveldb_open(options, path, &error)
        if let error {
            Self.destroy(options, writeOptions, readOptions)
            throw Self.engineError("leveldb_open", error)
        }
        guard let db else {
            Self.destroy(options, writeOptions, readOptions)
            throw EngineError(engine: "leveldb", call: "leveldb_open", code: 0, message: "no handle")
        }
        self.db = db
    }

    public func append(document: String, revision: UInt64, op: BenchOp) throws {
        try put(BenchKey.make(prefix: Self.opPrefix, document: document, revision: revision), op.encoded)
    }

    public func appendBatch(_ batch: [(document: String, revision: UInt64, op: BenchOp)]) throws {
        try write { writeBatch in
            for entry in batch {
                let key = BenchKey.make(prefix: Self.opPrefix, document: entry.document, revision: entry.revision)
                Self.withChars(key) { k, kCount in
                    Self.withChars(entry.op.encoded) { v, vCount in leveldb_writebatch_put(writeBatch, k, kCount, v, vCount) }
                }
            }
            return true
        }
    }

    public func putSnapshot(document: String, revision: UInt64, bytes: [UInt8]) throws {
        try put(BenchKey.make(prefix: Self.snapshotPrefix, document: document, revision: revision), bytes)
    }

    public func deleteSnapshot(document: String, revision: UInt64) throws {
        let key = BenchKey.make(prefix: Self.snapshotPrefix, document: document, revision: revision)
        var error: UnsafeMutablePointer<CChar>?
        Self.withChars(key) { k, kCount in leveldb_delete(db, writeOptions, k, kCount, &error) }
        if let error { throw Self.engineError("leveldb_delete", error) }
    }

    /// Deletes every op of the document below `floor` in one synced batch. Without a range
    /// tombstone this costs one tombstone per op (RocksDB writes a single one), and the scan starts
    /// at revision 0 each time, walking over the tombstones of earlier truncations until a
    /// compaction drops them: both are what an application on LevelDB pays.
    public func truncate(document: String, below floor: UInt64) throws {
        guard let iterator = leveldb_create_iterator(db, readOptions) else {
            throw EngineError(engine: name, call: "leveldb_create_iterator", code: 0, message: "no iterator")
        }
        defer { leveldb_iter_destroy(iterator) }
        let prefix = Self.opPrefix + Array(document.utf8) + [0]
        var deletes = 0
        try write { writeBatch in
            Self.withChars(BenchKey.make(prefix: Self.opPrefix, document: document, revision: 0)) {
                leveldb_iter_seek(iterator, $0, $1)
            }
            while let key = Self.currentKey(iterator), key.count == prefix.count + 8, key.starts(with: prefix),
                BenchKey.revision(of: key) < floor
            {
                // The batch copies the key, so the iterator may move on afterwards.
                leveldb_writebatch_delete(writeBatch, key.baseAddress?.assumingMemoryBound(to: CChar.self), key.count)
                deletes += 1
                leveldb_iter_next(iterator)
            }
            try Self.iteratorError(iterator)
            // Nothing below the floor: no batch to make durable, so no sync either.
            return deletes > 0
        }
    }

    /// Flushes the memtable into a table file (synced, with its manifest edit), then closes.
    ///
    /// The C API has no `Flush`; `leveldb_compact_range` flushes the memtable first and then
    /// compacts the table files overlapping its range. The range here is the empty key alone, which
    /// sorts before every key this engine writes, so no file overlaps it and only the flush runs:
    /// the same work `rocksdb`'s `close()` does, not a full compaction. `leveldb_close` then waits
    /// for a background compaction already running.
    public func close() throws {
        leveldb_compact_range(db, "", 0, "", 0)
        leveldb_close(db)
        Self.destroy(options, writeOptions, readOptions)
    }

    /// W3: the newest snapshot at or below `revision`, then the ops after it, read through one
    /// iterator (which reads one implicit consistent view), as `rocksdb` does. LevelDB has no
    /// `seek_for_prev`: `seekForPrevious` builds it from `seek` and `prev`.
    public func replay(document: String, to revision: UInt64) throws -> String {
        guard let iterator = leveldb_create_iterator(db, readOptions) else {
            throw EngineError(engine: name, call: "leveldb_create_iterator", code: 0, message: "no iterator")
        }
        defer { leveldb_iter_destroy(iterator) }
        let snapshotPrefix = Self.snapshotPrefix + Array(document.utf8) + [0]
        Self.seekForPrevious(iterator, BenchKey.make(prefix: Self.snapshotPrefix, document: document, revision: revision))
        var replay: TextReplay
        if let key = Self.currentKey(iterator), key.count == snapshotPrefix.count + 8, key.starts(with: snapshotPrefix) {
            var length = 0
            let value = leveldb_iter_value(iterator, &length)
            replay = try TextReplay(
                engine: name, document: document,
                snapshot: (BenchKey.revision(of: key), UnsafeRawBufferPointer(start: value, count: length)))
        } else {
            replay = try TextReplay(engine: name, document: document, snapshot: nil)
        }
        try Self.iteratorError(iterator)
        let opPrefix = Self.opPrefix + Array(document.utf8) + [0]
        Self.withChars(BenchKey.make(prefix: Self.opPrefix, document: document, revision: replay.revision + 1)) {
            leveldb_iter_seek(iterator, $0, $1)
        }
        while let key = Self.currentKey(iterator), key.count == opPrefix.count + 8, key.starts(with: opPrefix) {
            let opRevision = BenchKey.revision(of: key)
            guard opRevision <= revision else { break }
            var length = 0
            let value = leveldb_iter_value(iterator, &length)
            try replay.apply(opRevision: opRevision, encodedOp: UnsafeRawBufferPointer(start: value, count: length))
            leveldb_iter_next(iterator)
        }
        try Self.iteratorError(iterator)
        return try replay.text(at: revision)
    }

    /// Positions the iterator on the last key at or before `target` (invalid if there is none).
    private static func seekForPrevious(_ iterator: OpaquePointer, _ target: [UInt8]) {
        withChars(target) { leveldb_iter_seek(iterator, $0, $1) }
        guard let key = currentKey(iterator) else {
            // Every key sorts before the target: the last one is the answer.
            leveldb_iter_seek_to_last(iterator)
            return
        }
        // `seek` lands on the first key at or after the target; step back unless it is the target.
        if !key.elementsEqual(target) { leveldb_iter_prev(iterator) }
    }

    /// The iterator's current key (valid until it moves), or nil when it is not on an entry.
    private static func currentKey(_ iterator: OpaquePointer) -> UnsafeRawBufferPointer? {
        guard leveldb_iter_valid(iterator) != 0 else { return nil }
        var length = 0
        let key = leveldb_iter_key(iterator, &length)
        return UnsafeRawBufferPointer(start: key, count: length)
    }

    private static func iteratorError(_ iterator: OpaquePointer) throws {
        var error: UnsafeMutablePointer<CChar>?
        leveldb_iter_get_error(iterator, &error)
        if let error { throw engineError("leveldb_iter", error) }
    }

    /// Calls `body` with the bytes as a C character pointer and a length.
    private static func withChars<T>(_ bytes: [UInt8], _ body: (UnsafePointer<CChar>?, Int) throws -> T) rethrows -> T {
        try bytes.withUnsafeBufferPointer { buffer in
            try buffer.withMemoryRebound(to: CChar.self) { try body($0.baseAddress, $0.count) }
        }
    }

    private func put(_ key: [UInt8], _ value: [UInt8]) throws {
        var error: UnsafeMutablePointer<CChar>?
        Self.withChars(key) { k, kCount in
            Self.withChars(value) { v, vCount in leveldb_put(db, writeOptions, k, kCount, v, vCount, &error) }
        }
        if let error { throw Self.engineError("leveldb_put", error) }
    }

    /// Fills a write batch with `body` and, unless `body` returns false (nothing to write), writes
    /// it as one synced commit.
    private func write(_ body: (OpaquePointer?) throws -> Bool) throws {
        let writeBatch = leveldb_writebatch_create()
        defer { leveldb_writebatch_destroy(writeBatch) }
        guard try body(writeBatch) else { return }
        var error: UnsafeMutablePointer<CChar>?
        leveldb_write(db, writeOptions, writeBatch, &error)
        if let error { throw Self.engineError("leveldb_write", error) }
    }

    private static func destroy(_ options: OpaquePointer, _ writeOptions: OpaquePointer, _ readOptions: OpaquePointer) {
        leveldb_readoptions_destroy(readOptions)
        leveldb_writeoptions_destroy(writeOptions)
        leveldb_options_destroy(options)
    }

    /// LevelDB reports errors as malloc'd C strings that the caller frees with `leveldb_free`.
    private static func engineError(_ call: String, _ error: UnsafeMutablePointer<CChar>) -> EngineError {
        defer { leveldb_free(error) }
        return EngineError(engine: "leveldb", call: call, code: -1, message: String(cString: error))
    }
}
