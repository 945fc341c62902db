import Foundation
import OpLog
import OpLogStorage
import OpLogTestSupport
import OpLogText
import Testing

/// Goal: a changed byte in LMDB's own pages (branch, leaf and overflow pages of the live tree, and
/// the two meta pages) never yields silently wrong data: each read returns the template's answer
/// or a typed error, or the reading process crashes; `oplog verify` reports the damage (exit 1,
/// its scanning child's crash included); a flip with no effect passes only if every read is right.
/// LMDB 0.9 has no page checksums, so the reads run in a child process (`oplog read-all`).
///
/// Method: build `DamageTemplate`, walk data.mdb's pages from the newest meta page's roots (page
/// headers and nodes as laid out in LMDB 0.9's mdb.c), then per flip (seeded, `OPLOG_SEED`
/// overrides) copy the store, flip one used byte of one page, run `oplog read-all` and `oplog verify`.
@Suite struct PageDamageTests {
    struct Figures {
        var flips = 0, metaFlips = 0
        var readError = 0, readCrash = 0, verifyReported = 0, verifyCrash = 0, noEffect = 0, listingMissed = 0
    }

    static let smallDocuments = 150

    @Test(.enabled(if: CLITests.testKit != nil, "needs the built oplog executable"))
    func flippedPageBytesNeverGiveWrongData() async throws {
        let binary = try #require(CLITests.testKit)
        let oplog = try #require(CLITests.binary)
        let seed = testSeed()
        let pageFlips = longTests ? 2_000 : 90
        let metaFlips = longTests ? 400 : 20
        print("page damage: seed \(seed) (OPLOG_SEED=\(seed) repeats it), \(pageFlips) page flips, \(metaFlips) meta page flips")
        let template = TemporaryDirectory("oplog-page-damage")
        defer { template.remove() }
        try await DamageTemplate.build(template.path, smallDocuments: Self.smallDocuments)
        let readArguments = DamageTemplate.documentNames(smallDocuments: Self.smallDocuments).flatMap { ["--document", $0] }
        let expected = try runProcess(binary, ["read-all", "--store", template.path] + readArguments, withErrors: false)
        #expect(
            expected.status == 0 && !expected.output.contains("\terror\t"),
            "the template does not read cleanly: \(expected.output.prefix(2_000))")
        let expectedLines = Self.answers(expected.output)
        let clean = try runProcess(oplog, ["verify", "--store", template.path])
        #expect(clean.status == 0, "the template does not verify: \(clean.output)")
        let data = try [UInt8](Data(contentsOf: URL(fileURLWithPath: template.path + "/data.mdb")))
        let layout = try #require(LMDBLayout(data), "data.mdb does not parse as LMDB 0.9")
        print(
            "page damage: \(layout.pages.count) live pages "
                + "(\(layout.pages.map(\.kind).reduce(into: [:]) { $0[$1, default: 0] += 1 })) of \(data.count / layout.pageSize)"
        )
        #expect(layout.pages.contains { $0.kind == .branch } && layout.pages.contains { $0.kind == .overflow })
        var random = SplitMix64(seed: seed)
        var figures = Figures()
        for flip in 0..<(pageFlips + metaFlips) {
            let isMeta = flip >= pageFlips
            let (offset, what) = isMeta ? layout.metaByte(&random) : layout.pageByte(&random)
            let mask = UInt8(1 + random.next() % 255)
            let work = TemporaryDirectory("oplog-page-flip")
            defer { work.remove() }
            try DamageTemplate.copy(template.path, to: work.path)
            var damaged = data
            damaged[offset] ^= mask
            try Data(damaged).write(to: URL(fileURLWithPath: work.path + "/data.mdb"))
            let context = "seed \(seed) flip \(flip): byte \(offset) (\(what)) ^ \(String(mask, radix: 16))"
            figures.flips += 1
            if isMeta { figures.metaFlips += 1 }
            let reads = try runProcess(
                binary, ["read-all", "--store", work.path] + readArguments, timeoutSeconds: hangBoundSeconds, withErrors: false)
            #expect(!reads.timedOut, "\(context): the reads hung")
            var readsAllRight = true
            var listingMissed = false
            if reads.signaled {
                figures.readCrash += 1
                readsAllRight = false
            }
            // A crash may cut the output anywhere; the lines printed before it must still be right.
            for line in Self.lines(reads.output) {
                if let want = expectedLines[line.name], line.result == want { continue }
                readsAllRight = false
                if line.result.hasPrefix("error\tcorruption") || line.result.hasPrefix("error\ttyped") { continue }
                // Known gap: listings (documents, a document's snapshots) walk leaf pages; a damaged
                // page can hide entries from them with no checksum to fail. Verify must report it.
                // Likewise (FORMAT.md, "What damage does"): a damaged key routes a snapshot lookup
                // away from its record, to an older snapshot or to none.
                if line.name == "documents"
                    || (line.name.hasPrefix("info:") && Self.sameExceptSnapshots(line.result, expectedLines[line.name]))
                    || (line.name.hasPrefix("snapshot:") && Self.olderOrNoSnapshot(line.result, expectedLines[line.name]))
                {
                    listingMissed = true
                    continue
                }
                Issue.record(
                    Comment(
                        rawValue: "\(context): \(line.name) answered differently (silent wrong data): "
                            + "\(Self.difference(line.result, expectedLines[line.name] ?? "no such read"))")
                )
            }
            if !reads.signaled && Self.lines(reads.output).contains(where: { $0.result.hasPrefix("error") }) { figures.readError += 1 }
            let verify = try runProcess(oplog, ["verify", "--store", work.path], timeoutSeconds: hangBoundSeconds)
            #expect(!verify.timedOut, "\(context): verify hung")
            if listingMissed { figures.listingMissed += 1 }
            if verify.status == 1 {
                figures.verifyReported += 1
                if verify.output.contains("the scan crashed") { figures.verifyCrash += 1 }
            } else if readsAllRight && verify.status == 0 {
                figures.noEffect += 1
            } else {
                Issue.record(
                    Comment(
                        rawValue: "\(context): the reads \(readsAllRight ? "were right" : "failed") "
                            + "but verify exited \(verify.status): \(verify.output.suffix(400))")
                )
            }
        }
        print(
            "page damage: \(figures.flips) bytes flipped (\(figures.flips - figures.metaFlips) in tree pages, "
                + "\(figures.metaFlips) in meta pages): reads reported an error \(figures.readError), reads crashed "
                + "\(figures.readCrash), verify reported \(figures.verifyReported) (its scan crashed "
                + "\(figures.verifyCrash)), no effect \(figures.noEffect); listing of documents or snapshots silently "
                + "short or a snapshot lookup routed to an older one (known gaps, verify reported) \(figures.listingMissed)"
        )
    }

    /// A snapshot lookup that found an older snapshot than the template's, or none (`ok\tnone`,
    /// `ok\t<revision> <created> <hash>`).
    static func olderOrNoSnapshot(_ got: String, _ want: String?) -> Bool {
        func revision(_ answer: String) -> UInt64? {
            guard answer.hasPrefix("ok\t") else { return nil }
            return UInt64(answer.dropFirst(3).prefix { $0 != " " })
        }
        guard let want, got.hasPrefix("ok\t"), let wanted = revision(want) else { return false }
        guard let found = revision(got) else { return got == "ok\tnone" }
        return found < wanted
    }

    /// Two `info` answers that differ only in the snapshot list.
    static func sameExceptSnapshots(_ got: String, _ want: String?) -> Bool {
        guard let want, let cut = got.range(of: " snapshots "), let wantCut = want.range(of: " snapshots ") else { return false }
        return got[..<cut.lowerBound] == want[..<wantCut.lowerBound]
    }

    /// The first differing `;`-separated item of two answers.
    static func difference(_ got: String, _ want: String) -> String {
        let (gotItems, wantItems) = (got.split(separator: ";"), want.split(separator: ";"))
        for (index, (left, right)) in zip(gotItems, wantItems).enumerated() where left != right {
            return "item \(index): '\(left.prefix(300))' instead of '\(right.prefix(300))'"
        }
        return "\(gotItems.count) items instead of \(wantItems.count): '\(got.suffix(300))' instead of '\(want.suffix(300))'"
    }

    /// `name<TAB>result` lines of `oplog read-all`, by name.
    static func lines(_ output: String) -> [(name: String, result: String)] {
        // Only whole lines: a crash can cut the last one.
        output.split(separator: "\n", omittingEmptySubsequences: false).dropLast().compactMap { line -> (name: String, result: String)? in
            let parts = line.split(separator: "\t", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2 else { return nil }
            return (String(parts[0]), String(parts[1]))
        }
    }

    static func answers(_ output: String) -> [String: String] {
        Dictionary(lines(output).map { ($0.name, $0.result) }, uniquingKeysWith: { first, _ in first })
    }
}

