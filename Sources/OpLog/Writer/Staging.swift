/// A document as one group commit sees it: the committed head and floor plus this group's changes.
/// It holds only the new ops, never a copy of the journaled tail, so staging costs what the group
/// adds, not what the journal already holds.
struct ScratchDocument {
    var head: Revision
    var floor: Revision
    var lastServerTimeMilliseconds: Int64
    /// The LMDB record to start a view from when the document has none in memory.
    var record: DocumentRecord
    var appended: [StoredOp] = []
    var truncated = false
    /// Op IDs this group accepted, not yet in the dedupe index.
    var newIDs: [OpID: Revision] = [:]
    var changed: Bool { !appended.isEmpty || truncated }

    /// What this group changed, for the reader's views.
    var update: ViewUpdate {
        ViewUpdate(head: head, floor: floor, lastServerTimeMilliseconds: lastServerTimeMilliseconds, record: record, appended: appended)
    }
}

/// Validating and staging the requests of one group commit against the state the requests before
/// them left. Nothing here writes; `commitGroup` makes the staged entries durable.
extension Writer {
    /// The committed state of a document for staging: memory first, else LMDB, else a new document.
    func scratchDocument(_ document: DocumentID, scratch: [DocumentID: ScratchDocument]) throws(OpLogError) -> ScratchDocument {
        if let existing = scratch[document] { return existing }
        if let view = try reader.journaledView(of: document) {
            return ScratchDocument(
                head: view.head, floor: view.floor, lastServerTimeMilliseconds: view.lastServerTimeMilliseconds, record: .empty)
        }
        let record = try tables.read { txn in try tables.readDocumentRecord(txn, document) } ?? .empty
        return ScratchDocument(
            head: record.head, floor: record.floor, lastServerTimeMilliseconds: record.lastServerTimeMilliseconds, record: record)
    }

    func stageAppend(
        _ batch: [DocumentAppend], scratch: inout [DocumentID: ScratchDocument], epochs groupEpochs: inout [FencingScope: UInt64],
        entries: inout [JournalEntry], now: Int64
    ) throws(OpLogError) -> [AppendResult] {
        try validate(batch)
        var local: [DocumentID: ScratchDocument] = [:]
        var localEpochs = groupEpochs
        var newEntries: [JournalEntry] = []
        var results: [AppendResult] = []
        var addedBytes = 0
        for part in batch {
            // Fencing first: a stale owner is refused even for a retry, and the whole batch with it.
            if let (scope, raised) = try checkEpoch(part.epoch, for: part.document, group: localEpochs) {
                localEpochs[scope] = raised
                newEntries.append(.epoch(scope: scope, epoch: raised))
            }
            var document = try scratchDocument(part.document, scratch: scratch)
            let known = try knownRevisions(of: part, document: document)
            let acceptedCount = known.count(where: { $0 != nil })
            if acceptedCount == part.ops.count {
                results.append(AppendResult(revisions: known.compactMap { $0 }, wasRetry: true))
                continue
            }
            if acceptedCount > 0 {
                throw .partialRetry(document: part.document, acceptedCount: acceptedCount, newCount: part.ops.count - acceptedCount)
            }
            if let expected = part.expectedHead, expected != document.head {
                throw .conflict(document: part.document, expectedHead: expected, actualHead: document.head)
            }
            let stored = Self.stamp(part.ops, after: document.head, serverTime: max(now, document.lastServerTimeMilliseconds))
            for op in stored { document.newIDs[op.opID] = op.revision }
            addedBytes += stored.reduce(0) { $0 + Limits.estimatedStoredBytes(of: $1) }
            document.head += UInt64(stored.count)
            document.lastServerTimeMilliseconds = stored[0].serverTimeMilliseconds
            document.appended.append(contentsOf: stored)
            local[part.document] = document
            newEntries.append(.ops(document: part.document, ops: stored))
            results.append(AppendResult(revisions: stored.map(\.revision), wasRetry: false))
        }
        if addedBytes > 0 {
            let staged = entries.reduce(0) { $0 + $1.ops.reduce(0) { $0 + Limits.estimatedStoredBytes(of: $1) } }
            try checkSpace(adding: staged + addedBytes)
        }
        scratch.merge(local) { $1 }
        groupEpochs = localEpochs
        entries.append(contentsOf: newEntries)
        return results
    }

