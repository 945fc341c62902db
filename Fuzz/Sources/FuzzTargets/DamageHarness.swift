import Foundation
import OpLog
import OpLogStorage
import OpLogTestSupport

/// fuzz-damage: bytes of a valid store are changed, then the store is opened and read.
///
/// Two templates are built once per process: `applied` (everything in LMDB) and `journaled` (a copy
/// taken while its journal held unapplied records). Input byte 0, bit 0 picks the target:
/// - 0, LMDB: up to 4 records, located through LMDB cursors, get a key byte flipped, a value byte
///   flipped or a value cut short, rewritten through LMDB (never touching its pages). Then every
///   read (list, info, ops, snapshots, replay, and with a writable open an append and a retry) must
///   give the template's answer or `OpLogError.corruption`, and `verify` must report the damage.
/// - 1, journal: up to 4 bytes of the `journaled` copy's journal are flipped, or its tail is cut.
///   Opening must fail with `.corruption` or give exactly the state after a prefix of the journal's
///   records that stops before the first damaged one; in the `full` mode an intact record right
///   after the kept prefix must have made the open fail.
/// A damaged record that still passes its checksum (a collision the fuzzer constructed) is outside
/// the damage model: then only "no trap" is checked.
public enum FuzzDamage {
    public static func run(_ data: [UInt8], tolerateKnownIssues: Bool = true) async throws(FuzzFinding) {
        let templates: FuzzTemplates
        do { templates = try await FuzzTemplateCache.shared.templates() } catch {
            throw FuzzFinding("building the template stores failed: \(error)")
        }
        var input = FuzzInput(data)
        let mode = input.byte()
        let directory = FuzzScratch.newDirectory("damage")
        defer { FuzzScratch.remove(directory) }
        do {
            if mode & 1 == 0 {
                try await damageLMDB(&input, mode: mode, templates: templates, directory: directory, tolerant: tolerateKnownIssues)
            } else {
                try await damageJournal(&input, mode: mode, templates: templates, directory: directory)
            }
        } catch let finding as FuzzFinding {
            throw finding
        } catch {
            throw FuzzFinding("unexpected error: \(error)")
        }
    }

    static func options(readOnly: Bool, durability: Durability = .lastAppendsMayBeLost) -> StoreOptions {
        var options = StoreOptions()
        options.durability = durability
        options.readOnly = readOnly
        options.mapSizeInitialBytes = 4 << 20
        options.logger.logLevel = .critical
        // A fixed clock: a run's server times, and so every answer, depend on the input alone.
        options.clock = ManualClock(startingAt: fuzzClockStart)
        return options
    }

    // MARK: LMDB

    /// Known issue (see Fuzz/README.md), tolerated unless a regression test asks for strictness:
    /// a changed snapshot key makes the snapshot vanish from its place without a trace at read time
    /// (`snapshot(atOrBelow:)` answers with an older, intact snapshot). Only `verify` sees it.
    /// Tolerated: any answer for that document. (Moved document, op chunk and dedupe keys are
    /// detected at read time: orphaned records, head and floor, and `dedupeFrom` expose them.)
    static func damageLMDB(_ input: inout FuzzInput, mode: UInt8, templates: FuzzTemplates, directory: String, tolerant: Bool) async throws
    {
        let journaled = mode & 2 != 0
        try FuzzScratch.copyStore(from: journaled ? templates.journaled : templates.applied, to: directory)
        var expected = journaled ? templates.prefixes.last! : templates.prefixes[0]
        let damage = try rewriteRecords(&input, directory: directory)
        let (changed, forged) = (damage.changed, damage.forged)
        let readOnly = mode & 4 != 0
        let store: OpLogStore
        do { store = try await OpLogStore.open(directory: directory, options: options(readOnly: readOnly)) } catch {
            try fuzzCheck(forged || changed > 0 && fuzzIsCorruption(error), "open after \(changed) damaged records failed with \(error)")
            return
        }
        let lenient = tolerant ? damage.orphaned : []
        if ProcessInfo.processInfo.environment["OPLOG_FUZZ_TRACE"] == "1" {
            print("lenient \(lenient), forged \(forged), changed \(changed)")
        }
        do {
            try checkReads(store, expected: expected, strict: !forged, lenient: lenient)
            let report = try await store.verify()
            try fuzzCheck(forged || report.isClean == (changed == 0), "verify after \(changed) damaged records: \(report.problems)")
            for document in lenient { expected[document] = nil }
            if !readOnly {
                try await checkWrites(
                    store, expected: expected, retries: templates.retries.filter { !lenient.contains($0.document) }, strict: !forged)
            }
        } catch {
            try? await store.close()
            throw error
        }
        do { try await store.close() } catch {
            try fuzzCheck(forged || fuzzIsCorruption(error), "close failed with \(error)")
        }
    }

