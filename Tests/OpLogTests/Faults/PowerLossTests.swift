import Foundation
import OpLog
import OpLogStorage
import OpLogTestSupport
import OpLogText
import Testing

/// Goal: after power loss at any moment — inside a journal append, an LMDB commit (journal apply or
/// snapshot), a journal replacement or between acknowledgements — the `full` durability mode keeps
/// every acknowledged op at its revision, gap-free, and the store opens and verifies clean; the
/// `mayCorruptOnSystemCrash` mode is shown to lose or corrupt (proof that the harness can fail).
///
/// Method: `oplog-testkit power-child` runs under the fault layer, which logs every write and sync of the
/// store's files and each acknowledgement (a marker) in the order they returned. The test replays
/// the log into `SimulatedDisk`, picks crash moments at event boundaries across every kind of event,
/// builds several seeded post-crash images per moment (synced data kept; unsynced writes dropped,
/// kept or torn), and opens each with the real store. Seed: `OPLOG_SEED`; long run: `OPLOG_LONG_TESTS=1`.
@Suite(.serialized) struct PowerLossTests {
    struct Figures {
        var moments = 0
        var images = 0
        var unopenable = 0
        var verifyFailures = 0
        var ackedOpsLost = 0
        var imagesLosingAcks = 0
        var momentsByCategory: [String: Int] = [:]
        var faultsInjected = 0
        var childStatus: Int32 = 0
        var problems: [String] = []
        var failures: Int { unopenable + verifyFailures + imagesLosingAcks }
    }

    static let seed = ProcessInfo.processInfo.environment["OPLOG_SEED"].flatMap(UInt64.init) ?? UInt64.random(in: 1...UInt64.max)

    @Test(.enabled(if: FaultLayer.available, "needs oplog and libOpLogFaultInjection.so (swift build)"))
    func fullDurabilityKeepsEveryAcknowledgedOp() async throws {
        let figures = try await run(.full, moments: longTests ? 3_000 : 500, imagesPerMoment: longTests ? 6 : 4)
        #expect(figures.failures == 0, "seed \(Self.seed): \(figures.problems.prefix(5))")
        #expect(figures.moments >= 100 || longTests, "too few crash moments: the child wrote too little")
        #expect(figures.momentsByCategory.count >= 5, "crash moments did not cover every phase: \(figures.momentsByCategory)")
    }

    @Test(.enabled(if: FaultLayer.available, "needs oplog and libOpLogFaultInjection.so (swift build)"))
    func lastAppendsMayBeLostKeepsItsPromise() async throws {
        // Promised (StoreOptions.Durability): acknowledged appends and truncations since the last
        // apply may be lost, the store is never corrupted. (A snapshot put syncs the journal first,
        // so no snapshot can outlive the ops it covers.) Anything else is a failure.
        let figures = try await run(.lastAppendsMayBeLost, moments: longTests ? 500 : 100, imagesPerMoment: 2)
        #expect(figures.images > 0)
        #expect(figures.unopenable == 0, "seed \(Self.seed): \(figures.problems.prefix(5))")
        let promised = [" < acknowledged"]
        let unpromised = figures.problems.filter { problem in !promised.contains { problem.contains($0) } }
        #expect(unpromised.isEmpty, "seed \(Self.seed): \(unpromised.prefix(5))")
    }

    @Test(.enabled(if: FaultLayer.available, "needs oplog and libOpLogFaultInjection.so (swift build)"))
    func mayCorruptModeLosesAcknowledgedOps() async throws {
        let figures = try await run(.mayCorruptOnSystemCrash, moments: longTests ? 500 : 80, imagesPerMoment: 2, checkInChild: true)
        #expect(figures.failures > 0, "seed \(Self.seed): the mode that skips every sync lost nothing; the harness cannot see losses")
    }

    @Test(
        .enabled(if: FaultLayer.available, "needs oplog and libOpLogFaultInjection.so (swift build)"),
        arguments: [25, 90, 160])
    func failedSyncThenPowerLoss(failingSync: Int) async throws {
        // The Nth sync fails once: the child must stop acknowledging (reopenRequired), and the replay
        // treats that file's unsynced writes as lost. Every earlier ack must survive power loss.
        let figures = try await run(.full, moments: longTests ? 300 : 60, imagesPerMoment: 2, failure: "sync:\(failingSync):EIO:once")
        #expect(figures.failures == 0, "seed \(Self.seed): \(figures.problems.prefix(5))")
        #expect(figures.faultsInjected == 1, "the child made fewer than \(failingSync) syncs")
        #expect(figures.childStatus != 0, "the failed sync never reached the child as an error")
    }

