import OpLogStorage

/// Where damaged bytes were found: enough to name the record in a report and to act on it.
public struct CorruptionLocation: Sendable, Equatable, CustomStringConvertible {
    /// Which part of the store: `ops`, `snapshots`, `documents`, `dedupe`, `meta`, `journal`, `lmdb`.
    public var area: String
    /// The document the damaged record belongs to, when known.
    public var document: DocumentID?
    /// The revision the damaged record is keyed by, when known.
    public var revision: Revision?

    /// A location in `area`, optionally naming the document and revision.
    public init(area: String, document: DocumentID? = nil, revision: Revision? = nil) {
        self.area = area
        self.document = document
        self.revision = revision
    }

    /// The area, document and revision, for messages.
    public var description: String {
        var text = area
        if let document { text += " document '\(document)'" }
        if let revision { text += " revision \(revision)" }
        return text
    }
}

/// Every error OpLog throws. Payload bytes never appear in a description.
public enum OpLogError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The append stated an expected head and the document's head differs. Nothing was written.
    case conflict(document: DocumentID, expectedHead: Revision, actualHead: Revision)
    /// Some op IDs of the append were accepted before and some are new: the store will not guess
    /// which part is a retry. Nothing was written.
    case partialRetry(document: DocumentID, acceptedCount: Int, newCount: Int)
    /// An append said its ops were based on revision `basedOn`, but the store no longer holds the op
    /// IDs of every op after it (they were truncated and left the dedupe records), so it cannot tell
    /// a retry from new ops. Nothing was written. `checkableFrom` is the lowest `basedOn` the store can
    /// still check; a client this far behind must reload the document.
    case retryUnverifiable(document: DocumentID, basedOn: Revision, checkableFrom: Revision)
    /// The same op ID appears twice in one append, or a document twice in one batch.
    case duplicateInBatch(document: DocumentID, detail: String)
    /// Bytes given to `Change(decoding:)` are not a change this build can read: cut short, damaged
    /// (the checksum), of a newer encoding version, or breaking its rules. `detail` says which.
    case undecodableChange(detail: String)
    /// A change-feed position of another store's history.
    case foreignLineage(expected: StoreLineage, found: StoreLineage)
    /// A change-feed position older than the feed retains: `oldest` is the first position it
    /// still holds. Resynchronise from the documents, then follow the feed from a fresh position.
    case belowRetention(requested: UInt64, oldest: UInt64)
    /// A change-feed position the store has not reached: `latest` is its newest.
    case beyondFeed(requested: UInt64, latest: UInt64)
    /// The mutation's fencing epoch is below its scope's: another owner took over. Nothing was written.
    case staleEpoch(scope: FencingScope, epoch: UInt64, current: UInt64)
    /// The mutation carries no fencing epoch, but its scope has one. Nothing was written.
    case epochRequired(scope: FencingScope, current: UInt64)
    /// Reading below the truncation floor. `latestSnapshot` is the newest snapshot at or below the
    /// floor's predecessor, from which a client can be sent snapshot + ops from `floor`.
    case belowFloor(document: DocumentID, requested: Revision, floor: Revision, latestSnapshot: Revision?)
    /// A revision above the document's head.
    case beyondHead(document: DocumentID, requested: Revision, head: Revision)
    /// Truncating below `revision + 1` needs a snapshot at exactly `revision`.
    case snapshotRequired(document: DocumentID, revision: Revision)
    /// The snapshot at `revision` covers the truncation floor; deleting it would leave retained
    /// revisions unreplayable.
    case snapshotProtected(document: DocumentID, revision: Revision)
    /// No snapshot of the document at that revision.
    case snapshotNotFound(document: DocumentID, revision: Revision)
    /// The document has no ops (a truncation or snapshot of it was asked for).
    case documentNotFound(DocumentID)
    /// A documented limit (see `Limits`) was exceeded.
    case limitExceeded(LimitName, value: Int, maximum: Int)
    /// An argument outside what the call accepts; the text says which.
    case invalidArgument(String)
    /// Stored bytes failed their checksum or do not decode: the named record is damaged.
    case corruption(CorruptionLocation, detail: String)
    /// The map reached `StoreOptions.mapSizeMaximumBytes`, or the file system ran out of space
    /// (ENOSPC). Nothing of the failed call was acknowledged. Reads work; deletions and truncations
    /// still succeed at the map limit, and appends work again once space is freed, without a reopen.
    case storageFull(detail: String)
    /// The directory exists but holds something other than an OpLog store.
    case notAStore(path: String, detail: String)
    /// The store was written by a newer format version than this code reads.
    case unsupportedFormatVersion(found: UInt32, supported: UInt32)
    /// Another process has the store open for writing.
    case lockedByAnotherProcess(path: String)
    /// This process has the store open already (as a writer or a reader). LMDB forbids opening one
    /// environment twice in a process: use the open `OpLogStore`, or close it first.
    case alreadyOpenInThisProcess(path: String)
    /// The store was opened read-only.
    case readOnly
    /// The store was closed.
    case closed
    /// An I/O failure left the in-memory state uncertain; close and reopen the store.
    case reopenRequired(reason: String)
    /// LMDB, zlib or the file system failed in a way none of the cases above describes.
    case storage(StorageFailure)
    /// A client mutation (append, truncation, snapshot, deletion, epoch raise, prepare) on a
    /// follower store, whose changes come only from its primary's feed (`OpLogStore.apply(_:epoch:)`);
    /// or `apply` on a primary. `operation` names the refused call.
    case wrongRole(role: StoreRole, operation: String)
    /// A mutation while changes are prepared (`OpLogStore.prepare(_:epoch:)`) and not yet
    /// committed or abandoned: it would take their positions. Nothing was written.
    case preparedChangesPending(oldest: ChangePosition, count: Int)
    /// A follower was given the change at `found` while the next one it needs is at `expected`:
    /// the changes in between are missing. Nothing was applied from it.
    case changeGap(expected: UInt64, found: UInt64)
    /// A follower already holds a different change at `position`: the two stores' histories have
    /// diverged there (two primaries of one lineage). Nothing was applied from it.
    case divergence(position: ChangePosition, detail: String)
    /// Replay: the caller's reducer threw on the op at `revision`.
    case reducerFailed(document: DocumentID, revision: Revision, detail: String)
    /// Replay: the reducer could not decode the snapshot at `revision`.
    case snapshotUndecodable(document: DocumentID, revision: Revision, detail: String)

    /// What happened, to which document and revision; never payload bytes.
    public var description: String {
        switch self {
        case .conflict(let document, let expected, let actual):
            return "conflict on document '\(document)': expected head \(expected), actual head \(actual)"
        case .partialRetry(let document, let accepted, let new):
            return "append to '\(document)' mixes \(accepted) already-accepted op IDs with \(new) new ones; nothing written"
        case .retryUnverifiable(let document, let basedOn, let checkableFrom):
            return
                "append to '\(document)' based on revision \(basedOn) cannot be checked for retries: op IDs are kept from "
                + "revision \(checkableFrom + 1) on; nothing written"
        case .duplicateInBatch(let document, let detail):
            return "duplicate in batch for document '\(document)': \(detail)"
        case .undecodableChange(let detail):
            return "not a decodable change: \(detail)"
        case .foreignLineage(let expected, let found):
            return "change position of lineage \(found), this store's lineage is \(expected)"
        case .belowRetention(let requested, let oldest):
            return "change position \(requested) is older than the feed retains (oldest: \(oldest))"
        case .beyondFeed(let requested, let latest):
            return "change position \(requested) is beyond the feed's newest, \(latest)"
        case .staleEpoch(let scope, let epoch, let current):
            return "epoch \(epoch) is stale for fencing scope '\(scope)', which is at epoch \(current); nothing written"
        case .epochRequired(let scope, let current):
            return "fencing scope '\(scope)' is at epoch \(current) and the mutation carries none; nothing written"
        case .belowFloor(let document, let requested, let floor, let snapshot):
            let hint = snapshot.map { "latest snapshot at revision \($0)" } ?? "no snapshot"
            return "revision \(requested) of '\(document)' is below the floor \(floor) (\(hint))"
        case .beyondHead(let document, let requested, let head):
            return "revision \(requested) of '\(document)' is beyond the head \(head)"
        case .snapshotRequired(let document, let revision):
            return "truncating '\(document)' to floor \(revision + 1) needs a snapshot at revision \(revision)"
        case .snapshotProtected(let document, let revision):
            return "snapshot \(revision) of '\(document)' covers the floor and cannot be deleted"
        case .snapshotNotFound(let document, let revision):
            return "no snapshot of '\(document)' at revision \(revision)"
        case .documentNotFound(let document):
            return "no document '\(document)'"
        case .limitExceeded(let name, let value, let maximum):
            return "limit \(name.rawValue) exceeded: \(value) > \(maximum)"
        case .invalidArgument(let detail):
            return "invalid argument: \(detail)"
        case .corruption(let location, let detail):
            return "corruption in \(location): \(detail)"
        case .storageFull(let detail):
            return "storage full: \(detail)"
        case .notAStore(let path, let detail):
            return "'\(path)' is not an OpLog store: \(detail)"
        case .unsupportedFormatVersion(let found, let supported):
            return "store format version \(found) is newer than this build reads (\(supported))"
        case .lockedByAnotherProcess(let path):
            return "store '\(path)' is open for writing in another process"
        case .alreadyOpenInThisProcess(let path):
            return "store '\(path)' is already open in this process; use that OpLogStore or close it first"
        case .readOnly:
            return "store is open read-only"
        case .closed:
            return "store is closed"
        case .reopenRequired(let reason):
            return "store must be reopened: \(reason)"
        case .storage(let failure):
            return failure.description
        case .wrongRole(let role, let operation):
            return role == .follower
                ? "\(operation) refused: this store is a follower; its changes come from its primary's feed (apply), or promote() it first"
                : "\(operation) refused: this store is a primary, not a follower"
        case .preparedChangesPending(let oldest, let count):
            return "\(count) prepared changes from \(oldest) are not committed or abandoned yet; commit or abandon them first"
        case .changeGap(let expected, let found):
            return "change at position \(found) applied before the missing ones from \(expected); nothing applied"
        case .divergence(let position, let detail):
            return "the follower holds another change at \(position): \(detail); nothing applied"
        case .reducerFailed(let document, let revision, let detail):
            return "reducer rejected op \(revision) of '\(document)': \(detail)"
        case .snapshotUndecodable(let document, let revision, let detail):
            return "snapshot \(revision) of '\(document)' does not decode: \(detail)"
        }
    }
}

