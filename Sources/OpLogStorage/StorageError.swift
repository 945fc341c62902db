import CLMDB

/// A failure reported by LMDB, zlib or the operating system, with the call that failed.
///
/// The engine above maps these to its public error type; user data never appears here.
public struct StorageError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// An LMDB return code (`MDB_*` or an errno LMDB passed through).
        case lmdb(Int32)
        /// An errno from a file system call.
        case system(Int32)
        /// zlib reported an error or the stream was malformed.
        case compression(String)
    }

    public let kind: Kind
    /// The call that failed, e.g. `mdb_txn_commit`.
    public let operation: String

    public init(_ kind: Kind, operation: String) {
        self.kind = kind
        self.operation = operation
    }

    /// `MDB_MAP_FULL`: the environment's map is full; grow it or free space.
    public var isMapFull: Bool { kind == .lmdb(MDB_MAP_FULL) }
    /// `MDB_MAP_RESIZED`: another process grew the map; adopt the new size.
    public var isMapResized: Bool { kind == .lmdb(MDB_MAP_RESIZED) }
    /// `MDB_PANIC`: LMDB declared the environment unusable; it must be reopened.
    public var isPanic: Bool { kind == .lmdb(MDB_PANIC) }
    /// `MDB_CORRUPTED` / `MDB_PAGE_NOTFOUND` / `MDB_INVALID`: LMDB's own structures are damaged.
    public var isLMDBCorruption: Bool {
        kind == .lmdb(MDB_CORRUPTED) || kind == .lmdb(MDB_PAGE_NOTFOUND) || kind == .lmdb(MDB_INVALID)
    }
    /// `ENOSPC` from LMDB or the file system.
    public var isNoSpace: Bool { kind == .lmdb(28) || kind == .system(28) }

    public var description: String {
        switch kind {
        case .lmdb(let code):
            let message = String(cString: mdb_strerror(code))
            return "\(operation) failed: \(message) (LMDB code \(code))"
        case .system(let code):
            let message = String(cString: mdb_strerror(code))  // mdb_strerror falls back to strerror.
            return "\(operation) failed: \(message) (errno \(code))"
        case .compression(let detail):
            return "\(operation) failed: \(detail)"
        }
    }
}

/// The funnel every LMDB call goes through: success passes, anything else becomes a `StorageError`.
@inline(__always)
func checkLMDB(_ code: Int32, _ operation: @autoclosure () -> String) throws(StorageError) {
    if code != MDB_SUCCESS {
        throw StorageError(.lmdb(code), operation: operation())
    }
}
