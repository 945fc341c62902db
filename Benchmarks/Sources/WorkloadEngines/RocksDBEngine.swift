import CRocksDB

/// Baseline: RocksDB with default options and `sync = true` on every write.
///
/// Ops live under key `o` + `BenchKey`, snapshots under `s` + `BenchKey`, in one keyspace. One DB
/// handle is shared by all writer threads, so RocksDB's own group commit can fold concurrent
/// writers into one WAL fsync. `close()` flushes the memtable to an SST file before closing: that
/// deferred write is part of the cost of every op, so it is measured.
///
/// `@unchecked Sendable`: the handles are created in `init` and destroyed only in `close()`, after
/// all writers have returned; RocksDB's `DB` and read-only option objects are thread-safe.
public final class RocksDBEngine: ReplayingEngine, @unchecked Sendable {
    public let name = "rocksdb"
    private let db: OpaquePointer
    private let options: OpaquePointer
    private let writeOptions: OpaquePointer
    private static let opPrefix: [UInt8] = [UInt8(ascii: "o")]
    private static let snapshotPrefix: [UInt8] = [UInt8(ascii: "s")]

    /// Opens (creating) a database in the directory `path`.
    public init(path: String) throws {
        options = rocksdb_options_create()
        rocksdb_options_set_create_if_missing(options, 1)
        writeOptions = rocksdb_writeoptions_create()
        // sync=1: the WAL is fsynced before the write returns, the durability all engines promise.
        rocksdb_writeoptions_set_sync(writeOptions, 1)
        var error: UnsafeMutablePointer<CChar>?
        let db = rocksdb_open(options, path, &error)
        if let error {
            rocksdb_writeoptions_destroy(writeOptions)
            rocksdb_options_destroy(options)
            throw Self.engineError("rocksdb_open", error)
        }
        guard let db else { throw EngineError(engine: "rocksdb", call: "rocksdb_open", code: 0, message: "no handle") }
        self.db = db
    }

    public func append(document: String, revision: UInt64, op: BenchOp) throws {
        let key = BenchKey.make(prefix: Self.opPrefix, document: document, revision: revision)
        try put(key, op.encoded)
    }

    public func appendBatch(_ batch: [(document: String, revision: UInt64, op: BenchOp)]) throws {
        try write { writeBatch in
            for entry in batch {
                let key = BenchKey.make(prefix: Self.opPrefix, document: entry.document, revision: entry.revision)
                let value = entry.op.encoded
                key.withUnsafeBufferPointer { k in
                    value.withUnsafeBufferPointer { v in
                        k.withMemoryRebound(to: CChar.self) { k in
                            v.withMemoryRebound(to: CChar.self) { v in
                                rocksdb_writebatch_put(writeBatch, k.baseAddress, k.count, v.baseAddress, v.count)
                            }
                        }
                    }
                }
            }
        }
    }

    public func putSnapshot(document: String, revision: UInt64, bytes: [UInt8]) throws {
        try put(BenchKey.make(prefix: Self.snapshotPrefix, document: document, revision: revision), bytes)
    }

    public func deleteSnapshot(document: String, revision: UInt64) throws {
        let key = BenchKey.make(prefix: Self.snapshotPrefix, document: document, revision: revision)
        var error: UnsafeMutablePointer<CChar>?
        key.withUnsafeBufferPointer { k in
            k.withMemoryRebound(to: CChar.self) { k in
                rocksdb_delete(db, writeOptions, k.baseAddress, k.count, &error)
            }
        }
        if let error { throw Self.engineError("rocksdb_delete", error) }
    }

    public func truncate(document: String, below floor: UInt64) throws {
        // One range tombstone instead of a delete per op: the cheapest way RocksDB offers.
        let start = BenchKey.make(prefix: Self.opPrefix, document: document, revision: 0)
        let end = BenchKey.make(prefix: Self.opPrefix, document: document, revision: floor)
        try write { writeBatch in
            start.withUnsafeBufferPointer { s in
                end.withUnsafeBufferPointer { e in
                    s.withMemoryRebound(to: CChar.self) { s in
                        e.withMemoryRebound(to: CChar.self) { e in
                            rocksdb_writebatch_delete_range(writeBatch, s.baseAddress, s.count, e.baseAddress, e.count)
                        }
                    }
                }
            }
        }
    }

    public func close() throws {
        let flushOptions = rocksdb_flushoptions_create()
        defer { rocksdb_flushoptions_destroy(flushOptions) }
        rocksdb_flushoptions_set_wait(flushOptions, 1)
        var error: UnsafeMutablePointer<CChar>?
        rocksdb_flush(db, flushOptions, &error)
        if let error { throw Self.engineError("rocksdb_flush", error) }
        rocksdb_close(db)
        rocksdb_writeoptions_destroy(writeOptions)
        rocksdb_options_destroy(options)
    }

