import CLMDBBench
import Foundation

/// One caller's request to a candidate-layout engine. A group commit applies a queue of these, in
/// order, in one LMDB write transaction.
public enum LayoutRequest: Sendable {
    case ops([(document: String, revision: UInt64, op: BenchOp)])
    case putSnapshot(document: String, revision: UInt64, bytes: [UInt8])
    case deleteSnapshot(document: String, revision: UInt64)
    case truncate(document: String, floor: UInt64)

    /// What the request counts for against the per-commit op bound; maintenance counts as one.
    public var weight: Int {
        if case .ops(let ops) = self { return max(ops.count, 1) }
        return 1
    }
}

/// The LMDB environment the candidate engines share, with the few calls they need. Configured
/// like `lmdb-naive` (map size 4 GiB, default flags: no MDB_WRITEMAP, no MDB_NOSYNC, so every
/// commit fsyncs) so the only differences measured are group commit and the key layout.
///
/// `@unchecked Sendable`: `env` and the DBI handles are fixed after `init`; write transactions are
/// begun and committed only on the group-commit writer thread, which owns them.
final class LMDBCandidateFile: @unchecked Sendable {
    let engine: String
    let env: OpaquePointer
    /// The named DBs, in the order given to `init`.
    let dbis: [MDB_dbi]

    /// Opens (creating) an environment in the existing directory `path` with the named DBs.
    init(engine: String, path: String, databases: [String]) throws {
        self.engine = engine
        var env: OpaquePointer?
        try Self.check(engine, mdb_env_create(&env), "mdb_env_create")
        guard let env else { throw EngineError(engine: engine, call: "mdb_env_create", code: 0, message: "no env") }
        self.env = env
        do {
            try Self.check(engine, mdb_env_set_maxdbs(env, MDB_dbi(databases.count)), "mdb_env_set_maxdbs")
            // Address space, not disk: the file grows only as pages are used.
            try Self.check(engine, mdb_env_set_mapsize(env, 4 << 30), "mdb_env_set_mapsize")
            try Self.check(engine, mdb_env_open(env, path, 0, 0o644), "mdb_env_open")
            var txn: OpaquePointer?
            try Self.check(engine, mdb_txn_begin(env, nil, 0, &txn), "mdb_txn_begin")
            var opened: [MDB_dbi] = []
            for name in databases {
                var dbi: MDB_dbi = 0
                let rc = mdb_dbi_open(txn, name, UInt32(MDB_CREATE), &dbi)
                if rc != 0 { mdb_txn_abort(txn) }
                try Self.check(engine, rc, "mdb_dbi_open(\(name))")
                opened.append(dbi)
            }
            try Self.check(engine, mdb_txn_commit(txn), "mdb_txn_commit")
            dbis = opened
        } catch {
            mdb_env_close(env)
            throw error
        }
    }

    /// Runs `body` in one write transaction and commits it (durable on return), aborting on error.
    func write(_ body: (OpaquePointer?) throws -> Void) throws {
        var txn: OpaquePointer?
        try check(mdb_txn_begin(env, nil, 0, &txn), "mdb_txn_begin")
        do {
            try body(txn)
        } catch {
            mdb_txn_abort(txn)
            throw error
        }
        // mdb_txn_commit frees the transaction even when it fails, so no abort after it.
        try check(mdb_txn_commit(txn), "mdb_txn_commit")
    }

    func put(_ txn: OpaquePointer?, _ dbi: MDB_dbi, _ key: [UInt8], _ value: [UInt8], flags: UInt32 = 0) throws {
        var key = key
        var value = value
        let rc = key.withUnsafeMutableBytes { keyBytes in
            value.withUnsafeMutableBytes { valueBytes in
                var keyVal = MDB_val(mv_size: keyBytes.count, mv_data: keyBytes.baseAddress)
                var dataVal = MDB_val(mv_size: valueBytes.count, mv_data: valueBytes.baseAddress)
                return mdb_put(txn, dbi, &keyVal, &dataVal, flags)
            }
        }
        try check(rc, "mdb_put")
    }

