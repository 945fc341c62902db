import CLMDB
#if canImport(Glibc)
import Glibc
#endif

/// Read transactions and write transactions share one type; LMDB itself refuses writes in a
/// read-only transaction (`EACCES`). The names say which one a closure is given.
public typealias ReadTransaction = Transaction
public typealias WriteTransaction = Transaction

/// A key and value copied out of LMDB's map. Copies keep LMDB memory from escaping a transaction:
/// LMDB's pointers are "valid only until a subsequent update operation, or the end of the transaction".
public struct Entry: Sendable, Equatable {
    public var key: [UInt8]
    public var value: [UInt8]
}

/// An LMDB transaction, usable only inside the closure that received it.
public struct Transaction: ~Copyable {
    let txn: OpaquePointer

    init(txn: OpaquePointer) { self.txn = txn }

    func openDatabase(named name: String, create: Bool = false) throws -> Database {
        var dbi: MDB_dbi = 0
        let flags = create ? UInt32(MDB_CREATE) : 0
        try checkLMDB(mdb_dbi_open(txn, name, flags, &dbi), "mdb_dbi_open(\(name))")
        return Database(dbi: dbi)
    }

    /// The value stored under `key`, copied, or nil.
    public func get(_ database: Database, key: [UInt8]) throws -> [UInt8]? {
        try key.withUnsafeBytes { keyBytes in
            var keyVal = MDB_val(mv_size: keyBytes.count, mv_data: UnsafeMutableRawPointer(mutating: keyBytes.baseAddress))
            var value = MDB_val()
            let code = mdb_get(txn, database.dbi, &keyVal, &value)
            if code == MDB_NOTFOUND { return nil }
            try checkLMDB(code, "mdb_get")
            return copyBytes(value)
        }
    }

    /// Stores `value` under `key`, replacing any previous value.
    public func put(_ database: Database, key: [UInt8], value: [UInt8]) throws {
        try key.withUnsafeBytes { keyBytes in
            try value.withUnsafeBytes { valueBytes in
                var keyVal = MDB_val(mv_size: keyBytes.count, mv_data: UnsafeMutableRawPointer(mutating: keyBytes.baseAddress))
                var valueVal = MDB_val(mv_size: valueBytes.count, mv_data: UnsafeMutableRawPointer(mutating: valueBytes.baseAddress))
                try checkLMDB(mdb_put(txn, database.dbi, &keyVal, &valueVal, 0), "mdb_put")
            }
        }
    }

    /// Deletes `key`; returns false if it was absent.
    @discardableResult
    public func delete(_ database: Database, key: [UInt8]) throws -> Bool {
        try key.withUnsafeBytes { keyBytes in
            var keyVal = MDB_val(mv_size: keyBytes.count, mv_data: UnsafeMutableRawPointer(mutating: keyBytes.baseAddress))
            let code = mdb_del(txn, database.dbi, &keyVal, nil)
            if code == MDB_NOTFOUND { return false }
            try checkLMDB(code, "mdb_del")
            return true
        }
    }

    /// Number of entries in `database` (`mdb_stat`).
    public func entryCount(_ database: Database) throws -> Int {
        var stat = MDB_stat()
        try checkLMDB(mdb_stat(txn, database.dbi, &stat), "mdb_stat")
        return stat.ms_entries
    }

    /// Runs `body` with a cursor on `database`; the cursor closes when `body` returns.
    public func withCursor<T>(_ database: Database, _ body: (borrowing Cursor) throws -> T) throws -> T {
        var cursor: OpaquePointer?
        try checkLMDB(mdb_cursor_open(txn, database.dbi, &cursor), "mdb_cursor_open")
        guard let cursor else { throw StorageError(.lmdb(EINVAL), operation: "mdb_cursor_open returned no cursor") }
        defer { mdb_cursor_close(cursor) }
        return try body(Cursor(cursor: cursor))
    }

    /// Sums the page numbers listed in LMDB's free database (DBI 0). Each record there is a
    /// transaction ID mapped to an array of page numbers whose first word is the count.
    func freePageCount() throws -> Int {
        try withCursor(Database(dbi: 0)) { cursor in
            var total = 0
            var entry = try cursor.first()
            while let current = entry {
                if current.value.count >= MemoryLayout<Int>.size {
                    total += current.value.withUnsafeBytes { $0.loadUnaligned(as: Int.self) }
                }
                entry = try cursor.next()
            }
            return total
        }
    }
}

/// A cursor, usable only inside `Transaction.withCursor`.
public struct Cursor: ~Copyable {
    let cursor: OpaquePointer

    public func first() throws -> Entry? { try move(MDB_FIRST) }
    public func last() throws -> Entry? { try move(MDB_LAST) }
    public func next() throws -> Entry? { try move(MDB_NEXT) }
    public func previous() throws -> Entry? { try move(MDB_PREV) }

    /// Positions at the first key greater than or equal to `key`.
    public func seek(atOrAfter key: [UInt8]) throws -> Entry? {
        try key.withUnsafeBytes { keyBytes in
            var keyVal = MDB_val(mv_size: keyBytes.count, mv_data: UnsafeMutableRawPointer(mutating: keyBytes.baseAddress))
            var value = MDB_val()
            let code = mdb_cursor_get(cursor, &keyVal, &value, MDB_SET_RANGE)
            if code == MDB_NOTFOUND { return nil }
            try checkLMDB(code, "mdb_cursor_get(SET_RANGE)")
            return Entry(key: copyBytes(keyVal), value: copyBytes(value))
        }
    }

    /// Positions at the last key less than or equal to `key`.
    public func seek(atOrBefore key: [UInt8]) throws -> Entry? {
        if let found = try seek(atOrAfter: key) {
            if found.key == key { return found }
            return try previous()
        }
        return try last()
    }

    /// Positions at the entry whose range holds `key` in a database of runs keyed by their first
    /// key: the last entry at or before `key` if it shares `prefix`, else the first at or after `key`.
    public func seek(containing key: [UInt8], prefix: [UInt8]) throws -> Entry? {
        if let before = try seek(atOrBefore: key), before.key.starts(with: prefix) { return before }
        return try seek(atOrAfter: key)
    }

    /// Deletes the entry under the cursor; the cursor then points at the following entry's position.
    public func deleteCurrent() throws {
        try checkLMDB(mdb_cursor_del(cursor, 0), "mdb_cursor_del")
    }

    private func move(_ operation: MDB_cursor_op) throws -> Entry? {
        var key = MDB_val()
        var value = MDB_val()
        let code = mdb_cursor_get(cursor, &key, &value, operation)
        if code == MDB_NOTFOUND { return nil }
        try checkLMDB(code, "mdb_cursor_get")
        return Entry(key: copyBytes(key), value: copyBytes(value))
    }
}

@inline(__always)
func copyBytes(_ value: MDB_val) -> [UInt8] {
    guard let data = value.mv_data, value.mv_size > 0 else { return [] }
    return Array(UnsafeRawBufferPointer(start: data, count: value.mv_size))
}
