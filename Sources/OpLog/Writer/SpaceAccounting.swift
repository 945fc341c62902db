import Foundation
import OpLogStorage

/// Space accounting: LMDB commits that grow the map, the reserve kept for deletions, and what a
/// full map or file system means for the caller.
extension Writer {

    /// Runs an LMDB write transaction, growing the map and retrying when it is full.
    /// - Throws: `storageFull` once the map is at `mapSizeMaximumBytes`, or when the commit failed
    ///   with ENOSPC (the store stays usable); `reopenRequired` after EIO or MDB_PANIC.
    func writeGrowing<T>(_ body: (borrowing WriteTransaction) throws -> T) throws(OpLogError) -> T {
        assertMayCommitToLMDB()
        var bumped = false
        while true {
            do {
                let started = DispatchTime.now().uptimeNanoseconds
                let result = try tables.environment.write(body)
                let elapsed = DispatchTime.now().uptimeNanoseconds - started
                counters.withLock { counters in
                    counters.lmdbCommits += 1
                    counters.lmdbCommitNanoseconds += elapsed
                }
                try afterLMDBCommit()
                return result
            } catch let error as StorageError where error.isMapFull {
                let mapSize = mapSizeBytes.load(ordering: .relaxed)
                guard mapSize < options.mapSizeMaximumBytes else {
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
                let grown = min(options.mapSizeMaximumBytes, mapSize * 2)
                do { try tables.environment.setMapSize(grown) } catch { throw OpLogError(error) }
                options.logger.info("grew the LMDB map", metadata: ["bytes": "\(grown)"])
                mapSizeBytes.store(grown, ordering: .relaxed)
            } catch let error as StorageError where !error.isPanic && (error.isNoSpace || isFileSystemFullCommit(error)) {
                throw storageFullAfterFailedCommit(error)
            } catch let error as StorageError where error.isPanic || error.isIOError {
                throw poison(error.description)
            } catch {
                throw OpLogError(mapping: error)
            }
        }
    }

    /// LMDB reports a short `pwritev` of data pages as EIO ("short write, filesystem full?" in
    /// `mdb_page_flush`), and that is how a commit meets a full file system mid-batch. A commit's
    /// EIO counts as ENOSPC only while under 1 MiB is left; otherwise it is taken for a real I/O error.
    private func isFileSystemFullCommit(_ error: StorageError) -> Bool {
        guard error.isFailedCommitWrite, let available = File.availableBytes(context.directory) else { return false }
        return available < Limits.fileSystemNearlyFullBytes
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
            try txn.put(
                tables.meta, key: key,
                value: RecordFrame.encode(kind: .appliedSequence, codec: .raw, key: key, stored: body, rawLength: body.count))
        }
        counters.withLock { $0.lmdbCommits += 1 }
    }

    /// After each LMDB commit: measure the space in use.
    private func afterLMDBCommit() throws {
        let info = try tables.environment.info()
        let highWater = (info.lastPageNumber + 1) * info.pageSizeBytes
        // Counting free pages scans LMDB's free list; only worth it near the limit.
        if highWater + 4 * options.reservedBytesForDeletion >= options.mapSizeMaximumBytes {
            lmdbUsedBytes.store(highWater - (try tables.environment.freePageCount()) * info.pageSizeBytes, ordering: .relaxed)
        } else {
            lmdbUsedBytes.store(highWater, ordering: .relaxed)
        }
    }

    /// Refuses growth that could leave the reserve for deletions unavailable. Journaled bytes count
    /// twice: applying them writes chunk pages, and B-tree pages may be half full.
    /// The space check counts journaled bytes twice (their LMDB cost is unknown until applied), so a
    /// small store near its limit could refuse appends that fit. When the check would fail and the
    /// journal holds bytes, apply it first: the check then sees LMDB's real figure. Called between
    /// groups, never while one is staged. A failed apply is left to the check to report.
    func applyJournalIfSpaceIsTight(adding bytes: Int) {
        guard spaceIsTight(adding: bytes) else { return }
        do { try applyJournal() } catch {
            options.logger.notice("journal apply near the space limit failed", metadata: ["error": "\(error)"])
        }
    }

    /// Whether `applyJournalIfSpaceIsTight` would apply before a group of `bytes`.
    func spaceIsTight(adding bytes: Int) -> Bool {
        journalBytes > 0
            && lmdbUsedBytes.load(ordering: .relaxed) + 2 * (journalBytes + bytes) + options.reservedBytesForDeletion
                > options.mapSizeMaximumBytes
    }

    func checkSpace(adding bytes: Int) throws(OpLogError) {
        // Applies that keep failing would let the journal grow without bound.
        if journalBytes > Limits.unappliedJournalApplies * options.journalApplyBytes + options.groupCommitMaxBytes {
            throw .storageFull(detail: "the journal holds \(journalBytes) bytes that could not be applied to LMDB")
        }
        let used = lmdbUsedBytes.load(ordering: .relaxed)
        let projected = used + 2 * (journalBytes + bytes) + options.reservedBytesForDeletion
        if projected > options.mapSizeMaximumBytes {
            throw .storageFull(
                detail:
                    "\(used) bytes in use and \(journalBytes) journaled, of at most \(options.mapSizeMaximumBytes) "
                    + "(keeping \(options.reservedBytesForDeletion) for deletions)"
            )
        }
    }
}

extension Writer {
    /// Measures LMDB's space in use exactly (free pages counted), at open.
    func measureSpace() throws(OpLogError) {
        do {
            let info = try tables.environment.info()
            lmdbUsedBytes.store(
                (info.lastPageNumber + 1 - (try tables.environment.freePageCount())) * info.pageSizeBytes, ordering: .relaxed)
        } catch { throw OpLogError(mapping: error) }
    }
}
