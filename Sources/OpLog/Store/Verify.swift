import OpLogStorage

/// One problem `verify` found.
public struct VerificationProblem: Sendable, Equatable, CustomStringConvertible {
    public var location: CorruptionLocation
    public var detail: String
    public var description: String { "\(location): \(detail)" }

    public init(location: CorruptionLocation, detail: String) {
        self.location = location
        self.detail = detail
    }
}

/// What `verify` checked and found.
public struct VerificationReport: Sendable {
    public var problems: [VerificationProblem] = []
    public var documentsChecked = 0
    public var chunksChecked = 0
    public var opsChecked = 0
    public var snapshotsChecked = 0
    public var dedupeRecordsChecked = 0
    public var isClean: Bool { problems.isEmpty }
}

extension OpLogStore {
    /// Entries read per read transaction while scanning, so a long scan never pins old pages.
    static let scanBatchEntries = 512

    /// Checks every record's checksum and the store's invariants: op chunks decode and continue each
    /// other gap-free from the floor to the head, every document with a floor above 1 has its covering
    /// snapshot, snapshots lie at or below the head, and nothing is stored for an unknown document.
    ///
    /// `progress` is called with the number of records checked so far, every few thousand records.
    public func verify(progress: (Int) -> Void = { _ in }) throws(OpLogError) -> VerificationReport {
        var report = VerificationReport()
        var records: [DocumentID: DocumentRecord] = [:]
        do {
            try scan(tables.documents, progress: progress) { entry in
                guard let id = DocumentID(keyBytes: entry.key[...]) else {
                    report.problems.append(VerificationProblem(location: CorruptionLocation(area: "documents"), detail: "key is not a valid document ID"))
                    return
                }
                do {
                    let body = try StoreTables.decodeFrame(entry.value, key: entry.key, kind: .document, location: CorruptionLocation(area: "documents", document: id))
                    records[id] = try DocumentRecord.decode(body)
                } catch let error as OpLogError {
                    report.problems.append(problem(error, fallback: CorruptionLocation(area: "documents", document: id)))
                } catch {
                    report.problems.append(VerificationProblem(location: CorruptionLocation(area: "documents", document: id), detail: "\(error)"))
                }
            }
            report.documentsChecked = records.count
            try verifyChunks(records: records, report: &report, progress: progress)
            try verifySnapshotRecords(records: records, report: &report, progress: progress)
            var dedupeCoverage: [DocumentID: Range<Revision>] = [:]
            try scan(tables.dedupe, progress: progress) { entry in
                report.dedupeRecordsChecked += 1
                guard let (document, _) = KeyCoding.parseRevisionKey(entry.key) else {
                    report.problems.append(VerificationProblem(location: CorruptionLocation(area: "dedupe"), detail: "key is not a (document, revision) key"))
                    return
                }
                do {
                    let record = try decodeDedupe(entry, document: document)
                    let range = record.firstRevision..<(record.firstRevision + UInt64(record.entries.count))
                    if let previous = dedupeCoverage[document] {
                        if previous.upperBound != range.lowerBound {
                            report.problems.append(VerificationProblem(location: CorruptionLocation(area: "dedupe", document: document, revision: previous.upperBound),
                                                                       detail: "dedupe records skip from \(previous.upperBound) to \(range.lowerBound)"))
                        }
                        dedupeCoverage[document] = previous.lowerBound..<range.upperBound
                    } else {
                        dedupeCoverage[document] = range
                    }
                } catch {
                    report.problems.append(problem(OpLogError.wrap(error), fallback: CorruptionLocation(area: "dedupe", document: document)))
                }
            }
            try verifyDedupeCoverage(dedupeCoverage, records: records, report: &report)
            _ = try tables.environment.read { txn in (try tables.readFormat(txn), try tables.readAppliedSequence(txn)) }
        } catch let error as OpLogError {
            report.problems.append(problem(error, fallback: CorruptionLocation(area: "lmdb")))
        } catch {
            report.problems.append(VerificationProblem(location: CorruptionLocation(area: "lmdb"), detail: "\(error)"))
        }
        return report
    }

    /// Each document's dedupe records must run from its record's `dedupeFrom` to just below its first
    /// op chunk (or its floor), and belong to a known document.
    private func verifyDedupeCoverage(_ coverage: [DocumentID: Range<Revision>], records: [DocumentID: DocumentRecord],
                                      report: inout VerificationReport) throws {
        for (document, range) in coverage.sorted(by: { $0.key < $1.key }) where records[document] == nil {
            report.problems.append(VerificationProblem(location: CorruptionLocation(area: "dedupe", document: document, revision: range.lowerBound),
                                                       detail: "dedupe records of a document that has no document record"))
        }
        for (document, record) in records.sorted(by: { $0.key < $1.key }) where record.dedupeFrom != 0 || coverage[document] != nil {
            let firstChunk = try tables.environment.read { txn in
                try txn.withCursor(tables.ops) { cursor in
                    try cursor.seek(atOrAfter: KeyCoding.documentPrefix(document)).flatMap { KeyCoding.parseRevisionKey($0.key) }
                }
            }
            let end = firstChunk.flatMap { $0.document == document ? $0.revision : nil } ?? record.floor
            // dedupeFrom ≥ end is itself damage; `nil` then never matches the records found.
            let expected = record.dedupeFrom == 0 || record.dedupeFrom >= end ? nil : record.dedupeFrom..<end
            if record.dedupeFrom != 0 && record.dedupeFrom >= end {
                report.problems.append(VerificationProblem(location: CorruptionLocation(area: "documents", document: document),
                                                           detail: "dedupeFrom \(record.dedupeFrom) is not below the first retained op \(end)"))
                continue
            }
            if coverage[document] != expected {
                report.problems.append(VerificationProblem(location: CorruptionLocation(area: "dedupe", document: document),
                                                           detail: "dedupe records hold revisions \(coverage[document].map { "\($0)" } ?? "none") where the document record requires \(expected.map { "\($0)" } ?? "none")"))
            }
        }
    }