    struct Damage {
        var changed = 0
        /// A changed record still passes its checksum.
        var forged = false
        /// Documents with a vanished snapshot (see "Known issues").
        var orphaned: Set<DocumentID> = []
    }

    /// Changes up to 4 records in one LMDB write transaction.
    static func rewriteRecords(_ input: inout FuzzInput, directory: String) throws -> Damage {
        let environment = try Environment(directory: directory, configuration: EnvironmentConfiguration(mapSizeBytes: 64 << 20))
        defer { environment.close() }
        let databases = try StoreTables.names.map { try environment.openDatabase(named: $0, create: false) }
        var rewritten: [Entry] = []
        var damage = Damage()
        try environment.write { txn in
            for _ in 0..<input.pick(5) {
                let index = input.pick(databases.count)
                let database = databases[index]
                var entries: [Entry] = []
                try txn.withCursor(database) { cursor in
                    var entry = try cursor.first()
                    while let current = entry {
                        entries.append(current)
                        entry = try cursor.next()
                    }
                }
                guard !entries.isEmpty else { continue }
                let original = entries[input.u16() % entries.count]
                var damaged = original
                switch input.pick(4) {
                case 0: damaged.key[input.u16() % damaged.key.count] ^= input.byte() | 1
                case 1 where !damaged.value.isEmpty: damaged.value.removeLast(1 + input.u16() % damaged.value.count)
                default: if !damaged.value.isEmpty { damaged.value[input.u16() % damaged.value.count] ^= input.byte() | 1 }
                }
                try txn.delete(database, key: original.key)
                try txn.put(database, key: damaged.key, value: damaged.value)
                rewritten.append(damaged)
                if damaged.key != original.key, StoreTables.names[index] == "snapshots" {
                    KeyCoding.parseRevisionKey(original.key).map { _ = damage.orphaned.insert($0.document) }
                }
            }
        }
        damage.changed = rewritten.count
        if ProcessInfo.processInfo.environment["OPLOG_FUZZ_TRACE"] == "1" {
            for entry in rewritten { print("damaged record: key \(entry.key), \(entry.value.count) value bytes") }
        }
        damage.forged = rewritten.contains { entry in
            RecordKind.allCases.contains { (try? RecordFrame.decode(entry.value, key: entry.key, expecting: $0)) != nil }
        }
        return damage
    }

    /// Every read gives the template's answer, or (strict) a corruption error. `lenient` documents
    /// (and with any, the document list) may give any answer that does not trap.
    static func checkReads(_ store: OpLogStore, expected: FuzzStoreState, strict: Bool, lenient: Set<DocumentID>) throws {
        var checking = strict
        func check<T>(_ what: String, _ read: () throws -> T, _ isRight: (T) -> Bool) throws {
            do {
                let value = try read()
                try fuzzCheck(!checking || isRight(value), "\(what): wrong answer \(summary(value))")
            } catch let finding as FuzzFinding {
                throw finding
            } catch {
                try fuzzCheck(!checking || fuzzIsCorruption(error), "\(what): \(error)")
            }
        }
        try check("documents", { try store.documents() }, { $0 == expected.keys.sorted() })
        for (document, want) in expected.sorted(by: { $0.key < $1.key }) {
            checking = strict && !lenient.contains(document)
            try check(
                "info '\(document)'", { try store.info(of: document) },
                {
                    $0?.head == want.head && $0?.floor == want.floor && $0?.snapshots.map(\.revision) == want.snapshots.map(\.revision)
                })
            var from = want.floor
            while from <= want.head {
                let start = from
                try check(
                    "ops '\(document)' from \(start)", { try store.ops(of: document, from: start, limit: 37) },
                    {
                        $0[...] == want.ops[Int(start - want.floor)..<min(want.ops.count, Int(start - want.floor) + 37)]
                    })
                from += 37
            }
            for snapshot in want.snapshots {
                try check(
                    "snapshot '\(document)'@\(snapshot.revision)", { try store.snapshot(of: document, atOrBelow: snapshot.revision) },
                    { $0 == snapshot })
            }
            try check(
                "replay '\(document)'", { try store.replay(document, with: FuzzPayloadListReducer()) },
                {
                    $0.state == want.replayed && $0.revision == want.head
                })
        }
    }

