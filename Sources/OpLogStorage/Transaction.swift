import CLMDB

#if canImport(Glibc)
import Glibc
#endif

/// A key and value copied out of LMDB's map. Copies keep LMDB memory from escaping a transaction:
/// LMDB's pointers are "valid only until a subsequent update operation, or the end of the transaction".
public struct Entry: Sendable, Equatable {
    public var key: [UInt8]
    public var value: [UInt8]
}

/// What both kinds of transaction can do: read. The engine's helpers that only read take
/// `borrowing some ReadableTransaction & ~Copyable`, so they serve reads and the reads inside a write.
public protocol ReadableTransaction: ~Copyable {
    /// The value stored under `key`, copied, or nil.
    func get(_ database: Database, key: [UInt8]) throws(StorageError) -> [UInt8]?
    /// Number of entries in `database` (`mdb_stat`).
    func entryCount(_ database: Database) throws(StorageError) -> Int
    /// Runs `body` with a read cursor on `database`; the cursor closes when `body` returns.
    func withCursor<T>(_ database: Database, _ body: (borrowing ReadCursor) throws -> T) throws -> T
}

/// A read-only LMDB transaction, usable only inside the closure that received it.
public struct ReadTransaction: ~Copyable, ReadableTransaction {
    let handle: TransactionHandle

    public func get(_ database: Database, key: [UInt8]) throws(StorageError) -> [UInt8]? { try handle.get(database, key: key) }
    public func entryCount(_ database: Database) throws(StorageError) -> Int { try handle.entryCount(database) }
    public func withCursor<T>(_ database: Database, _ body: (borrowing ReadCursor) throws -> T) throws -> T {
        try handle.withCursor(database) { cursor in try body(ReadCursor(handle: cursor)) }
    }
}

/// A write transaction, usable only inside the closure that received it, on the thread that began
/// it (LMDB binds write transactions to their thread).
public struct WriteTransaction: ~Copyable, ReadableTransaction {
    let handle: TransactionHandle

    public func get(_ database: Database, key: [UInt8]) throws(StorageError) -> [UInt8]? { try handle.get(database, key: key) }
    public func entryCount(_ database: Database) throws(StorageError) -> Int { try handle.entryCount(database) }
    public func withCursor<T>(_ database: Database, _ body: (borrowing ReadCursor) throws -> T) throws -> T {
        try handle.withCursor(database) { cursor in try body(ReadCursor(handle: cursor)) }
    }

    /// Runs `body` with a cursor that can also delete the entry under it.
    public func withWriteCursor<T>(_ database: Database, _ body: (borrowing WriteCursor) throws -> T) throws -> T {
        try handle.withCursor(database) { cursor in try body(WriteCursor(handle: cursor)) }
    }

    /// Stores `value` under `key`, replacing any previous value.
    public func put(_ database: Database, key: [UInt8], value: [UInt8]) throws(StorageError) {
        try handle.put(database, key: key, value: value)
    }

    /// Deletes `key`; returns false if it was absent.
    @discardableResult
    public func delete(_ database: Database, key: [UInt8]) throws(StorageError) -> Bool {
        try handle.delete(database, key: key)
    }
}

/// A cursor of a read (or write) transaction, usable only inside `withCursor`.
public struct ReadCursor: ~Copyable {
    let handle: CursorHandle

    public func first() throws(StorageError) -> Entry? { try handle.move(MDB_FIRST) }
    public func last() throws(StorageError) -> Entry? { try handle.move(MDB_LAST) }
    public func next() throws(StorageError) -> Entry? { try handle.move(MDB_NEXT) }
    public func previous() throws(StorageError) -> Entry? { try handle.move(MDB_PREV) }
    /// Positions at the first key greater than or equal to `key`.
    public func seek(atOrAfter key: [UInt8]) throws(StorageError) -> Entry? { try handle.seek(atOrAfter: key) }
    /// Positions at the last key less than or equal to `key`.
    public func seek(atOrBefore key: [UInt8]) throws(StorageError) -> Entry? { try handle.seek(atOrBefore: key) }
    /// Positions at the entry whose range holds `key` in a database of runs keyed by their first
    /// key: the last entry at or before `key` if it shares `prefix`, else the first at or after `key`.
    public func seek(containing key: [UInt8], prefix: [UInt8]) throws(StorageError) -> Entry? {
        try handle.seek(containing: key, prefix: prefix)
    }
}

/// A cursor of a write transaction: a `ReadCursor` that can also delete.
public struct WriteCursor: ~Copyable {
    let handle: CursorHandle

    public func first() throws(StorageError) -> Entry? { try handle.move(MDB_FIRST) }
    public func next() throws(StorageError) -> Entry? { try handle.move(MDB_NEXT) }
    public func seek(atOrAfter key: [UInt8]) throws(StorageError) -> Entry? { try handle.seek(atOrAfter: key) }

    /// Deletes the entry under the cursor; the cursor then points at the following entry's position.
    public func deleteCurrent() throws(StorageError) {
        try checkLMDB(mdb_cursor_del(handle.cursor, 0), .deleteAtCursor)
    }
}

/// The `MDB_txn*` both transaction types wrap; its calls are shared here once.
struct TransactionHandle {
    let txn: OpaquePointer

    func openDatabase(named name: String, create: Bool = false) throws(StorageError) -> Database {
        var dbi: MDB_dbi = 0
        let flags = create ? UInt32(MDB_CREATE) : 0
        try checkLMDB(mdb_dbi_open(txn, name, flags, &dbi), .openDatabase, name)
        return Database(dbi: dbi)
    }

