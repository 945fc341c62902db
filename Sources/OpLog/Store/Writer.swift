import Foundation
import OpLogStorage

/// State owned by the writer thread.
///
/// Thread safety: touched only by the writer thread, and by `open` before that thread starts; this
/// is what makes the `@unchecked Sendable` true.
final class WriterState: @unchecked Sendable {
    let lockFile: File
    var journal: Journal?
    /// Set while `journal` is nil because its replacement after an apply ran out of space.
    var journalBaseToCreate: UInt64?
    var mapSizeBytes: Int
    /// Op IDs remembered per document (loaded on a document's first append after open).
    var dedupe: [DocumentID: DedupeIndex] = [:]
    /// Documents with journaled changes that the next apply must write.
    var dirtyDocuments: Set<DocumentID> = []
    /// LMDB bytes in use after the last commit (pages in use × page size), for the full check.
    var lmdbUsedBytes = 0

    init(lockFile: File, mapSizeBytes: Int) {
        self.lockFile = lockFile
        self.mapSizeBytes = mapSizeBytes
    }
}

extension OpLogStore {
    func startWriterThread() {
        let thread = Thread { [self] in runWriter() }
        thread.name = "oplog-writer"
        thread.start()
    }

    /// The writer loop: takes a group of requests, runs it, repeats until `close`.
    private func runWriter() {
        guard let writer else { return }
        while true {
            metrics.queueDepth.record(queue.depth)
            let group = queue.takeGroup(maxOps: options.groupCommitMaxOps, maxBytes: options.groupCommitMaxBytes)
            if group[0].isJournaled {
                applyJournalIfSpaceIsTight(adding: group.reduce(0) { $0 + $1.payloadBytes }, writer: writer)
                commitGroup(group, writer: writer)
                continue
            }
            if case let .close(continuation) = group[0] {
                let result = Result { () throws(OpLogError) in try shutDown(writer: writer) }
                continuation.resume(with: result)
                drainAfterClose()
                return
            }
            runExclusive(group[0], writer: writer)
        }
    }

    /// Requests that reached the queue after `close` fail with `closed`.
    private func drainAfterClose() {
        while queue.depth > 0 {
            for request in queue.takeGroup(maxOps: .max, maxBytes: .max) { request.fail(.closed) }
        }
    }

    private func runExclusive(_ request: WriteRequest, writer: WriterState) {
        func run(_ continuation: Reply<Void>, _ body: () throws(OpLogError) -> Void) {
            do throws(OpLogError) {
                if let failure = try withState({ $0.failure }) { throw failure }
                try body()
                continuation.resume()
            } catch {
                continuation.resume(throwing: error)
            }
        }
        switch request {
        case let .putSnapshot(document, revision, frame, continuation):
            run(continuation) { () throws(OpLogError) in try writeSnapshot(frame: frame, of: document, at: revision, writer: writer) }
        case let .deleteSnapshot(document, revision, continuation):
            run(continuation) { () throws(OpLogError) in try removeSnapshot(of: document, at: revision, writer: writer) }
        case let .deleteDocument(document, continuation):
            run(continuation) { () throws(OpLogError) in try removeDocument(document, writer: writer) }
        case let .checkpoint(continuation):
            run(continuation) { () throws(OpLogError) in try applyJournal(writer: writer) }
        case .append, .truncate, .close:
            break  // handled by runWriter
        }
    }

    /// Applies what is journaled, closes the journal and the environment.
    private func shutDown(writer: WriterState) throws(OpLogError) {
        defer {
            writer.journal?.close()
            state.withLock { $0.isClosed = true }
            subscriptions.closeAll()
            tables.environment.close()
            writer.lockFile.close()
        }
        if try withState({ $0.failure }) == nil {
            try applyJournal(writer: writer)
            if options.durability == .mayCorruptOnSystemCrash {
                do { try tables.environment.sync() } catch { throw OpLogError.wrap(error) }
            }
        }
    }

    /// Marks the store unusable after an I/O failure whose effect on disk is unknown.
    func poison(_ reason: String) -> OpLogError {
        let error = OpLogError.reopenRequired(reason: reason)
        state.withLock { state in
            if state.failure == nil { state.failure = error }
        }
        options.logger.error("store needs reopening", metadata: ["reason": "\(reason)"])
        return error
    }

