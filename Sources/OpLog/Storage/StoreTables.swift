import OpLogStorage

/// The LMDB environment and its named databases (FORMAT.md, "Environment").
package struct StoreTables: Sendable {
    package let environment: Environment
    /// `meta`: format version and applied journal sequence.
    package let meta: Database
    /// `documents`: document ID → document record.
    package let documents: Database
    /// `ops`: (document, first revision) → op chunk.
    package let ops: Database
    /// `snapshots`: (document, revision) → snapshot.
    package let snapshots: Database
    /// `dedupe`: (document, first revision) → op IDs of truncated ops still in the dedupe window.
    package let dedupe: Database
    /// `epochs` (format version 3): fencing scope → its epoch. Nil in a read-only open of an older
    /// store, which has no epochs.
    package let epochs: Database?
    /// `feed` (format version 4): journal sequence (u64 big-endian) → the change at that position.
    /// Nil in a read-only open of an older store.
    package let feed: Database?
    /// `cursors` (format version 4): consumer name → its saved feed position. Nil in a read-only
    /// open of an older store.
    package let cursors: Database?

    package static let formatKey = Array("format".utf8)
    package static let appliedKey = Array("applied".utf8)
    package static let lineageKey = Array("lineage".utf8)
    package static let feedStateKey = Array("feed".utf8)
    package static let names = ["meta", "documents", "ops", "snapshots", "dedupe", "epochs", "feed", "cursors"]

    package static func open(directory: String, options: StoreOptions, mapSizeBytes: Int) throws(OpLogError) -> StoreTables {
        var configuration = EnvironmentConfiguration(mapSizeBytes: mapSizeBytes)
        configuration.readOnly = options.readOnly
        configuration.skipSync = options.durability == .mayCorruptOnSystemCrash
        configuration.fileMode = options.filePermissions
        let environment: Environment
        do { environment = try Environment(directory: directory, configuration: configuration) } catch {
            throw openFailure(error, directory: directory)
        }
        let create = !options.readOnly
        do {
            return StoreTables(
                environment: environment,
                meta: try environment.openDatabase(named: "meta", create: create),
                documents: try environment.openDatabase(named: "documents", create: create),
                ops: try environment.openDatabase(named: "ops", create: create),
                snapshots: try environment.openDatabase(named: "snapshots", create: create),
                dedupe: try environment.openDatabase(named: "dedupe", create: create),
                epochs: try openIfPresent("epochs", environment, create: create),
                feed: try openIfPresent("feed", environment, create: create),
                cursors: try openIfPresent("cursors", environment, create: create))
        } catch let error as StorageError where error.isMissingDatabase {
            environment.close()
            // Next to a journal, data.mdb was an OpLog store's: its main database is damaged.
            if Journal.exists(in: directory) {
                throw .corruption(
                    CorruptionLocation(area: "lmdb"),
                    detail: "data.mdb lacks OpLog's named databases though a journal exists: its main database is damaged")
            }
            throw .notAStore(path: directory, detail: "the LMDB file lacks OpLog's named databases")
        } catch {
            environment.close()
            throw openFailure(error, directory: directory)
        }
    }

    /// A database of format version 3 or 4; nil when a read-only open finds a store from before it.
    private static func openIfPresent(_ name: String, _ environment: Environment, create: Bool) throws -> Database? {
        do { return try environment.openDatabase(named: name, create: create) } catch let error as StorageError
            where error.isMissingDatabase && !create
        {
            return nil
        }
    }

    /// The epoch stored for `scope`, 0 if none.
    package func readEpoch(_ txn: borrowing some ReadableTransaction & ~Copyable, _ scope: FencingScope) throws -> UInt64 {
        guard let epochs else { return 0 }
        let key = Array(scope.name.utf8)
        guard let value = try txn.get(epochs, key: key) else { return 0 }
        let location = CorruptionLocation(area: "epochs")
        let body = try Self.decodeFrame(value, key: key, kind: .fencingEpoch, location: location)
        do { return try FencingEpochRecord.decode(body) } catch {
            throw OpLogError.corruption(location, detail: "scope '\(scope)': \(error.description)")
        }
    }

    /// Raises the stored epoch of `scope` to `epoch` (never lowers it).
    package func raiseEpoch(_ txn: borrowing WriteTransaction, _ scope: FencingScope, to epoch: UInt64) throws {
        guard let epochs else { preconditionFailure("a writable store has the epochs database") }
        guard epoch > (try readEpoch(txn, scope)) else { return }
        let key = Array(scope.name.utf8)
        let body = FencingEpochRecord.encode(epoch)
        try txn.put(
            epochs, key: key,
            value: RecordFrame.encode(kind: .fencingEpoch, codec: .raw, key: key, stored: body, rawLength: body.count))
    }

    /// The key of the feed record at `sequence`: big-endian, so LMDB's order is the feed's.
    package static func feedKey(_ sequence: UInt64) -> [UInt8] {
        (0..<8).map { UInt8(truncatingIfNeeded: sequence >> (56 - 8 * $0)) }
    }

    package static func feedSequence(_ key: [UInt8]) -> UInt64? {
        guard key.count == 8 else { return nil }
        return key.reduce(0) { $0 << 8 | UInt64($1) }
    }

    package func readFeedState(_ txn: borrowing some ReadableTransaction & ~Copyable) throws -> FeedStateRecord? {
        let location = CorruptionLocation(area: "meta")
        guard let value = try txn.get(meta, key: Self.feedStateKey) else {
            // The state is written with every feed record: records without it mean its key was damaged.
            if let feed, try txn.entryCount(feed) > 0 {
                throw OpLogError.corruption(location, detail: "feed records exist but meta/feed is missing (damaged key?)")
            }
            return nil
        }
        let body = try Self.decodeFrame(value, key: Self.feedStateKey, kind: .feedState, location: location)
        do { return try FeedStateRecord.decode(body) } catch { throw OpLogError.corruption(location, detail: error.description) }
    }

    package func writeFeedState(_ txn: borrowing WriteTransaction, _ state: FeedStateRecord) throws {
        try txn.put(
            meta, key: Self.feedStateKey,
            value: RecordFrame.encode(
                kind: .feedState, codec: .raw, key: Self.feedStateKey, stored: state.encode(), rawLength: FeedStateRecord.encodedBytes))
    }

    /// Decodes the feed record `entry` (its key checked against its frame).
    package static func decodeFeedChange(
        _ entry: Entry
    ) throws(OpLogError) -> (sequence: UInt64, committedAt: Int64, events: [ChangeEvent]) {
        let (sequence, body) = try feedBody(entry)
        do {
            let (committedAt, events) = try FeedChangeRecord.decode(body)
            return (sequence, committedAt, events)
        } catch {
            throw .corruption(CorruptionLocation(area: "feed", revision: sequence), detail: error.description)
        }
    }

    /// The commit time of the feed record `entry` (checked whole, decoded no further).
    package static func feedCommitTime(_ entry: Entry) throws(OpLogError) -> Int64 {
        let (sequence, body) = try feedBody(entry)
        do { return try FeedChangeRecord.committedAt(body) } catch {
            throw .corruption(CorruptionLocation(area: "feed", revision: sequence), detail: error.description)
        }
    }

    private static func feedBody(_ entry: Entry) throws(OpLogError) -> (UInt64, [UInt8]) {
        let sequence = feedSequence(entry.key)
        let location = CorruptionLocation(area: "feed", revision: sequence)
        guard let sequence else { throw .corruption(location, detail: "a feed key is not 8 bytes") }
        return (sequence, try decodeFrame(entry.value, key: entry.key, kind: .feedChange, location: location))
    }

    /// Every saved consumer position, by name.
    package func readCursors(_ txn: borrowing some ReadableTransaction & ~Copyable) throws -> [String: ChangePosition] {
        guard let cursors else { return [:] }
        return try txn.withCursor(cursors) { cursor in
            var found: [String: ChangePosition] = [:]
            var entry = try cursor.first()
            while let current = entry {
                let name = String(decoding: current.key, as: UTF8.self)
                let location = CorruptionLocation(area: "cursors")
                let body = try Self.decodeFrame(current.value, key: current.key, kind: .feedCursor, location: location)
                do { found[name] = try FeedCursorRecord.decode(body) } catch {
                    throw OpLogError.corruption(location, detail: "consumer '\(name)': \(error)")
                }
                entry = try cursor.next()
            }
            return found
        }
    }

    /// What a failure to open LMDB means for a store directory.
    private static func openFailure(_ error: any Error, directory: String) -> OpLogError {
        guard let storage = error as? StorageError else { return OpLogError(mapping: error) }
        if storage.isUnreadableFile && Journal.exists(in: directory) {
            // Next to a journal, data.mdb was an OpLog store's: LMDB could not read its own pages.
            return .corruption(CorruptionLocation(area: "lmdb"), detail: "data.mdb could not be read at open: \(storage.description)")
        }
        if storage.isForeignFile {
            return .notAStore(path: directory, detail: "data.mdb is not a readable LMDB file (\(storage.description))")
        }
        return OpLogError(storage)
    }

    /// Runs `body` in a write transaction; every failure comes out as an `OpLogError`. (The writer's
    /// own commits go through `Writer.writeGrowing`, which also handles a full map.)
    package func write<T>(_ body: (borrowing WriteTransaction) throws -> T) throws(OpLogError) -> T {
        do { return try environment.write(body) } catch { throw OpLogError(mapping: error) }
    }

    /// Runs `body` in a read transaction; every failure comes out as an `OpLogError`.
    package func read<T>(_ body: (borrowing ReadTransaction) throws -> T) throws(OpLogError) -> T {
        do { return try environment.read(body) } catch { throw OpLogError(mapping: error) }
    }

    /// Reads and checks a framed record; damage becomes `OpLogError.corruption` at `location`.
    package static func decodeFrame(
        _ value: [UInt8], key: [UInt8], kind: RecordKind, location: CorruptionLocation
    ) throws(OpLogError) -> [UInt8] {
        do { return try RecordFrame.decode(value, key: key, expecting: kind) } catch {
            throw .corruption(location, detail: error.description)
        }
    }

    /// Checks and decodes a record stored under a (document, revision) key, and checks that the
    /// revision its body names (`revisionOf`) is the key's: a record under the wrong key is damage.
    package static func decodeRevisionRecord<T>(
        _ entry: Entry, document: DocumentID, area: String, kind: RecordKind,
        decode: ([UInt8]) throws(DecodeError) -> T, revisionOf: (T) -> Revision?
    ) throws(OpLogError) -> T {
        let revision = KeyCoding.parseRevisionKey(entry.key)?.revision
        let location = CorruptionLocation(area: area, document: document, revision: revision)
        let body = try decodeFrame(entry.value, key: entry.key, kind: kind, location: location)
        let value: T
        do { value = try decode(body) } catch { throw .corruption(location, detail: error.description) }
        guard let named = revisionOf(value), named == revision else {
            throw .corruption(location, detail: "the record names revision \(revisionOf(value) ?? 0), its key says \(revision ?? 0)")
        }
        return value
    }

    package func readDocumentRecord(_ txn: borrowing some ReadableTransaction & ~Copyable, _ document: DocumentID) throws -> DocumentRecord?
    {
        let key = KeyCoding.documentKey(document)
        let location = CorruptionLocation(area: "documents", document: document)
        guard let value = try txn.get(documents, key: key) else {
            // Op chunks and dedupe records are written and deleted only together with their
            // document record, in one commit. Finding some without it means the record's key was
            // damaged: report that instead of reading the document as empty. (Snapshots may
            // precede a document's first apply, so they prove nothing here.)
            for (table, name) in [(ops, "op chunk"), (dedupe, "dedupe")] {
                let orphan = try txn.withCursor(table) { cursor in
                    try cursor.seek(atOrAfter: KeyCoding.documentPrefix(document)).map { KeyCoding.belongs($0.key, to: document) } ?? false
                }
                if orphan {
                    throw OpLogError.corruption(location, detail: "\(name) records exist but the document record is missing (damaged key?)")
                }
            }
            return nil
        }
        let body = try Self.decodeFrame(value, key: key, kind: .document, location: location)
        do { return try DocumentRecord.decode(body) } catch { throw OpLogError.corruption(location, detail: error.description) }
    }

    package func readAppliedSequence(_ txn: borrowing some ReadableTransaction & ~Copyable) throws -> UInt64 {
        guard let value = try txn.get(meta, key: Self.appliedKey) else { return 0 }
        let location = CorruptionLocation(area: "meta")
        let body = try Self.decodeFrame(value, key: Self.appliedKey, kind: .appliedSequence, location: location)
        do { return try AppliedSequenceRecord.decode(body) } catch { throw OpLogError.corruption(location, detail: error.description) }
    }

    /// The store's lineage; nil if the record is absent (a store before format version 3).
    package func readLineage(_ txn: borrowing some ReadableTransaction & ~Copyable) throws -> StoreLineage? {
        guard let value = try txn.get(meta, key: Self.lineageKey) else { return nil }
        let location = CorruptionLocation(area: "meta")
        let body = try Self.decodeFrame(value, key: Self.lineageKey, kind: .lineage, location: location)
        do { return try LineageRecord.decode(body) } catch { throw OpLogError.corruption(location, detail: error.description) }
    }

    package func writeLineage(_ txn: borrowing WriteTransaction, _ lineage: StoreLineage) throws {
        let body = LineageRecord.encode(lineage)
        try txn.put(
            meta, key: Self.lineageKey,
            value: RecordFrame.encode(kind: .lineage, codec: .raw, key: Self.lineageKey, stored: body, rawLength: body.count))
    }

    package func readFormat(_ txn: borrowing some ReadableTransaction & ~Copyable) throws -> FormatRecord? {
        guard let value = try txn.get(meta, key: Self.formatKey) else { return nil }
        let location = CorruptionLocation(area: "meta")
        let body = try Self.decodeFrame(value, key: Self.formatKey, kind: .format, location: location)
        do { return try FormatRecord.decode(body) } catch { throw OpLogError.corruption(location, detail: error.description) }
    }

    /// Decodes an op chunk and checks it against its key.
    package static func decodeChunk(_ entry: Entry, document: DocumentID) throws(OpLogError) -> [StoredOp] {
        try decodeRevisionRecord(
            entry, document: document, area: "ops", kind: .opChunk,
            decode: OpChunkRecord.decode, revisionOf: { $0.first?.revision })
    }

    /// Decodes an op chunk in place (its ops are slices of the decoded body) and checks it against its key.
    package static func decodeChunkViews(_ entry: Entry, document: DocumentID) throws(OpLogError) -> [StoredOpView] {
        try decodeRevisionRecord(
            entry, document: document, area: "ops", kind: .opChunk,
            decode: OpChunkRecord.decodeViews, revisionOf: { $0.first?.revision })
    }

    /// Checks an op chunk against its key and appends its ops in `keeping` to `ops`, in place.
    /// - Returns: the chunk's last revision.
    package static func decodeChunkViews(
        _ entry: Entry, document: DocumentID, keeping: Range<Revision>, into ops: inout [StoredOpView]
    ) throws(OpLogError) -> Revision {
        try decodeChunkRange(entry, document: document) { body throws(DecodeError) in
            try OpChunkRecord.decodeViews(body, keeping: keeping, into: &ops)
        }
    }

    /// Checks an op chunk against its key and appends owning copies of its ops in `keeping` to `ops`.
    /// - Returns: the chunk's last revision.
    package static func decodeChunk(
        _ entry: Entry, document: DocumentID, keeping: Range<Revision>, into ops: inout [StoredOp]
    ) throws(OpLogError) -> Revision {
        try decodeChunkRange(entry, document: document) { body throws(DecodeError) in
            try OpChunkRecord.decode(body, keeping: keeping, into: &ops)
        }
    }

    private static func decodeChunkRange(
        _ entry: Entry, document: DocumentID, _ decode: ([UInt8]) throws(DecodeError) -> ClosedRange<Revision>
    ) throws(OpLogError) -> Revision {
        let revision = KeyCoding.parseRevisionKey(entry.key)?.revision
        let location = CorruptionLocation(area: "ops", document: document, revision: revision)
        let body = try decodeFrame(entry.value, key: entry.key, kind: .opChunk, location: location)
        let revisions: ClosedRange<Revision>
        do { revisions = try decode(body) } catch { throw .corruption(location, detail: error.description) }
        guard revisions.lowerBound == revision else {
            throw .corruption(location, detail: "the record names revision \(revisions.lowerBound), its key says \(revision ?? 0)")
        }
        return revisions.upperBound
    }

    package static func decodeSnapshot(_ entry: Entry, document: DocumentID) throws(OpLogError) -> Snapshot {
        try decodeRevisionRecord(
            entry, document: document, area: "snapshots", kind: .snapshot,
            decode: SnapshotRecord.decode, revisionOf: { $0.revision })
    }

    package static func decodeDedupe(_ entry: Entry, document: DocumentID) throws(OpLogError) -> DedupeRecord {
        try decodeRevisionRecord(
            entry, document: document, area: "dedupe", kind: .dedupe,
            decode: DedupeRecord.decode, revisionOf: { $0.firstRevision })
    }
}