/// The live pages of an LMDB 0.9 data file, found from the newest meta page's roots.
///
/// Layout (mdb.c, 64-bit): a page starts with `pgno u64, pad u16, flags u16, lower u16, upper u16`
/// (for overflow pages `lower|upper` is the page count, u32). Branch and leaf pages hold u16 node
/// offsets from byte 16 to `lower`, nodes from `upper` to the page end. A node is `lo u16, hi u16,
/// flags u16, ksize u16, key, data`; in a branch node `lo | hi << 16 | flags << 32` is the child
/// page; in a leaf `lo | hi << 16` is the data size, flag 1 means the data is an overflow page
/// number, flag 2 that it is a named database's `MDB_db`. The meta (at byte 16 of pages 0 and 1) is
/// `magic u32, version u32, address u64, mapsize u64, dbs[2] (MDB_db, 48 bytes each: pad u32,
/// flags u16, depth u16, branch u64, leaf u64, overflow u64, entries u64, root u64), last_pg u64,
/// txnid u64`; the page size is `dbs[0].pad`.
struct LMDBLayout {
    enum Kind: String { case branch, leaf, overflow }

    struct Page {
        var number: Int
        var kind: Kind
        /// Byte ranges (within the page) that LMDB reads: header, node offsets, nodes.
        var usedRanges: [Range<Int>]
    }