    private func problem(_ error: OpLogError, fallback: CorruptionLocation) -> VerificationProblem {
        if case let .corruption(location, detail) = error { return VerificationProblem(location: location, detail: detail) }
        return VerificationProblem(location: fallback, detail: error.description)
    }

    /// Scans a database in key order, a batch of entries per read transaction.
    func scan(_ database: Database, progress: (Int) -> Void, _ body: (Entry) throws -> Void) throws {
        var resumeAfter: [UInt8]?
        var seen = 0
        while true {
            let batch: [Entry] = try tables.environment.read { txn in
                let entries = try txn.withCursor(database) { cursor in
                    var entries: [Entry] = []
                    var entry = try resumeAfter.map { try cursor.seek(atOrAfter: $0) } ?? (try cursor.first())
                    if let key = resumeAfter, entry?.key == key { entry = try cursor.next() }
                    while let current = entry, entries.count < Self.scanBatchEntries {
                        entries.append(current)
                        entry = try cursor.next()
                    }
                    return entries
                }
                // A cursor walks every leaf, a lookup descends through branch pages: an entry the
                // walk finds but a lookup does not means LMDB's tree is damaged, and reads by key
                // would silently miss it.
                for entry in entries where try txn.get(database, key: entry.key) != entry.value {
                    throw OpLogError.corruption(CorruptionLocation(area: "lmdb"), detail: "an entry found by a scan is not found by a lookup of its key (damaged LMDB tree pages)")
                }
                return entries
            }
            for entry in batch { try body(entry) }
            seen += batch.count
            if seen % 4096 < batch.count { progress(seen) }
            guard batch.count == Self.scanBatchEntries, let last = batch.last else { return }
            resumeAfter = last.key
        }
    }

    private func verifyChunks(records: [DocumentID: DocumentRecord], report: inout VerificationReport, progress: (Int) -> Void) throws {
        var current: DocumentID?
        var expected: Revision = 0
        var damaged = false
        func finish() {
            guard let document = current, let record = records[document], !damaged else { return }
            if record.head >= record.floor && expected != record.head + 1 {
                report.problems.append(VerificationProblem(location: CorruptionLocation(area: "ops", document: document, revision: expected),
                                                           detail: "ops end before the head \(record.head)"))
            }
        }
        try scan(tables.ops, progress: progress) { entry in
            guard let (document, revision) = KeyCoding.parseRevisionKey(entry.key) else {
                report.problems.append(VerificationProblem(location: CorruptionLocation(area: "ops"), detail: "key is not a (document, revision) key"))
                return
            }
            if document != current {
                finish()
                current = document
                damaged = false
                expected = 0
            }
            let location = CorruptionLocation(area: "ops", document: document, revision: revision)
            guard let record = records[document] else {
                report.problems.append(VerificationProblem(location: location, detail: "op chunk of a document with no document record"))
                return
            }
            report.chunksChecked += 1
            do {
                let ops = try decodeChunk(entry, document: document)
                report.opsChecked += ops.count
                if expected == 0 {
                    if revision > record.floor {
                        report.problems.append(VerificationProblem(location: location, detail: "the first retained chunk starts above the floor \(record.floor)"))
                    }
                } else if revision != expected {
                    report.problems.append(VerificationProblem(location: location, detail: "chunk starts at \(revision), expected \(expected) (a gap or overlap)"))
                }
                expected = revision + UInt64(ops.count)
                if expected > record.head + 1 {
                    report.problems.append(VerificationProblem(location: location, detail: "chunk runs past the head \(record.head)"))
                }
                if zip(ops, ops.dropFirst()).contains(where: { $0.serverTimeMilliseconds > $1.serverTimeMilliseconds }) {
                    report.problems.append(VerificationProblem(location: location, detail: "server time decreases inside the chunk"))
                }
            } catch let error as OpLogError {
                damaged = true
                report.problems.append(problem(error, fallback: location))
            }
        }
        finish()
        for (document, record) in records where record.head >= record.floor {
            let hasChunk = try tables.environment.read { txn in
                try txn.withCursor(tables.ops) { cursor in
                    try cursor.seek(atOrAfter: KeyCoding.documentPrefix(document)).map { KeyCoding.belongs($0.key, to: document) } ?? false
                }
            }
            if !hasChunk {
                report.problems.append(VerificationProblem(location: CorruptionLocation(area: "ops", document: document),
                                                           detail: "no op chunks, but revisions \(record.floor)...\(record.head) are retained"))
            }
        }
    }

