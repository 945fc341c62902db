import OpLogStorage
import Synchronization

/// The state readers and the writer share: the views of documents with journaled changes.
/// Documents without journaled changes are not kept: LMDB has all of them.
struct SharedState: Sendable {
    var documents: [DocumentID: DocumentView] = [:]
    var isClosed = false
}

/// Everything every component of one open store shares; immutable.
struct StoreContext: Sendable {
    let directory: String
    let options: StoreOptions
    let tables: StoreTables
    let events: CommitEvents
    let metrics: StoreMetrics
    /// The change feed's live end (see `FeedHub`).
    let feed = FeedHub()
    var clock: any StoreClock { options.clock }
    var window: DedupeWindow { DedupeWindow(options: options) }
}

/// The reading side of a store: it owns the shared views and answers every read — ops, snapshots,
/// documents, replay, subscriptions' catch-up — from an LMDB read transaction plus the views.
///
/// Reads never wait for the writer: each opens and ends its own short transaction. The writer
/// changes the views only through `publish`, `install` and `dropApplied`.
final class Reader: Sendable {
    let context: StoreContext
    /// Whether this process writes the store. A read-only opener's view of the journal may be
    /// older than the writer's, which matters when a document record seems to be missing.
    let isWriterProcess: Bool
    let subscriptions = SubscriptionRegistry()
    private let state = Mutex(SharedState())
    private let subscriptionListener: Int

    init(context: StoreContext, isWriterProcess: Bool) {
        self.context = context
        self.isWriterProcess = isWriterProcess
        let subscriptions = self.subscriptions
        subscriptionListener = context.events.add { commit in subscriptions.deliver(commit) }
    }

    deinit { context.events.remove(subscriptionListener) }

    var tables: StoreTables { context.tables }
    var feed: FeedHub { context.feed }
    var options: StoreOptions { context.options }

    /// Throws `closed` once the store is closed.
    func checkOpen() throws(OpLogError) {
        if state.withLock({ $0.isClosed }) { throw .closed }
    }

    /// The journaled view of `document`, if it has journaled changes.
    func journaledView(of document: DocumentID) throws(OpLogError) -> DocumentView? {
        try state.withLock { (state: inout SharedState) throws(OpLogError) -> DocumentView? in
            if state.isClosed { throw .closed }
            return state.documents[document]
        }
    }

    /// IDs of documents with journaled changes.
    func journaledDocuments() throws(OpLogError) -> [DocumentID] {
        try state.withLock { (state: inout SharedState) throws(OpLogError) -> [DocumentID] in
            if state.isClosed { throw .closed }
            return Array(state.documents.keys)
        }
    }

    // MARK: - The writer's interface

    /// Makes a durable commit's changes visible (before its callers are resumed).
    func publish(_ updates: [DocumentID: ViewUpdate]) {
        state.withLock { state in
            for (document, update) in updates {
                state.documents[document, default: DocumentView(record: update.record)].absorb(update)
            }
        }
    }

    /// The views recovery rebuilt from the journal.
    func install(_ views: [DocumentID: DocumentView]) {
        assert(views.values.allSatisfy { $0.floor >= 1 && $0.floor <= $0.head + 1 }, "a recovered view with its floor outside 1...head+1")
        state.withLock { $0.documents = views }
    }

    /// Views of `documents`, for an apply.
    func views(of documents: [DocumentID]) -> [(DocumentID, DocumentView)] {
        state.withLock { state in documents.compactMap { id in state.documents[id].map { (id, $0) } } }
    }

    /// After an apply: LMDB holds each applied document up to its head when the slot was sealed.
    /// Views of documents with nothing journaled since are dropped (readers find them in LMDB);
    /// the others keep only their newer ops. A reader holding a view from before sees LMDB only up
    /// to where that view's journaled ops begin, so either view reads the same ops.
    func rebase(after job: ApplyJob, written: AppliedRecords, stillJournaled: Set<DocumentID>) {
        state.withLock { state in
            for (document, sealed) in job.views {
                guard let record = written[document] else {
                    assertionFailure("an applied document without its written record")
                    continue
                }
                assert(record.head == sealed.head, "LMDB's head \(record.head) for a view sealed at \(sealed.head)")
                if stillJournaled.contains(document) {
                    state.documents[document]?.dropApplied(through: sealed.head, appliedChunkBytes: record.chunkBytes)
                } else {
                    state.documents.removeValue(forKey: document)
                }
            }
        }
    }

    /// Drops one document's view (it was deleted).
    func dropView(of document: DocumentID) {
        _ = state.withLock { $0.documents.removeValue(forKey: document) }
    }

    /// Marks the store closed; later reads throw `closed`. Returns whether it was open.
    @discardableResult
    func markClosed() -> Bool {
        let wasOpen = state.withLock { state in
            defer { state.isClosed = true }
            return !state.isClosed
        }
        if wasOpen { subscriptions.closeAll() }
        return wasOpen
    }