    /// The revision each op ID of `part` was accepted at before, or nil for a new op: from this
    /// group, the dedupe window, and (with `basedOn`) everything stored after the base.
    private func knownRevisions(of part: DocumentAppend, document: ScratchDocument) throws(OpLogError) -> [Revision?] {
        let index = try dedupeIndex(part.document)
        let known = part.ops.map { document.newIDs[$0.opID] ?? index.revision(of: $0.opID) }
        guard let basedOn = part.basedOn, known.contains(nil) else { return known }
        // Ops staged earlier in this group are in `newIDs`; the rest is committed.
        let committed = try revisionsAfter(basedOn: basedOn, of: part.ops.map(\.opID), in: part.document, head: document.head, index: index)
        return zip(known, committed).map { $0 ?? $1 }
    }

    /// The stored form of new ops: consecutive revisions after `head`, one server time.
    private static func stamp(_ ops: [NewOp], after head: Revision, serverTime: Int64) -> [StoredOp] {
        let stored = ops.enumerated().map { index, op in
            StoredOp(
                revision: head + 1 + UInt64(index), opID: op.opID, author: op.author,
                clientTimeMilliseconds: op.clientTimeMilliseconds, serverTimeMilliseconds: serverTime, payload: op.payload)
        }
        assert(
            zip(stored, stored.dropFirst()).allSatisfy { $0.revision + 1 == $1.revision } && stored.first?.revision == head + 1,
            "staged revisions are not contiguous after head \(head)")
        return stored
    }

    private func validate(_ batch: [DocumentAppend]) throws(OpLogError) {
        var documents: Set<DocumentID> = []
        var totalBytes = 0
        for part in batch {
            guard documents.insert(part.document).inserted else {
                throw .duplicateInBatch(document: part.document, detail: "the document appears more than once")
            }
            guard !part.ops.isEmpty else { throw .invalidArgument("an append to '\(part.document)' has no ops") }
            guard part.ops.count <= Limits.opsPerAppendMax else {
                throw .limitExceeded(.opsPerAppend, value: part.ops.count, maximum: Limits.opsPerAppendMax)
            }
            var ids: Set<OpID> = []
            for op in part.ops {
                guard op.author.count <= Limits.authorBytesMax else {
                    throw .limitExceeded(.authorBytes, value: op.author.count, maximum: Limits.authorBytesMax)
                }
                guard op.payload.count <= Limits.payloadBytesMax else {
                    throw .limitExceeded(.payloadBytes, value: op.payload.count, maximum: Limits.payloadBytesMax)
                }
                guard ids.insert(op.opID).inserted else {
                    throw .duplicateInBatch(document: part.document, detail: "op ID \(op.opID) appears more than once")
                }
                totalBytes += op.payload.count
            }
        }
        let totalOps = batch.reduce(0) { $0 + $1.ops.count }
        guard totalOps <= Limits.opsPerBatchMax else {
            throw .limitExceeded(.opsPerBatch, value: totalOps, maximum: Limits.opsPerBatchMax)
        }
        guard totalBytes <= Limits.batchPayloadBytesMax else {
            throw .limitExceeded(.batchPayloadBytes, value: totalBytes, maximum: Limits.batchPayloadBytesMax)
        }
    }

    func stageTruncate(
        _ document: DocumentID, floor: Revision, epoch: UInt64?, scratch: inout [DocumentID: ScratchDocument],
        epochs groupEpochs: inout [FencingScope: UInt64], entries: inout [JournalEntry]
    ) throws(OpLogError) {
        let raise = try checkEpoch(epoch, for: document, group: groupEpochs)
        var staged = try scratchDocument(document, scratch: scratch)
        guard staged.head > 0 else { throw .documentNotFound(document) }
        if floor <= staged.floor { return }
        guard floor <= staged.head + 1 else {
            throw .beyondHead(document: document, requested: floor - 1, head: staged.head)
        }
        guard try reader.latestSnapshotRevision(document, atOrBelow: floor - 1) == floor - 1 else {
            throw .snapshotRequired(document: document, revision: floor - 1)
        }
        staged.floor = floor
        staged.truncated = true
        scratch[document] = staged
        if let (scope, raised) = raise {
            groupEpochs[scope] = raised
            entries.append(.epoch(scope: scope, epoch: raised))
        }
        entries.append(.truncate(document: document, floor: floor))
    }
}
