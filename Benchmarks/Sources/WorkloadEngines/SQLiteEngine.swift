import CSQLite
import Synchronization

#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// Baseline: SQLite in WAL mode with `synchronous=FULL`, the way an app would store an op log.
///
/// Tables `ops(doc, rev, value)` and `snapshots(doc, rev, bytes)`, both keyed by (doc, rev)
/// WITHOUT ROWID so the primary key is the B-tree key, as in the key-value baselines. Each writer
/// thread gets its own connection (what a multi-threaded app does; SQLite itself then serializes
/// writers on the WAL write lock, and `busy_timeout` makes waiting writers retry). `close()`
/// checkpoints the WAL into the database file, so those writes are measured too.
public final class SQLiteEngine: ReplayingEngine, Sendable {
    public let name = "sqlite"
    private let path: String
    /// Used for the schema and the final checkpoint; closed last.
    private let setup: SQLiteConnection
    /// One connection per writer thread, keyed by `pthread_self()`, opened on first use.
    private let connections = Mutex<[pthread_t: SQLiteConnection]>([:])

    /// Opens (creating) `<directory>/ops.sqlite`.
    public init(directory: String) throws {
        path = directory + "/ops.sqlite"
        setup = try SQLiteConnection(path: path)
        // journal_mode is persistent in the file; every later connection uses WAL too.
        try setup.execute("PRAGMA journal_mode=WAL")
        try setup.execute(
            """
            CREATE TABLE IF NOT EXISTS ops(doc TEXT, rev INTEGER, value BLOB, PRIMARY KEY(doc, rev)) WITHOUT ROWID;
            CREATE TABLE IF NOT EXISTS snapshots(doc TEXT, rev INTEGER, bytes BLOB, PRIMARY KEY(doc, rev)) WITHOUT ROWID;
            """)
    }

    public func append(document: String, revision: UInt64, op: BenchOp) throws {
        // A single INSERT in autocommit mode is its own durable transaction.
        try connection().insertOp(document: document, revision: revision, value: op.encoded)
    }

    public func appendBatch(_ batch: [(document: String, revision: UInt64, op: BenchOp)]) throws {
        let connection = try connection()
        // IMMEDIATE takes the write lock up front, so the busy handler can wait for it instead of
        // failing on a read-to-write upgrade halfway through the batch.
        try connection.transaction {
            for entry in batch {
                try connection.insertOp(document: entry.document, revision: entry.revision, value: entry.op.encoded)
            }
        }
    }

    public func putSnapshot(document: String, revision: UInt64, bytes: [UInt8]) throws {
        try connection().run(.putSnapshot, document: document, revision: revision, blob: bytes)
    }

    public func deleteSnapshot(document: String, revision: UInt64) throws {
        try connection().run(.deleteSnapshot, document: document, revision: revision)
    }

    public func truncate(document: String, below floor: UInt64) throws {
        try connection().run(.truncate, document: document, revision: floor)
    }

    /// W3, on the calling thread's connection.
    public func replay(document: String, to revision: UInt64) throws -> String {
        try connection().replay(document: document, to: revision)
    }

    public func close() throws {
        // Writers have all returned by now; nothing else touches the connections.
        let perThread = connections.withLock { connections in
            defer { connections = [:] }
            return Array(connections.values)
        }
        for connection in perThread { try connection.close() }
        // TRUNCATE copies every WAL frame into the database, fsyncs it and empties the WAL:
        // the work an app pays for eventually, so it belongs in the measurement.
        try setup.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        try setup.close()
    }

    private func connection() throws -> SQLiteConnection {
        let thread = pthread_self()
        if let existing = connections.withLock({ $0[thread] }) { return existing }
        let created = try SQLiteConnection(path: path)
        connections.withLock { $0[thread] = created }
        return created
    }
}

/// One SQLite connection with its prepared statements.
///
/// `@unchecked Sendable`: a connection is opened with SQLITE_OPEN_NOMUTEX and used by exactly one
/// thread at a time — its writer thread during the run, then the closing thread after the writers
/// have been joined.
final class SQLiteConnection: @unchecked Sendable {
    enum Statement: Int, CaseIterable {
        case insertOp, putSnapshot, deleteSnapshot, truncate, snapshotAtOrBelow, opsRange

        var sql: String {
            switch self {
            case .insertOp: "INSERT INTO ops(doc, rev, value) VALUES (?1, ?2, ?3)"
            case .putSnapshot: "INSERT OR REPLACE INTO snapshots(doc, rev, bytes) VALUES (?1, ?2, ?3)"
            case .deleteSnapshot: "DELETE FROM snapshots WHERE doc = ?1 AND rev = ?2"
            case .truncate: "DELETE FROM ops WHERE doc = ?1 AND rev < ?2"
            case .snapshotAtOrBelow: "SELECT rev, bytes FROM snapshots WHERE doc = ?1 AND rev <= ?2 ORDER BY rev DESC LIMIT 1"
            case .opsRange: "SELECT rev, value FROM ops WHERE doc = ?1 AND rev > ?2 AND rev <= ?3 ORDER BY rev"
            }
        }
    }

    private var db: OpaquePointer?
    private var statements: [OpaquePointer?] = []

