import OpLogStorage

/// Opening after a stop or crash: journal records LMDB does not hold yet are replayed into the
/// reader's views and, when writable, applied.
enum JournalRecovery {
    /// Rebuilds the in-memory views from the journal's unapplied records, then (when writable)
    /// applies them so the store starts with an empty journal.
    ///
    /// The journal doubles as a commit watermark outside the data file: its base sequence is one past
    /// the last record LMDB held when the journal was last replaced. If LMDB's applied sequence is
    /// below that, LMDB lost commits (a damaged newest meta page makes LMDB silently open the
    /// previous commit) and the store refuses to open rather than serve stale data.
    static func run(_ context: StoreContext, reader: Reader, writer: Writer?) throws(OpLogError) {
        let tables = context.tables
        let directory = context.directory
        // A read-only opener may race with the writer replacing the journal; read both again.
        for attempt in 1...Limits.recoveryReadAttemptsMax {
            guard Journal.exists(in: directory) else {
                throw .corruption(CorruptionLocation(area: "journal"), detail: "the journal file is missing; acknowledged ops may be lost")
            }
            // One read transaction for the applied sequence and the document records the replay
            // continues from, so a writer applying meanwhile cannot make them disagree.
            let outcome: (applied: UInt64, contents: Journal.Contents, views: Replayed)? = try tables.read { txn in
                let applied = try tables.readAppliedSequence(txn)
                let contents = try Journal.read(directory: directory, strict: context.options.durability == .full)
                if contents.baseSequence > applied + 1 {
                    if writer == nil && attempt < Limits.recoveryReadAttemptsMax { return nil }
                    throw OpLogError.corruption(
                        CorruptionLocation(area: "lmdb"),
                        detail:
                            "LMDB holds journal records up to \(applied) but the journal starts at \(contents.baseSequence): "
                            + "the data file lost committed transactions (damaged or rolled-back meta page), or damage "
                            + "erased the journal records in between"
                    )
                }
                let views = try replay(contents.records.filter { $0.sequence > applied }, txn, tables: tables)
                return (applied, contents, views)
            }
            guard let (applied, contents, replayed) = outcome else { continue }
            reader.install(replayed.views)
            if let tail = contents.tornTail {
                context.options.logger.notice("dropped a torn journal record (never acknowledged)", metadata: ["detail": "\(tail)"])
            }
            guard let writer else { return }
            try writer.adoptJournal(contents, applied: applied, views: replayed)
            return
        }
    }

    /// What replaying the unapplied journal records produced.
    struct Replayed {
        var views: [DocumentID: DocumentView] = [:]
        /// Approximate bytes of the replayed ops, for the storage-full estimate.
        var bytes = 0
        /// Fencing epochs the records raised.
        var epochs: [FencingScope: UInt64] = [:]
    }

    /// Replays journal records into views, checking that revisions continue LMDB's.
    private static func replay(_ records: [JournalRecord], _ txn: borrowing ReadTransaction, tables: StoreTables) throws -> Replayed {
        var result = Replayed()
        for record in records {
            for entry in record.entries {
                guard let document = entry.document else {
                    if case .epoch(let scope, let epoch) = entry { result.epochs[scope] = max(result.epochs[scope] ?? 0, epoch) }
                    continue
                }
                var view =
                    try result.views[document] ?? tables.readDocumentRecord(txn, document).map(DocumentView.init)
                    ?? DocumentView(record: .empty)
                switch entry {
                case .ops(_, let ops):
                    guard ops.first?.revision == view.head + 1 else {
                        throw OpLogError.corruption(
                            CorruptionLocation(area: "journal", document: document, revision: ops.first?.revision),
                            detail:
                                "journal record \(record.sequence) continues from head \(view.head) with revision "
                                + "\(ops.first?.revision ?? 0)"
                        )
                    }
                    view.head += UInt64(ops.count)
                    view.lastServerTimeMilliseconds = max(view.lastServerTimeMilliseconds, ops.last?.serverTimeMilliseconds ?? 0)
                    view.pending.append(contentsOf: ops)
                    let size = DocumentView.retainedBytes(of: ops, floor: 0)
                    view.pendingBytes += size
                    result.bytes += size
                case .truncate(_, let floor):
                    guard floor <= view.head + 1 else {
                        throw OpLogError.corruption(
                            CorruptionLocation(area: "journal", document: document, revision: floor),
                            detail: "journal record \(record.sequence) truncates beyond head \(view.head)")
                    }
                    view.floor = max(view.floor, floor)
                    view.pendingBytes = DocumentView.retainedBytes(of: view.pending, floor: view.floor)
                case .epoch, .marker:
                    preconditionFailure("an epoch or marker entry names no document")
                }
                result.views[document] = view
            }
        }
        return result
    }
}

