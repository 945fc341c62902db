import Foundation
import OpLogStorage
import Synchronization

/// A store's directory: what it may hold, creating it, taking the writer lock, and the format
/// record that says which format wrote it.
enum StoreDirectory {
    static let dataFileName = "data.mdb"
    static let lockFileName = "oplog.lock"
    /// Every file a store directory may hold.
    static let fileNames = ["data.mdb", "lock.mdb", "oplog.lock"] + Journal.fileNames

    /// Creates a missing directory (writable opens); throws if it holds anything but a store.
    static func inspect(_ directory: String, options: StoreOptions) throws(OpLogError) {
        if !File.exists(directory) {
            if options.readOnly { throw .notAStore(path: directory, detail: "the directory does not exist") }
            do { try File.createDirectory(directory, mode: options.directoryPermissions) } catch { throw OpLogError(error) }
            return
        }
        guard File.isDirectory(directory) else { throw .notAStore(path: directory, detail: "not a directory") }
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        if names.contains(dataFileName) { return }
        if Journal.exists(in: directory) {
            throw .corruption(
                CorruptionLocation(area: "lmdb"), detail: "\(directory) has a journal but no data.mdb: the data file was removed")
        }
        let foreign = names.filter { !fileNames.contains($0) }.sorted()
        if let example = foreign.first {
            throw .notAStore(path: directory, detail: "it holds \(foreign.count) other file(s), e.g. '\(example)', and no data.mdb")
        }
        if options.readOnly { throw .notAStore(path: directory, detail: "no data.mdb") }
    }

    /// Takes the writer lock, retrying briefly (see `Limits.writerLockAttempts`).
    static func lockForWriting(_ directory: String, options: StoreOptions) throws(OpLogError) -> File {
        do {
            let file = try File(path: directory + "/" + lockFileName, writable: true, create: true, mode: options.filePermissions)
            for attempt in 1...Limits.writerLockAttempts {
                if try file.tryLockExclusive() { return file }
                if attempt < Limits.writerLockAttempts { usleep(Limits.writerLockRetryMicroseconds) }
            }
            file.close()
        } catch { throw OpLogError(error) }
        throw .lockedByAnotherProcess(path: directory)
    }

    /// Checks the format record. A writable open initialises a store with no format record and no
    /// documents: new, or left by a crash while it was being created.
    static func checkFormat(_ tables: StoreTables, directory: String, options: StoreOptions) throws(OpLogError) {
        var format = try tables.read { txn in try tables.readFormat(txn) }
        if format == nil && !options.readOnly {
            let empty = try tables.read { txn in try txn.entryCount(tables.documents) == 0 && txn.entryCount(tables.ops) == 0 }
            if empty {
                try initialize(tables, directory: directory, options: options)
                format = try tables.read { txn in try tables.readFormat(txn) }
            }
        }
        guard let format else {
            // OpLog's named databases exist (StoreTables.open checked), so data in any of them
            // means the format record's key or value was damaged, not that this is no store.
            let holdsData = try tables.read { txn in
                try [tables.meta, tables.documents, tables.ops, tables.snapshots, tables.dedupe, tables.epochs].compactMap { $0 }
                    .contains { try txn.entryCount($0) > 0 }
            }
            if holdsData {
                throw .corruption(
                    CorruptionLocation(area: "meta"), detail: "the store holds data but its format record is missing (damaged key?)")
            }
            throw .notAStore(path: directory, detail: "data.mdb has no OpLog format record")
        }
        guard format.version >= 1 else { throw .notAStore(path: directory, detail: "format version 0") }
        guard format.version <= formatVersion else {
            throw .unsupportedFormatVersion(found: format.version, supported: formatVersion)
        }
    }

    /// A new store: the journal first, then the format record, so that a crash in between leaves
    /// a directory that the next open initialises again.
    private static func initialize(_ tables: StoreTables, directory: String, options: StoreOptions) throws(OpLogError) {
        do { try Journal.create(directory: directory, baseSequence: 1, mode: options.filePermissions).close() } catch {
            throw OpLogError(error)
        }
        let format = FormatRecord(version: formatVersion, createdAtMilliseconds: options.clock.now)
        try tables.write { txn in
            try txn.put(
                tables.meta, key: StoreTables.formatKey,
                value: RecordFrame.encode(kind: .format, codec: .raw, key: StoreTables.formatKey, stored: format.encode(), rawLength: 20))
            try txn.put(
                tables.meta, key: StoreTables.appliedKey,
                value: RecordFrame.encode(
                    kind: .appliedSequence, codec: .raw, key: StoreTables.appliedKey,
                    stored: AppliedSequenceRecord.encode(0), rawLength: 8))
            try tables.writeLineage(txn, StoreLineage.random())
        }
    }

    static func roundUpToMiB(_ bytes: Int) -> Int { (bytes + (1 << 20) - 1) / (1 << 20) * (1 << 20) }
}

/// The stores this process has open, by directory: LMDB forbids opening one environment twice in a
/// process ("not even from a plain open() call"), so a second open is refused with a clear error.
///
/// Each claimed directory is held open (a descriptor) until its store closes. Without that, a
/// store left open after its directory was removed freed the directory's inode, a new directory
/// could get the same device and inode, and opening it was refused as "already open" (a test run
/// hit it once).
enum OpenStores {
    private static let open = Mutex<[String: Int32]>([:])

    /// The directory's identity: its device and inode, so two spellings of one path match.
    static func key(_ directory: String) -> String {
        var info = stat()
        guard stat(directory, &info) == 0 else { return directory }
        return "\(info.st_dev):\(info.st_ino)"
    }

    static func claim(_ key: String, path: String) throws(OpLogError) {
        let claimed = open.withLock { open -> Bool in
            guard open[key] == nil else { return false }
            // -1 when the directory cannot be opened: the open that follows reports why.
            open[key] = Glibc.open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            return true
        }
        if !claimed { throw .alreadyOpenInThisProcess(path: path) }
    }

    static func release(_ key: String) {
        if let descriptor = open.withLock({ $0.removeValue(forKey: key) }), descriptor >= 0 { _ = Glibc.close(descriptor) }
    }
}
