import Crypto
import Foundation
import OpLog
import OpLogStorage
import OpLogTestSupport
import OpLogText
import Testing

/// Goal: every store a released format wrote still opens with the current code and reads exactly
/// as its manifest says (FORMAT.md, "Compatibility"). The fixture files are immutable: a test fails
/// if one differs from the SHA-256 its manifest recorded.
///
/// Method: `Tests/Fixtures/v<N>/` holds a store written by the code of format version N (`store/`:
/// `data.mdb` and a `journal` with unapplied records, copied while the store was open) and
/// `manifest.json`, computed from the editing sessions, not by reading the store. Each fixture is
/// copied to a temporary directory, opened read-only, then writable (which applies its journal),
/// then again after close, and checked each time. `OPLOG_WRITE_FIXTURE=v<N>` writes a new fixture
/// (only when a format version is added).
@Suite struct FixtureTests {
    static let fixturesDirectory = repositoryRoot.appendingPathComponent("Tests/Fixtures").path

    struct Manifest: Codable {
        struct Document: Codable {
            var id: String
            var head: Revision
            var floor: Revision
            var snapshots: [Revision]
            /// SHA-256 of the text (UTF-8) at each listed revision, replayed with `TextReducer`.
            var replays: [String: String]
        }
        struct Retry: Codable {
            var document: String
            var opID: String
            var revision: Revision
        }
        var formatVersion: UInt32
        var writtenBy: String
        /// When the fixture was written: the server time of its newest op. Tests open the fixture
        /// with a clock set to it, so they hold on any date.
        var writtenAtMilliseconds: Int64
        /// SHA-256 of each file under `store/`.
        var files: [String: String]
        var documents: [Document]
        /// Op IDs whose retry must return their original revision (kept in dedupe records).
        var retries: [Retry]
        /// Fencing epochs by scope (format version 3 on; absent from older manifests).
        var epochs: [String: UInt64]?
        /// The store's lineage, hex (format version 3 on).
        var lineage: String?
        /// The change feed (format version 4 on): the newest position LMDB's history holds, and
        /// the saved consumer positions.
        var feedAppliedThrough: UInt64?
        var feedConsumers: [String: UInt64]?
        var notes: String
    }

