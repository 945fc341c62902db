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
public final class RocksDBEngine: WorkloadEngine, @unchecked Sendable {
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
