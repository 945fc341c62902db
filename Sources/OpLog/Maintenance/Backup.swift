import Foundation
import OpLogStorage

/// What `backup` copied.
public struct BackupReport: Sendable {
    /// Bytes of the copied LMDB file and of the copied journal.
    public var dataFileBytes: Int
    /// Bytes of the copied journal.
    public var journalBytes: Int
    /// The journal sequence LMDB's copy holds everything up to, and the journal records copied after it.
    public var appliedSequence: UInt64
    /// Journal records copied after `appliedSequence`, and the ops they hold.
    public var journalRecords: Int
    /// Ops in the copied journal records.
    public var journalOps: Int
    /// The change-feed position the copy holds everything up to (its last journal sequence, with
    /// the store's lineage, which the copy keeps); nil for a store without changes. A copy used
    /// to seed a consumer or a follower resumes the feed after it (README, "Resynchronising").
    public var position: ChangePosition?
}

extension Maintenance {
    /// Writes a consistent copy of the store to `destination` (a new or empty directory) while
    /// writers keep running: LMDB's own copy (`mdb_env_copy2`, one read transaction), then every
    /// journal record LMDB's copy does not hold. The copy holds every op acknowledged before the call
    /// and opens as a store of its own. With `compact`, free pages are left out (LMDB's compacting copy).
    func backup(to destination: String, compact: Bool) throws(OpLogError) -> BackupReport {
        do {
            if File.exists(destination) {
                let names = try FileManager.default.contentsOfDirectory(atPath: destination)
                guard names.isEmpty else { throw OpLogError.invalidArgument("backup destination '\(destination)' is not empty") }
            } else {
                try File.createDirectory(destination, mode: options.directoryPermissions)
            }
            // An apply between LMDB's copy and reading the journal can replace the journal records
            // the copy lacks; then the copy is made again (applies are megabytes apart).
            for _ in 0..<Limits.backupCopyAttemptsMax {
                try File.remove(destination + "/" + StoreDirectory.dataFileName)
                try tables.environment.copy(to: destination, compact: compact)
                // mdb_env_copy2 creates the file 0666 less the umask: make it as private as the store's.
                try File.setPermissions(destination + "/" + StoreDirectory.dataFileName, options.filePermissions)
                let (applied, lineage) = try Self.appliedSequence(ofCopyIn: destination)
                let contents = try Journal.read(directory: directory, strict: options.durability == .full)
                guard contents.baseSequence <= applied + 1 else { continue }
                let records = contents.records.filter { $0.sequence > applied }
                let journal = try Journal.create(directory: destination, baseSequence: applied + 1, mode: options.filePermissions)
                for record in records {
                    try journal.append(
                        try JournalCoding.encodeFrame(record, compressionLevel: options.journalCompressionLevel).bytes, sync: false)
                }
                try journal.synchronize()
                journal.close()
                let data = try File(path: destination + "/" + StoreDirectory.dataFileName, writable: true, create: false)
                try data.synchronize()
                data.close()
                try File.synchronizeDirectory(destination)
                let last = records.last?.sequence ?? applied
                return BackupReport(
                    dataFileBytes: File.sizeOf(destination + "/" + StoreDirectory.dataFileName) ?? 0,
                    journalBytes: Journal.fileBytes(in: destination),
                    appliedSequence: applied, journalRecords: records.count,
                    journalOps: records.reduce(0) { total, record in
                        total
                            + record.entries.reduce(0) {
                                if case .ops(_, let ops) = $1 { return $0 + ops.count }
                                return $0
                            }
                    },
                    position: lineage.flatMap { last >= 1 ? ChangePosition(unchecked: $0, sequence: last) : nil })
            }
            throw OpLogError.storage(
                StorageFailure(
                    call: "backup", code: nil,
                    description: "backup: the journal was replaced during \(Limits.backupCopyAttemptsMax) copies in a row; try again"))
        } catch {
            throw OpLogError(mapping: error)
        }
    }

    private static func appliedSequence(ofCopyIn directory: String) throws -> (UInt64, StoreLineage?) {
        var options = StoreOptions()
        options.readOnly = true
        let tables = try StoreTables.open(directory: directory, options: options, mapSizeBytes: 1 << 20)
        defer { tables.environment.close() }
        return try tables.read { txn in (try tables.readAppliedSequence(txn), try tables.readLineage(txn)) }
    }
}
