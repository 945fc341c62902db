import Foundation
import OpLogStorage

/// A document as one group commit sees it: the committed head and floor plus this group's changes.
/// It holds only the new ops, never a copy of the journaled tail, so staging costs what the group
/// adds, not what the journal already holds.
struct ScratchDocument {
    var head: Revision
    var floor: Revision
    var lastServerTimeMilliseconds: Int64
    /// The LMDB record to start a view from when the document has none in memory.
    var record: DocumentRecord?
    var appended: [StoredOp] = []
    var truncated = false
    /// Op IDs this group accepted, not yet in the dedupe index.
    var newIDs: [OpID: Revision] = [:]
    var changed: Bool { !appended.isEmpty || truncated }

    /// Applies this group's changes to the shared view, in place.
    func publish(into view: inout DocumentView) {
        view.head = head
        view.lastServerTimeMilliseconds = lastServerTimeMilliseconds
        view.pending.append(contentsOf: appended)
        if truncated {
            // Journaled ops below the new floor stay in `pending` until the apply: their op IDs
            // must reach the dedupe records though the ops are never written to LMDB.
            view.floor = floor
            view.pendingBytes = retainedPendingBytes(view)
        } else {
            view.pendingBytes += appended.reduce(0) { $0 + $1.payload.count + $1.author.count + 20 }
        }
    }
}

extension OpLogStore {
    /// Runs a group of appends and truncations as one journal record and one sync.
    ///
    /// Each request is validated against the state left by the requests before it in the group; a
    /// failing request fails alone and its changes are discarded. Callers are resumed only after the
    /// record is durable, and the shared state is updated before that (read-after-acknowledge).
    func commitGroup(_ group: [WriteRequest], writer: WriterState) {
        let started = DispatchTime.now().uptimeNanoseconds
        if let failure = state.withLock({ $0.failure }) {
            group.forEach { $0.fail(failure) }
            return
        }
        var scratch: [DocumentID: ScratchDocument] = [:]
        var entries: [JournalEntry] = []
        var outcomes: [Result<[AppendResult], OpLogError>] = []
        var journaled: [Bool] = []
        let now = options.clock.now
        for request in group {
            let before = entries.count
            do {
                switch request {
                case let .append(batch, _):
                    outcomes.append(.success(try stageAppend(batch, scratch: &scratch, entries: &entries, writer: writer, now: now)))
                case let .truncate(document, floor, _):
                    try stageTruncate(document, floor: floor, scratch: &scratch, entries: &entries, writer: writer)
                    outcomes.append(.success([]))
                default:
                    outcomes.append(.failure(.invalidArgument("not a journaled request")))
                }
            } catch {
                outcomes.append(.failure(error))
            }
            journaled.append(entries.count > before)
        }
        if !entries.isEmpty {
            do {
                try writeJournalRecord(entries, writer: writer)
            } catch {
                for (index, request) in group.enumerated() {
                    if journaled[index] { outcomes[index] = .failure(error) }
                    _ = request
                }
                resume(group, outcomes)
                return
            }
            publish(scratch, writer: writer)
        }
        resume(group, outcomes)
        metrics.commits.increment()
        metrics.opsPerCommit.record(group.reduce(0) { $0 + $1.opCount })
        metrics.commitLatency.recordNanoseconds(Int64(DispatchTime.now().uptimeNanoseconds - started))
        if let journal = writer.journal, journal.recordBytes >= options.journalApplyBytes {
            do { try applyJournal(writer: writer) } catch {
                options.logger.error("journal apply failed", metadata: ["error": "\(error)"])
            }
        }
    }

    private func resume(_ group: [WriteRequest], _ outcomes: [Result<[AppendResult], OpLogError>]) {
        for (request, outcome) in zip(group, outcomes) {
            switch (request, outcome) {
            case let (.append(_, continuation), .success(results)): continuation.resume(returning: results)
            case let (.truncate(_, _, continuation), .success): continuation.resume()
            case let (_, .failure(error)): request.fail(error)
            default: request.fail(.invalidArgument("not a journaled request"))
            }
        }
    }

