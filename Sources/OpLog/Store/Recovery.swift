import OpLogStorage

/// Opening after a stop or crash: journal records LMDB does not hold yet are replayed.
extension OpLogStore {
    /// Rebuilds the in-memory views from the journal's unapplied records, then (when writable)
    /// applies them so the store starts with an empty journal.
    ///
    /// The journal doubles as a commit watermark outside the data file: its base sequence is one past
    /// the last record LMDB held when the journal was last replaced. If LMDB's applied sequence is
    /// below that, LMDB lost commits (a damaged newest meta page makes LMDB silently open the
    /// previous commit) and the store refuses to open rather than serve stale data.
    func recover() throws {
        // A read-only opener may race with the writer replacing the journal; read both again.
        for attempt in 1...3 {
            guard File.exists(directory + "/" + Journal.fileName) else {
                throw OpLogError.corruption(CorruptionLocation(area: "journal"), detail: "the journal file is missing; acknowledged ops may be lost")
            }
            // One read transaction for the applied sequence and the document records the replay
            // continues from, so a writer applying meanwhile cannot make them disagree.
            let outcome: (applied: UInt64, contents: Journal.Contents)? = try tables.environment.read { txn in
                let applied = try tables.readAppliedSequence(txn)
                let contents = try Journal.read(directory: directory, strict: options.durability == .full)
                if contents.baseSequence > applied + 1 {
                    if writer == nil && attempt < 3 { return nil }
                    throw OpLogError.corruption(CorruptionLocation(area: "lmdb"),
                        detail: "LMDB holds journal records up to \(applied) but the journal starts at \(contents.baseSequence): the data file lost committed transactions (damaged or rolled-back meta page)")
                }
                try replay(contents.records.filter { $0.sequence > applied }, txn)
                return (applied, contents)
            }
            guard let (applied, contents) = outcome else { continue }
            let unapplied = contents.records.filter { $0.sequence > applied }
            if let tail = contents.tornTail {
                options.logger.notice("dropped a torn journal record (never acknowledged)", metadata: ["detail": "\(tail)"])
            }
            guard let writer else { return }
            try measureSpace(writer: writer)
            if unapplied.isEmpty {
                if contents.records.isEmpty && contents.tornTail == nil && contents.baseSequence == applied + 1 {
                    writer.journal = try Journal.openForAppend(directory: directory, contents: contents)
                } else {
                    writer.journal = try Journal.create(directory: directory, baseSequence: applied + 1)
                }
                return
            }
            writer.journal = try Journal.openForAppend(directory: directory, contents: contents)
            // openForAppend numbers from the file's base; skip the records LMDB already holds.
            try applyJournal(writer: writer)
            return
        }
    }

    /// Replays journal records into views, checking that revisions continue LMDB's.
    private func replay(_ records: [JournalRecord], _ txn: borrowing ReadTransaction) throws {
        var views: [DocumentID: DocumentView] = [:]
        var bytes = 0
        do {
            for record in records {
                for entry in record.entries {
                    switch entry {
                    case let .ops(document, ops):
                        var view = try views[document] ?? tables.readDocumentRecord(txn, document).map(DocumentView.init) ?? DocumentView(record: .empty)
                        guard ops.first?.revision == view.head + 1 else {
                            throw OpLogError.corruption(CorruptionLocation(area: "journal", document: document, revision: ops.first?.revision),
                                                        detail: "journal record \(record.sequence) continues from head \(view.head) with revision \(ops.first?.revision ?? 0)")
                        }
                        view.head += UInt64(ops.count)
                        view.lastServerTimeMilliseconds = max(view.lastServerTimeMilliseconds, ops.last?.serverTimeMilliseconds ?? 0)
                        view.pending.append(contentsOf: ops)
                        let size = ops.reduce(0) { $0 + $1.payload.count + $1.author.count + 20 }
                        view.pendingBytes += size
                        bytes += size
                        views[document] = view
                    case let .truncate(document, floor):
                        var view = try views[document] ?? tables.readDocumentRecord(txn, document).map(DocumentView.init) ?? DocumentView(record: .empty)
                        guard floor <= view.head + 1 else {
                            throw OpLogError.corruption(CorruptionLocation(area: "journal", document: document, revision: floor),
                                                        detail: "journal record \(record.sequence) truncates beyond head \(view.head)")
                        }
                        view.floor = max(view.floor, floor)
                        view.pendingBytes = retainedPendingBytes(view)
                        views[document] = view
                    }
                }
            }
        }
        state.withLock { state in
            state.documents = views
            state.journalBytes = bytes
        }
        writer?.dirtyDocuments = Set(views.keys)
    }

    func measureSpace(writer: WriterState) throws {
        let info = try tables.environment.info()
        writer.lmdbUsedBytes = (info.lastPageNumber + 1 - (try tables.environment.freePageCount())) * info.pageSizeBytes
    }
}
