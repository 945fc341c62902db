import OpLogStorage

/// What `backup` copied.
public struct BackupReport: Sendable {
    /// Bytes of the copied LMDB file and of the copied journal.
    public var dataFileBytes: Int
    public var journalBytes: Int
    /// The journal sequence LMDB's copy holds everything up to, and the journal records copied after it.
    public var appliedSequence: UInt64
    public var journalRecords: Int
    public var journalOps: Int
}

extension OpLogStore {
    /// Writes a consistent copy of the store to `destination` (a new or empty directory) while
    /// writers keep running: LMDB's own copy (`mdb_env_copy2`, one read transaction), then every
    /// journal record LMDB's copy does not hold. The copy holds every op acknowledged before the call
    /// and opens as a store of its own. With `compact`, free pages are left out (LMDB's compacting copy).
    public func backup(to destination: String, compact: Bool = false) throws(OpLogError) -> BackupReport {
        do {
            if File.exists(destination) {
                let names = try FileManagerShim.contents(of: destination)
                guard names.isEmpty else { throw OpLogError.invalidArgument("backup destination '\(destination)' is not empty") }
            } else {
                try File.createDirectory(destination)
            }
            // An apply between LMDB's copy and reading the journal can replace the journal records
            // the copy lacks; then the copy is made again (applies are megabytes apart).
            for _ in 0..<5 {
                try File.remove(destination + "/" + Self.dataFileName)
                try tables.environment.copy(to: destination, compact: compact)
                let applied = try Self.appliedSequence(ofCopyIn: destination)
                let contents = try Journal.read(directory: directory, strict: options.durability == .full)
                guard contents.baseSequence <= applied + 1 else { continue }
                let records = contents.records.filter { $0.sequence > applied }
                let journal = try Journal.create(directory: destination, baseSequence: applied + 1)
                for record in records {
                    try journal.append(try JournalCoding.encodeFrame(record, compressionLevel: options.journalCompressionLevel), sync: false)
                }
                try journal.synchronize()
                journal.close()
                let data = try File(path: destination + "/" + Self.dataFileName, writable: true, create: false)
                try data.synchronize()
                data.close()
                try File.synchronizeDirectory(destination)
                return BackupReport(
                    dataFileBytes: File.sizeOf(destination + "/" + Self.dataFileName) ?? 0,
                    journalBytes: File.sizeOf(destination + "/" + Journal.fileName) ?? 0,
                    appliedSequence: applied, journalRecords: records.count,
                    journalOps: records.reduce(0) { total, record in
                        total + record.entries.reduce(0) { if case let .ops(_, ops) = $1 { return $0 + ops.count }; return $0 }
                    })
            }
            throw OpLogError.storage(StorageError(.system(11), operation: "backup: the journal was replaced during 5 copies in a row"))
        } catch let error as OpLogError {
            throw error
        } catch {
            throw OpLogError.wrap(error)
        }
    }

    private static func appliedSequence(ofCopyIn directory: String) throws -> UInt64 {
        var options = StoreOptions()
        options.readOnly = true
        let tables = try StoreTables.open(directory: directory, options: options, mapSizeBytes: 1 << 20)
        defer { tables.environment.close() }
        return try tables.environment.read { txn in try tables.readAppliedSequence(txn) }
    }

    /// Restores a backup: copies `source` (a directory written by `backup`) into `destination`
    /// (new or empty), then opens the copy to check it.
    public static func restore(from source: String, to destination: String) throws(OpLogError) -> BackupReport {
        var options = StoreOptions()
        options.readOnly = true
        let backupStore = try OpLogStore.open(directory: source, options: options)
        defer { backupStore.closeReadOnly() }
        return try backupStore.backup(to: destination)
    }

    /// Closes a read-only store synchronously.
    func closeReadOnly() {
        let wasOpen = state.withLock { state in
            defer { state.isClosed = true }
            return !state.isClosed
        }
        if wasOpen {
            subscriptions.closeAll()
            tables.environment.close()
        }
    }
}

import Foundation

enum FileManagerShim {
    static func contents(of directory: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: directory)
    }
}
