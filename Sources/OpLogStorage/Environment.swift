import CLMDB
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Settings for opening an LMDB environment.
public struct EnvironmentConfiguration: Sendable {
    /// Initial map size in bytes; grown on demand by the engine up to its own maximum.
    public var mapSizeBytes: Int
    /// Named databases the environment may hold (`mdb_env_set_maxdbs`).
    public var maxNamedDatabases: UInt32 = 8
    /// Reader slots (`mdb_env_set_maxreaders`); LMDB's default is 126.
    public var maxReaders: UInt32 = 126
    /// Open with `MDB_RDONLY`: no write transactions, nothing created.
    public var readOnly = false
    /// `MDB_NOSYNC | MDB_NOMETASYNC`: commits are not flushed; a system crash may lose commits
    /// or, on file systems that reorder writes, corrupt the file.
    public var skipSync = false
    /// Permissions of `data.mdb` and `lock.mdb` when LMDB creates them (`mdb_env_open`'s mode).
    public var fileMode: UInt32 = 0o600

    public init(mapSizeBytes: Int) {
        self.mapSizeBytes = mapSizeBytes
    }
}

/// An LMDB environment. The only owner of an `MDB_env*` in OpLog.
///
/// Thread safety: read transactions may run on any thread at once (`MDB_NOTLS`); write transactions
/// are serialised by `writeLock` and never cross an `await`, because LMDB binds a write transaction to
/// the thread that began it. `resizeLock` is taken shared by every call that reads the map or the
/// handle (transactions, `mdb_env_info`/`mdb_env_stat`, which read the meta pages through the map, a
/// copy, a sync) and exclusively by a map resize and by close, because `mdb_env_set_mapsize` "may only
/// be called if no transactions are active in this process" and LMDB does not check that itself: a
/// resize unmaps the old map, and a call reading it meanwhile reads whatever is mapped there next
/// (another store's file: SIGBUS past its end).
public final class Environment: @unchecked Sendable {
    // Invariant making @unchecked Sendable true: `handle` is set once in init and freed once in
    // close(), which takes `resizeLock` exclusively so no transaction is running.
    private var handle: OpaquePointer?
    private let resizeLock = ReadWriteLock()
    private let writeLock = Mutex<Void>(())
    public let path: String
    public let configuration: EnvironmentConfiguration
    /// Reader slots of dead processes that `mdb_reader_check` cleared when this environment opened.
    public private(set) var staleReadersClearedAtOpen = 0

    /// Opens (and with a writable configuration creates) the environment in `directory`.
    public init(directory: String, configuration: EnvironmentConfiguration) throws(StorageError) {
        self.path = directory
        self.configuration = configuration
        var env: OpaquePointer?
        try checkLMDB(mdb_env_create(&env), .environmentCreate)
        do {
            try checkLMDB(mdb_env_set_maxdbs(env, configuration.maxNamedDatabases), .environmentCreate, "maxdbs")
            try checkLMDB(mdb_env_set_maxreaders(env, configuration.maxReaders), .environmentCreate, "maxreaders")
            try checkLMDB(mdb_env_set_mapsize(env, configuration.mapSizeBytes), .setMapSize)
            // MDB_NOTLS: Swift tasks hop threads, so read transactions must not live in thread-local
            // reader slots. MDB_NORDAHEAD: the tree is read by key, read-ahead only evicts cache.
            var flags = UInt32(MDB_NOTLS) | UInt32(MDB_NORDAHEAD)
            if configuration.readOnly { flags |= UInt32(MDB_RDONLY) }
            if configuration.skipSync { flags |= UInt32(MDB_NOSYNC) | UInt32(MDB_NOMETASYNC) }
            try checkLMDB(mdb_env_open(env, directory, flags, mode_t(configuration.fileMode)), .environmentOpen)
        } catch {
            mdb_env_close(env)
            throw error
        }
        handle = env
        // Reader slots left by killed processes pin pages until cleared ("mdb_reader_check").
        var dead: Int32 = 0
        if mdb_reader_check(env, &dead) == MDB_SUCCESS { staleReadersClearedAtOpen = Int(dead) }
    }