    static var fixtures: [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: fixturesDirectory)) ?? []
        return names.filter { $0.hasPrefix("v") }.sorted()
    }

    static func sha256(_ bytes: some Sequence<UInt8>) -> String {
        SHA256.hash(data: Array(bytes)).map { String(format: "%02x", $0) }.joined()
    }

    static func sha256(file path: String) throws -> String {
        sha256(try [UInt8](Data(contentsOf: URL(fileURLWithPath: path))))
    }

    @Test func fixturesExist() {
        #expect(Self.fixtures.contains("v1"), "Tests/Fixtures/v1 is missing: the format 1 fixture must stay committed")
    }

    static func manifest(_ name: String) throws -> Manifest {
        let path = fixturesDirectory + "/" + name + "/manifest.json"
        return try JSONDecoder().decode(Manifest.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
    }

    /// Checks the fixture's files against its manifest and copies them to `directory`.
    static func copyFixture(_ name: String, _ manifest: Manifest, to directory: String) throws {
        let fixture = fixturesDirectory + "/" + name
        let files = try FileManager.default.contentsOfDirectory(atPath: fixture + "/store").sorted()
        #expect(files == manifest.files.keys.sorted(), "\(name): the fixture's files differ from its manifest")
        for (file, digest) in manifest.files {
            #expect(
                try sha256(file: fixture + "/store/" + file) == digest,
                "\(name)/store/\(file) changed: fixtures are immutable; add a new version instead")
        }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        for file in files { try FileManager.default.copyItem(atPath: fixture + "/store/" + file, toPath: directory + "/" + file) }
    }

    static func options(clock: any StoreClock, readOnly: Bool = false) -> StoreOptions {
        var options = StoreOptions()
        options.clock = clock
        options.readOnly = readOnly
        return options
    }

    @Test(arguments: fixtures)
    func fixtureOpensAndMatchesItsManifest(_ name: String) async throws {
        // The clock stands where it stood when the fixture was written, on every date.
        let manifest = try Self.manifest(name)
        let clock = ManualClock(startingAt: manifest.writtenAtMilliseconds)
        let dir = TemporaryDirectory("oplog-fixture-\(name)")
        defer { dir.remove() }
        try Self.copyFixture(name, manifest, to: dir.path)
        var upgradedLineage: StoreLineage?

        let reader = try await OpLogStore.open(directory: dir.path, options: Self.options(clock: clock, readOnly: true))
        try Self.check(reader, manifest, label: "\(name) read-only")
        // Before version 3 a store has no lineage until a writable open gives it one.
        #expect(try reader.lineage()?.description == manifest.lineage, "\(name): lineage of the read-only open")
        if let through = manifest.feedAppliedThrough {
            // A read-only open reads LMDB's history: consecutive positions up to the applied sequence.
            var positions: [UInt64] = []
            for try await change in try reader.changes() { positions.append(change.position.sequence) }
            #expect(positions.last == through && positions == Array((positions.first ?? 1)...through), "\(name): feed history")
            #expect(try reader.savedPositions().mapValues(\.sequence) == manifest.feedConsumers ?? [:], "\(name): saved positions")
        }
        try await reader.close()
        try await withStore(dir.path, options: Self.options(clock: clock)) { store async throws in
            try Self.check(store, manifest, label: "\(name) writable")
            let report = try await store.verify()
            #expect(report.isClean, "\(name): \(report.problems)")
            try await Self.checkEpochs(store, manifest, label: "\(name) writable")
            let lineage = try #require(try store.lineage(), "\(name): no lineage after a writable open")
            if let expected = manifest.lineage { #expect(lineage.description == expected, "\(name): lineage") }
            upgradedLineage = lineage
            for retry in manifest.retries {
                let id = try Self.opID(hex: retry.opID)
                let result = try await store.append(
                    [NewOp(opID: id, author: [], payload: [])], to: try DocumentID(retry.document), epoch: manifest.epochs?[retry.document])
                #expect(
                    result == AppendResult(revisions: [retry.revision], wasRetry: true),
                    "\(name): retry of \(retry.opID) in \(retry.document)")
            }
        }
        // The writable open upgraded an older store: the version 2 journal slots replace `journal`.
        #expect(!File.exists(dir.path + "/" + Journal.legacyFileName), "\(name): the version 1 journal is still there")
        #expect(Journal.slotFileNames.allSatisfy { File.exists(dir.path + "/" + $0) }, "\(name): the journal slots are missing")
        try await withStore(dir.path, options: Self.options(clock: clock)) { store async throws in
            try Self.check(store, manifest, label: "\(name) reopened")
            try await Self.checkEpochs(store, manifest, label: "\(name) reopened")
            #expect(try store.lineage() == upgradedLineage, "\(name): the lineage changed across a reopen")
        }
    }

    @Test(arguments: fixtures)
    func fixtureOpenedYearsLaterBehavesAsDocumented(_ name: String) async throws {
        // Method: the clock stands 3 years after the fixture was written. The dedupe window is
        // measured on each document's own history (FORMAT.md, "The dedupe window"), so nothing
        // has expired yet: the ops are kept, replay the same, and retries are recognised. Once a
        // document gets a new op (stamped 3 years later), its old op IDs are outside the window:
        // a plain retry is then a new op, while a retry that names its base revision stays exact.
        let manifest = try Self.manifest(name)
        let clock = ManualClock(startingAt: manifest.writtenAtMilliseconds + 3 * 365 * 86_400_000)
        let dir = TemporaryDirectory("oplog-fixture-late-\(name)")
        defer { dir.remove() }
        try Self.copyFixture(name, manifest, to: dir.path)
        try await withStore(dir.path, options: Self.options(clock: clock)) { store async throws in
            try Self.check(store, manifest, label: "\(name) 3 years later")
            for retry in manifest.retries {
                let result = try await store.append(
                    [NewOp(opID: try Self.opID(hex: retry.opID), author: [], payload: [])], to: try DocumentID(retry.document),
                    epoch: manifest.epochs?[retry.document])
                #expect(
                    result == AppendResult(revisions: [retry.revision], wasRetry: true), "\(name): retry of \(retry.opID) 3 years later")
            }
            for retry in manifest.retries {
                let document = try DocumentID(retry.document)
                let head = try store.head(of: document)
                let fresh = TextPatch(position: 0, deleted: 0, inserted: "").jsonBytes()
                let epoch = manifest.epochs?[retry.document]
                _ = try await store.append(
                    [NewOp(opID: OpID(high: 0xF1, low: head), author: [], payload: fresh)], to: document, epoch: epoch)
                let id = try Self.opID(hex: retry.opID)
                let based = try await store.append(
                    [NewOp(opID: id, author: [], payload: fresh)], to: document, basedOn: retry.revision - 1, epoch: epoch)
                #expect(based == AppendResult(revisions: [retry.revision], wasRetry: true), "\(name): based-on retry of \(retry.opID)")
                let plain = try await store.append([NewOp(opID: id, author: [], payload: fresh)], to: document, epoch: epoch)
                #expect(
                    plain == AppendResult(revisions: [head + 2], wasRetry: false),
                    "\(name): \(retry.opID) is outside the window after a new op")
            }
            await #expect(try store.verify().isClean)
        }
    }

    /// Every listed scope holds its epoch, and refuses the one below it.
    static func checkEpochs(_ store: OpLogStore, _ manifest: Manifest, label: String) async throws {
        for (name, epoch) in manifest.epochs ?? [:] {
            let scope = try FencingScope(name)
            #expect(try await store.epoch(of: scope) == epoch, "\(label): epoch of \(name)")
            await #expect(throws: OpLogError.staleEpoch(scope: scope, epoch: epoch - 1, current: epoch), "\(label): \(name) is fenced") {
                try await store.raiseEpoch(epoch - 1, for: scope)
            }
        }
    }

    static func check(_ store: OpLogStore, _ manifest: Manifest, label: String) throws {
        #expect(
            try store.documents().map(\.description)
                == manifest.documents.map(\.id).sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }, "\(label): documents")
        for expected in manifest.documents {
            let document = try DocumentID(expected.id)
            let info = try #require(try store.info(of: document), "\(label): \(expected.id) is missing")
            #expect(
                info.head == expected.head && info.floor == expected.floor, "\(label): \(expected.id) head \(info.head) floor \(info.floor)"
            )
            #expect(info.snapshots.map(\.revision) == expected.snapshots, "\(label): \(expected.id) snapshots")
            for (revision, digest) in expected.replays {
                let text = try store.replay(document, to: Revision(revision), with: TextReducer()).state.text
                #expect(sha256(text.utf8) == digest, "\(label): replay of \(expected.id) at \(revision)")
            }
        }
    }

    // MARK: - Writing a fixture

    @Test(
        .enabled(if: ProcessInfo.processInfo.environment["OPLOG_WRITE_FIXTURE"] != nil, "set OPLOG_WRITE_FIXTURE=v<N> to write a fixture"))
    func writeFixture() async throws {
        let name = try #require(ProcessInfo.processInfo.environment["OPLOG_WRITE_FIXTURE"])
        let fixture = Self.fixturesDirectory + "/" + name
        #expect(!FileManager.default.fileExists(atPath: fixture), "\(fixture) exists: fixtures are never rewritten")
        guard !FileManager.default.fileExists(atPath: fixture) else { return }
        let work = TemporaryDirectory("oplog-fixture-work")
        defer { work.remove() }
        let manifest = try await Self.writeStore(work.path, copyTo: fixture + "/store")
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(manifest).write(to: URL(fileURLWithPath: fixture + "/manifest.json"))
        print("wrote \(fixture)")
    }

    /// The server time of the newest op in the store at `directory`.
    static func newestServerTime(_ directory: String) async throws -> Int64 {
        try await withStore(directory, options: StoreOptions()) { store async throws in
            try store.documents().compactMap { try store.info(of: $0)?.lastServerTimeMilliseconds }.max() ?? 0
        }
    }

    static func opID(hex: String) throws -> OpID {
        let digits = Array(hex.utf8)
        let bytes = try stride(from: 0, to: digits.count, by: 2).map { index in
            try #require(
                UInt8(String(decoding: digits[index..<min(index + 2, digits.count)], as: UTF8.self), radix: 16), "bad op ID \(hex)")
        }
        return try OpID(bytes: bytes)
    }

    static func opID(_ document: String, _ index: Int) -> OpID { CrashTests.opID(document: document, patchIndex: index) }

    static func ops(_ document: String, _ session: EditingTrace, _ range: Range<Int>) -> [NewOp] {
        range.map {
            NewOp(
                opID: opID(document, $0), author: Array("fixture".utf8), clientTimeMilliseconds: 1_700_000_000_000 + Int64($0),
                payload: session.patches[$0].jsonBytes())
        }
    }

    static func text(_ session: EditingTrace, upTo revision: Revision) throws -> String {
        var buffer = TextBuffer()
        for patch in session.patches[0..<Int(revision)] { try buffer.apply(patch) }
        return buffer.text
    }

    /// Writes the fixture store: applied chunks (compressed and raw), snapshots, truncation with
    /// dedupe records, a deleted document, non-ASCII IDs, and a journal of unapplied appends, a new
    /// document and a truncation. Returns the manifest computed from the sessions.
    static func writeStore(_ directory: String, copyTo destination: String) async throws -> Manifest {
        var options = StoreOptions()
        options.durability = .full
        options.feedRetentionBytes = 64 << 20  // the fixture holds feed records and journal markers
        let a = EditingTrace.generated(seed: 31, patchCount: 3_300, computeEndContent: false)
        let b = EditingTrace.generated(seed: 32, patchCount: 600, computeEndContent: false)
        let u = EditingTrace.generated(seed: 33, patchCount: 200, computeEndContent: false)
        let j = EditingTrace.generated(seed: 34, patchCount: 50, computeEndContent: false)
        let (idA, idB, idU, idJ) = (
            try DocumentID("text-a"), try DocumentID("text-b"), try DocumentID("ünïcode/é"), try DocumentID("journal-only")
        )
        try await withStore(directory, options: options) { store async throws in
            for start in stride(from: 0, to: 3_000, by: 25) { _ = try await store.append(ops("text-a", a, start..<(start + 25)), to: idA) }
            for revision: Revision in [1_000, 2_000] {
                try await store.putSnapshot(
                    TextReducer().encode(store.replay(idA, to: revision, with: TextReducer()).state), of: idA, at: revision)
            }
            try await store.truncate(idA, below: 2_001)
            for index in 0..<600 { _ = try await store.append(ops("text-b", b, index..<(index + 1)), to: idB) }
            _ = try await store.append(ops("ünïcode/é", u, 0..<200), to: idU)
            let deleted = try DocumentID("deleted")
            _ = try await store.append(ops("deleted", j, 0..<10), to: deleted)
            try await store.deleteDocument(deleted)
            try await store.raiseEpoch(7, for: FencingScope("fixture-shard"))
            try await store.savePosition(try #require(try store.latestPosition()), for: "fixture-consumer")
        }
        let store = try await OpLogStore.open(directory: directory, options: options)
        _ = try await store.append(ops("text-a", a, 3_000..<3_300), to: idA)
        _ = try await store.append(ops("journal-only", j, 0..<50), to: idJ)
        try await store.putSnapshot(TextReducer().encode(store.replay(idB, to: 300, with: TextReducer()).state), of: idB, at: 300)
        try await store.truncate(idB, below: 301, epoch: 3)  // the raise of text-b's epoch is in the journal
        // Copied while open: the journal keeps its unapplied records, as after a crash.
        try FileManager.default.createDirectory(atPath: destination, withIntermediateDirectories: true)
        var files: [String: String] = [:]
        for file in ["data.mdb"] + Journal.fileNames where FileManager.default.fileExists(atPath: directory + "/" + file) {
            try FileManager.default.copyItem(atPath: directory + "/" + file, toPath: destination + "/" + file)
            files[file] = try sha256(file: destination + "/" + file)
        }
        try await store.close()

        func replays(_ session: EditingTrace, _ revisions: [Revision]) throws -> [String: String] {
            var result: [String: String] = [:]
            for revision in revisions { result[String(revision)] = sha256(try text(session, upTo: revision).utf8) }
            return result
        }
        let writtenAt = try await Self.newestServerTime(directory)
        // The copy's own LMDB history, read-only from a scratch copy (an open creates lock.mdb).
        let scratch = TemporaryDirectory("oplog-fixture-scratch")
        defer { scratch.remove() }
        try FileManager.default.createDirectory(atPath: scratch.path, withIntermediateDirectories: true)
        for file in files.keys { try FileManager.default.copyItem(atPath: destination + "/" + file, toPath: scratch.path + "/" + file) }
        var readOnly = StoreOptions()
        readOnly.readOnly = true
        let (lineage, feedThrough, consumers) = try await withStore(scratch.path, options: readOnly) { store async throws in
            var last: UInt64 = 0
            for try await change in try store.changes() { last = change.position.sequence }
            return (try store.lineage(), last, try store.savedPositions().mapValues(\.sequence))
        }
        return Manifest(
            formatVersion: formatVersion, writtenBy: "OpLog format \(formatVersion) (FixtureTests.writeStore)",
            writtenAtMilliseconds: writtenAt, files: files,
            documents: [
                .init(id: "journal-only", head: 50, floor: 1, snapshots: [], replays: try replays(j, [1, 50])),
                .init(
                    id: "text-a", head: 3_300, floor: 2_001, snapshots: [1_000, 2_000],
                    replays: try replays(a, [2_000, 2_500, 3_000, 3_300])),
                .init(id: "text-b", head: 600, floor: 301, snapshots: [300], replays: try replays(b, [300, 301, 600])),
                .init(id: "ünïcode/é", head: 200, floor: 1, snapshots: [], replays: try replays(u, [1, 100, 200])),
            ],
            retries: [
                .init(document: "text-a", opID: opID("text-a", 5).description, revision: 6),
                .init(document: "text-a", opID: opID("text-a", 3_100).description, revision: 3_101),
                .init(document: "text-b", opID: opID("text-b", 10).description, revision: 11),
            ],
            epochs: ["fixture-shard": 7, "text-b": 3],
            lineage: lineage?.description,
            feedAppliedThrough: feedThrough, feedConsumers: consumers,
            notes:
                "text-a: chunks 2001...3000 applied, 3001...3300 in the journal, snapshots 1000 and 2000, ops 1...2000 "
                + "truncated into dedupe records. text-b: 600 single-op appends applied, snapshot 300 and a truncation "
                + "below 301 in the journal. ünïcode/é: one 200-op append. journal-only: exists only in the journal. "
                + "deleted: created and deleted (erased from the feed's history). The change feed is on: its history, "
                + "markers and a saved consumer position are in the store. "
                + "Epochs: fixture-shard raised to 7 (applied), text-b to 3 with "
                + "its journaled truncation."
        )
    }
}