    /// W3: the newest snapshot at or below `revision` (`seek_for_prev`), then the ops after it, read
    /// through one iterator on an implicit consistent view.
    public func replay(document: String, to revision: UInt64) throws -> String {
        let readOptions = rocksdb_readoptions_create()
        defer { rocksdb_readoptions_destroy(readOptions) }
        guard let iterator = rocksdb_create_iterator(db, readOptions) else {
            throw EngineError(engine: name, call: "rocksdb_create_iterator", code: 0, message: "no iterator")
        }
        defer { rocksdb_iter_destroy(iterator) }
        let snapshotPrefix = Self.snapshotPrefix + Array(document.utf8) + [0]
        let snapshotKey = BenchKey.make(prefix: Self.snapshotPrefix, document: document, revision: revision)
        Self.withChars(snapshotKey) { rocksdb_iter_seek_for_prev(iterator, $0.baseAddress, $0.count) }
        var replay: TextReplay
        if let key = Self.currentKey(iterator), key.count == snapshotPrefix.count + 8, key.starts(with: snapshotPrefix) {
            var length = 0
            let value = rocksdb_iter_value(iterator, &length)
            replay = try TextReplay(
                engine: name, document: document,
                snapshot: (BenchKey.revision(of: key), UnsafeRawBufferPointer(start: value, count: length)))
        } else {
            replay = try TextReplay(engine: name, document: document, snapshot: nil)
        }
        try Self.iteratorError(iterator)
        let opPrefix = Self.opPrefix + Array(document.utf8) + [0]
        let opKey = BenchKey.make(prefix: Self.opPrefix, document: document, revision: replay.revision + 1)
        Self.withChars(opKey) { rocksdb_iter_seek(iterator, $0.baseAddress, $0.count) }
        while let key = Self.currentKey(iterator), key.count == opPrefix.count + 8, key.starts(with: opPrefix) {
            let opRevision = BenchKey.revision(of: key)
            guard opRevision <= revision else { break }
            var length = 0
            let value = rocksdb_iter_value(iterator, &length)
            try replay.apply(opRevision: opRevision, encodedOp: UnsafeRawBufferPointer(start: value, count: length))
            rocksdb_iter_next(iterator)
        }
        try Self.iteratorError(iterator)
        return try replay.text(at: revision)
    }

    /// The iterator's current key (valid until it moves), or nil when it is not on an entry.
    private static func currentKey(_ iterator: OpaquePointer) -> UnsafeRawBufferPointer? {
        guard rocksdb_iter_valid(iterator) != 0 else { return nil }
        var length = 0
        let key = rocksdb_iter_key(iterator, &length)
        return UnsafeRawBufferPointer(start: key, count: length)
    }

    private static func iteratorError(_ iterator: OpaquePointer) throws {
        var error: UnsafeMutablePointer<CChar>?
        rocksdb_iter_get_error(iterator, &error)
        if let error { throw engineError("rocksdb_iter", error) }
    }

    private static func withChars<T>(_ bytes: [UInt8], _ body: (UnsafeBufferPointer<CChar>) -> T) -> T {
        bytes.withUnsafeBufferPointer { $0.withMemoryRebound(to: CChar.self, body) }
    }

    private func put(_ key: [UInt8], _ value: [UInt8]) throws {
        var error: UnsafeMutablePointer<CChar>?
        key.withUnsafeBufferPointer { k in
            value.withUnsafeBufferPointer { v in
                k.withMemoryRebound(to: CChar.self) { k in
                    v.withMemoryRebound(to: CChar.self) { v in
                        rocksdb_put(db, writeOptions, k.baseAddress, k.count, v.baseAddress, v.count, &error)
                    }
                }
            }
        }
        if let error { throw Self.engineError("rocksdb_put", error) }
    }

    /// Fills a write batch with `body` and writes it as one synced commit.
    private func write(_ body: (OpaquePointer?) -> Void) throws {
        let writeBatch = rocksdb_writebatch_create()
        defer { rocksdb_writebatch_destroy(writeBatch) }
        body(writeBatch)
        var error: UnsafeMutablePointer<CChar>?
        rocksdb_write(db, writeOptions, writeBatch, &error)
        if let error { throw Self.engineError("rocksdb_write", error) }
    }

    /// RocksDB reports errors as malloc'd C strings that the caller frees.
    private static func engineError(_ call: String, _ error: UnsafeMutablePointer<CChar>) -> EngineError {
        defer { rocksdb_free(error) }
        return EngineError(engine: "rocksdb", call: call, code: -1, message: String(cString: error))
    }
}