    /// Deletes `key`; a missing key is not an error (deletes are idempotent for the harness).
    func delete(_ txn: OpaquePointer?, _ dbi: MDB_dbi, _ key: [UInt8]) throws {
        var key = key
        let rc = key.withUnsafeMutableBytes { keyBytes in
            var keyVal = MDB_val(mv_size: keyBytes.count, mv_data: keyBytes.baseAddress)
            return mdb_del(txn, dbi, &keyVal, nil)
        }
        if rc != MDB_NOTFOUND { try check(rc, "mdb_del") }
    }

    /// The `BenchKey` keys of `document` in `dbi` with revision < `bound`, in revision order.
    /// Collected first and deleted afterwards by the caller, so no cursor is trusted across deletes.
    func documentKeys(_ txn: OpaquePointer?, _ dbi: MDB_dbi, document: String, below bound: UInt64) throws -> [[UInt8]] {
        let prefix = Array(document.utf8) + [0]
        var start = BenchKey.make(document: document, revision: 0)
        var cursor: OpaquePointer?
        try check(mdb_cursor_open(txn, dbi, &cursor), "mdb_cursor_open")
        defer { mdb_cursor_close(cursor) }
        var keys: [[UInt8]] = []
        var key = MDB_val(mv_size: 0, mv_data: nil)
        var value = MDB_val(mv_size: 0, mv_data: nil)
        var rc = start.withUnsafeMutableBytes { startBytes in
            key = MDB_val(mv_size: startBytes.count, mv_data: startBytes.baseAddress)
            return mdb_cursor_get(cursor, &key, &value, MDB_SET_RANGE)
        }
        while rc == 0 {
            let found = UnsafeRawBufferPointer(start: key.mv_data, count: key.mv_size)
            guard found.count == prefix.count + 8, found.starts(with: prefix), BenchKey.revision(of: found) < bound else { break }
            keys.append(Array(found))
            rc = mdb_cursor_get(cursor, &key, &value, MDB_NEXT)
        }
        if rc != 0 && rc != MDB_NOTFOUND { try check(rc, "mdb_cursor_get") }
        return keys
    }

    /// The greatest key in `dbi`, read in its own read-only transaction (used once, at open).
    func lastKey(_ dbi: MDB_dbi) throws -> [UInt8]? {
        var txn: OpaquePointer?
        try check(mdb_txn_begin(env, nil, UInt32(MDB_RDONLY), &txn), "mdb_txn_begin")
        defer { mdb_txn_abort(txn) }
        var cursor: OpaquePointer?
        try check(mdb_cursor_open(txn, dbi, &cursor), "mdb_cursor_open")
        defer { mdb_cursor_close(cursor) }
        var key = MDB_val(mv_size: 0, mv_data: nil)
        var value = MDB_val(mv_size: 0, mv_data: nil)
        let rc = mdb_cursor_get(cursor, &key, &value, MDB_LAST)
        if rc == MDB_NOTFOUND { return nil }
        try check(rc, "mdb_cursor_get")
        return Array(UnsafeRawBufferPointer(start: key.mv_data, count: key.mv_size))
    }

    func close() throws {
        // Every commit already synced; this is a no-op safety net before closing.
        try check(mdb_env_sync(env, 1), "mdb_env_sync")
        mdb_env_close(env)
    }

    /// Prints the group-commit summary, so a row's throughput can be read against its group sizes.
    func report(_ counters: GroupCommitWriter<LayoutRequest>.Counters, extra: String = "") {
        let perCommit = counters.commits > 0 ? Double(counters.ops) / Double(counters.commits) : 0
        let line =
            "\(engine): \(counters.commits) commits, \(counters.requests) requests, \(counters.ops) ops "
            + "(\(String(format: "%.1f", perCommit)) ops/commit)\(extra)\n"
        FileHandle.standardError.write(Data(line.utf8))
    }

    func check(_ rc: Int32, _ call: String) throws { try Self.check(engine, rc, call) }

    static func check(_ engine: String, _ rc: Int32, _ call: String) throws {
        guard rc != 0 else { return }
        throw EngineError(engine: engine, call: call, code: rc, message: String(cString: mdb_strerror(rc)))
    }
}

extension UInt64 {
    /// Big-endian bytes: byte order equals numeric order, as LMDB's default comparator needs.
    var bigEndianBytes: [UInt8] { withUnsafeBytes(of: bigEndian) { Array($0) } }
}
