import OpLogStorage

/// One problem `verify` found.
public struct VerificationProblem: Sendable, Equatable, CustomStringConvertible {
    /// The damaged record.
    public var location: CorruptionLocation
    /// What is wrong with it.
    public var detail: String
    /// The location and the detail.
    public var description: String { "\(location): \(detail)" }

    /// A problem at `location`.
    public init(location: CorruptionLocation, detail: String) {
        self.location = location
        self.detail = detail
    }
}

/// What `verify` checked and found.
public struct VerificationReport: Sendable {
    /// Every problem found, each naming its record.
    public var problems: [VerificationProblem] = []
    /// Records checked, by kind.
    public var documentsChecked = 0
    /// Op chunks checked.
    public var chunksChecked = 0
    /// Ops in them.
    public var opsChecked = 0
    /// Snapshot records checked.
    public var snapshotsChecked = 0
    /// Dedupe records checked.
    public var dedupeRecordsChecked = 0
    /// Fencing epoch records checked.
    public var epochRecordsChecked = 0
    /// Change-feed records checked.
    public var feedRecordsChecked = 0
    /// Conditions that are not damage but deserve attention (files readable by other users).
    public var warnings: [String] = []
    /// No problem found.
    public var isClean: Bool { problems.isEmpty }
}

/// Maintenance: checking, measuring and copying a store. Everything here reads in short
/// transactions and may take long, which is why the store offers it as `async` as well.
struct Maintenance: Sendable {
    let context: StoreContext
    let reader: Reader

    var tables: StoreTables { context.tables }
    var options: StoreOptions { context.options }
    var directory: String { context.directory }
}

extension Maintenance {

    /// Checks every record's checksum and the store's invariants: op chunks decode and continue each
    /// other gap-free from the floor to the head, every document with a floor above 1 has its covering
    /// snapshot, snapshots lie at or below the head, and nothing is stored for an unknown document.
    ///
    /// `progress` is called with the number of records checked so far, every few thousand records.
    func verify(progress: (Int) -> Void) throws(OpLogError) -> VerificationReport {
        var report = VerificationReport()
        report.warnings = permissionWarnings()
        var records: [DocumentID: DocumentRecord] = [:]
        do {
            try scan(tables.documents, progress: progress) { entry in
                guard let id = DocumentID(keyBytes: entry.key[...]) else {
                    report.problems.append(
                        VerificationProblem(location: CorruptionLocation(area: "documents"), detail: "key is not a valid document ID"))
                    return
                }
                do {
                    let body = try StoreTables.decodeFrame(
                        entry.value, key: entry.key, kind: .document, location: CorruptionLocation(area: "documents", document: id))
                    records[id] = try DocumentRecord.decode(body)
                } catch let error as OpLogError {
                    report.problems.append(problem(error, fallback: CorruptionLocation(area: "documents", document: id)))
                } catch {
                    report.problems.append(
                        VerificationProblem(location: CorruptionLocation(area: "documents", document: id), detail: "\(error)"))
                }
            }
            report.documentsChecked = records.count
            try verifyChunks(records: records, report: &report, progress: progress)
            try verifySnapshotRecords(records: records, report: &report, progress: progress)
            var dedupeCoverage: [DocumentID: Range<Revision>] = [:]
            try scan(tables.dedupe, progress: progress) { entry in
                report.dedupeRecordsChecked += 1
                guard let (document, _) = KeyCoding.parseRevisionKey(entry.key) else {
                    report.problems.append(
                        VerificationProblem(location: CorruptionLocation(area: "dedupe"), detail: "key is not a (document, revision) key"))
                    return
                }
                do {
                    let record = try StoreTables.decodeDedupe(entry, document: document)
                    let range = record.firstRevision..<(record.firstRevision + UInt64(record.entries.count))
                    if let previous = dedupeCoverage[document] {
                        if previous.upperBound != range.lowerBound {
                            report.problems.append(
                                VerificationProblem(
                                    location: CorruptionLocation(area: "dedupe", document: document, revision: previous.upperBound),
                                    detail: "dedupe records skip from \(previous.upperBound) to \(range.lowerBound)"))
                        }
                        dedupeCoverage[document] = previous.lowerBound..<range.upperBound
                    } else {
                        dedupeCoverage[document] = range
                    }
                } catch {
                    report.problems.append(
                        problem(OpLogError(mapping: error), fallback: CorruptionLocation(area: "dedupe", document: document)))
                }
            }
            try verifyDedupeCoverage(dedupeCoverage, records: records, report: &report)
            if let epochs = tables.epochs {
                try scan(epochs, progress: progress) { entry in
                    report.epochRecordsChecked += 1
                    let location = CorruptionLocation(area: "epochs")
                    guard let scope = FencingScope(keyBytes: entry.key[...]) else {
                        report.problems.append(VerificationProblem(location: location, detail: "key is not a fencing scope name"))
                        return
                    }
                    do {
                        let body = try StoreTables.decodeFrame(entry.value, key: entry.key, kind: .fencingEpoch, location: location)
                        _ = try FencingEpochRecord.decode(body)
                    } catch let error as OpLogError {
                        report.problems.append(problem(error, fallback: location))
                    } catch {
                        report.problems.append(VerificationProblem(location: location, detail: "scope '\(scope)': \(error)"))
                    }
                }
            }
            if let feed = tables.feed {
                var expected: UInt64?
                try scan(feed, progress: progress) { entry in
                    report.feedRecordsChecked += 1
                    do {
                        let (sequence, _, _) = try StoreTables.decodeFeedChange(entry)
                        if let expected, sequence != expected {
                            report.problems.append(
                                VerificationProblem(
                                    location: CorruptionLocation(area: "feed", revision: expected),
                                    detail: "feed records skip from \(expected) to \(sequence)"))
                        }
                        expected = sequence + 1
                    } catch {
                        report.problems.append(problem(OpLogError(mapping: error), fallback: CorruptionLocation(area: "feed")))
                    }
                }
            }
            let lineageMissing = try tables.environment.read { (txn: borrowing ReadTransaction) in
                let format = try tables.readFormat(txn)
                _ = try tables.readAppliedSequence(txn)
                _ = try tables.readCursors(txn)
                _ = try tables.readFeedState(txn)
                return try tables.readLineage(txn) == nil && (format?.version ?? 0) >= 3
            }
            if lineageMissing {
                report.problems.append(
                    VerificationProblem(location: CorruptionLocation(area: "meta"), detail: "the store's lineage record is missing"))
            }
        } catch let error as OpLogError {
            report.problems.append(problem(error, fallback: CorruptionLocation(area: "lmdb")))
        } catch {
            report.problems.append(VerificationProblem(location: CorruptionLocation(area: "lmdb"), detail: "\(error)"))
        }
        return report
    }