    // MARK: - Views

    /// The view of a document from memory, or built from LMDB when nothing is journaled for it;
    /// nil for an unknown document.
    func currentView(of document: DocumentID) throws(OpLogError) -> DocumentView? {
        if let view = try journaledView(of: document) { return view }
        enum Found {
            case record(DocumentRecord)
            case absent, onlySnapshots
        }
        let found: Found = try tables.read { txn in
            if let record = try tables.readDocumentRecord(txn, document) { return .record(record) }
            let hasSnapshots = try txn.withCursor(tables.snapshots) { cursor in
                try cursor.seek(atOrAfter: KeyCoding.documentPrefix(document)).map { KeyCoding.belongs($0.key, to: document) } ?? false
            }
            return hasSnapshots ? .onlySnapshots : .absent
        }
        switch found {
        case .record(let record): return DocumentView(record: record)
        case .absent: return nil
        case .onlySnapshots:
            // Snapshots exist only for documents with ops: a document with snapshots but neither a
            // record nor journaled ops lost its record to damage. The writer knows every journaled
            // document; a read-only opener's view of the journal may predate the document, so it
            // reads the journal again first, then LMDB (an apply in between moves the document
            // into LMDB, where the second read finds it).
            if !isWriterProcess {
                // Only records LMDB lacks count: the slots also keep applied ones.
                let applied = try tables.read { txn in try tables.readAppliedSequence(txn) }
                let journaled = try Journal.read(directory: context.directory, strict: false).records.contains { record in
                    record.sequence > applied && record.entries.contains { $0.document == document }
                }
                if journaled { return nil }
                if let applied = try tables.read({ txn in try tables.readDocumentRecord(txn, document) }) {
                    return DocumentView(record: applied)
                }
            }
            throw .corruption(
                CorruptionLocation(area: "documents", document: document),
                detail: "snapshot records exist but the document record is missing (damaged key?)")
        }
    }

    /// The document's head revision (0 for an unknown document).
    func head(of document: DocumentID) throws(OpLogError) -> Revision {
        try currentView(of: document)?.head ?? 0
    }

    /// The document's figures, or nil for an unknown document.
    func info(of document: DocumentID) throws(OpLogError) -> DocumentInfo? {
        guard let view = try currentView(of: document) else { return nil }
        let snapshots = try snapshots(of: document)
        return DocumentInfo(
            id: document, head: view.head, floor: view.floor, opCount: Int(view.head + 1 - view.floor),
            storedBytes: Int(view.appliedChunkBytes) + view.pendingBytes, snapshots: snapshots,
            lastServerTimeMilliseconds: view.lastServerTimeMilliseconds)
    }

    /// Document IDs in byte order, starting after `after`, at most `limit`.
    func documents(after: DocumentID?, limit: Int) throws(OpLogError) -> [DocumentID] {
        guard limit >= 1 else { throw .invalidArgument("limit must be at least 1, got \(limit)") }
        guard limit <= Limits.listDocumentsMax else {
            throw .limitExceeded(.listDocuments, value: limit, maximum: Limits.listDocumentsMax)
        }
        let journaled = try journaledDocuments()
        var found: [DocumentID] = []
        try tables.read { txn in
            try txn.withCursor(tables.documents) { cursor in
                var entry = try after.map { try cursor.seek(atOrAfter: KeyCoding.documentKey($0)) } ?? (try cursor.first())
                while let current = entry, found.count <= limit {
                    guard let id = DocumentID(keyBytes: current.key[...]) else {
                        throw OpLogError.corruption(CorruptionLocation(area: "documents"), detail: "a key is not a valid document ID")
                    }
                    // The record's checksum covers its key: a damaged key is reported here
                    // instead of listing an ID that no document has.
                    _ = try StoreTables.decodeFrame(
                        current.value, key: current.key, kind: .document,
                        location: CorruptionLocation(area: "documents", document: id))
                    if after.map({ $0 < id }) ?? true { found.append(id) }
                    entry = try cursor.next()
                }
            }
        }
        // Documents created since the last apply exist only in memory.
        let merged = Set(found).union(journaled.filter { id in after.map { $0 < id } ?? true })
        return Array(merged.sorted().prefix(limit))
    }
}

/// The store's identity.
extension Reader {
    /// The lineage record, checked against the format version that requires it.
    func lineage() throws(OpLogError) -> StoreLineage? {
        let tables = self.tables
        return try tables.read { txn in
            let lineage = try tables.readLineage(txn)
            if lineage == nil, let format = try tables.readFormat(txn), format.version >= 3 {
                throw OpLogError.corruption(
                    CorruptionLocation(area: "meta"), detail: "the store's lineage record is missing (damaged key?)")
            }
            return lineage
        }
    }
}