    /// An answer described without payload or snapshot bytes.
    static func summary(_ value: Any) -> String {
        switch value {
        case let ops as [StoredOp]: return "\(ops.count) ops at \(ops.map(\.revision))"
        case let snapshot as Snapshot?: return snapshot.map { "snapshot at \($0.revision) of \($0.bytes.count) bytes" } ?? "no snapshot"
        case let info as DocumentInfo?:
            return info.map { "head \($0.head) floor \($0.floor) snapshots \($0.snapshots.map(\.revision))" } ?? "no document"
        case let replayed as (state: [[UInt8]], revision: Revision):
            return "\(replayed.state.count) payloads at revision \(replayed.revision)"
        default: return String(String(describing: value).prefix(200))
        }
    }

    /// A new op gets head + 1, and retried op IDs (truncated ones included) their first revision.
    static func checkWrites(_ store: OpLogStore, expected: FuzzStoreState, retries: [FuzzRetry], strict: Bool) async throws {
        for (index, (document, want)) in expected.sorted(by: { $0.key < $1.key }).enumerated() {
            let op = NewOp(opID: OpID(high: 0xDA, low: UInt64(index)), author: [], payload: [1, 2, 3])
            do {
                let result = try await store.append([op], to: document)
                try fuzzCheck(
                    !strict || result == AppendResult(revisions: [want.head + 1], wasRetry: false), "append to '\(document)': \(result)")
            } catch let error as OpLogError {
                try fuzzCheck(!strict || fuzzIsCorruption(error), "append to '\(document)': \(error)")
            }
        }
        for retry in retries {
            let op = NewOp(opID: retry.opID, author: [], payload: [])
            do {
                let result = try await store.append([op], to: retry.document)
                try fuzzCheck(
                    !strict || result == AppendResult(revisions: [retry.revision], wasRetry: true),
                    "retry of '\(retry.document)'@\(retry.revision): \(result)")
            } catch let error as OpLogError {
                try fuzzCheck(!strict || fuzzIsCorruption(error), "retry of '\(retry.document)'@\(retry.revision): \(error)")
            }
        }
    }

    // MARK: Journal