    /// The version 1 → 2 upgrade (a writable open of the v1 fixture, whose journal holds unapplied
    /// records) interrupted at every logged call, with several images each: every image opens,
    /// verifies clean and holds exactly the fixture's contents.
    @Test(.enabled(if: FaultLayer.available, "needs oplog and libOpLogFaultInjection.so (swift build)"))
    func upgradeSurvivesPowerLossAtEveryStep() async throws {
        let manifest = try FixtureTests.manifest("v1")
        let dir = TemporaryDirectory("oplog-power-upgrade")
        defer { dir.remove() }
        let scratch = TemporaryDirectory("oplog-power-upgrade-log")
        defer { scratch.remove() }
        try FileManager.default.createDirectory(atPath: scratch.path, withIntermediateDirectories: true)
        try FixtureTests.copyFixture("v1", manifest, to: dir.path)
        var disk = try SimulatedDisk(directory: dir.path)
        let child = try FaultLayer.run(
            ["power-child", "--store", dir.path, "--durability", "full", "--open-only", "--ack-file", scratch.path + "/marker"],
            directory: dir.path, scratch: scratch.path, failure: nil)
        try #require(child.exited && child.status == 0, "power-child failed: \(child.output)")
        let events = try SyscallEvent.parse(child.log)
        let categories = Self.categorize(events, disk: disk)
        var random = SplitMix64(seed: Self.seed)
        var images = 0
        var problems: [String] = []
        var upgraded = 0
        for index in 0...events.count {
            for _ in 0..<3 {
                let files = disk.image(inProgress: index < events.count ? events[index] : nil, random: &random)
                images += 1
                let image = TemporaryDirectory("oplog-upgrade-image")
                defer { image.remove() }
                try FileManager.default.createDirectory(atPath: image.path, withIntermediateDirectories: true)
                for (name, bytes) in files {
                    try #require(FileManager.default.createFile(atPath: image.path + "/" + name, contents: Data(bytes)))
                }
                if files["journal"] == nil { upgraded += 1 }
                let clock = ManualClock(startingAt: manifest.writtenAtMilliseconds)
                do {
                    try await withStore(image.path, options: FixtureTests.options(clock: clock)) { store async throws in
                        try FixtureTests.check(store, manifest, label: "upgrade moment \(index) (\(categories[index]))")
                        let report = try await store.verify()
                        if !report.isClean { problems.append("moment \(index): \(report.problems.prefix(2))") }
                    }
                    // Once opened writable, the image is version 2.
                    if File.exists(image.path + "/journal") { problems.append("moment \(index): still version 1 after a writable open") }
                } catch {
                    problems.append("moment \(index) (\(categories[index])): \(error)")
                }
            }
            guard index < events.count else { break }
            disk.apply(events[index])
        }
        print(
            "upgrade power loss: seed \(Self.seed), \(events.count) logged calls, \(images) images, \(upgraded) already upgraded, "
                + "\(problems.count) problems")
        #expect(problems.isEmpty, "seed \(Self.seed): \(problems.prefix(5))")
        #expect(upgraded > 0 && upgraded < images, "the crash moments did not span the upgrade")
    }

    // MARK: - The harness