    deinit { closeHandle() }

    /// Closes the environment. Waits for running transactions to finish.
    public func close() { closeHandle() }

    private func closeHandle() {
        resizeLock.withWriteLock {
            if let env = handle {
                mdb_env_close(env)
                handle = nil
            }
        }
    }

    private func liveHandle(_ call: StorageError.Call) throws(StorageError) -> OpaquePointer {
        guard let env = handle else { throw StorageError(.lmdb(EINVAL), call: call, detail: "closed environment") }
        return env
    }

    /// Runs `body` in a read-only transaction that ends when `body` returns.
    ///
    /// The transaction cannot escape `body`, which is what keeps readers short-lived: a long-lived
    /// read transaction would stop LMDB from reusing pages freed after it began.
    public func read<T>(_ body: (borrowing ReadTransaction) throws -> T) throws -> T {
        while true {
            let outcome: ReadOutcome<T> = try resizeLock.withReadLock {
                let env = try liveHandle(.beginTransaction)
                var txn: OpaquePointer?
                let code = mdb_txn_begin(env, nil, UInt32(MDB_RDONLY), &txn)
                if code == MDB_MAP_RESIZED { return .mapResizedElsewhere }
                try checkLMDB(code, .beginTransaction, "read")
                guard let txn else { throw StorageError(.lmdb(EINVAL), call: .beginTransaction, detail: "no transaction returned") }
                defer { mdb_txn_abort(txn) }
                return .done(try body(ReadTransaction(handle: TransactionHandle(txn: txn))))
            }
            switch outcome {
            case .done(let result): return result
            case .mapResizedElsewhere: try adoptMapSize()
            }
        }
    }

    private enum ReadOutcome<T> {
        case done(T)
        case mapResizedElsewhere
    }

    /// Another process grew the map. Adopting it is allowed only with no transaction of this process
    /// running, so it takes `resizeLock` exclusively; passing 0 keeps the size the file now has.
    private func adoptMapSize() throws(StorageError) {
        let code: Int32 = resizeLock.withWriteLock {
            guard let env = handle else { return EINVAL }
            return mdb_env_set_mapsize(env, 0)
        }
        try checkLMDB(code, .setMapSize, "adopting a map grown by another process")
    }

    /// Runs `body` in a write transaction, committing when it returns and aborting when it throws.
    public func write<T>(_ body: (borrowing WriteTransaction) throws -> T) throws -> T {
        try resizeLock.withReadLock {
            try writeLock.withLock { _ in
                let env = try liveHandle(.beginTransaction)
                var txn: OpaquePointer?
                try checkLMDB(mdb_txn_begin(env, nil, 0, &txn), .beginTransaction, "write")
                guard let txn else { throw StorageError(.lmdb(EINVAL), call: .beginTransaction, detail: "no transaction returned") }
                let result: T
                do {
                    result = try body(WriteTransaction(handle: TransactionHandle(txn: txn)))
                } catch {
                    mdb_txn_abort(txn)
                    throw error
                }
                try checkLMDB(mdb_txn_commit(txn), .commit)
                return result
            }
        }
    }

    /// Opens (or with `create`, creates) a named database. Call once, at open, before other work.
    public func openDatabase(named name: String, create: Bool) throws -> Database {
        if !configuration.readOnly {
            return try write { txn in try txn.handle.openDatabase(named: name, create: create) }
        }
        // A handle opened in a transaction that aborts is closed with it ("If the transaction is
        // aborted the handle will be closed automatically"), so the read-only open commits.
        return try resizeLock.withReadLock {
            let env = try liveHandle(.beginTransaction)
            var txn: OpaquePointer?
            try checkLMDB(mdb_txn_begin(env, nil, UInt32(MDB_RDONLY), &txn), .beginTransaction, "read")
            guard let txn else { throw StorageError(.lmdb(EINVAL), call: .beginTransaction, detail: "no transaction returned") }
            do {
                let database = try TransactionHandle(txn: txn).openDatabase(named: name)
                try checkLMDB(mdb_txn_commit(txn), .commit, "read")
                return database
            } catch {
                mdb_txn_abort(txn)
                throw error
            }
        }
    }