    /// The committed state of a document for staging: memory first, else LMDB, else a new document.
    private func scratchDocument(_ document: DocumentID, scratch: [DocumentID: ScratchDocument]) throws(OpLogError) -> ScratchDocument {
        if let existing = scratch[document] { return existing }
        let inMemory = state.withLock { state in
            state.documents[document].map { ($0.head, $0.floor, $0.lastServerTimeMilliseconds) }
        }
        if let (head, floor, time) = inMemory {
            return ScratchDocument(head: head, floor: floor, lastServerTimeMilliseconds: time, record: nil)
        }
        let record: DocumentRecord
        do {
            record = try tables.environment.read { txn in try tables.readDocumentRecord(txn, document) } ?? .empty
        } catch { throw OpLogError.wrap(error) }
        return ScratchDocument(head: record.head, floor: record.floor, lastServerTimeMilliseconds: record.lastServerTimeMilliseconds, record: record)
    }

    private func stageAppend(_ batch: [DocumentAppend], scratch: inout [DocumentID: ScratchDocument], entries: inout [JournalEntry],
                             writer: WriterState, now: Int64) throws(OpLogError) -> [AppendResult] {
        try validate(batch)
        var local: [DocumentID: ScratchDocument] = [:]
        var newEntries: [JournalEntry] = []
        var results: [AppendResult] = []
        var addedBytes = 0
        for part in batch {
            var document = try scratchDocument(part.document, scratch: scratch)
            let index = try dedupeIndex(part.document, writer: writer)
            var known = part.ops.map { document.newIDs[$0.opID] ?? index.revision(of: $0.opID) }
            if let basedOn = part.basedOn, known.contains(nil) {
                // Ops staged earlier in this group are in `newIDs`; the rest is committed.
                let committed = try revisionsAfter(basedOn: basedOn, of: part.ops.map(\.opID), in: part.document,
                                                   head: document.head, index: index)
                known = zip(known, committed).map { $0 ?? $1 }
            }
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
            let serverTime = max(now, document.lastServerTimeMilliseconds)
            let first = document.head + 1
            let stored = part.ops.enumerated().map { index, op in
                StoredOp(revision: first + UInt64(index), opID: op.opID, author: op.author,
                         clientTimeMilliseconds: op.clientTimeMilliseconds, serverTimeMilliseconds: serverTime, payload: op.payload)
            }
            for op in stored { document.newIDs[op.opID] = op.revision }
            addedBytes += stored.reduce(0) { $0 + $1.payload.count + $1.author.count + 20 }
            document.head += UInt64(stored.count)
            document.lastServerTimeMilliseconds = serverTime
            document.appended.append(contentsOf: stored)
            local[part.document] = document
            newEntries.append(.ops(document: part.document, ops: stored))
            results.append(AppendResult(revisions: stored.map(\.revision), wasRetry: false))
        }
        if addedBytes > 0 {
            let staged = entries.reduce(0) { total, entry in
                if case let .ops(_, ops) = entry { return total + ops.reduce(0) { $0 + $1.payload.count + 40 } }
                return total
            }
            try checkSpace(adding: staged + addedBytes, writer: writer)
        }
        scratch.merge(local) { $1 }
        entries.append(contentsOf: newEntries)
        return results
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

    private func stageTruncate(_ document: DocumentID, floor: Revision, scratch: inout [DocumentID: ScratchDocument],
                               entries: inout [JournalEntry], writer: WriterState) throws(OpLogError) {
        var staged = try scratchDocument(document, scratch: scratch)
        guard staged.head > 0 else { throw .documentNotFound(document) }
        if floor <= staged.floor { return }
        guard floor <= staged.head + 1 else {
            throw .beyondHead(document: document, requested: floor - 1, head: staged.head)
        }
        let snapshot: Revision?
        do { snapshot = try latestSnapshotRevision(document, atOrBelow: floor - 1) } catch { throw OpLogError.wrap(error) }
        guard snapshot == floor - 1 else { throw .snapshotRequired(document: document, revision: floor - 1) }
        staged.floor = floor
        staged.truncated = true
        scratch[document] = staged
        entries.append(.truncate(document: document, floor: floor))
    }

    /// Appends one journal record and syncs it (in the full durability mode).
    private func writeJournalRecord(_ entries: [JournalEntry], writer: WriterState) throws(OpLogError) {
        if writer.journal == nil, let base = writer.journalBaseToCreate {
            try replaceJournal(baseSequence: base, writer: writer)
        }
        guard let journal = writer.journal else { throw poison("the journal is not open") }
        let frame: [UInt8]
        do {
            frame = try JournalCoding.encodeFrame(JournalRecord(sequence: journal.nextSequence, entries: entries),
                                                  compressionLevel: options.journalCompressionLevel)
        } catch { throw OpLogError.wrap(error) }
        // The reader refuses records whose stored or raw length exceeds the limit; never write one.
        let rawLength = frame.count >= 8 ? Int(frame[4]) | Int(frame[5]) << 8 | Int(frame[6]) << 16 | Int(frame[7]) << 24 : 0
        guard frame.count <= Limits.journalRecordBytesMax, rawLength <= Limits.journalRecordBytesMax else {
            throw .limitExceeded(.batchPayloadBytes, value: max(frame.count, rawLength), maximum: Limits.journalRecordBytesMax)
        }
        let syncStarted = DispatchTime.now().uptimeNanoseconds
        do throws(Journal.AppendFailure) {
            try journal.append(frame, sync: options.durability == .full)
        } catch {
            switch error {
            case let .noSpace(cause):
                // The partial frame was cut off: nothing of this group is acknowledged, and the
                // next group tries again.
                throw .storageFull(detail: "the file system is full; a journal record of \(frame.count) bytes was not written (\(cause.description))")
            case let .failed(cause):
                // The record may be partly on disk, and a failed sync may have dropped earlier pages.
                throw poison(cause.description)
            }
        }
        let syncNanoseconds = DispatchTime.now().uptimeNanoseconds - syncStarted
        metrics.syncLatency.recordNanoseconds(Int64(syncNanoseconds))
        let opCount = entries.reduce(0) { total, entry in
            if case let .ops(_, ops) = entry { return total + ops.count }
            return total
        }
        state.withLock { state in
            state.journalBytes += frame.count
            state.counters.groupCommits += 1
            state.counters.opsCommitted += opCount
            state.counters.syncNanoseconds += syncNanoseconds
        }
    }

    /// Makes a durable group visible: views first (read-after-acknowledge), then the dedupe indexes.
    /// Views are changed in place, so appending to a long journaled tail does not copy it.
    private func publish(_ scratch: [DocumentID: ScratchDocument], writer: WriterState) {
        let changed = scratch.filter { $0.value.changed }
        state.withLock { state in
            for (document, staged) in changed {
                staged.publish(into: &state.documents[document, default: DocumentView(record: staged.record ?? .empty)])
            }
        }
        for (document, staged) in changed where !staged.appended.isEmpty {
            subscriptions.deliver(document, staged.appended)
        }
        observers.notify(changed.flatMap { document, staged -> [StoreEvent] in
            var events: [StoreEvent] = []
            if !staged.appended.isEmpty { events.append(.appended(document: document, ops: staged.appended)) }
            if staged.truncated { events.append(.truncated(document: document, floor: staged.floor)) }
            return events
        })
        let window = DedupeWindow(options: options)
        for (document, staged) in changed {
            writer.dirtyDocuments.insert(document)
            for op in staged.appended {
                writer.dedupe[document]?.insert(op.opID, revision: op.revision, time: op.serverTimeMilliseconds)
            }
            let cutoff = window.oldestServerTime(lastServerTime: staged.lastServerTimeMilliseconds)
            writer.dedupe[document]?.prune(keepingOps: window.ops, cutoff: cutoff)
        }
    }
}
