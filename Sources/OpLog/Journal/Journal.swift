import OpLogStorage

/// The write-ahead journal in front of LMDB (FORMAT.md, "Journal").
///
/// Each group commit is one checksummed frame appended to `journal` and synced once; that sync is
/// the acknowledgement. Applying moves the journal's effects into LMDB in one large transaction and
/// then replaces the journal with an empty one whose base sequence follows the last applied record.
/// This is what makes an acknowledgement cost one small sequential write instead of an LMDB commit
/// (about ten 4 KiB pages), which is where OpLog's write amplification is won.
///
/// Thread safety: used only by the store's writer thread (and once at open).
final class Journal {
    static let fileName = "journal"
    private let directory: String
    private let file: File
    /// Sequence number of the first record in this file.
    private(set) var baseSequence: UInt64
    /// Sequence number the next appended record gets.
    private(set) var nextSequence: UInt64
    /// File offset where the next record goes (end of the last valid record).
    private(set) var endOffset: Int

    var path: String { directory + "/" + Self.fileName }
    /// Bytes of records in this file.
    var recordBytes: Int { endOffset - JournalCoding.fileHeaderSize }

    private init(directory: String, file: File, baseSequence: UInt64, nextSequence: UInt64, endOffset: Int) {
        self.directory = directory
        self.file = file
        self.baseSequence = baseSequence
        self.nextSequence = nextSequence
        self.endOffset = endOffset
    }

    /// What reading a journal found.
    struct Contents {
        var baseSequence: UInt64
        var records: [JournalRecord]
        /// Offset just past the last valid record.
        var endOffset: Int
        /// Why the scan stopped before the end of the file (a torn final write), if it did.
        var tornTail: String?
    }

    /// Reads every valid record of the journal in `directory`.
    ///
    /// A scan stops at the first frame that is incomplete or fails its checksum: that is the write a
    /// crash tore, never acknowledged. If a valid record with the next sequence number follows it,
    /// the damage is in the middle of acknowledged data and is reported as corruption instead.
    ///
    /// With `strict` false (the modes that do not sync every append), a damaged record also ends the
    /// journal: without a sync per record, the kernel may have written a later record and not an
    /// earlier one, and those modes promise only a prefix of the acknowledged appends.
    static func read(directory: String, strict: Bool = true) throws(OpLogError) -> Contents {
        let path = directory + "/" + fileName
        let bytes: [UInt8]
        do {
            let file = try File(path: path, writable: false, create: false)
            let size = try file.size()
            guard size <= Limits.journalFileBytesMax else {
                throw OpLogError.corruption(
                    CorruptionLocation(area: "journal"), detail: "journal of \(size) bytes exceeds any size OpLog writes")
            }
            bytes = try file.read(at: 0, count: size)
        } catch {
            throw OpLogError(mapping: error)
        }
        let header: (version: UInt32, baseSequence: UInt64)
        do { header = try JournalCoding.decodeFileHeader(bytes) } catch {
            throw .corruption(CorruptionLocation(area: "journal"), detail: error.description)
        }
        guard header.version <= JournalCoding.version else {
            throw .unsupportedFormatVersion(found: header.version, supported: JournalCoding.version)
        }
        let base = header.baseSequence
        var contents = Contents(baseSequence: base, records: [], endOffset: JournalCoding.fileHeaderSize, tornTail: nil)
        var offset = JournalCoding.fileHeaderSize
        while offset < bytes.count {
            let expected = base + UInt64(contents.records.count)
            switch JournalCoding.readFrame(bytes[offset...]) {
            case .record(let record, let frameLength):
                guard record.sequence == expected else {
                    throw .corruption(
                        CorruptionLocation(area: "journal"),
                        detail: "record at offset \(offset) has sequence \(record.sequence), expected \(expected)")
                }
                contents.records.append(record)
                offset += frameLength
                contents.endOffset = offset
            case .undecodable(let reason):
                throw .corruption(CorruptionLocation(area: "journal"), detail: "record \(expected) at offset \(offset): \(reason)")
            case .invalid(let reason, _):
                if bytes[offset...].allSatisfy({ $0 == 0 }) { return contents }
                if strict, let next = findFrame(in: bytes, after: offset, sequence: expected + 1) {
                    throw .corruption(
                        CorruptionLocation(area: "journal"),
                        detail:
                            "record \(expected) at offset \(offset) is damaged (\(reason)) and acknowledged record "
                            + "\(expected + 1) follows at offset \(next)"
                    )
                }
                contents.tornTail = "\(reason) at offset \(offset)"
                return contents
            }
        }
        return contents
    }

