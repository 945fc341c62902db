import Foundation
import OpLog
import OpLogTestSupport
import OpLogText
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Goal: a follower killed at any moment (SIGKILL) while it applies its primary's feed loses
/// nothing it acknowledged and never holds half a change. Method: the primary's changes go to a
/// file; `oplog-testkit follower-child` applies them one `apply` each and reports each on a pipe;
/// the parent kills it after a random delay (seed printed), reopens the follower and compares it
/// with a reference follower that applied exactly the positions the killed one holds (so a kill
/// between a snapshot's LMDB commit and its marker, which the open completes, is checked as
/// well); the next child resumes where the follower stands. At the end the follower equals the
/// primary.
@Suite struct FollowerCrashTests {
    @Test(.enabled(if: CLITests.testKit != nil, "needs the built oplog-testkit executable"))
    func killedFollowerHoldsExactlyAPrefixOfThePrimarysHistory() async throws {
        let seed = testSeed()
        let kills = longTests ? 1_000 : 25
        let primaryDirectory = TemporaryDirectory("oplog-crash-primary")
        let followerDirectory = TemporaryDirectory("oplog-crash-follower")
        let referenceDirectory = TemporaryDirectory("oplog-crash-reference")
        defer {
            primaryDirectory.remove()
            followerDirectory.remove()
            referenceDirectory.remove()
        }
        let (changes, primaryContents) = try await withStore(primaryDirectory.path, options: FeedTests.feedOptions()) {
            primary async throws in
            for round in 0..<10 {
                try await FollowerTests.makeHistory(primary, seed: seed &+ UInt64(round), idBase: UInt64(round) * 100_000)
            }
            return (try await FeedTests.readAll(primary), try FollowerTests.contents(primary))
        }
        var file: [UInt8] = []
        for change in changes {
            let bytes = try change.encode()
            file += withUnsafeBytes(of: UInt32(bytes.count).littleEndian) { Array($0) } + bytes
        }
        let changesPath = primaryDirectory.path + "-changes.bin"
        try Data(file).write(to: URL(fileURLWithPath: changesPath))
        defer { try? FileManager.default.removeItem(atPath: changesPath) }
        var random = SplitMix64(seed: seed)
        var acknowledged: UInt64 = 0
        var survived = 0
        var finished = false
        for kill in 0..<kills where !finished {
            let (process, output) = try launchTestKit(["follower-child", "--store", followerDirectory.path, "--changes", changesPath])
            usleep(useconds_t((30 + Int(random.next() % 100)) * 1000))
            Glibc.kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            let lines = String(decoding: output.waitForEnd(), as: UTF8.self).split(separator: "\n").dropLast().map(String.init)
            for line in lines where line.hasPrefix("applied ") { acknowledged = max(acknowledged, UInt64(line.dropFirst(8)) ?? 0) }
            finished = lines.contains("done")
            var options = FollowerTests.followerOptions()
            options.logger.logLevel = .error
            let held = try await withStore(followerDirectory.path, options: options) { follower async throws in
                let latest = try follower.latestPosition()?.sequence ?? 0
                #expect(latest >= acknowledged, "seed \(seed) kill \(kill): the follower holds \(latest), acknowledged \(acknowledged)")
                #expect(try await follower.verify().problems.isEmpty, "seed \(seed) kill \(kill)")
                return (latest, try FollowerTests.contents(follower))
            }
            // The reference: a fresh follower given exactly the positions the killed one holds.
            referenceDirectory.remove()
            let reference = try await withStore(referenceDirectory.path, options: options) { reference async throws in
                try await reference.apply(contentsOf: Array(changes[..<Int(held.0)]))
                return try FollowerTests.contents(reference)
            }
            // Before its first change a follower has a lineage of its own, unlike the reference's.
            if held.0 > 0 {
                #expect(held.1 == reference, "seed \(seed) kill \(kill): the follower at \(held.0) differs from its reference")
            }
            if lines.count > 0 { survived += 1 }
        }
        try await withStore(followerDirectory.path, options: FollowerTests.followerOptions()) { follower async throws in
            let latest = Int(try follower.latestPosition()?.sequence ?? 0)
            try await follower.apply(contentsOf: Array(changes[latest...]))
            #expect(try FollowerTests.contents(follower) == primaryContents, "seed \(seed): the follower differs from its primary")
        }
        print("follower crash test: seed \(seed), \(changes.count) changes, \(survived) kills after progress, acknowledged \(acknowledged)")
        #expect(acknowledged > 0, "the children applied nothing: the kills proved nothing")
    }
}
