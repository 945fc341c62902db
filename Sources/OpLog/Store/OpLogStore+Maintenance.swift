/// Checking, measuring and copying a store. The scans and copies have `async` variants that run on
/// threads of OpLog's own; the synchronous forms block the calling thread for as long as they take.
extension OpLogStore {
    /// Checks every record's checksum and the store's invariants: op chunks decode and continue each
    /// other gap-free from the floor to the head, every document with a floor above 1 has its covering
    /// snapshot, snapshots lie at or below the head, and nothing is stored for an unknown document.
    /// Damage is reported in the result, never thrown; `warnings` name files other users can read.
    ///
    /// `progress` is called with the number of records checked so far, every few thousand records.
    /// - Throws: `closed`.
    public func verify(progress: (Int) -> Void = { _ in }) throws(OpLogError) -> VerificationReport {
        try checkOpen()
        return try maintenance.verify(progress: progress)
    }

    /// `verify()` off the cooperative pool.
    public func verify() async throws(OpLogError) -> VerificationReport {
        let maintenance = self.maintenance
        try checkOpen()
        return try await BlockingWork.shared.run { () throws(OpLogError) in try maintenance.verify(progress: { _ in }) }
    }

    /// Replays from each retained snapshot (or from the initial state when nothing was truncated)
    /// to the next snapshot's revision and compares the encoded state with that snapshot's bytes.
    /// Snapshots below the floor's cover have no ops to check them with and are skipped.
    /// - Returns: one problem per snapshot that diverges or cannot be rebuilt, naming its revision.
    /// - Throws: what the reads throw (`corruption`, `closed`).
    public func verifySnapshots<R: Reducer>(of document: DocumentID, with reducer: R) throws(OpLogError) -> [VerificationProblem] {
        try maintenance.verifySnapshots(of: document, with: reducer)
    }

    /// `verifySnapshots(of:with:)` off the cooperative pool.
    public func verifySnapshots<R: Reducer>(of document: DocumentID, with reducer: R) async throws(OpLogError) -> [VerificationProblem] {
        let maintenance = self.maintenance
        return try await BlockingWork.shared.run { () throws(OpLogError) in try maintenance.verifySnapshots(of: document, with: reducer) }
    }

    /// Store-wide figures: file sizes, map size, pages, documents.
    /// - Throws: `storage`; `closed`.
    public func statistics() throws(OpLogError) -> StoreStatistics {
        try checkOpen()
        return try maintenance.statistics()
    }

    /// Scans every record and sums what is stored, by kind (a full scan, in short transactions).
    /// - Throws: `corruption`; `closed`.
    public func spaceUsage() throws(OpLogError) -> SpaceUsage {
        try checkOpen()
        return try maintenance.spaceUsage()
    }

    /// `spaceUsage()` off the cooperative pool.
    public func spaceUsage() async throws(OpLogError) -> SpaceUsage {
        let maintenance = self.maintenance
        try checkOpen()
        return try await BlockingWork.shared.run { () throws(OpLogError) in try maintenance.spaceUsage() }
    }

    /// Writes a consistent copy of the store to `destination` (a new or empty directory) while
    /// writers keep running: LMDB's own copy (`mdb_env_copy2`, one read transaction), then every
    /// journal record LMDB's copy does not hold. The copy holds every op acknowledged before the call
    /// and opens as a store of its own. With `compact`, free pages are left out (LMDB's compacting
    /// copy). The copy's files get the store's permissions.
    /// - Throws: `invalidArgument` for a destination that is not empty; `storage`; `closed`.
    public func backup(to destination: String, compact: Bool = false) throws(OpLogError) -> BackupReport {
        try checkOpen()
        return try maintenance.backup(to: destination, compact: compact)
    }

    /// `backup(to:compact:)` off the cooperative pool.
    public func backup(to destination: String, compact: Bool = false) async throws(OpLogError) -> BackupReport {
        let maintenance = self.maintenance
        try checkOpen()
        return try await BlockingWork.shared.run { () throws(OpLogError) in try maintenance.backup(to: destination, compact: compact) }
    }

    /// Restores a backup: copies `source` (a directory written by `backup`) into `destination`
    /// (new or empty), then opens the copy to check it.
    /// - Throws: what opening `source` read-only and `backup` throw.
    public static func restore(from source: String, to destination: String) throws(OpLogError) -> BackupReport {
        var options = StoreOptions()
        options.readOnly = true
        let backupStore = try OpLogStore.open(directory: source, options: options)
        defer { backupStore.closeReadOnly() }
        return try backupStore.backup(to: destination)
    }

    /// `restore(from:to:)` off the cooperative pool.
    public static func restore(from source: String, to destination: String) async throws(OpLogError) -> BackupReport {
        try await BlockingWork.shared.run { () throws(OpLogError) in try restore(from: source, to: destination) }
    }

    /// Closes a read-only store synchronously.
    func closeReadOnly() {
        assert(writer == nil, "closeReadOnly on a writable store")
        if reader.markClosed() { context.tables.environment.close() }
        OpenStores.release(openKey)
    }
}