    /// Grows (or adopts) the map. Waits until no transaction of this process is running.
    public func setMapSize(_ bytes: Int) throws(StorageError) {
        let code: Int32 = resizeLock.withWriteLock {
            guard let env = handle else { return EINVAL }
            return mdb_env_set_mapsize(env, bytes)
        }
        try checkLMDB(code, .setMapSize)
    }

    /// Map size, last used page and last transaction ID (`mdb_env_info`).
    public func info() throws(StorageError) -> EnvironmentInfo {
        let (raw, stat) = try resizeLock.withReadLock { () throws(StorageError) -> (MDB_envinfo, MDB_stat) in
            let env = try liveHandle(.environmentInfo)
            var raw = MDB_envinfo()
            try checkLMDB(mdb_env_info(env, &raw), .environmentInfo)
            var stat = MDB_stat()
            try checkLMDB(mdb_env_stat(env, &stat), .environmentInfo, "stat")
            return (raw, stat)
        }
        return EnvironmentInfo(
            mapSizeBytes: raw.me_mapsize, lastPageNumber: raw.me_last_pgno,
            lastTransactionID: raw.me_last_txnid, pageSizeBytes: Int(stat.ms_psize),
            maxReaders: Int(raw.me_maxreaders), readersUsed: Int(raw.me_numreaders))
    }

    /// Flushes buffered commits to disk (`mdb_env_sync(env, 1)`), for the skip-sync mode.
    public func sync() throws(StorageError) {
        try resizeLock.withReadLock { () throws(StorageError) in
            let env = try liveHandle(.environmentSync)
            try checkLMDB(mdb_env_sync(env, 1), .environmentSync)
        }
    }

    /// Writes a consistent copy of the environment to `directory` (`mdb_env_copy2`), optionally
    /// compacted (free pages omitted, pages renumbered). Runs in its own read transaction.
    public func copy(to directory: String, compact: Bool) throws(StorageError) {
        try resizeLock.withReadLock { () throws(StorageError) in
            let env = try liveHandle(.environmentCopy)
            let flags = compact ? UInt32(MDB_CP_COMPACT) : 0
            try checkLMDB(mdb_env_copy2(env, directory, flags), .environmentCopy)
        }
    }

    /// Clears reader slots of dead processes; returns how many were cleared.
    @discardableResult
    public func clearStaleReaders() throws(StorageError) -> Int {
        try resizeLock.withReadLock { () throws(StorageError) -> Int in
            let env = try liveHandle(.readerCheck)
            var dead: Int32 = 0
            try checkLMDB(mdb_reader_check(env, &dead), .readerCheck)
            return Int(dead)
        }
    }

    /// Counts pages on LMDB's free list (free database, DBI 0) as of the last commit.
    public func freePageCount() throws -> Int {
        try read { txn in try txn.handle.freePageCount() }
    }
}

/// Figures from `mdb_env_info` and `mdb_env_stat`.
public struct EnvironmentInfo: Sendable {
    public var mapSizeBytes: Int
    public var lastPageNumber: Int
    public var lastTransactionID: Int
    public var pageSizeBytes: Int
    public var maxReaders: Int
    public var readersUsed: Int
}

/// A handle to a named database, valid for the environment's lifetime.
public struct Database: Sendable, Hashable {
    let dbi: MDB_dbi
}

/// A pthread read-write lock: many readers, or one writer.
final class ReadWriteLock: @unchecked Sendable {
    // Invariant: the lock is allocated once and never moved (pthread locks must not move).
    private let lock: UnsafeMutablePointer<pthread_rwlock_t>

    init() {
        lock = .allocate(capacity: 1)
        lock.initialize(to: pthread_rwlock_t())
        pthread_rwlock_init(lock, nil)
    }

    deinit {
        pthread_rwlock_destroy(lock)
        lock.deallocate()
    }

    func withReadLock<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        pthread_rwlock_rdlock(lock)
        defer { pthread_rwlock_unlock(lock) }
        return try body()
    }

    func withWriteLock<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        pthread_rwlock_wrlock(lock)
        defer { pthread_rwlock_unlock(lock) }
        return try body()
    }
}
