import Foundation
import OpLogTestSupport
import OpLogText
import Testing

/// Goal: the power-loss model itself is right, since a lenient model would let PowerLossTests pass
/// without proving anything. Method: hand-written system-call logs; over many seeded images, synced
/// bytes must always be there, unsynced bytes sometimes and sometimes not, O_DSYNC writes always,
/// writes before a failed sync never, names only after a directory fsync, and a reused inode number
/// must not carry the old file's bytes.
@Suite struct SimulatedDiskTests {
    func event(_ kind: SyscallEvent.Kind, _ inode: UInt64, flags: UInt32 = 0, offset: UInt64 = 0, _ payload: String = "") -> SyscallEvent {
        SyscallEvent(kind: kind, flags: flags, inode: inode, offset: offset, payload: Array(payload.utf8)[...])
    }

    /// Images of `events` over 64 seeds.
    func images(_ events: [SyscallEvent]) throws -> [[String: [UInt8]]] {
        let dir = TemporaryDirectory("oplog-disk-model")
        defer { dir.remove() }
        try FileManager.default.createDirectory(atPath: dir.path, withIntermediateDirectories: true)
        var disk = try SimulatedDisk(directory: dir.path)
        for event in events { disk.apply(event) }
        var random = SplitMix64(seed: 7)
        return (0..<64).map { _ in disk.image(inProgress: nil, random: &random) }
    }

    /// The directory (inode 1) and `journal` (inode 10), created and made durable.
    var created: [SyscallEvent] {
        [event(.open, 1), event(.open, 10, flags: 1, "journal"), event(.write, 10, "durable"), event(.sync, 10), event(.sync, 1)]
    }

    @Test func syncedKeptUnsyncedEitherWay() throws {
        let results = try images(created + [event(.write, 10, offset: 7, "+pending")]).map {
            String(decoding: $0["journal"] ?? [], as: UTF8.self)
        }
        #expect(results.allSatisfy { $0.hasPrefix("durable") })
        #expect(results.contains("durable"))
        #expect(results.contains("durable+pending"))
    }

    @Test func synchronousDescriptorWritesAreDurable() throws {
        let results = try images(created + [event(.write, 10, flags: 2, offset: 7, "+dsync")])
        #expect(results.allSatisfy { $0["journal"] == Array("durable+dsync".utf8) })
    }

    @Test func failedSyncLosesUnsyncedWrites() throws {
        let events = created + [event(.write, 10, offset: 7, "+lost"), event(.sync, 10, flags: 1, offset: 5), event(.sync, 10)]
        #expect(try images(events).allSatisfy { $0["journal"] == Array("durable".utf8) })
    }

    @Test func namesNeedADirectorySync() throws {
        let unsynced = try images([event(.open, 1), event(.open, 10, flags: 1, "journal"), event(.write, 10, "x"), event(.sync, 10)])
        #expect(unsynced.contains { $0["journal"] == nil })
        #expect(unsynced.contains { $0["journal"] == Array("x".utf8) })
        #expect(try images(created).allSatisfy { $0["journal"] == Array("durable".utf8) })
    }

    @Test func reusedInodeNumberIsANewFile() throws {
        // journal.new (11) replaces journal (10), then the next journal.new reuses inode number 10.
        let events =
            created + [
                event(.open, 11, flags: 1, "journal.new"), event(.write, 11, "header"), event(.sync, 11),
                event(.rename, 0, "journal.new\0journal"), event(.sync, 1),
                event(.open, 10, flags: 1, "journal.new"), event(.write, 10, "next"),
            ]
        let results = try images(events)
        #expect(results.allSatisfy { $0["journal"] == Array("header".utf8) })
        #expect(results.allSatisfy { $0["journal.new"] == nil || $0["journal.new"] == Array("next".utf8) || $0["journal.new"] == [] })
    }
}