    init(path: String) throws {
        let flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX
        let rc = sqlite3_open_v2(path, &db, flags, nil)
        guard rc == SQLITE_OK else {
            let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
            sqlite3_close_v2(db)
            throw EngineError(engine: "sqlite", call: "sqlite3_open_v2", code: rc, message: message)
        }
        // Writers queue on the WAL write lock; a minute is far longer than any wait in a run.
        sqlite3_busy_timeout(db, 60_000)
        // FULL: the WAL is fsynced at every commit, so an acknowledged op survives power loss.
        try execute("PRAGMA synchronous=FULL")
    }

    func execute(_ sql: String) throws {
        try check(sqlite3_exec(db, sql, nil, nil, nil), "sqlite3_exec(\(sql.prefix(40)))")
    }

    func transaction(_ body: () throws -> Void) throws {
        try execute("BEGIN IMMEDIATE")
        do {
            try body()
            try execute("COMMIT")
        } catch {
            try? execute("ROLLBACK")
            throw error
        }
    }

    func insertOp(document: String, revision: UInt64, value: [UInt8]) throws {
        try run(.insertOp, document: document, revision: revision, blob: value)
    }

    /// Binds (document, revision[, blob]) to a cached statement, steps it to completion and resets it.
    func run(_ statement: Statement, document: String, revision: UInt64, blob: [UInt8]? = nil) throws {
        if statements.isEmpty { try prepareAll() }
        let stmt = statements[statement.rawValue]
        defer {
            sqlite3_reset(stmt)
            sqlite3_clear_bindings(stmt)
        }
        // SQLITE_TRANSIENT (-1): SQLite copies the text, whose C string only lives during the call.
        let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)
        try check(sqlite3_bind_text(stmt, 1, document, -1, transient), "sqlite3_bind_text")
        try check(sqlite3_bind_int64(stmt, 2, Int64(revision)), "sqlite3_bind_int64")
        let rc: Int32
        if let blob {
            // SQLITE_STATIC (nil) is safe: the statement is stepped before the buffer goes away.
            rc = blob.withUnsafeBytes { bytes in
                let bound = sqlite3_bind_blob(stmt, 3, bytes.baseAddress, Int32(bytes.count), nil)
                return bound == SQLITE_OK ? sqlite3_step(stmt) : bound
            }
        } else {
            rc = sqlite3_step(stmt)
        }
        guard rc == SQLITE_DONE else { return try check(rc, "sqlite3_step(\(statement))") }
    }

    /// W3: the newest snapshot at or below `target`, then the ops after it, in one read transaction
    /// (two statements in autocommit would be two read transactions).
    func replay(document: String, to target: UInt64) throws -> String {
        if statements.isEmpty { try prepareAll() }
        try execute("BEGIN")
        defer { try? execute("COMMIT") }
        let snapshot = statements[Statement.snapshotAtOrBelow.rawValue]
        let ops = statements[Statement.opsRange.rawValue]
        defer {
            for stmt in [snapshot, ops] {
                sqlite3_reset(stmt)
                sqlite3_clear_bindings(stmt)
            }
        }
        let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)
        try check(sqlite3_bind_text(snapshot, 1, document, -1, transient), "sqlite3_bind_text")
        try check(sqlite3_bind_int64(snapshot, 2, Int64(target)), "sqlite3_bind_int64")
        var replay: TextReplay
        switch sqlite3_step(snapshot) {
        case SQLITE_ROW:
            let bytes = UnsafeRawBufferPointer(start: sqlite3_column_blob(snapshot, 1), count: Int(sqlite3_column_bytes(snapshot, 1)))
            replay = try TextReplay(engine: "sqlite", document: document, snapshot: (UInt64(sqlite3_column_int64(snapshot, 0)), bytes))
        case SQLITE_DONE:
            replay = try TextReplay(engine: "sqlite", document: document, snapshot: nil)
        case let rc:
            try check(rc, "sqlite3_step(snapshotAtOrBelow)")
            throw EngineError(engine: "sqlite", call: "sqlite3_step(snapshotAtOrBelow)", code: rc, message: "no row")
        }
        try check(sqlite3_bind_text(ops, 1, document, -1, transient), "sqlite3_bind_text")
        try check(sqlite3_bind_int64(ops, 2, Int64(replay.revision)), "sqlite3_bind_int64")
        try check(sqlite3_bind_int64(ops, 3, Int64(target)), "sqlite3_bind_int64")
        while true {
            let rc = sqlite3_step(ops)
            if rc == SQLITE_DONE { break }
            guard rc == SQLITE_ROW else {
                try check(rc, "sqlite3_step(opsRange)")
                break
            }
            let value = UnsafeRawBufferPointer(start: sqlite3_column_blob(ops, 1), count: Int(sqlite3_column_bytes(ops, 1)))
            try replay.apply(opRevision: UInt64(sqlite3_column_int64(ops, 0)), encodedOp: value)
        }
        return try replay.text(at: target)
    }

    func close() throws {
        for stmt in statements { sqlite3_finalize(stmt) }
        statements = []
        try check(sqlite3_close(db), "sqlite3_close")
        db = nil
    }

    private func prepareAll() throws {
        for statement in Statement.allCases {
            var stmt: OpaquePointer?
            try check(sqlite3_prepare_v2(db, statement.sql, -1, &stmt, nil), "sqlite3_prepare_v2(\(statement))")
            statements.append(stmt)
        }
    }

    private func check(_ rc: Int32, _ call: String) throws {
        guard rc != SQLITE_OK else { return }
        throw EngineError(engine: "sqlite", call: call, code: rc, message: String(cString: sqlite3_errmsg(db)))
    }
}
