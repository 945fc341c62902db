import ArgumentParser
import Foundation
import OpLog
import Synchronization

/// The change feed's targets (issue "The store as one stream"), measured on a real disk:
/// - catch-up: a consumer reading 10⁶ ops of retained history, ops/s (release, one consumer);
/// - live delivery: under 64 writer threads, each appending one 56-byte op at a time with a
///   durable sync per acknowledgement (W1's shape, with a snapshot and truncation every 500 ops of
///   a document), the time from an op's acknowledgement to its arrival at a live feed consumer;
/// - follower lag: a follower store on the same disk applying that feed throughout the run, the
///   time between the primary reaching a position and the follower holding it (sampled).
/// Write amplification with and without the feed is W1's (`workloads --engines oplog,oplog-feed`).
@main
struct FeedBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "feed-bench", abstract: "Change-feed catch-up, live delivery and follower lag.")

    @Option(help: "Parent of the store directories; a real disk.") var dir = "/var/tmp"
    @Option(help: "Ops of history the catch-up consumer reads.") var catchUpOps = 1_000_000
    @Option(help: "Seconds of the live phase.") var liveSeconds = 60
    @Option(help: "Writer threads of the live phase.") var writers = 64
    @Option(help: "Documents of the live phase.") var documents = 64
    @Flag(help: "Live phase without the follower (delivery alone).") var noFollower = false
    @Option(help: "Live phase: a snapshot and truncation every this many ops of a document (0: none).") var snapshotEvery = 500

    func run() async throws {
        let root = dir + "/oplog-feed-bench-\(getpid())"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        if catchUpOps > 0 { try await catchUp(root + "/catch-up") }
        if liveSeconds > 0 { try await live(root + "/primary", root + "/follower") }
    }

    static func payload(_ n: Int) -> [UInt8] {
        // 56 bytes, shaped like the traces' text patches.
        var text = Array("{\"p\":\(n % 100_000),\"d\":0,\"i\":\"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNO".utf8)
        text = Array(text.prefix(54)) + Array("\"}".utf8)
        return text
    }

    func catchUp(_ path: String) async throws {
        var options = StoreOptions()
        options.durability = .lastAppendsMayBeLost
        options.feedRetentionBytes = 768 << 20
        options.logger.logLevel = .warning
        let store = try await OpLogStore.open(directory: path, options: options)
        let batchOps = 1_024
        var written = 0
        while written < catchUpOps {
            let batch = (0..<16).map { part in  // 16 documents × 64 ops
                DocumentAppend(
                    document: try! DocumentID("doc-\(part)"),
                    ops: (0..<(batchOps / 16)).map { index in
                        let n = written + part * (batchOps / 16) + index
                        return NewOp(opID: OpID(high: 1, low: UInt64(n)), author: Array("a".utf8), payload: Self.payload(n))
                    })
            }
            _ = try await store.append(batch: batch)
            written += batchOps
        }
        try await store.checkpoint()
        let latest = try store.latestPosition()!
        for round in 1...3 {
            let started = ContinuousClock.now
            var ops = 0
            for try await change in try store.changes(after: nil) {
                for case .appended(_, let appended) in change.events { ops += appended.count }
                if change.position == latest { break }
            }
            let seconds = (ContinuousClock.now - started) / .seconds(1)
            print(
                #"{"figure":"catch-up","round":\#(round),"ops":\#(ops),"changes":\#(latest.sequence),"#
                    + #""seconds":\#(seconds),"opsPerSecond":\#(Int(Double(ops) / seconds))}"#
            )
        }
        try await store.close()
    }

    func live(_ primaryPath: String, _ followerPath: String) async throws {
        var options = StoreOptions()
        options.feedRetentionBytes = 256 << 20
        options.logger.logLevel = .warning
        let primary = try await OpLogStore.open(directory: primaryPath, options: options)
        var followerOptions = options
        followerOptions.role = .follower
        let follower = try await OpLogStore.open(directory: followerPath, options: followerOptions)
        let capacity = 1 << 20
        let ackTimes = UnsafeTimes(count: writers * capacity)
        let seenTimes = UnsafeTimes(count: writers * capacity)
        let counts = Locked([Int](repeating: 0, count: writers))
        let start = try primary.latestPosition()
        let stop = Locked(false)
        let origin = DispatchTime.now().uptimeNanoseconds
        let now: @Sendable () -> UInt64 = { DispatchTime.now().uptimeNanoseconds - origin }

        // The live consumer: records when each op arrives.
        let watcher = Task {
            for try await change in try primary.changes(after: start) {
                let at = now()
                for case .appended(_, let ops) in change.events {
                    for op in ops where op.opID.high >= 100 { seenTimes.set(Int(op.opID.high - 100) * capacity + Int(op.opID.low), at) }
                }
                if stop.withLock({ $0 }) && change.position == (try? primary.latestPosition()) { break }
            }
        }
        // The follower: a reader filling a buffer, an applier taking all of it per apply.
        let buffer = Locked<[Change]>([])
        let (signals, signal) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let reader = Task {
            for try await change in try primary.changes(after: start) {
                buffer.withLock { $0.append(change) }
                signal.yield()
            }
        }
        let applier = Task {
            for await _ in signals {
                while true {
                    let batch = buffer.withLock { pending -> [Change] in
                        let taken = Array(pending.prefix(Limits.changesPerApplyMax))
                        pending.removeFirst(taken.count)
                        return taken
                    }
                    if batch.isEmpty { break }
                    if noFollower { continue }
                    try await follower.apply(contentsOf: batch)
                }
            }
        }
        // Lag samples every 20 ms: (time, primary's newest, follower's newest).
        let samples = Locked<[(UInt64, UInt64, UInt64)]>([])
        let sampler = Thread {
            while !stop.withLock({ $0 }) {
                let p = (try? primary.latestPosition()?.sequence) ?? 0
                let f = (try? follower.latestPosition()?.sequence) ?? 0
                let at = now()
                samples.withLock { $0.append((at, p, f)) }
                usleep(20_000)
            }
        }
        sampler.start()
        // The writers.
        let deadline = now() + UInt64(liveSeconds) * 1_000_000_000
        let group = DispatchGroup()
        for writer in 0..<writers {
            group.enter()
            let thread = Thread {
                defer { group.leave() }
                let document = try! DocumentID("live-\(writer % documents)")
                var n = 0
                while now() < deadline && n < capacity {
                    let op = NewOp(
                        opID: OpID(high: UInt64(100 + writer), low: UInt64(n)), author: Array("w".utf8), payload: Self.payload(n))
                    guard let result = try? primary.appendBlocking([op], to: document) else { continue }
                    ackTimes.set(writer * capacity + n, now())
                    n += 1
                    // W1's compaction shape: a snapshot and truncation every 500 ops of a document.
                    if snapshotEvery > 0, let head = result.revisions.last, head % UInt64(snapshotEvery) == 0 {
                        let done = DispatchSemaphore(value: 0)
                        Task {
                            try? await primary.putSnapshot(Array(repeating: 0x61, count: 2_048), of: document, at: head)
                            try? await primary.truncate(document, below: head + 1)
                            done.signal()
                        }
                        done.wait()
                    }
                }
                counts.withLock { $0[writer] = n }
            }
            thread.stackSize = 1 << 20
            thread.start()
        }
        group.wait()
        stop.withLock { $0 = true }
        try await primary.checkpoint()
        let target = try primary.latestPosition()!.sequence
        while !noFollower, (try follower.latestPosition()?.sequence ?? 0) < target { try await Task.sleep(for: .milliseconds(20)) }
        let drained = now()
        watcher.cancel()
        reader.cancel()
        signal.finish()
        applier.cancel()
        _ = await watcher.result
        _ = await reader.result
        _ = await applier.result

        // Delivery after acknowledgement.
        var delays: [Int64] = []
        let perWriter = counts.withLock { $0 }
        for writer in 0..<writers {
            for n in 0..<perWriter[writer] {
                let ack = ackTimes.get(writer * capacity + n)
                let seen = seenTimes.get(writer * capacity + n)
                if seen > 0 { delays.append(Int64(seen) - Int64(ack)) }
            }
        }
        delays.sort()
        let total = perWriter.reduce(0, +)
        func percentile(_ p: Double) -> Int64 { delays.isEmpty ? 0 : delays[min(delays.count - 1, Int(Double(delays.count) * p))] }
        let beforeAck = delays.filter { $0 <= 0 }.count
        print(
            #"{"figure":"live","writers":\#(writers),"seconds":\#(liveSeconds),"ops":\#(total),"opsPerSecond":\#(total / liveSeconds),"#
                + #""delivered":\#(delays.count),"deliveredBeforeAck":\#(beforeAck),"#
                + #""p50Microseconds":\#(percentile(0.5) / 1000),"p99Microseconds":\#(percentile(0.99) / 1000),"#
                + #""maxMicroseconds":\#(delays.last.map { $0 / 1000 } ?? 0)}"#
        )
        // Follower lag: at each sample, how long ago the primary had reached the follower's position.
        let taken = samples.withLock { $0 }
        var maxLag: UInt64 = 0
        var lags: [UInt64] = []
        var cursor = 0
        for (at, _, followed) in taken {
            while cursor < taken.count && taken[cursor].1 < followed { cursor += 1 }
            let reached = cursor < taken.count ? taken[cursor].0 : at
            let lag = at > reached ? at - reached : 0
            lags.append(lag)
            maxLag = max(maxLag, lag)
        }
        lags.sort()
        let p99Lag = lags.isEmpty ? 0 : lags[min(lags.count - 1, Int(Double(lags.count) * 0.99))]
        print(
            #"{"figure":"follower-lag","samples":\#(taken.count),"maxLagMilliseconds":\#(maxLag / 1_000_000),"#
                + #""p99LagMilliseconds":\#(p99Lag / 1_000_000),"#
                + #""drainMilliseconds":\#((drained - deadline) / 1_000_000),"positions":\#(target)}"#)
        let identical = try follower.latestPosition() == primary.latestPosition()
        print(#"{"figure":"follower-check","samePosition":\#(identical),"followerWriter":"\#(follower.writerCounters().groupCommits)"}"#)
        try await follower.close()
        try await primary.close()
    }
}

/// A fixed array of times written by many threads, each slot by one: no lock needed.
final class UnsafeTimes: @unchecked Sendable {
    private let pointer: UnsafeMutablePointer<UInt64>
    init(count: Int) {
        pointer = .allocate(capacity: count)
        pointer.initialize(repeating: 0, count: count)
    }
    func set(_ index: Int, _ value: UInt64) { pointer[index] = value }
    func get(_ index: Int) -> UInt64 { pointer[index] }
}

/// A value behind a lock, shareable by closures (a `Mutex` cannot be captured).
final class Locked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>
    init(_ value: Value) { mutex = Mutex(value) }
    func withLock<T: Sendable>(_ body: (inout Value) -> T) -> T { mutex.withLock { body(&$0) } }
}