    func get(_ database: Database, key: [UInt8]) throws(StorageError) -> [UInt8]? {
        var failure: StorageError?
        let found: [UInt8]? = key.withUnsafeBytes { keyBytes -> [UInt8]? in
            var keyVal = MDB_val(mv_size: keyBytes.count, mv_data: UnsafeMutableRawPointer(mutating: keyBytes.baseAddress))
            var value = MDB_val()
            let code = mdb_get(txn, database.dbi, &keyVal, &value)
            if code == MDB_NOTFOUND { return nil }
            if code != MDB_SUCCESS {
                failure = StorageError(.lmdb(code), call: .get)
                return nil
            }
            return copyBytes(value)
        }
        if let failure { throw failure }
        return found
    }

    func put(_ database: Database, key: [UInt8], value: [UInt8]) throws(StorageError) {
        let code: Int32 = key.withUnsafeBytes { keyBytes in
            value.withUnsafeBytes { valueBytes in
                var keyVal = MDB_val(mv_size: keyBytes.count, mv_data: UnsafeMutableRawPointer(mutating: keyBytes.baseAddress))
                var valueVal = MDB_val(mv_size: valueBytes.count, mv_data: UnsafeMutableRawPointer(mutating: valueBytes.baseAddress))
                return mdb_put(txn, database.dbi, &keyVal, &valueVal, 0)
            }
        }
        try checkLMDB(code, .put)
    }

    func delete(_ database: Database, key: [UInt8]) throws(StorageError) -> Bool {
        let code: Int32 = key.withUnsafeBytes { keyBytes in
            var keyVal = MDB_val(mv_size: keyBytes.count, mv_data: UnsafeMutableRawPointer(mutating: keyBytes.baseAddress))
            return mdb_del(txn, database.dbi, &keyVal, nil)
        }
        if code == MDB_NOTFOUND { return false }
        try checkLMDB(code, .delete)
        return true
    }

    func entryCount(_ database: Database) throws(StorageError) -> Int {
        var stat = MDB_stat()
        try checkLMDB(mdb_stat(txn, database.dbi, &stat), .statistics)
        return stat.ms_entries
    }

    func withCursor<T>(_ database: Database, _ body: (CursorHandle) throws -> T) throws -> T {
        var cursor: OpaquePointer?
        try checkLMDB(mdb_cursor_open(txn, database.dbi, &cursor), .openCursor)
        guard let cursor else { throw StorageError(.lmdb(EINVAL), call: .openCursor, detail: "no cursor returned") }
        defer { mdb_cursor_close(cursor) }
        return try body(CursorHandle(cursor: cursor))
    }

    /// Sums the page numbers listed in LMDB's free database (DBI 0). Each record there is a
    /// transaction ID mapped to an array of page numbers whose first word is the count.
    func freePageCount() throws -> Int {
        try withCursor(Database(dbi: 0)) { cursor in
            var total = 0
            var entry = try cursor.move(MDB_FIRST)
            while let current = entry {
                if current.value.count >= MemoryLayout<Int>.size {
                    total += current.value.withUnsafeBytes { $0.loadUnaligned(as: Int.self) }
                }
                entry = try cursor.move(MDB_NEXT)
            }
            return total
        }
    }
}

/// The `MDB_cursor*` both cursor types wrap.
struct CursorHandle {
    let cursor: OpaquePointer

    func seek(atOrAfter key: [UInt8]) throws(StorageError) -> Entry? {
        var failure: StorageError?
        let found: Entry? = key.withUnsafeBytes { keyBytes -> Entry? in
            var keyVal = MDB_val(mv_size: keyBytes.count, mv_data: UnsafeMutableRawPointer(mutating: keyBytes.baseAddress))
            var value = MDB_val()
            let code = mdb_cursor_get(cursor, &keyVal, &value, MDB_SET_RANGE)
            if code == MDB_NOTFOUND { return nil }
            if code != MDB_SUCCESS {
                failure = StorageError(.lmdb(code), call: .moveCursor)
                return nil
            }
            return Entry(key: copyBytes(keyVal), value: copyBytes(value))
        }
        if let failure { throw failure }
        return found
    }

    func seek(atOrBefore key: [UInt8]) throws(StorageError) -> Entry? {
        if let found = try seek(atOrAfter: key) {
            if found.key == key { return found }
            return try move(MDB_PREV)
        }
        return try move(MDB_LAST)
    }

    func seek(containing key: [UInt8], prefix: [UInt8]) throws(StorageError) -> Entry? {
        if let before = try seek(atOrBefore: key), before.key.starts(with: prefix) { return before }
        return try seek(atOrAfter: key)
    }

    func move(_ operation: MDB_cursor_op) throws(StorageError) -> Entry? {
        var key = MDB_val()
        var value = MDB_val()
        let code = mdb_cursor_get(cursor, &key, &value, operation)
        if code == MDB_NOTFOUND { return nil }
        try checkLMDB(code, .moveCursor)
        return Entry(key: copyBytes(key), value: copyBytes(value))
    }
}

@inline(__always)
func copyBytes(_ value: MDB_val) -> [UInt8] {
    guard let data = value.mv_data, value.mv_size > 0 else { return [] }
    return Array(UnsafeRawBufferPointer(start: data, count: value.mv_size))
}