    func run(
        _ durability: Durability, moments budget: Int, imagesPerMoment: Int, failure: String? = nil, checkInChild: Bool = false
    ) async throws -> Figures {
        let started = Date()
        let dir = TemporaryDirectory("oplog-power")
        defer { dir.remove() }
        let scratch = TemporaryDirectory("oplog-power-log")
        defer { scratch.remove() }
        try FileManager.default.createDirectory(atPath: scratch.path, withIntermediateDirectories: true)
        // The store exists before the child starts: the log begins from a durable, closed store.
        let store = try await OpLogStore.open(directory: dir.path, options: imageOptions(durability))
        try await store.close()
        var disk = try SimulatedDisk(directory: dir.path)
        let child = try FaultLayer.run(
            [
                "power-child", "--store", dir.path, "--durability", durability.rawValue,
                "--appends", longTests ? "400" : "200", "--ack-file", scratch.path + "/marker",
            ],
            directory: dir.path, scratch: scratch.path, failure: failure)
        try #require(child.exited, "the child crashed (status \(child.status))")
        if failure == nil { #expect(child.status == 0, "power-child failed: \(child.output)") }
        let events = try SyscallEvent.parse(child.log)
        let categories = Self.categorize(events, disk: disk)
        let chosen = Self.chooseMoments(categories, budget: budget, seed: Self.seed)
        var figures = Figures()
        figures.faultsInjected = events.filter { $0.kind == .fault }.count
        figures.childStatus = child.status
        var acknowledged = Acknowledged()
        var random = SplitMix64(seed: Self.seed ^ UInt64(budget))
        for index in 0...events.count {
            if chosen.contains(index) {
                figures.moments += 1
                figures.momentsByCategory[categories[index], default: 0] += 1
                for image in 0..<imagesPerMoment {
                    let files = disk.image(inProgress: index < events.count ? events[index] : nil, random: &random)
                    try await check(
                        files, durability: durability, acknowledged: acknowledged, checkInChild: checkInChild,
                        label: "moment \(index) (\(categories[index])) image \(image)", figures: &figures)
                }
            }
            guard index < events.count else { break }
            let event = events[index]
            if event.kind == .marker { acknowledged.read(event.text) }
            disk.apply(event)
        }
        let seconds = Date().timeIntervalSince(started)
        print(
            """
            power loss [\(durability.rawValue)\(failure.map { ", fail \($0)" } ?? "")]: seed \(Self.seed), \(events.count) logged calls, \
            \(figures.moments) crash moments \(figures.momentsByCategory.sorted { $0.key < $1.key }), \(figures.images) images, \
            \(acknowledged.opCount) ops acknowledged in all, \(figures.ackedOpsLost) acked ops lost over \
            \(figures.imagesLosingAcks) images, \(figures.unopenable) did not open, \(figures.verifyFailures) failed verify, \
            \(figures.faultsInjected) faults injected, \(String(format: "%.1f", seconds)) s
            """)
        if durability != .full {
            // One example of each kind of problem: lost acks, refused opens, failed checks.
            for kind in [" < acknowledged", "open:", "verify exited", "stats exited", "verify:", "reading:", "wrong", "gap", "snapshot at"]
            {
                if let example = figures.problems.first(where: { $0.contains(kind) }) {
                    print("power loss [\(durability.rawValue)]: e.g. \(example)")
                }
            }
        }
        return figures
    }

    func imageOptions(_ durability: Durability) -> StoreOptions {
        var options = StoreOptions()
        options.durability = durability
        options.journalApplyBytes = 1 << 20
        options.mapSizeInitialBytes = 1 << 20
        return options
    }

    /// Writes the image, opens it with the real store and checks it against the acknowledgements.
    func check(
        _ files: [String: [UInt8]], durability: Durability, acknowledged: Acknowledged, checkInChild: Bool,
        label: String, figures: inout Figures
    ) async throws {
        figures.images += 1
        let dir = TemporaryDirectory("oplog-image")
        defer { dir.remove() }
        try FileManager.default.createDirectory(atPath: dir.path, withIntermediateDirectories: true)
        for (name, bytes) in files {
            try #require(FileManager.default.createFile(atPath: dir.path + "/" + name, contents: Data(bytes)))
        }
        func fail(_ problem: String) {
            if figures.problems.count < 5_000 { figures.problems.append("\(label): \(problem)") }
        }
        // LMDB trusts its file: an image of the mode that never syncs may crash a reader, so that
        // mode is verified in a child process first (`oplog verify` scans in a child of its own),
        // and opened for writing there too (`oplog stats`: recovery, then the journal's apply at
        // close, writes into the tree; an image that crashes that crashed this process once).
        if checkInChild {
            for (name, arguments) in [
                ("verify", ["verify", "--store", dir.path, "--no-replay"]), ("stats", ["stats", "--store", dir.path]),
            ] {
                let child = try CLITests.run(arguments)
                if child.status != 0 {
                    figures.unopenable += 1
                    figures.ackedOpsLost += acknowledged.opCount
                    fail("\(name) exited \(child.status)")
                    return
                }
            }
        }
        let store: OpLogStore
        do { store = try await OpLogStore.open(directory: dir.path, options: imageOptions(durability)) } catch {
            figures.unopenable += 1
            figures.ackedOpsLost += acknowledged.opCount
            fail("open: \(error)")
            return
        }
        var lost = 0
        var floorLost = false
        var damaged = false
        do {
            let report = try await store.verify()
            if !report.isClean {
                damaged = true
                for problem in report.problems.prefix(3) { fail("verify: \(problem)") }
            }
            for (name, ackedHead) in acknowledged.heads {
                let document = try DocumentID(name)
                let info = try store.info(of: document)
                let head = info?.head ?? 0
                let floor = info?.floor ?? 1
                if head < ackedHead {
                    lost += Int(ackedHead - head)
                    fail("\(name) head \(head) < acknowledged \(ackedHead)")
                }
                if floor < acknowledged.floors[name] ?? 1 {
                    floorLost = true
                    fail("\(name) floor \(floor) < acknowledged \(acknowledged.floors[name] ?? 1)")
                }
                // Snapshot commits are synced but not journaled: the watermark cannot notice their loss.
                let stored = Set(try store.snapshots(of: document).map(\.revision))
                let missing = acknowledged.snapshots[name, default: []].subtracting(stored)
                if !missing.isEmpty {
                    floorLost = true
                    fail("\(name) lost acknowledged snapshots \(missing.sorted())")
                }
                if let problem = try Self.checkContents(store, name, document, floor: floor, head: head) {
                    damaged = true
                    fail(problem)
                }
            }
        } catch {
            damaged = true
            fail("reading: \(error)")
        }
        try await store.close()
        if damaged { figures.verifyFailures += 1 }
        if lost > 0 || floorLost {
            figures.imagesLosingAcks += 1
            figures.ackedOpsLost += lost
        }
    }

    /// Every retained revision holds the workload's op for it, gap-free; the snapshot at floor − 1
    /// holds the workload's snapshot.
    static func checkContents(
        _ store: OpLogStore, _ name: String, _ document: DocumentID, floor: Revision, head: Revision
    ) throws -> String? {
        var next = floor
        while next <= head {
            let ops = try store.ops(of: document, from: next, limit: 1_000)
            guard let first = ops.first, first.revision == next else { return "\(name): gap at revision \(next)" }
            for (offset, op) in ops.enumerated()
            where op.revision != next + UInt64(offset)
                || op.payload != FaultWorkload.payload(document: name, revision: op.revision)
                || op.opID != FaultWorkload.opID(document: name, revision: op.revision)
            {
                return "\(name): revision \(next + UInt64(offset)) holds the wrong op"
            }
            next += UInt64(ops.count)
        }
        if floor > 1 {
            let snapshot = try store.snapshot(of: document, atOrBelow: floor - 1)
            guard snapshot?.revision == floor - 1, snapshot?.bytes == FaultWorkload.snapshot(document: name, revision: floor - 1) else {
                return "\(name): the snapshot at floor - 1 = \(floor - 1) is missing or wrong"
            }
        }
        return nil
    }

    /// Names the phase each event belongs to: the moment a crash interrupts it.
    static func categorize(_ events: [SyscallEvent], disk start: SimulatedDisk) -> [String] {
        var disk = start
        var names: [String] = []
        for event in events {
            let name = disk.name(of: event.inode) ?? ""
            let slot = Journal.slotFileNames.contains(name)
            switch event.kind {
            case .marker: names.append("between acks")
            case .write where slot && event.payload.count >= 4_096 && event.payload.allSatisfy({ $0 == 0 }):
                names.append("journal slot growth")
            case .write where slot, .sync where slot, .truncate where slot: names.append("journal append")
            case .write where name == "data.mdb" && event.synchronous: names.append("lmdb meta page")
            case .write where name == "data.mdb", .sync where name == "data.mdb": names.append("lmdb commit")
            case .open, .rename, .unlink, .write, .sync, .truncate: names.append("journal files")
            case .fault: names.append("fault")
            }
            disk.apply(event)
        }
        return names + ["after the last call"]
    }

    /// Spreads `budget` moments over the categories (equal shares, evenly spaced inside each).
    static func chooseMoments(_ categories: [String], budget: Int, seed: UInt64) -> Set<Int> {
        let groups = Dictionary(grouping: categories.indices, by: { categories[$0] })
        let share = max(1, budget / max(1, groups.count))
        var random = SplitMix64(seed: seed)
        var chosen: Set<Int> = []
        for (_, indices) in groups {
            if indices.count <= share {
                chosen.formUnion(indices)
                continue
            }
            let stride = Double(indices.count) / Double(share)
            let start = Double(random.next() % 1_000) / 1_000 * stride
            for step in 0..<share { chosen.insert(indices[min(indices.count - 1, Int(start + Double(step) * stride))]) }
        }
        return chosen
    }
}