    private func verifySnapshotRecords(records: [DocumentID: DocumentRecord], report: inout VerificationReport, progress: (Int) -> Void) throws {
        var covering: Set<DocumentID> = []
        try scan(tables.snapshots, progress: progress) { entry in
            guard let (document, revision) = KeyCoding.parseRevisionKey(entry.key) else {
                report.problems.append(VerificationProblem(location: CorruptionLocation(area: "snapshots"), detail: "key is not a (document, revision) key"))
                return
            }
            let location = CorruptionLocation(area: "snapshots", document: document, revision: revision)
            report.snapshotsChecked += 1
            do { _ = try decodeSnapshot(entry, document: document) } catch {
                report.problems.append(problem(OpLogError.wrap(error), fallback: location))
                return
            }
            // Views include journaled ops the document record does not count yet.
            let head = (try? currentView(of: document))??.view.head ?? records[document]?.head
            guard let head else {
                report.problems.append(VerificationProblem(location: location, detail: "snapshot of a document with no document record"))
                return
            }
            if revision > head { report.problems.append(VerificationProblem(location: location, detail: "snapshot above the head \(head)")) }
            if revision + 1 == effectiveFloor(document, records) { covering.insert(document) }
        }
        for document in records.keys {
            let floor = effectiveFloor(document, records)
            if floor > 1 && !covering.contains(document) {
                report.problems.append(VerificationProblem(location: CorruptionLocation(area: "snapshots", document: document, revision: floor - 1),
                                                           detail: "floor is \(floor) but the snapshot at \(floor - 1) that covers it is missing"))
            }
        }
    }

    /// The floor including journaled truncations not yet applied to LMDB.
    private func effectiveFloor(_ document: DocumentID, _ records: [DocumentID: DocumentRecord]) -> Revision {
        (try? withState { $0.documents[document]?.floor }) ?? records[document]?.floor ?? 1
    }
}

/// Store-wide figures for `oplog stats`.
public struct StoreStatistics: Sendable {
    /// Size of `data.mdb` on disk as allocated, and as its apparent length.
    public var dataFileAllocatedBytes: Int
    public var dataFileBytes: Int
    public var journalBytes: Int
    public var mapSizeBytes: Int
    public var pageSizeBytes: Int
    public var pagesUsed: Int
    public var freePages: Int
    public var documentCount: Int
    /// Reader slots left by killed processes that were cleared when this store opened.
    public var staleReadersClearedAtOpen: Int
}

extension OpLogStore {
    public func statistics() throws(OpLogError) -> StoreStatistics {
        do {
            let info = try tables.environment.info()
            let documentCount = try tables.environment.read { txn in try txn.entryCount(tables.documents) }
            let journaledNew = try withState { state in state.documents.count }
            return StoreStatistics(
                dataFileAllocatedBytes: File.allocatedBytes(directory + "/" + Self.dataFileName),
                dataFileBytes: File.sizeOf(directory + "/" + Self.dataFileName) ?? 0,
                journalBytes: File.sizeOf(directory + "/" + Journal.fileName) ?? 0,
                mapSizeBytes: info.mapSizeBytes, pageSizeBytes: info.pageSizeBytes,
                pagesUsed: info.lastPageNumber + 1, freePages: try tables.environment.freePageCount(),
                documentCount: max(documentCount, journaledNew),
                staleReadersClearedAtOpen: tables.environment.staleReadersClearedAtOpen)
        } catch { throw OpLogError.wrap(error) }
    }
}

/// Bytes stored per kind of record (values as stored: framed and compressed, keys included).
public struct SpaceUsage: Sendable, Equatable {
    public var opChunkBytes = 0
    public var snapshotBytes = 0
    public var dedupeBytes = 0
    public var documentRecordBytes = 0
    public var total: Int { opChunkBytes + snapshotBytes + dedupeBytes + documentRecordBytes }

    public init() {}
}

extension OpLogStore {
    /// Scans every record and sums what is stored, by kind (a full scan, in short transactions).
    public func spaceUsage() throws(OpLogError) -> SpaceUsage {
        var usage = SpaceUsage()
        do {
            try scan(tables.ops, progress: { _ in }) { usage.opChunkBytes += $0.key.count + $0.value.count }
            try scan(tables.snapshots, progress: { _ in }) { usage.snapshotBytes += $0.key.count + $0.value.count }
            try scan(tables.dedupe, progress: { _ in }) { usage.dedupeBytes += $0.key.count + $0.value.count }
            try scan(tables.documents, progress: { _ in }) { usage.documentRecordBytes += $0.key.count + $0.value.count }
        } catch { throw OpLogError.wrap(error) }
        return usage
    }
}