    /// Each document's dedupe records must run from its record's `dedupeFrom` to just below its first
    /// op chunk (or its floor), and belong to a known document.
    private func verifyDedupeCoverage(
        _ coverage: [DocumentID: Range<Revision>], records: [DocumentID: DocumentRecord],
        report: inout VerificationReport
    ) throws {
        for (document, range) in coverage.sorted(by: { $0.key < $1.key }) where records[document] == nil {
            report.problems.append(
                VerificationProblem(
                    location: CorruptionLocation(area: "dedupe", document: document, revision: range.lowerBound),
                    detail: "dedupe records of a document that has no document record"))
        }
        for (document, record) in records.sorted(by: { $0.key < $1.key }) where record.dedupeFrom != 0 || coverage[document] != nil {
            let firstChunk = try tables.environment.read { (txn: borrowing ReadTransaction) in
                try txn.withCursor(tables.ops) { cursor in
                    try cursor.seek(atOrAfter: KeyCoding.documentPrefix(document)).flatMap { KeyCoding.parseRevisionKey($0.key) }
                }
            }
            let end = firstChunk.flatMap { $0.document == document ? $0.revision : nil } ?? record.floor
            // dedupeFrom ≥ end is itself damage; `nil` then never matches the records found.
            let expected = record.dedupeFrom == 0 || record.dedupeFrom >= end ? nil : record.dedupeFrom..<end
            if record.dedupeFrom != 0 && record.dedupeFrom >= end {
                report.problems.append(
                    VerificationProblem(
                        location: CorruptionLocation(area: "documents", document: document),
                        detail: "dedupeFrom \(record.dedupeFrom) is not below the first retained op \(end)"))
                continue
            }
            if coverage[document] != expected {
                report.problems.append(
                    VerificationProblem(
                        location: CorruptionLocation(area: "dedupe", document: document),
                        detail:
                            "dedupe records hold revisions \(coverage[document].map { "\($0)" } ?? "none") where the document "
                            + "record requires \(expected.map { "\($0)" } ?? "none")"
                    ))
            }
        }
    }

    private func problem(_ error: OpLogError, fallback: CorruptionLocation) -> VerificationProblem {
        if case .corruption(let location, let detail) = error { return VerificationProblem(location: location, detail: detail) }
        return VerificationProblem(location: fallback, detail: error.description)
    }