    let pageSize: Int
    let newestMeta: Int
    private(set) var pages: [Page] = []

    init?(_ data: [UInt8]) {
        func u16(_ at: Int) -> Int { Int(data[at]) | Int(data[at + 1]) << 8 }
        func u64(_ at: Int) -> Int { (0..<8).reduce(0) { $0 | Int(data[at + $1]) << (8 * $1) } }
        guard data.count >= 2 * 4096 else { return nil }
        let pageSize = Int(UInt32(truncatingIfNeeded: u64(16 + 24)))  // dbs[0].pad of meta 0
        guard pageSize >= 512, pageSize <= 65_536, data.count >= 2 * pageSize else { return nil }
        self.pageSize = pageSize
        let txnids = (0..<2).map { u64($0 * pageSize + 144) }
        newestMeta = txnids[1] > txnids[0] ? 1 : 0
        let mainRoot = u64(newestMeta * pageSize + 88 + 40)
        var seen: Set<Int> = []
        var pending: [Int] = mainRoot == -1 ? [] : [mainRoot]
        var isMain: Set<Int> = pending.isEmpty ? [] : [mainRoot]
        while let number = pending.popLast() {
            guard number >= 2, (number + 1) * pageSize <= data.count, seen.insert(number).inserted else { continue }
            let base = number * pageSize
            let flags = u16(base + 10)
            let lower = u16(base + 12)
            let upper = u16(base + 14)
            guard lower >= 16, lower <= upper, upper <= pageSize else { return nil }
            let branch = flags & 1 != 0
            var ranges = [0..<lower, upper..<pageSize]
            for slot in 0..<((lower - 16) / 2) {
                let node = base + u16(base + 16 + 2 * slot)
                let lo = u16(node)
                let hi = u16(node + 2)
                let nodeFlags = u16(node + 4)
                let keySize = u16(node + 6)
                if branch {
                    let child = lo | hi << 16 | nodeFlags << 32
                    pending.append(child)
                    if isMain.contains(number) { isMain.insert(child) }
                    continue
                }
                let dataAt = node + 8 + keySize
                if nodeFlags & 2 != 0, isMain.contains(number) {
                    let root = u64(dataAt + 40)
                    if root != -1 { pending.append(root) }
                } else if nodeFlags & 1 != 0 {
                    let first = u64(dataAt)
                    let size = lo | hi << 16
                    let count = (16 + size + pageSize - 1) / pageSize
                    for overflow in first..<(first + count) where (overflow + 1) * pageSize <= data.count {
                        let used = min(pageSize, 16 + size - (overflow - first) * pageSize)
                        if seen.insert(overflow).inserted {
                            pages.append(Page(number: overflow, kind: .overflow, usedRanges: [0..<max(16, used)]))
                        }
                    }
                }
            }
            ranges = ranges.filter { !$0.isEmpty }
            pages.append(Page(number: number, kind: branch ? .branch : .leaf, usedRanges: ranges))
        }
        // Overflow pages after the first of a run carry no header: only their data is used.
        pages.sort { $0.number < $1.number }
    }

    /// A random used byte of a random live page, with a description.
    func pageByte(_ random: inout SplitMix64) -> (Int, String) {
        let page = pages[Int(random.next() % UInt64(pages.count))]
        let total = page.usedRanges.reduce(0) { $0 + $1.count }
        var pick = Int(random.next() % UInt64(total))
        for range in page.usedRanges {
            if pick < range.count {
                return (
                    page.number * pageSize + range.lowerBound + pick,
                    "\(page.kind.rawValue) page \(page.number), byte \(range.lowerBound + pick)"
                )
            }
            pick -= range.count
        }
        return (page.number * pageSize, "\(page.kind.rawValue) page \(page.number)")
    }