/// A failure of LMDB, zlib or the file system that OpLog has no more specific case for.
public struct StorageFailure: Sendable, Equatable, CustomStringConvertible {
    /// The failing call (`mdb_txn_commit`, `fdatasync`, …), for logs and bug reports.
    public let call: String
    /// The code LMDB or the operating system returned (an `MDB_*` code or an errno), if any.
    public let code: Int32?
    /// The failing call and its code's meaning.
    public let description: String
}

extension OpLogError {
    /// The public form of a storage-layer failure. Damage LMDB detects in its own pages becomes
    /// `corruption`; everything else `storage`. The one place a `StorageError` becomes an
    /// `OpLogError` without a more specific meaning.
    init(_ error: StorageError) {
        if error.isLMDBCorruption {
            self = .corruption(CorruptionLocation(area: "lmdb"), detail: error.description)
            return
        }
        let code: Int32?
        switch error.kind {
        case .lmdb(let value), .system(let value): code = value
        case .compression: code = nil
        }
        self = .storage(StorageFailure(call: error.call.rawValue, code: code, description: error.description))
    }

    /// Maps what an LMDB transaction body or a storage call threw. Only OpLog's own error types can
    /// arrive here; anything else is a bug in OpLog.
    init(mapping error: any Error) {
        switch error {
        case let error as OpLogError: self = error
        case let error as StorageError: self.init(error)
        default:
            assertionFailure("OpLog bug: an error of unexpected type \(type(of: error)) reached the engine: \(error)")
            self = .reopenRequired(reason: "internal error: \(error)")
        }
    }
}