    /// Scans a database in key order, a batch of entries per read transaction.
    func scan(_ database: Database, progress: (Int) -> Void, _ body: (Entry) throws -> Void) throws {
        var resumeAfter: [UInt8]?
        var seen = 0
        while true {
            let batch: [Entry] = try tables.environment.read { (txn: borrowing ReadTransaction) in
                let entries = try txn.withCursor(database) { cursor in
                    var entries: [Entry] = []
                    var entry = try resumeAfter.map { try cursor.seek(atOrAfter: $0) } ?? (try cursor.first())
                    if let key = resumeAfter, entry?.key == key { entry = try cursor.next() }
                    while let current = entry, entries.count < Limits.scanBatchEntries {
                        entries.append(current)
                        entry = try cursor.next()
                    }
                    return entries
                }
                // A cursor walks every leaf, a lookup descends through branch pages: an entry the
                // walk finds but a lookup does not means LMDB's tree is damaged, and reads by key
                // would silently miss it.
                for entry in entries where try txn.get(database, key: entry.key) != entry.value {
                    throw OpLogError.corruption(
                        CorruptionLocation(area: "lmdb"),
                        detail: "an entry found by a scan is not found by a lookup of its key (damaged LMDB tree pages)")
                }
                return entries
            }
            for entry in batch { try body(entry) }
            seen += batch.count
            if seen % 4096 < batch.count { progress(seen) }
            guard batch.count == Limits.scanBatchEntries, let last = batch.last else { return }
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
                report.problems.append(
                    VerificationProblem(
                        location: CorruptionLocation(area: "ops", document: document, revision: expected),
                        detail: "ops end before the head \(record.head)"))
            }
        }
        try scan(tables.ops, progress: progress) { entry in
            guard let (document, revision) = KeyCoding.parseRevisionKey(entry.key) else {
                report.problems.append(
                    VerificationProblem(location: CorruptionLocation(area: "ops"), detail: "key is not a (document, revision) key"))
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
                let ops = try StoreTables.decodeChunk(entry, document: document)
                report.opsChecked += ops.count
                if expected == 0 {
                    if revision > record.floor {
                        report.problems.append(
                            VerificationProblem(
                                location: location, detail: "the first retained chunk starts above the floor \(record.floor)"))
                    }
                } else if revision != expected {
                    report.problems.append(
                        VerificationProblem(
                            location: location, detail: "chunk starts at \(revision), expected \(expected) (a gap or overlap)"))
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
            let hasChunk = try tables.environment.read { (txn: borrowing ReadTransaction) in
                try txn.withCursor(tables.ops) { cursor in
                    try cursor.seek(atOrAfter: KeyCoding.documentPrefix(document)).map { KeyCoding.belongs($0.key, to: document) } ?? false
                }
            }
            if !hasChunk {
                report.problems.append(
                    VerificationProblem(
                        location: CorruptionLocation(area: "ops", document: document),
                        detail: "no op chunks, but revisions \(record.floor)...\(record.head) are retained"))
            }
        }
    }

    private func verifySnapshotRecords(
        records: [DocumentID: DocumentRecord], report: inout VerificationReport, progress: (Int) -> Void
    ) throws {
        var covering: Set<DocumentID> = []
        try scan(tables.snapshots, progress: progress) { entry in
            guard let (document, revision) = KeyCoding.parseRevisionKey(entry.key) else {
                report.problems.append(
                    VerificationProblem(location: CorruptionLocation(area: "snapshots"), detail: "key is not a (document, revision) key"))
                return
            }
            let location = CorruptionLocation(area: "snapshots", document: document, revision: revision)
            report.snapshotsChecked += 1
            do { _ = try StoreTables.decodeSnapshot(entry, document: document) } catch {
                report.problems.append(problem(OpLogError(mapping: error), fallback: location))
                return
            }
            // Views include journaled ops the document record does not count yet.
            let head = (try? reader.currentView(of: document))??.head ?? records[document]?.head
            guard let head else {
                report.problems.append(VerificationProblem(location: location, detail: "snapshot of a document with no document record"))
                return
            }
            if revision > head {
                report.problems.append(VerificationProblem(location: location, detail: "snapshot above the head \(head)"))
            }
            if revision + 1 == effectiveFloor(document, records) { covering.insert(document) }
        }
        for document in records.keys {
            let floor = effectiveFloor(document, records)
            if floor > 1 && !covering.contains(document) {
                report.problems.append(
                    VerificationProblem(
                        location: CorruptionLocation(area: "snapshots", document: document, revision: floor - 1),
                        detail: "floor is \(floor) but the snapshot at \(floor - 1) that covers it is missing"))
            }
        }
    }

    /// The floor including journaled truncations not yet applied to LMDB.
    private func effectiveFloor(_ document: DocumentID, _ records: [DocumentID: DocumentRecord]) -> Revision {
        (try? reader.journaledView(of: document))??.floor ?? records[document]?.floor ?? 1
    }

    /// Files of the store that users other than its owner may read: every document is in them.
    func permissionWarnings() -> [String] {
        let paths = [directory] + StoreDirectory.fileNames.map { directory + "/" + $0 }
        return paths.compactMap { path in
            guard let mode = File.permissions(of: path), mode & 0o077 != 0 else { return nil }
            return "\(path) is accessible to other users (mode \(String(mode, radix: 8))): every document is readable from it"
        }
    }
}
