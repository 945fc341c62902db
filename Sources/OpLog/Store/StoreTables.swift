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

    package static let formatKey = Array("format".utf8)
    package static let appliedKey = Array("applied".utf8)
    package static let names = ["meta", "documents", "ops", "snapshots", "dedupe"]

    package static func open(directory: String, options: StoreOptions, mapSizeBytes: Int) throws -> StoreTables {
        var configuration = EnvironmentConfiguration(mapSizeBytes: mapSizeBytes)
        configuration.readOnly = options.readOnly
        configuration.skipSync = options.durability == .mayCorruptOnSystemCrash
        let environment = try Environment(directory: directory, configuration: configuration)
        let create = !options.readOnly
        do {
            return StoreTables(
                environment: environment,
                meta: try environment.openDatabase(named: "meta", create: create),
                documents: try environment.openDatabase(named: "documents", create: create),
                ops: try environment.openDatabase(named: "ops", create: create),
                snapshots: try environment.openDatabase(named: "snapshots", create: create),
                dedupe: try environment.openDatabase(named: "dedupe", create: create))
        } catch let error as StorageError where error.kind == .lmdb(-30798) {
            environment.close()
            // Next to a journal, data.mdb was an OpLog store's: its main database is damaged.
            if File.exists(directory + "/" + Journal.fileName) {
                throw OpLogError.corruption(CorruptionLocation(area: "lmdb"), detail: "data.mdb lacks OpLog's named databases though a journal exists: its main database is damaged")
            }
            throw OpLogError.notAStore(path: directory, detail: "the LMDB file lacks OpLog's named databases")
        }
    }

    /// Reads and checks a framed record; damage becomes `OpLogError.corruption` at `location`.
    package static func decodeFrame(_ value: [UInt8], key: [UInt8], kind: RecordKind, location: CorruptionLocation) throws(OpLogError) -> [UInt8] {
        do { return try RecordFrame.decode(value, key: key, expecting: kind) } catch {
            throw .corruption(location, detail: error.description)
        }
    }

    /// Checks and decodes a record stored under a (document, revision) key, and checks that the
    /// revision its body names (`revisionOf`) is the key's: a record under the wrong key is damage.
    package static func decodeRevisionRecord<T>(_ entry: Entry, document: DocumentID, area: String, kind: RecordKind,
                                        decode: ([UInt8]) throws(DecodeError) -> T, revisionOf: (T) -> Revision?) throws(OpLogError) -> T {
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

    package func readDocumentRecord(_ txn: borrowing Transaction, _ document: DocumentID) throws -> DocumentRecord? {
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

    package func readAppliedSequence(_ txn: borrowing Transaction) throws -> UInt64 {
        guard let value = try txn.get(meta, key: Self.appliedKey) else { return 0 }
        let location = CorruptionLocation(area: "meta")
        let body = try Self.decodeFrame(value, key: Self.appliedKey, kind: .appliedSequence, location: location)
        do { return try AppliedSequenceRecord.decode(body) } catch { throw OpLogError.corruption(location, detail: error.description) }
    }

    package func readFormat(_ txn: borrowing Transaction) throws -> FormatRecord? {
        guard let value = try txn.get(meta, key: Self.formatKey) else { return nil }
        let location = CorruptionLocation(area: "meta")
        let body = try Self.decodeFrame(value, key: Self.formatKey, kind: .format, location: location)
        do { return try FormatRecord.decode(body) } catch { throw OpLogError.corruption(location, detail: error.description) }
    }
}
