import CLMDB

#if canImport(Glibc)
import Glibc
#endif

/// A failure reported by LMDB, zlib or the operating system, with the call that failed.
///
/// The engine above decides what to do through the named predicates (`isMapFull`, `isNoSpace`, …)
/// and never sees a numeric code: every code OpLog reacts to is named here, once. User data never
/// appears in a description.
public struct StorageError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// An LMDB return code (`MDB_*` or an errno LMDB passed through).
        case lmdb(Int32)
        /// An errno from a file system call.
        case system(Int32)
        /// zlib reported an error or the stream was malformed.
        case compression(String)
    }

    /// The call that failed.
    public enum Call: String, Sendable, Equatable {
        case environmentCreate = "mdb_env_create"
        case environmentOpen = "mdb_env_open"
        case setMapSize = "mdb_env_set_mapsize"
        case environmentInfo = "mdb_env_info"
        case environmentSync = "mdb_env_sync"
        case environmentCopy = "mdb_env_copy2"
        case readerCheck = "mdb_reader_check"
        case beginTransaction = "mdb_txn_begin"
        case commit = "mdb_txn_commit"
        case openDatabase = "mdb_dbi_open"
        case get = "mdb_get"
        case put = "mdb_put"
        case delete = "mdb_del"
        case statistics = "mdb_stat"
        case openCursor = "mdb_cursor_open"
        case moveCursor = "mdb_cursor_get"
        case deleteAtCursor = "mdb_cursor_del"
        case openFile = "open"
        case statFile = "fstat"
        case readFile = "pread"
        case writeFile = "pwrite"
        case syncFile = "fsync"
        case syncFileData = "fdatasync"
        case truncateFile = "ftruncate"
        case lockFile = "flock"
        case rename
        case syncDirectory = "fsync(dir)"
        case makeDirectory = "mkdir"
        case removeFile = "unlink"
        case changeMode = "chmod"
        case deflate, inflate, gunzip
    }

    public let kind: Kind
    public let call: Call
    /// What the call was about: a path, a database name, or zlib's words. Never user data.
    public let detail: String

    public init(_ kind: Kind, call: Call, detail: String = "") {
        self.kind = kind
        self.call = call
        self.detail = detail
    }

    /// `MDB_MAP_FULL`: the environment's map is full; grow it or free space.
    public var isMapFull: Bool { kind == .lmdb(MDB_MAP_FULL) }
    /// `MDB_PANIC`: LMDB declared the environment unusable; it must be reopened.
    public var isPanic: Bool { kind == .lmdb(MDB_PANIC) }
    /// `MDB_CORRUPTED` / `MDB_PAGE_NOTFOUND` / `MDB_INVALID`: LMDB's own structures are damaged.
    /// `MDB_BAD_TXN` too: OpLog never calls into a transaction after one of its calls failed (every
    /// failure throws out of the transaction's body, which then ends), so a blocked transaction is
    /// one LMDB flagged itself while walking a damaged page it reported some other way (seen with
    /// a flipped byte in a leaf page: the store's open failed with `mdb_get`'s `MDB_BAD_TXN`).
    public var isLMDBCorruption: Bool {
        kind == .lmdb(MDB_CORRUPTED) || kind == .lmdb(MDB_PAGE_NOTFOUND) || kind == .lmdb(MDB_INVALID) || kind == .lmdb(MDB_BAD_TXN)
    }
    /// `ENOSPC` from LMDB or the file system.
    public var isNoSpace: Bool { kind == .lmdb(ENOSPC) || kind == .system(ENOSPC) }
    /// `EIO` from LMDB: a failed write or sync whose effect on disk is unknown.
    public var isIOError: Bool { kind == .lmdb(EIO) }
    /// A commit that failed with `EIO`: LMDB reports a short `pwritev` of data pages that way
    /// ("short write, filesystem full?" in `mdb_page_flush`), which is how a commit meets a full
    /// file system mid-batch.
    public var isFailedCommitWrite: Bool { call == .commit && kind == .lmdb(EIO) }
    /// `MDB_NOTFOUND` from opening a named database: the file lacks it.
    public var isMissingDatabase: Bool { call == .openDatabase && kind == .lmdb(MDB_NOTFOUND) }
    /// At open: the file is not an LMDB environment of this LMDB version.
    public var isForeignFile: Bool { kind == .lmdb(MDB_INVALID) || kind == .lmdb(MDB_VERSION_MISMATCH) }
    /// At open: LMDB could not make sense of its own file — a foreign file, damaged structures, or a
    /// damaged page size or last page that makes `mdb_env_open` fail with EINVAL or ENOMEM, or the
    /// map-resized code persisting after the file's size was adopted.
    public var isUnreadableFile: Bool {
        let damaged: Set<Int32> = [MDB_INVALID, MDB_VERSION_MISMATCH, MDB_CORRUPTED, MDB_PAGE_NOTFOUND, MDB_BAD_TXN, MDB_MAP_RESIZED]
        guard case .lmdb(let code) = kind else { return false }
        return damaged.contains(code) || (call == .environmentOpen && (code == EINVAL || code == ENOMEM))
    }

    public var description: String {
        let subject = detail.isEmpty ? call.rawValue : "\(call.rawValue)(\(detail))"
        switch kind {
        case .lmdb(let code):
            return "\(subject) failed: \(String(cString: mdb_strerror(code))) (LMDB code \(code))"
        case .system(let code):
            // mdb_strerror falls back to strerror for errno values.
            return "\(subject) failed: \(String(cString: mdb_strerror(code))) (errno \(code))"
        case .compression(let reason):
            return "\(subject) failed: \(reason)"
        }
    }
}

/// The funnel every LMDB call goes through: success passes, anything else becomes a `StorageError`.
@inline(__always)
func checkLMDB(_ code: Int32, _ call: StorageError.Call, _ detail: @autoclosure () -> String = "") throws(StorageError) {
    if code != MDB_SUCCESS {
        throw StorageError(.lmdb(code), call: call, detail: detail())
    }
}

/// The same for system calls that return -1 and set errno.
@inline(__always)
func checkSystem(_ result: some BinaryInteger, _ call: StorageError.Call, _ detail: @autoclosure () -> String) throws(StorageError) {
    if result < 0 {
        throw StorageError(.system(errno), call: call, detail: detail())
    }
}