    /// A random byte of a meta page's header and meta record (bytes 0..<152), newest meta half the time.
    func metaByte(_ random: inout SplitMix64) -> (Int, String) {
        let meta = random.next() % 2 == 0 ? newestMeta : 1 - newestMeta
        let byte = Int(random.next() % 152)
        return (meta * pageSize + byte, "\(meta == newestMeta ? "newest" : "older") meta page \(meta), byte \(byte)")
    }
}

/// Goal: LMDB silently opening the previous commit (its newest meta page damaged so that the older
/// one wins) loses nothing when the lost commit was a journal apply: the applied slot keeps its
/// records until the other slot is sealed, and the journal is a watermark kept outside data.mdb
/// (FORMAT.md, "Applying the journal"). Method: set the newest meta page's transaction ID to 0,
/// which LMDB 0.9 accepts and which makes it choose the older meta page, then open.
@Suite struct MetaRollbackTests {
    /// Makes LMDB open the commit before the newest one.
    static func rollBackNewestCommit(_ directory: String) throws {
        let path = directory + "/data.mdb"
        var data = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        let layout = try #require(LMDBLayout(data))
        for byte in 0..<8 { data[layout.newestMeta * layout.pageSize + 144 + byte] = 0 }
        try Data(data).write(to: URL(fileURLWithPath: path))
    }

    static var readOnlyOptions: StoreOptions {
        var options = testOptions()
        options.readOnly = true
        return options
    }

    static func isLostCommit(_ error: any Error) -> Bool {
        guard case .corruption(let location, let detail) = error as? OpLogError else { return false }
        return location.area == "lmdb" && detail.contains("lost committed transactions")
    }

    @Test func rolledBackApplyIsReplayedFromTheJournal() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        try await withStore(dir.path) { store async throws in
            _ = try await store.append([op(1), op(2)], to: doc("m"))
            try await store.checkpoint()  // the newest commit: the apply of record 1 (the close applies nothing)
        }
        try Self.rollBackNewestCommit(dir.path)
        for readOnly in [true, false] {
            var options = testOptions()
            options.readOnly = readOnly
            let store = try await OpLogStore.open(directory: dir.path, options: options)
            #expect(try store.head(of: doc("m")) == 2)
            #expect(try store.ops(of: doc("m"), from: 1).map(\.revision) == [1, 2])
            try await store.close()
        }
        try await withStore(dir.path) { store async throws in await #expect(try store.verify().isClean) }
        // Without the journal's records, the same rollback is detected: LMDB is behind the slots' base.
        try Self.rollBackNewestCommit(dir.path)
        try Journal.create(directory: dir.path, baseSequence: 2, mode: 0o600).close()
        #expect(performing: { try OpLogStore.open(directory: dir.path, options: testOptions()) }, throws: Self.isLostCommit)
    }

    /// Snapshot puts and document deletions are direct LMDB commits that do not move the journal's
    /// watermark, so losing one is not detected (FORMAT.md, "What damage does"). These tests pin
    /// that down; when the gap is closed they report that the known issue no longer occurs.
    @Test func rolledBackSnapshotPutIsNotDetected() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        try await withStore(dir.path) { store async throws in
            _ = try await store.append([op(1), op(2)], to: doc("m"))
            try await store.checkpoint()
            try await store.putSnapshot([7], of: doc("m"), at: 2)  // the newest commit
        }
        try Self.rollBackNewestCommit(dir.path)
        try await withStore(dir.path) { store async throws in
            #expect(try store.snapshot(of: doc("m")) == nil, "the rollback did not remove the snapshot: the test no longer rolls back")
        }
        withKnownIssue("a rolled-back snapshot commit is not detected (FORMAT.md, What damage does)") {
            _ = try OpLogStore.open(directory: dir.path, options: Self.readOnlyOptions)
            Issue.record("open succeeded without reporting the lost snapshot commit")
        }
    }

    @Test func rolledBackDeletionIsNotDetected() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        try await withStore(dir.path) { store async throws in
            _ = try await store.append([op(1), op(2)], to: doc("m"))
            try await store.deleteDocument(doc("m"))  // applies the journal, then the deletion commit
        }
        try Self.rollBackNewestCommit(dir.path)
        var reappeared: Revision = 0
        try await withStore(dir.path) { store async throws in reappeared = try store.head(of: doc("m")) }
        #expect(reappeared == 2, "the rollback did not bring the document back: the test no longer rolls back")
        withKnownIssue("a rolled-back deletion commit is not detected (FORMAT.md, What damage does)") {
            _ = try OpLogStore.open(directory: dir.path, options: Self.readOnlyOptions)
            Issue.record("open succeeded without reporting the lost deletion commit")
        }
    }
}
