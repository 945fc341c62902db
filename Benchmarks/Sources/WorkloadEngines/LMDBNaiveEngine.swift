import CLMDBBench

/// Baseline: LMDB used the obvious way, one durable write transaction per call.
///
/// Named DB `ops` maps `BenchKey` → encoded op and `snaps` maps the same key → snapshot bytes.
/// Default environment flags (no MDB_WRITEMAP, no MDB_NOSYNC), so each commit writes the copied
/// B-tree path plus a meta page and fsyncs twice: this is what OpLog has to beat.
///
/// `@unchecked Sendable`: `env` and the DBI handles are set once in `init` and never change; LMDB
/// allows one environment to be used from many threads, and every transaction here begins and ends
/// inside one call on one thread (write transactions are thread-bound and serialized by LMDB's lock).
public final class LMDBNaiveEngine: WorkloadEngine, @unchecked Sendable {
    public let name = "lmdb-naive"
    private let env: OpaquePointer
    private let ops: MDB_dbi
    private let snaps: MDB_dbi

    /// Opens (creating) an environment in the existing directory `path`.
    public init(path: String) throws {
        var env: OpaquePointer?
        try Self.check(mdb_env_create(&env), "mdb_env_create")
        guard let env else { throw EngineError(engine: "lmdb-naive", call: "mdb_env_create", code: 0, message: "no env") }
        self.env = env
        do {
            try Self.check(mdb_env_set_maxdbs(env, 2), "mdb_env_set_maxdbs")
            // 4 GiB of address space, not of disk: the file only grows as pages are used.
            try Self.check(mdb_env_set_mapsize(env, 4 << 30), "mdb_env_set_mapsize")
            try Self.check(mdb_env_open(env, path, 0, 0o644), "mdb_env_open")
            var txn: OpaquePointer?
            try Self.check(mdb_txn_begin(env, nil, 0, &txn), "mdb_txn_begin")
            var ops: MDB_dbi = 0
            var snaps: MDB_dbi = 0
            try Self.check(mdb_dbi_open(txn, "ops", UInt32(MDB_CREATE), &ops), "mdb_dbi_open(ops)")
            try Self.check(mdb_dbi_open(txn, "snaps", UInt32(MDB_CREATE), &snaps), "mdb_dbi_open(snaps)")
            // "The handle ... will be available for use in other transactions after this one commits."
            try Self.check(mdb_txn_commit(txn), "mdb_txn_commit")
            self.ops = ops
            self.snaps = snaps
        } catch {
            mdb_env_close(env)
            throw error
        }
    }

    public func append(document: String, revision: UInt64, op: BenchOp) throws {
        try write { txn in
            try put(txn, ops, BenchKey.make(document: document, revision: revision), op.encoded)
        }
    }

    public func appendBatch(_ batch: [(document: String, revision: UInt64, op: BenchOp)]) throws {
        try write { txn in
            for entry in batch {
                try put(txn, ops, BenchKey.make(document: entry.document, revision: entry.revision), entry.op.encoded)
            }
        }
    }

    public func putSnapshot(document: String, revision: UInt64, bytes: [UInt8]) throws {
        try write { txn in try put(txn, snaps, BenchKey.make(document: document, revision: revision), bytes) }
    }

    public func deleteSnapshot(document: String, revision: UInt64) throws {
        var key = BenchKey.make(document: document, revision: revision)
        try write { txn in
            let rc = key.withUnsafeMutableBytes { keyBytes in
                var keyVal = MDB_val(mv_size: keyBytes.count, mv_data: keyBytes.baseAddress)
                return mdb_del(txn, snaps, &keyVal, nil)
            }
            if rc != MDB_NOTFOUND { try Self.check(rc, "mdb_del") }
        }
    }

    public func truncate(document: String, below floor: UInt64) throws {
        let prefix = Array(document.utf8) + [0]
        var start = BenchKey.make(document: document, revision: 0)
        try write { txn in
            var cursor: OpaquePointer?
            try Self.check(mdb_cursor_open(txn, ops, &cursor), "mdb_cursor_open")
            defer { mdb_cursor_close(cursor) }
            // Re-seek after each delete instead of trusting the cursor's post-delete position:
            // one extra O(log n) descent per key, obviously correct.
            while true {
                var value = MDB_val(mv_size: 0, mv_data: nil)
                let rc = start.withUnsafeMutableBytes { startBytes in
                    var key = MDB_val(mv_size: startBytes.count, mv_data: startBytes.baseAddress)
                    let rc = mdb_cursor_get(cursor, &key, &value, MDB_SET_RANGE)
                    guard rc == 0 else { return rc }
                    let found = UnsafeRawBufferPointer(start: key.mv_data, count: key.mv_size)
                    let isOurs = found.count == prefix.count + 8 && found.starts(with: prefix)
                    return isOurs && BenchKey.revision(of: found) < floor ? 0 : MDB_NOTFOUND
                }
                if rc == MDB_NOTFOUND { return }
                try Self.check(rc, "mdb_cursor_get")
                try Self.check(mdb_cursor_del(cursor, 0), "mdb_cursor_del")
            }
        }
    }

    public func close() throws {
        // Every commit already synced; this is a no-op safety net before closing.
        try Self.check(mdb_env_sync(env, 1), "mdb_env_sync")
        mdb_env_close(env)
    }

    /// Runs `body` in a fresh write transaction and commits it (fsync), aborting on any error.
    private func write(_ body: (OpaquePointer?) throws -> Void) throws {
        var txn: OpaquePointer?
        try Self.check(mdb_txn_begin(env, nil, 0, &txn), "mdb_txn_begin")
        do {
            try body(txn)
        } catch {
            mdb_txn_abort(txn)
            throw error
        }
        // mdb_txn_commit frees the transaction even when it fails, so no abort after it.
        try Self.check(mdb_txn_commit(txn), "mdb_txn_commit")
    }

    private func put(_ txn: OpaquePointer?, _ dbi: MDB_dbi, _ key: [UInt8], _ value: [UInt8]) throws {
        var key = key
        var value = value
        let rc = key.withUnsafeMutableBytes { keyBytes in
            value.withUnsafeMutableBytes { valueBytes in
                var keyVal = MDB_val(mv_size: keyBytes.count, mv_data: keyBytes.baseAddress)
                var dataVal = MDB_val(mv_size: valueBytes.count, mv_data: valueBytes.baseAddress)
                return mdb_put(txn, dbi, &keyVal, &dataVal, 0)
            }
        }
        try Self.check(rc, "mdb_put")
    }

    private static func check(_ rc: Int32, _ call: String) throws {
        guard rc != 0 else { return }
        throw EngineError(engine: "lmdb-naive", call: call, code: rc, message: String(cString: mdb_strerror(rc)))
    }
}

extension LMDBNaiveEngine: ReplayingEngine {
    /// W3: the newest snapshot at or below `revision`, then the ops after it, in one read transaction.
    public func replay(document: String, to revision: UInt64) throws -> String {
        try LMDBReplay.replayPerOpLayout(engine: name, env: env, ops: ops, snaps: snaps, document: document, to: revision)
    }
}