    static func damageJournal(_ input: inout FuzzInput, mode: UInt8, templates: FuzzTemplates, directory: String) async throws {
        try FuzzScratch.copyStore(from: templates.journaled, to: directory)
        let path = directory + "/" + templates.journalSlot
        let original = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        var bytes = original
        // Damage lands in the records and their end marker; past them the slot is zero fill.
        let recordsEnd = (templates.journalRecordEnds.last ?? JournalCoding.fileHeaderSize) + JournalCoding.frameHeaderSize
        for _ in 0..<(1 + input.pick(4)) {
            if input.pick(4) == 0 {
                // A cut: the slot ends inside its records (a torn write of a preallocated slot
                // leaves old bytes, not a short file, but a cut file must be read safely too).
                bytes.removeLast(max(0, bytes.count - max(0, min(bytes.count, recordsEnd) - 1 - input.u16() % 96)))
            } else if !bytes.isEmpty {
                bytes[(input.u16() | Int(input.byte()) << 16) % min(bytes.count, recordsEnd)] ^= input.byte() | 1
            }
        }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        // Which records (1-based, in file order) the damage touched, and whether one still checks out.
        let ends = templates.journalRecordEnds
        let intact = (0..<ends.count).map { index in
            let start = index == 0 ? JournalCoding.fileHeaderSize : ends[index - 1]
            return ends[index] <= bytes.count && bytes[start..<ends[index]] == original[start..<ends[index]]
        }
        let headerIntact =
            bytes.count >= JournalCoding.fileHeaderSize
            && bytes[0..<JournalCoding.fileHeaderSize] == original[0..<JournalCoding.fileHeaderSize]
        let forged =
            (!headerIntact && (try? JournalCoding.decodeFileHeader(bytes)) != nil)
            || intact.indices.contains { index in
                let start = index == 0 ? JournalCoding.fileHeaderSize : ends[index - 1]
                guard !intact[index], start < bytes.count, case .record = JournalCoding.readFrame(bytes[start...]) else { return false }
                return true
            }
        let strict = mode & 2 != 0
        let readOnly = mode & 4 != 0
        let store: OpLogStore
        do {
            store = try await OpLogStore.open(
                directory: directory, options: options(readOnly: readOnly, durability: strict ? .full : .lastAppendsMayBeLost))
        } catch {
            try fuzzCheck(forged || fuzzIsCorruption(error), "open with a damaged journal failed with \(error)")
            return
        }
        do {
            let state = try readState(store)
            if !forged {
                guard headerIntact, let kept = templates.prefixes.firstIndex(of: state) else {
                    throw FuzzFinding(
                        "a damaged journal opened to a state that is no prefix of its records (header intact: \(headerIntact), "
                            + "damaged records \(intact.indices.filter { !intact[$0] }.map { $0 + 1 }))"
                    )
                }
                let firstDamaged = intact.firstIndex(of: false) ?? intact.count
                try fuzzCheck(kept <= firstDamaged, "kept \(kept) records though record \(firstDamaged + 1) is damaged")
                try fuzzCheck(
                    !strict || kept + 1 >= intact.count || !intact[kept + 1],
                    "full mode kept \(kept) records though intact record \(kept + 2) follows the damage")
                try await fuzzCheck(try store.verify().isClean, "verify is not clean after recovering \(kept) journal records")
            }
            try await store.close()
        } catch {
            try? await store.close()
            throw error
        }
    }

    // MARK: Templates

    /// All retained data of every listed document, as reads return it.
    static func readState(_ store: OpLogStore) throws -> FuzzStoreState {
        var state: FuzzStoreState = [:]
        for document in try store.documents(limit: 100) {
            guard let info = try store.info(of: document) else { continue }
            var ops: [StoredOp] = []
            while UInt64(ops.count) < info.head + 1 - info.floor {
                let page = try store.ops(of: document, from: info.floor + UInt64(ops.count), limit: 1000)
                guard !page.isEmpty else { break }
                ops += page
            }
            let snapshots = try info.snapshots.compactMap { try store.snapshot(of: document, atOrBelow: $0.revision) }
            let replayed = try store.replay(document, with: FuzzPayloadListReducer()).state
            state[document] = FuzzDocumentState(head: info.head, floor: info.floor, ops: ops, snapshots: snapshots, replayed: replayed)
        }
        return state
    }