extension Writer {
    /// Takes over the journal recovery read: applies what LMDB lacks, then opens the slots for
    /// appending. A version 1 journal is upgraded here: once LMDB holds all of it, empty slots are
    /// created (each made durable by a rename and a directory sync), and only then is `journal`
    /// removed. A crash at any step leaves either the version 1 journal, which the next open reads
    /// and upgrades again, or the slots (FORMAT.md, "Upgrading a version 1 store").
    /// The upgrade's steps after the apply: slots, then the format record, then `journal` removed.
    private func upgradeJournal(baseSequence: UInt64) throws(OpLogError) {
        do {
            journal = try Journal.create(directory: context.directory, baseSequence: baseSequence, mode: options.filePermissions)
        } catch {
            if error.isNoSpace { throw .storageFull(detail: "the file system is full; the journal could not be upgraded: \(error)") }
            throw OpLogError(error)
        }
        try writeGrowing { txn in
            guard var format = try tables.readFormat(txn) else {
                throw OpLogError.corruption(CorruptionLocation(area: "meta"), detail: "the format record vanished during the upgrade")
            }
            format.version = formatVersion
            try txn.put(
                tables.meta, key: StoreTables.formatKey,
                value: RecordFrame.encode(kind: .format, codec: .raw, key: StoreTables.formatKey, stored: format.encode(), rawLength: 20))
            if try tables.readLineage(txn) == nil { try tables.writeLineage(txn, StoreLineage.random()) }
        }
        do { try Journal.removeLegacy(directory: context.directory) } catch { throw OpLogError(error) }
        options.logger.notice("upgraded the store to format version \(formatVersion)")
    }

    func adoptJournal(_ contents: Journal.Contents, applied: UInt64, views: JournalRecovery.Replayed) throws(OpLogError) {
        assertOnWriterThread()
        dirtyDocuments = Set(views.views.keys)
        journalBytes = views.bytes
        try measureSpace()
        var appliedNow = applied
        if let last = contents.records.last, last.sequence > applied {
            // The journal keeps no commit time: recovered changes count their age from this open.
            let now = options.clock.now
            let feed = contents.records.filter { $0.sequence > applied }.map { record in
                FeedRecord(
                    sequence: record.sequence,
                    events: record.entries.contains { if case .marker = $0 { return true } else { return false } }
                        ? nil : Self.feedEvents(record.entries),
                    committedAt: now)
            }
            let job = ApplyJob(
                lastSequence: last.sequence, views: reader.views(of: dirtyDocuments.sorted()), journalBytes: journalBytes,
                epochs: views.epochs, feed: feed)
            assert(job.views.count == dirtyDocuments.count, "a replayed document has no view")
            epochs.sealed = views.epochs
            if !views.epochs.isEmpty { epochs.anyRaised = true }
            sealedJob = job
            dirtyDocuments.removeAll()
            try finishApplyAtOpen(job, commitApply(job, deflater: deflater(level: options.compressionLevel)))
            appliedNow = last.sequence
        }
        if contents.version == JournalCoding.legacyVersion {
            try upgradeJournal(baseSequence: appliedNow + 1)
        } else {
            do { journal = try Journal.openForAppend(directory: context.directory, contents: contents, applied: appliedNow) } catch {
                throw OpLogError(error)
            }
            try upgradeFormatRecord()
            try completeInterruptedDirectCommit()
        }
        // Everything the journal held is in LMDB now, its feed records included: the feed goes
        // live from the next journal sequence.
        let lineage = try tables.read { txn in try tables.readLineage(txn) }
        guard let lineage else { throw .corruption(CorruptionLocation(area: "meta"), detail: "the store's lineage record is missing") }
        let durableThrough = (journal?.nextSequence ?? appliedNow + 1) - 1
        try resetDiscontinuousFeed(durableThrough: durableThrough)
        if feedIsOn { context.feed.activate(lineage: lineage, durableThrough: durableThrough) }
    }

    /// A version 2 or 3 store becomes version 4 by its format record alone (and, from version 2,
    /// a new lineage): the open created the `epochs`, `feed` and `cursors` databases, and the
    /// older versions' journal and records are version 4's (FORMAT.md, "The version record").
    private func upgradeFormatRecord() throws(OpLogError) {
        let upgraded = try writeGrowing { txn in
            guard var format = try tables.readFormat(txn) else {
                throw OpLogError.corruption(CorruptionLocation(area: "meta"), detail: "the format record vanished during the open")
            }
            // Version 3 on writes its lineage with its format record: one without the other is damage.
            guard format.version < 3 else {
                if try tables.readLineage(txn) == nil {
                    throw OpLogError.corruption(
                        CorruptionLocation(area: "meta"), detail: "the store's lineage record is missing (damaged key?)")
                }
                if format.version == formatVersion { return false }
                format.version = formatVersion
                try txn.put(
                    tables.meta, key: StoreTables.formatKey,
                    value: RecordFrame.encode(
                        kind: .format, codec: .raw, key: StoreTables.formatKey, stored: format.encode(), rawLength: 20))
                return true
            }
            if try tables.readLineage(txn) == nil { try tables.writeLineage(txn, StoreLineage.random()) }
            format.version = formatVersion
            try txn.put(
                tables.meta, key: StoreTables.formatKey,
                value: RecordFrame.encode(kind: .format, codec: .raw, key: StoreTables.formatKey, stored: format.encode(), rawLength: 20))
            return true
        }
        if upgraded { options.logger.notice("upgraded the store to format version \(formatVersion)") }
    }
}