    /// Runs an LMDB write transaction, growing the map and retrying when it is full.
    /// - Throws: `storageFull` once the map is at `mapSizeMaximumBytes`, or when the commit failed
    ///   with ENOSPC (the store stays usable); `reopenRequired` after EIO or MDB_PANIC.
    func writeGrowing<T>(writer: WriterState, allowReserve: Bool, _ body: (borrowing WriteTransaction) throws -> T) throws(OpLogError) -> T {
        var bumped = false
        while true {
            do {
                let started = DispatchTime.now().uptimeNanoseconds
                let result = try tables.environment.write(body)
                let elapsed = DispatchTime.now().uptimeNanoseconds - started
                state.withLock { state in
                    state.counters.lmdbCommits += 1
                    state.counters.lmdbCommitNanoseconds += elapsed
                }
                try afterLMDBCommit(writer: writer)
                return result
            } catch let error as StorageError where error.isMapFull {
                guard writer.mapSizeBytes < options.mapSizeMaximumBytes else {
                    // LMDB reuses a page only once the commit after the one that freed it is done
                    // (the previous meta page may still point to it). Right after a deletion or a
                    // truncating apply, the freed pages are therefore not yet usable: one tiny
                    // commit makes them so, then the transaction is tried once more.
                    if !bumped, (try? tables.environment.freePageCount()) ?? 0 > 0, (try? bumpTransaction()) != nil {
                        bumped = true
                        continue
                    }
                    throw .storageFull(detail: "the map reached its maximum of \(options.mapSizeMaximumBytes) bytes")
                }
                let grown = min(options.mapSizeMaximumBytes, writer.mapSizeBytes * 2)
                do { try tables.environment.setMapSize(grown) } catch { throw OpLogError.wrap(error) }
                options.logger.info("grew the LMDB map", metadata: ["bytes": "\(grown)"])
                writer.mapSizeBytes = grown
            } catch let error as StorageError where !error.isPanic && (error.isNoSpace || isShortCommitWrite(error)) {
                throw storageFullAfterFailedCommit(error)
            } catch let error as StorageError where error.isPanic || error.kind == .lmdb(EIO) {
                throw poison(error.description)
            } catch {
                throw OpLogError.wrap(error)
            }
        }
    }

    /// LMDB reports a short `pwritev` of data pages as EIO ("short write, filesystem full?" in
    /// `mdb_page_flush`), and that is how a commit meets a full file system mid-batch. A commit's
    /// EIO counts as ENOSPC only while under 1 MiB is left; otherwise it is taken for a real I/O error.
    private func isShortCommitWrite(_ error: StorageError) -> Bool {
        guard error.kind == .lmdb(EIO), error.operation == "mdb_txn_commit", let available = File.availableBytes(directory) else { return false }
        return available < 1 << 20
    }

    /// A commit that failed with ENOSPC was aborted by LMDB: its pages went to file space no committed
    /// tree uses, and the meta page was not written (a failed meta write makes LMDB report MDB_PANIC
    /// from then on). One read transaction checks that; then the store goes on, and the operation
    /// may be retried once space is freed. If the read fails, the store needs reopening.
    private func storageFullAfterFailedCommit(_ error: StorageError) -> OpLogError {
        do {
            _ = try tables.environment.read { txn in try tables.readAppliedSequence(txn) }
        } catch let readError {
            return poison("\(error.description), and a read afterwards failed: \(readError)")
        }
        return .storageFull(detail: "the file system is full; the LMDB commit was aborted (\(error.description))")
    }

    /// Commits a transaction that rewrites `meta/applied` unchanged: a few pages, and afterwards the
    /// pages freed by the commit before it can be reused.
    private func bumpTransaction() throws {
        try tables.environment.write { txn in
            let key = StoreTables.appliedKey
            let body = AppliedSequenceRecord.encode(try tables.readAppliedSequence(txn))
            try txn.put(tables.meta, key: key, value: RecordFrame.encode(kind: .appliedSequence, codec: .raw, key: key, stored: body, rawLength: body.count))
        }
        state.withLock { $0.counters.lmdbCommits += 1 }
    }

    /// After each LMDB commit: measure the space in use.
    private func afterLMDBCommit(writer: WriterState) throws {
        let info = try tables.environment.info()
        let highWater = (info.lastPageNumber + 1) * info.pageSizeBytes
        // Counting free pages scans LMDB's free list; only worth it near the limit.
        if highWater + 4 * options.reservedBytesForDeletion >= options.mapSizeMaximumBytes {
            writer.lmdbUsedBytes = highWater - (try tables.environment.freePageCount()) * info.pageSizeBytes
        } else {
            writer.lmdbUsedBytes = highWater
        }
    }

    /// Refuses growth that could leave the reserve for deletions unavailable. Journaled bytes count
    /// twice: applying them writes chunk pages, and B-tree pages may be half full.
    /// The space check counts journaled bytes twice (their LMDB cost is unknown until applied), so a
    /// small store near its limit could refuse appends that fit. When the check would fail and the
    /// journal holds bytes, apply it first: the check then sees LMDB's real figure. Called between
    /// groups, never while one is staged. A failed apply is left to the check to report.
    func applyJournalIfSpaceIsTight(adding bytes: Int, writer: WriterState) {
        let journalBytes = state.withLock { $0.journalBytes }
        guard journalBytes > 0,
              writer.lmdbUsedBytes + 2 * (journalBytes + bytes) + options.reservedBytesForDeletion > options.mapSizeMaximumBytes
        else { return }
        do { try applyJournal(writer: writer) } catch {
            options.logger.notice("journal apply near the space limit failed", metadata: ["error": "\(error)"])
        }
    }

    func checkSpace(adding bytes: Int, writer: WriterState) throws(OpLogError) {
        let journalBytes = state.withLock { $0.journalBytes }
        // Applies that keep failing would let the journal grow without bound.
        if journalBytes > 4 * options.journalApplyBytes + options.groupCommitMaxBytes {
            throw .storageFull(detail: "the journal holds \(journalBytes) bytes that could not be applied to LMDB")
        }
        let projected = writer.lmdbUsedBytes + 2 * (journalBytes + bytes) + options.reservedBytesForDeletion
        if projected > options.mapSizeMaximumBytes {
            throw .storageFull(detail: "\(writer.lmdbUsedBytes) bytes in use and \(journalBytes) journaled, of at most \(options.mapSizeMaximumBytes) (keeping \(options.reservedBytesForDeletion) for deletions)")
        }
    }
}