    /// Builds both templates. `applied`: "a" has 120 compressible ops in 2 applies, snapshots at 60
    /// and 100 and floor 61, so its first chunks became dedupe records; "ab" has incompressible ops and
    /// snapshot (raw frames); "ü/é" a compressed snapshot. `journaled`: the same plus 6 journal records.
    static func buildTemplates() async throws -> FuzzTemplates {
        let a = try DocumentID("a")
        let ab = try DocumentID("ab")
        let u = try DocumentID("ü/é")
        var serial: UInt64 = 0
        func ops(_ count: Int, size: Int, compressible: Bool, clientTime: Int64? = nil) -> [NewOp] {
            (0..<count).map { _ in
                serial += 1
                return NewOp(
                    opID: OpID(high: 0x7E, low: serial), author: Array("t\(serial % 3)".utf8), clientTimeMilliseconds: clientTime,
                    payload: fuzzFiller(seed: serial, count: size, compressible: compressible))
            }
        }
        func snapshot(_ store: OpLogStore, _ document: DocumentID, at revision: Revision) async throws {
            let state = try store.replay(document, to: revision, with: FuzzPayloadListReducer()).state
            try await store.putSnapshot(try FuzzPayloadListReducer().encode(state), of: document, at: revision)
        }
        let applied = FuzzScratch.newDirectory("template-applied")
        var store = try await OpLogStore.open(directory: applied, options: options(readOnly: false))
        for _ in 0..<10 { _ = try await store.append(ops(6, size: 600, compressible: true), to: a) }
        try await store.checkpoint()
        for _ in 0..<6 { _ = try await store.append(ops(10, size: 600, compressible: true), to: a) }
        try await snapshot(store, a, at: 60)
        try await snapshot(store, a, at: 100)
        try await store.truncate(a, below: 61)
        _ = try await store.append(ops(40, size: 300, compressible: false), to: ab)
        try await snapshot(store, ab, at: 40)
        _ = try await store.append(ops(5, size: 500, compressible: true, clientTime: -5), to: u)
        try await snapshot(store, u, at: 3)
        try await store.close()

        let journaled = FuzzScratch.newDirectory("template-journaled")
        let work = FuzzScratch.newDirectory("template-work")
        defer { FuzzScratch.remove(work) }
        try FuzzScratch.copyStore(from: applied, to: work)
        store = try await OpLogStore.open(directory: work, options: options(readOnly: false))
        var prefixes = [try readState(store)]
        var ends = [Int]()
        var slot = ""
        func recorded(_ body: () async throws -> Void) async throws {
            try await body()
            prefixes.append(try readState(store))
            // The records go to the slot the open made active: the one with the newest run.
            let newest = try Journal.read(directory: work, strict: false).slots.max {
                ($0.records.last?.sequence ?? 0) < ($1.records.last?.sequence ?? 0)
            }!
            slot = Journal.slotFileNames[newest.index]
            ends.append(newest.endOffset)
        }
        try await recorded { _ = try await store.append(ops(3, size: 40, compressible: true), to: a) }
        try await recorded { _ = try await store.append(ops(1, size: 90, compressible: false), to: ab) }
        try await recorded { try await store.truncate(ab, below: 41) }
        try await recorded {
            _ = try await store.append(batch: [
                DocumentAppend(document: a, ops: ops(2, size: 10, compressible: true)),
                DocumentAppend(document: try DocumentID("new"), ops: ops(2, size: 10, compressible: false)),
            ])
        }
        try await recorded { _ = try await store.append(ops(2, size: 20, compressible: true, clientTime: .min), to: u) }
        try await recorded { _ = try await store.append(ops(1, size: 3000, compressible: false), to: a) }
        try FuzzScratch.copyStore(from: work, to: journaled)
        try await store.close()
        let retries = [
            FuzzRetry(document: a, opID: OpID(high: 0x7E, low: 1), revision: 1),
            FuzzRetry(document: a, opID: OpID(high: 0x7E, low: 110), revision: 110),
        ]
        return FuzzTemplates(
            applied: applied, journaled: journaled, prefixes: prefixes, journalSlot: slot, journalRecordEnds: ends, retries: retries)
    }
}

struct FuzzDocumentState: Sendable, Equatable {
    var head: Revision
    var floor: Revision
    var ops: [StoredOp]
    var snapshots: [Snapshot]
    var replayed: [[UInt8]]
}

typealias FuzzStoreState = [DocumentID: FuzzDocumentState]

/// An op the template accepted, to retry: it must come back with its first revision.
struct FuzzRetry: Sendable {
    var document: DocumentID
    var opID: OpID
    var revision: Revision
}

struct FuzzTemplates: Sendable {
    let applied: String
    let journaled: String
    /// The state after the first k journal records of `journaled`; `prefixes[0]` is `applied`'s.
    let prefixes: [FuzzStoreState]
    /// The slot file that holds `journaled`'s unapplied records, and the offset just past each.
    let journalSlot: String
    let journalRecordEnds: [Int]
    let retries: [FuzzRetry]
}

/// Builds the templates once per process, on first use.
actor FuzzTemplateCache {
    static let shared = FuzzTemplateCache()
    private var building: Task<FuzzTemplates, any Error>?

    func templates() async throws -> FuzzTemplates {
        if let building { return try await building.value }
        let task = Task { try await FuzzDamage.buildTemplates() }
        building = task
        return try await task.value
    }
}