    /// Searches every offset after a bad frame for a valid frame with `sequence`. Only a torn final
    /// write may end the journal early; any later record means acknowledged data was damaged, even if
    /// the damage hit the bad frame's length field. Cheap: a sequence compare per offset, a full check
    /// only on a match.
    private static func findFrame(in bytes: [UInt8], after offset: Int, sequence: UInt64) -> Int? {
        var candidate = offset + 1
        while candidate + JournalCoding.frameHeaderSize <= bytes.count {
            var value: UInt64 = 0
            for index in 0..<8 { value |= UInt64(bytes[candidate + 8 + index]) << (8 * index) }
            if value == sequence, case .record(let record, _) = JournalCoding.readFrame(bytes[candidate...]), record.sequence == sequence {
                return candidate
            }
            candidate += 1
        }
        return nil
    }

    /// Creates an empty journal whose first record will be `baseSequence`, atomically replacing any
    /// existing one (write a temporary file, sync it, rename, sync the directory).
    static func create(directory: String, baseSequence: UInt64, mode: UInt32) throws(StorageError) -> Journal {
        let path = directory + "/" + fileName
        let temporary = path + ".new"
        try File.remove(temporary)
        let file = try File(path: temporary, writable: true, create: true, mode: mode)
        try file.write(JournalCoding.encodeFileHeader(baseSequence: baseSequence), at: 0)
        try file.synchronize()
        try File.replace(path, with: temporary, directory: directory)
        return Journal(
            directory: directory, file: file, baseSequence: baseSequence, nextSequence: baseSequence,
            endOffset: JournalCoding.fileHeaderSize)
    }

    /// Opens an existing journal for appending after its last valid record. Anything after that
    /// record (a torn final write) is cut off first so it cannot be mistaken for data later.
    static func openForAppend(directory: String, contents: Contents) throws(StorageError) -> Journal {
        let file = try File(path: directory + "/" + fileName, writable: true, create: false)
        if try file.size() != contents.endOffset {
            try file.truncate(to: contents.endOffset)
            try file.synchronize()
        }
        return Journal(
            directory: directory, file: file, baseSequence: contents.baseSequence,
            nextSequence: contents.baseSequence + UInt64(contents.records.count), endOffset: contents.endOffset)
    }

    /// Why an append failed, which decides whether the writer may go on appending.
    enum AppendFailure: Error {
        /// `pwrite` failed with ENOSPC and the file was cut back to the end of the last good record:
        /// the journal is as it was before the call, so a later append may simply try again.
        case noSpace(StorageError)
        /// Anything else, including any failed sync: what is on disk is unknown.
        case failed(StorageError)

        var storageError: StorageError {
            switch self {
            case .noSpace(let error), .failed(let error): return error
            }
        }
    }

    /// Appends a framed record; with `sync`, returns only after `fdatasync` has returned.
    ///
    /// After `.failed` the caller must stop appending: the record may be partly on disk, and after a
    /// failed sync the kernel may have dropped pages of earlier writes too (fsyncgate). After
    /// `.noSpace` it may go on: only the write ran out of space, and its partial frame was cut off
    /// (never synced, so a crash can at most leave a torn tail, which recovery drops).
    func append(_ frame: [UInt8], sync: Bool) throws(AppendFailure) {
        assert(frame.count >= JournalCoding.frameHeaderSize, "a journal frame shorter than its header")
        assert(
            frame.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 8, as: UInt64.self) } == nextSequence.littleEndian,
            "a journal record numbered other than the journal's next sequence \(nextSequence)")
        assert(endOffset >= JournalCoding.fileHeaderSize && nextSequence >= baseSequence, "journal position before its header or base")
        do throws(StorageError) {
            try file.write(frame, at: endOffset)
        } catch {
            guard error.isNoSpace else { throw .failed(error) }
            do throws(StorageError) { try file.truncate(to: endOffset) } catch { throw .failed(error) }
            throw .noSpace(error)
        }
        do throws(StorageError) {
            if sync { try file.synchronizeData() }
        } catch {
            throw .failed(error)
        }
        endOffset += frame.count
        nextSequence += 1
    }

    /// Forces everything written so far to disk (used by the non-durable modes at apply and close).
    func synchronize() throws(StorageError) { try file.synchronizeData() }

    func close() { file.close() }
}
