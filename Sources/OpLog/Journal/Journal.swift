import OpLogStorage

/// The write-ahead journal in front of LMDB (FORMAT.md, "Journal").
///
/// Each group commit is one checksummed frame written to the journal and synced once; that sync is
/// the acknowledgement. The journal is two slot files, `journal.0` and `journal.1`, used in turn:
/// frames go to the *active* slot; when it holds `journalApplyBytes`, it is *sealed*, the writer
/// goes on in the other slot from its start, and the sealed slot is applied to LMDB meanwhile. A
/// slot is written from its start again only once everything in it is in LMDB.
///
/// Slot files are never truncated or replaced in normal operation: the bytes a frame overwrites
/// were written before (by an earlier frame, or as zeros when the slot grew, in steps of
/// `Limits.journalFillStepBytes`), so the acknowledgement's `fdatasync` has no file size or block
/// allocation to record, only the data page. That made a sync about a third cheaper on the disks
/// measured (FORMAT.md, "Why slots"). Each frame is followed by a 24-byte zero *end marker*,
/// overwritten by the next frame, so a scan tells the end of the current run from the stale frames
/// of the slot's previous use (which have lower sequence numbers) and from a torn write.
///
/// Version 1 stores have one file, `journal`, replaced after every apply; a writable open
/// upgrades them (`StoreUpgrade` in `JournalRecovery`), and every reader still reads them.
///
/// Thread safety: used only by the holder of the writer's turn (and once at open).
package final class Journal {
    /// The version 1 journal.
    package static let legacyFileName = "journal"
    /// The version 2 slot files, by slot index.
    package static let slotFileNames = ["journal.0", "journal.1"]
    /// Every name the journal uses in a store directory, temporary files included.
    package static let fileNames = ([legacyFileName] + slotFileNames).flatMap { [$0, $0 + temporarySuffix] }
    package static let temporarySuffix = ".new"

    /// Whether `directory` holds a journal of either version.
    package static func exists(in directory: String) -> Bool {
        ([legacyFileName] + slotFileNames).contains { File.exists(directory + "/" + $0) }
    }

    /// Bytes of the journal files in `directory` (slots at their full, preallocated size).
    package static func fileBytes(in directory: String) -> Int {
        ([legacyFileName] + slotFileNames).reduce(0) { $0 + (File.sizeOf(directory + "/" + $1) ?? 0) }
    }

    /// One slot file as the writer holds it.
    private final class Slot {
        let index: Int
        let file: File
        /// The header's base: no frame in the slot has a lower sequence.
        let baseSequence: UInt64
        /// Where the next frame goes: the end of the slot's current run.
        var endOffset: Int
        /// Bytes of the file written before (frames, markers, fill): writes below it overwrite.
        var writtenBytes: Int
        /// The current run's first and last sequence; nil while it is empty.
        var firstSequence: UInt64?
        var lastSequence: UInt64?

        init(index: Int, file: File, baseSequence: UInt64, endOffset: Int, writtenBytes: Int) {
            self.index = index
            self.file = file
            self.baseSequence = baseSequence
            self.endOffset = endOffset
            self.writtenBytes = writtenBytes
        }

        var recordBytes: Int { endOffset - JournalCoding.fileHeaderSize }
    }

    private let directory: String
    private let slots: [Slot]
    /// The slot frames go to.
    private var active: Int
    /// Sequence number the next appended record gets.
    private(set) var nextSequence: UInt64
    /// The highest sequence LMDB holds (told by the writer after each apply): a slot is recycled
    /// only when its run is at or below it.
    private var appliedSequence: UInt64
    /// Zero bytes written to grow slots since open (they count in write amplification).
    private(set) var fillBytesWritten = 0

    private init(directory: String, slots: [Slot], active: Int, nextSequence: UInt64, appliedSequence: UInt64) {
        assert(slots.count == 2 && slots.indices.allSatisfy { slots[$0].index == $0 }, "a journal without its two slots")
        self.directory = directory
        self.slots = slots
        self.active = active
        self.nextSequence = nextSequence
        self.appliedSequence = appliedSequence
    }

    /// Bytes of records in the active slot (the apply trigger).
    var activeRecordBytes: Int { slots[active].recordBytes }
    /// Whether the active slot holds records.
    var activeHoldsRecords: Bool { slots[active].firstSequence != nil }

    // MARK: - Reading

    /// How a slot's current run ended.
    package enum RunEnd: Equatable, Sendable {
        /// At an end marker or zero fill, or at a stale frame of the slot's previous use.
        case clean
        /// At the end of the file.
        case endOfFile
        /// At a frame that is incomplete or fails its checksum: a write a crash tore.
        case torn(reason: String)
    }

    /// What scanning one slot file (or the version 1 journal) found.
    package struct SlotScan: Sendable {
        package var index: Int
        package var header: JournalCoding.FileHeader
        package var records: [JournalRecord]
        /// Offset just past the run's last record.
        package var endOffset: Int
        package var end: RunEnd
        package var fileBytes: Int
    }

    /// What reading a journal found.
    package struct Contents: Sendable {
        /// The journal format version found (1: the single-file journal a writable open upgrades).
        package var version: UInt32
        /// The lowest sequence the journal vouches for: its first record's, or with no records the
        /// slots' base. LMDB must hold everything below it (the commit watermark, FORMAT.md).
        package var baseSequence: UInt64
        /// The journal's records, consecutive, oldest first.
        package var records: [JournalRecord]
        /// Why the scan stopped before the end of a slot's run (a torn final write), if it did.
        package var tornTail: String?
        /// The slots as scanned (one entry for version 1).
        package var slots: [SlotScan]
    }

    /// Reads every valid record of the journal in `directory`: the slot files, or a version 1 store's
    /// `journal` when that file exists (it is removed only after the slots that replace it are durable).
    ///
    /// A run stops at an end marker, at a stale frame (a lower sequence: the slot's previous use),
    /// or at the first frame that is incomplete or fails its checksum: that is the write a crash tore,
    /// never acknowledged. In the `full` mode (`strict`), a valid frame anywhere after a run with a
    /// sequence above every run's is acknowledged data behind damage, and is reported as corruption.
    ///
    /// With `strict` false (the modes that do not sync every append), that search is skipped: without
    /// a sync per record, the kernel may have written a later record and not an earlier one, and those
    /// modes promise only a prefix of the acknowledged appends.
    package static func read(directory: String, strict: Bool = true) throws(OpLogError) -> Contents {
        let legacyPath = directory + "/" + legacyFileName
        if File.exists(legacyPath) {
            let bytes = try readAll(legacyPath)
            let scan = try scan(bytes, index: 0, legacy: true)
            if strict { try searchBehind([scan], legacy: true, bytes: [bytes]) }
            return Contents(
                version: JournalCoding.legacyVersion, baseSequence: scan.records.first?.sequence ?? scan.header.baseSequence,
                records: scan.records, tornTail: scan.end.tornReason.map { "\($0) at offset \(scan.endOffset)" }, slots: [scan])
        }
        var scans: [SlotScan] = []
        var files: [[UInt8]] = []
        for (index, name) in slotFileNames.enumerated() {
            let path = directory + "/" + name
            guard File.exists(path) else {
                throw .corruption(
                    CorruptionLocation(area: "journal"), detail: "journal slot \(name) is missing; acknowledged ops may be lost")
            }
            let bytes = try readAll(path)
            scans.append(try scan(bytes, index: index, legacy: false))
            files.append(bytes)
        }
        let runs = scans.filter { !$0.records.isEmpty }.sorted { $0.records[0].sequence < $1.records[0].sequence }
        var records = runs.last?.records ?? []
        if runs.count == 2 {
            let older = runs[0].records
            let newer = runs[1].records
            guard older.last!.sequence < newer[0].sequence else {
                throw .corruption(
                    CorruptionLocation(area: "journal"),
                    detail:
                        "journal slots overlap: records \(older[0].sequence)...\(older.last!.sequence) and "
                        + "\(newer[0].sequence)...\(newer.last!.sequence)")
            }
            // A run that does not lead into the newer one is from before it: LMDB holds it all,
            // which the watermark check (`baseSequence`) confirms.
            if older.last!.sequence + 1 == newer[0].sequence { records = older + newer }
        }
        if strict { try searchBehind(scans, legacy: false, bytes: files) }
        let torn = scans.compactMap { scan in
            scan.end.tornReason.map { "\($0) at offset \(scan.endOffset) of \(slotFileNames[scan.index])" }
        }
        return Contents(
            version: JournalCoding.version,
            baseSequence: records.first?.sequence ?? scans.map(\.header.baseSequence).max()!,
            records: records, tornTail: torn.isEmpty ? nil : torn.joined(separator: "; "), slots: scans)
    }

    private static func readAll(_ path: String) throws(OpLogError) -> [UInt8] {
        do {
            let file = try File(path: path, writable: false, create: false)
            defer { file.close() }
            let size = try file.size()
            guard size <= Limits.journalFileBytesMax else {
                throw OpLogError.corruption(
                    CorruptionLocation(area: "journal"), detail: "journal file of \(size) bytes exceeds any size OpLog writes")
            }
            return try file.read(at: 0, count: size)
        } catch {
            throw OpLogError(mapping: error)
        }
    }

    /// Reads the run of consecutive frames at the start of one file.
    private static func scan(_ bytes: [UInt8], index: Int, legacy: Bool) throws(OpLogError) -> SlotScan {
        let name = legacy ? legacyFileName : slotFileNames[index]
        let header: JournalCoding.FileHeader
        do { header = try JournalCoding.decodeFileHeader(bytes) } catch {
            throw .corruption(CorruptionLocation(area: "journal"), detail: "\(name): \(error.description)")
        }
        guard header.version <= JournalCoding.version else {
            throw .unsupportedFormatVersion(found: header.version, supported: JournalCoding.version)
        }
        let expectedVersion = legacy ? JournalCoding.legacyVersion : JournalCoding.version
        guard header.version == expectedVersion, legacy || header.slot == UInt32(index) else {
            throw .corruption(
                CorruptionLocation(area: "journal"), detail: "\(name) has a version \(header.version) header for slot \(header.slot)")
        }
        var result = SlotScan(
            index: index, header: header, records: [], endOffset: JournalCoding.fileHeaderSize, end: .endOfFile, fileBytes: bytes.count)
        var offset = JournalCoding.fileHeaderSize
        while offset < bytes.count {
            let expected = result.records.last.map { $0.sequence + 1 }
            // An end marker (or zero fill): the run ends here. A version 1 journal has no markers;
            // its rule is "every byte to the end is zero" (checked below, at an invalid frame).
            if !legacy && isEndMarker(bytes, at: offset) {
                result.end = .clean
                return result
            }
            switch JournalCoding.readFrame(bytes[offset...]) {
            case .record(let record, let frameLength):
                // Sequences count group commits: one this large is damage, and the arithmetic on
                // it below (the next expected, the strict search's range) must not overflow.
                guard record.sequence < Self.sequenceBound, header.baseSequence < Self.sequenceBound else {
                    throw .corruption(
                        CorruptionLocation(area: "journal"), detail: "\(name): record at offset \(offset) has sequence \(record.sequence)")
                }
                if let expected, record.sequence < expected, !legacy, record.sequence < result.records[0].sequence {
                    // A frame of the slot's previous use: the current run ended before it.
                    result.end = .clean
                    return result
                }
                let wanted = expected ?? (legacy ? header.baseSequence : max(record.sequence, header.baseSequence))
                guard record.sequence == wanted else {
                    throw .corruption(
                        CorruptionLocation(area: "journal"),
                        detail: "\(name): record at offset \(offset) has sequence \(record.sequence), expected \(wanted)")
                }
                result.records.append(record)
                offset += frameLength
                result.endOffset = offset
            case .undecodable(let reason):
                throw .corruption(CorruptionLocation(area: "journal"), detail: "\(name): record at offset \(offset): \(reason)")
            case .invalid(let reason, _):
                result.end = legacy && bytes[offset...].allSatisfy({ $0 == 0 }) ? .clean : .torn(reason: reason)
                return result
            }
        }
        return result
    }

    /// Above any sequence a journal reaches (2⁶² group commits); keeps sequence arithmetic exact.
    private static let sequenceBound: UInt64 = 1 << 62

    /// Whether a full frame header of zeros starts at `offset` (or only zeros are left).
    private static func isEndMarker(_ bytes: [UInt8], at offset: Int) -> Bool {
        let end = min(bytes.count, offset + JournalCoding.frameHeaderSize)
        return bytes[offset..<end].allSatisfy { $0 == 0 }
    }

    /// The `full` mode's check behind every run: acknowledged records are synced one by one, so a
    /// valid frame after a run, numbered above everything the runs hold, means damage hid the
    /// records before it. Only a torn final write may end the journal early, even when the damage
    /// hit a length field. Cheap: a sequence compare per offset, a full check only on a match.
    private static func searchBehind(_ scans: [SlotScan], legacy: Bool, bytes files: [[UInt8]]) throws(OpLogError) {
        let bases = scans.map { min($0.header.baseSequence, sequenceBound) }
        let highest = scans.flatMap(\.records).map(\.sequence).max() ?? (bases.max()! - 1)
        for (scan, bytes) in zip(scans, files) {
            // A version 1 journal that ends cleanly is zero to its end: nothing can follow. Its rule
            // looks for the one record after the damaged one (FORMAT.md, version 1 scan).
            if legacy && scan.end.tornReason == nil { continue }
            let name = legacy ? legacyFileName : slotFileNames[scan.index]
            let lowest = legacy ? highest + 2 : highest + 1
            let limit = legacy ? 0 : UInt64(bytes.count / JournalCoding.frameHeaderSize)
            var candidate = scan.endOffset + 1
            while candidate + JournalCoding.frameHeaderSize <= bytes.count {
                let sequence = bytes.withUnsafeBytes {
                    UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: candidate + 8, as: UInt64.self))
                }
                if sequence >= lowest, sequence - lowest <= limit,
                    case .record(let record, _) = JournalCoding.readFrame(bytes[candidate...]),
                    record.sequence == sequence
                {
                    throw .corruption(
                        CorruptionLocation(area: "journal"),
                        detail:
                            "\(name): the record at offset \(scan.endOffset) is damaged (\(scan.end.tornReason ?? "end marker")) "
                            + "and acknowledged record \(sequence) follows at offset \(candidate)")
                }
                candidate += 1
            }
        }
    }

    // MARK: - Creating and opening

    /// Creates both slots empty, with `baseSequence` as their base, each atomically replacing any
    /// existing one (write a temporary file, sync it, rename, sync the directory). Used for a new
    /// store, a backup, the upgrade, and the reset after a document deletion.
    package static func create(directory: String, baseSequence: UInt64, mode: UInt32) throws(StorageError) -> Journal {
        var slots: [Slot] = []
        do throws(StorageError) {
            for (index, name) in slotFileNames.enumerated() {
                let path = directory + "/" + name
                let temporary = path + temporarySuffix
                try File.remove(temporary)
                let file = try File(path: temporary, writable: true, create: true, mode: mode)
                slots.append(
                    Slot(index: index, file: file, baseSequence: baseSequence, endOffset: JournalCoding.fileHeaderSize, writtenBytes: 0))
                let header = JournalCoding.encodeFileHeader(baseSequence: baseSequence, slot: UInt32(index))
                try file.write(header, followedByZeros: JournalCoding.frameHeaderSize, at: 0)
                slots[index].writtenBytes = header.count + JournalCoding.frameHeaderSize
                try file.synchronize()
                try File.replace(path, with: temporary, directory: directory)
            }
        } catch {
            slots.forEach { $0.file.close() }
            throw error
        }
        return Journal(directory: directory, slots: slots, active: 0, nextSequence: baseSequence, appliedSequence: baseSequence - 1)
    }

    /// Removes a version 1 store's `journal` (and its temporary file), the upgrade's last step.
    static func removeLegacy(directory: String) throws(StorageError) {
        for name in [legacyFileName, legacyFileName + temporarySuffix] { try File.remove(directory + "/" + name) }
        try File.synchronizeDirectory(directory)
    }

    /// Opens the slots for appending once LMDB holds every record (`applied`): frames go to the
    /// slot with the older run, from its start; the newer run stays as the watermark's witness. A
    /// torn write after the newer run gets an end marker, so later opens find a clean end.
    static func openForAppend(directory: String, contents: Contents, applied: UInt64) throws(StorageError) -> Journal {
        assert(contents.version == JournalCoding.version && contents.slots.count == 2, "opening a version 1 journal for appending")
        assert(contents.records.allSatisfy { $0.sequence <= applied }, "opening the journal for appending before it was applied")
        var slots: [Slot] = []
        do throws(StorageError) {
            for scan in contents.slots {
                let file = try File(path: directory + "/" + slotFileNames[scan.index], writable: true, create: false)
                let slot = Slot(
                    index: scan.index, file: file, baseSequence: scan.header.baseSequence, endOffset: scan.endOffset,
                    writtenBytes: scan.fileBytes)
                slot.firstSequence = scan.records.first?.sequence
                slot.lastSequence = scan.records.last?.sequence
                slots.append(slot)
            }
        } catch {
            slots.forEach { $0.file.close() }
            throw error
        }
        let newer = contents.slots.max { ($0.records.first?.sequence ?? 0) < ($1.records.first?.sequence ?? 0) }!
        let active = 1 - newer.index
        do throws(StorageError) {
            if case .torn = newer.end {
                let slot = slots[newer.index]
                try slot.file.write([], followedByZeros: JournalCoding.frameHeaderSize, at: slot.endOffset)
                slot.writtenBytes = max(slot.writtenBytes, slot.endOffset + JournalCoding.frameHeaderSize)
                try slot.file.synchronizeData()
            }
        } catch {
            slots.forEach { $0.file.close() }
            throw error
        }
        let next = max(applied, contents.slots.map(\.header.baseSequence).max()! - 1) + 1
        let journal = Journal(directory: directory, slots: slots, active: newer.index, nextSequence: next, appliedSequence: applied)
        journal.recycle(active)
        return journal
    }

    /// Makes `index` the active slot, its run empty: frames overwrite it from the start.
    private func recycle(_ index: Int) {
        let slot = slots[index]
        assert((slot.lastSequence ?? 0) <= appliedSequence, "recycling a slot whose records LMDB lacks")
        slot.endOffset = JournalCoding.fileHeaderSize
        slot.firstSequence = nil
        slot.lastSequence = nil
        active = index
    }

    // MARK: - Writing

    /// Why an append failed, which decides whether the writer may go on appending.
    enum AppendFailure: Error {
        /// A write failed with ENOSPC, and the slot was restored to end at its last good record
        /// (growth cut off, end marker rewritten): a later append may simply try again.
        case noSpace(StorageError)
        /// Anything else, including any failed sync: what is on disk is unknown.
        case failed(StorageError)

        var storageError: StorageError {
            switch self {
            case .noSpace(let error), .failed(let error): return error
            }
        }
    }

    /// Appends a framed record and its end marker to the active slot; with `sync`, returns only
    /// after `fdatasync` has returned.
    ///
    /// A frame that reaches past the written part of the slot first grows it with zeros, one
    /// `Limits.journalFillStepBytes` step at a time (that sync then records the new size, once per
    /// step). After `.failed` the caller must stop appending: the record may be partly on disk, and
    /// after a failed sync the kernel may have dropped pages of earlier writes too (fsyncgate).
    func append(_ frame: [UInt8], sync: Bool) throws(AppendFailure) {
        let slot = slots[active]
        assert(frame.count >= JournalCoding.frameHeaderSize, "a journal frame shorter than its header")
        assert(
            frame.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 8, as: UInt64.self) } == nextSequence.littleEndian,
            "a journal record numbered other than the journal's next sequence \(nextSequence)")
        assert(nextSequence >= slot.baseSequence, "a journal record below its slot's base")
        assert(slot.endOffset >= JournalCoding.fileHeaderSize && slot.endOffset <= slot.writtenBytes, "journal slot position outside it")
        let end = slot.endOffset + frame.count + JournalCoding.frameHeaderSize
        if end > slot.writtenBytes {
            let step = Limits.journalFillStepBytes
            let grown = (end + step - 1) / step * step
            do throws(StorageError) {
                try Self.writeZeros(slot.file, from: slot.writtenBytes, to: grown)
            } catch {
                guard error.isNoSpace else { throw .failed(error) }
                do throws(StorageError) { try slot.file.truncate(to: slot.writtenBytes) } catch { throw .failed(error) }
                throw .noSpace(error)
            }
            fillBytesWritten += grown - slot.writtenBytes
            slot.writtenBytes = grown
        }
        do throws(StorageError) {
            try slot.file.write(frame, followedByZeros: JournalCoding.frameHeaderSize, at: slot.endOffset)
        } catch {
            guard error.isNoSpace else { throw .failed(error) }
            // Only a copy-on-write file system runs out of space overwriting: put the marker back.
            do throws(StorageError) {
                try slot.file.write([], followedByZeros: JournalCoding.frameHeaderSize, at: slot.endOffset)
            } catch { throw .failed(error) }
            throw .noSpace(error)
        }
        do throws(StorageError) {
            if sync { try slot.file.synchronizeData() }
        } catch {
            throw .failed(error)
        }
        slot.endOffset += frame.count
        slot.firstSequence = slot.firstSequence ?? nextSequence
        slot.lastSequence = nextSequence
        nextSequence += 1
    }

    /// Grows a slot with zeros one 4 KiB page per `pwrite`. Linux may cache a file written in
    /// large writes as large folios, and then counts (and may write back) a whole folio when a
    /// frame dirties one byte of it: measured here, a 100-byte overwrite and sync of a file
    /// zero-filled in one 1 MiB write counted 1 MiB written per sync, of one filled page by page
    /// 4 KiB, as much as an append to a growing file.
    private static func writeZeros(_ file: File, from start: Int, to end: Int) throws(StorageError) {
        var offset = start
        while offset < end {
            let count = min(zeroChunk.count - offset % zeroChunk.count, end - offset)
            try file.write(count == zeroChunk.count ? zeroChunk : [UInt8](repeating: 0, count: count), at: offset)
            offset += count
        }
    }

    private static let zeroChunk = [UInt8](repeating: 0, count: 4_096)

    /// Ends the active slot's run and makes the other slot active; returns the sealed run's last
    /// sequence. The other slot's records must all be in LMDB. With `synchronize` (the modes that
    /// do not sync every append) the sealed slot is synced first, so the new slot's frames never
    /// reach the disk ahead of the records before them.
    func seal(synchronize: Bool) throws(StorageError) -> UInt64 {
        let sealed = slots[active]
        assert(sealed.lastSequence == nextSequence - 1, "sealing a slot without records")
        if synchronize { try sealed.file.synchronizeData() }
        recycle(1 - active)
        return nextSequence - 1
    }

    /// Told after each apply: LMDB holds every record up to `sequence`.
    func markApplied(through sequence: UInt64) {
        assert(sequence >= appliedSequence && sequence < nextSequence, "applied \(sequence) outside \(appliedSequence)..<\(nextSequence)")
        appliedSequence = sequence
    }

    /// Forces everything written to the active slot to disk (the non-durable modes, before a
    /// snapshot put and at close).
    func synchronize() throws(StorageError) { try slots[active].file.synchronizeData() }

    package func close() { slots.forEach { $0.file.close() } }
}

extension Journal.RunEnd {
    package var tornReason: String? {
        if case .torn(let reason) = self { return reason }
        return nil
    }
}
