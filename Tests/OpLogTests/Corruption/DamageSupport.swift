import Foundation
import OpLog
import OpLogStorage
import OpLogTestSupport
import OpLogText
import Testing

/// The store the damage tests copy and damage: every kind of record, in LMDB only (empty journal).
///
/// "a": 400 ops in 4 applies (4 compressed op chunks, some of them overflow pages), snapshots at
/// 100, 200 and 300, truncated below 201, so the op IDs of revisions 1...200 became 2 dedupe records.
/// "ab": 150 ops, snapshots at 50 and 150, truncated below 51 (its first chunk keeps ops below the
/// floor). "ü/é": 40 ops, one snapshot. "z": 60 ops, no snapshot. Then `smallDocuments` documents of
/// 6 ops in 2 chunks each (small inline values: many leaf pages and branch pages). Payloads are
/// editing patches, so the text reducer replays every document and `oplog verify` can check
/// snapshots against the log. "big" holds values larger than a page (see `fillLarge`).
enum DamageTemplate {
    static let mainDocuments: [(name: String, count: Int, snapshots: [Int], floor: Int)] = [
        ("a", 400, [100, 200, 300], 201), ("ab", 150, [50, 150], 51), ("ü/é", 40, [20], 1), ("z", 60, [], 1), ("big", 4, [4], 1),
    ]

    static func documentNames(smallDocuments: Int) -> [String] {
        mainDocuments.map(\.name) + (0..<smallDocuments).map(smallName)
    }

    static func smallName(_ index: Int) -> String { "s" + String(index + 1_000).dropFirst() }

    /// The op ID of patch `index` of document `name` (stable, so retries can name them).
    static func opID(_ name: String, _ index: Int) -> OpID { CrashTests.opID(document: name, patchIndex: index) }

    /// The template's options: the change feed on, so that its records are in the template too.
    static func options() -> StoreOptions {
        var options = testOptions()
        options.feedRetentionBytes = 64 << 20
        return options
    }

    static func build(_ directory: String, smallDocuments: Int) async throws {
        var options = options()
        options.mapSizeInitialBytes = 4 << 20
        try await withStore(directory, options: options) { store async throws in
            for (index, spec) in mainDocuments.enumerated() where spec.name != "big" {
                try await fill(
                    store, spec.name, seed: UInt64(index + 1), count: spec.count, snapshots: spec.snapshots, appendSize: 5,
                    checkpointEvery: 100)
                if spec.floor > 1 { try await store.truncate(doc(spec.name), below: Revision(spec.floor)) }
            }
            try await fillLarge(store)
            for index in 0..<smallDocuments {
                try await fill(
                    store, smallName(index), seed: UInt64(100 + index), count: 6, snapshots: [], appendSize: 3, checkpointEvery: 3)
            }
            // A fencing epoch record (format version 3), for a scope no document uses.
            try await store.raiseEpoch(3, for: FencingScope("damage-scope"))
            try await store.checkpoint()
            // A saved consumer position (format version 4).
            try await store.savePosition(try #require(try store.latestPosition()), for: "damage-consumer")
        }
    }

    /// "big": 4 ops inserting 3,000 random hex digits each, in one chunk, and a snapshot of all of
    /// it: values too large for a leaf page, so they live in overflow pages.
    private static func fillLarge(_ store: OpLogStore) async throws {
        var random = SplitMix64(seed: 77)
        var text = TextBuffer()
        let patches = (0..<4).map { _ in
            TextPatch(
                position: 0, deleted: 0,
                inserted: (0..<375).map { _ in String(random.next(), radix: 16) }.joined().prefix(3_000).description)
        }
        let ops = patches.enumerated().map { NewOp(opID: opID("big", $0.offset), author: [], payload: $0.element.jsonBytes()) }
        _ = try await store.append(ops, to: doc("big"))
        for patch in patches { try text.apply(patch) }
        try await store.checkpoint()
        try await store.putSnapshot(Array(text.text.utf8), of: doc("big"), at: 4)
    }

    private static func fill(
        _ store: OpLogStore, _ name: String, seed: UInt64, count: Int, snapshots: [Int], appendSize: Int, checkpointEvery: Int
    ) async throws {
        let session = EditingTrace.generated(seed: seed, patchCount: count, computeEndContent: false)
        var text = TextBuffer()
        var revision = 0
        while revision < count {
            let next = min(count, revision + appendSize)
            let ops = (revision..<next).map {
                NewOp(
                    opID: opID(name, $0), author: Array("w\($0 % 3)".utf8), clientTimeMilliseconds: $0 % 2 == 0 ? 1_700_000_000_000 : nil,
                    payload: session.patches[$0].jsonBytes())
            }
            _ = try await store.append(ops, to: doc(name))
            for index in revision..<next { try text.apply(session.patches[index]) }
            revision = next
            if revision % checkpointEvery == 0 { try await store.checkpoint() }
            if snapshots.contains(revision) { try await store.putSnapshot(Array(text.text.utf8), of: doc(name), at: Revision(revision)) }
        }
    }

    /// Copies the files a store needs (not `lock.mdb`, which LMDB recreates).
    static func copy(_ source: String, to destination: String) throws {
        try FileManager.default.createDirectory(atPath: destination, withIntermediateDirectories: true)
        for name in ["data.mdb"] + Journal.fileNames where FileManager.default.fileExists(atPath: source + "/" + name) {
            try FileManager.default.copyItem(atPath: source + "/" + name, toPath: destination + "/" + name)
        }
    }
}

/// The seed of a randomized test: `OPLOG_SEED`, else random; the caller prints it.
func testSeed() -> UInt64 {
    ProcessInfo.processInfo.environment["OPLOG_SEED"].flatMap(UInt64.init) ?? UInt64.random(in: 1...UInt64.max)
}
