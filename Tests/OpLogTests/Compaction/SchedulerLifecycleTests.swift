import Foundation
import Logging
import OpLog
import OpLogTestSupport
import OpLogText
import ServiceLifecycle
import Synchronization
import Testing

/// Goal: the compaction scheduler's lifecycle never hangs, whatever fails.
@Suite struct SchedulerLifecycleTests {
    /// Whether `body` returns within a generous bound. A hung body is left behind (its task is
    /// unstructured), so a hang fails this test instead of stalling the whole run.
    static func completes(within seconds: Int, _ body: @escaping @Sendable () async -> Void) async -> Bool {
        let outcome = FirstOutcome()
        return await withCheckedContinuation { continuation in
            outcome.set(continuation)
            Task {
                await body()
                outcome.finish(true)
            }
            Task {
                try? await Task.sleep(for: .seconds(seconds))
                outcome.finish(false)
            }
        }
    }

    /// Resumes a continuation once, with whichever outcome comes first.
    final class FirstOutcome: Sendable {
        private let continuation = Mutex<CheckedContinuation<Bool, Never>?>(nil)
        func set(_ value: CheckedContinuation<Bool, Never>) { continuation.withLock { $0 = value } }
        func finish(_ value: Bool) { continuation.withLock { $0.take() }?.resume(returning: value) }
    }

    @Test func stopReturnsAfterAFailedStart() async throws {
        // Method: the store is closed before start(), so start()'s scan of existing documents
        // throws; stop() must then return (it used to wait for a thread that never started).
        let dir = TemporaryDirectory("oplog-scheduler-start")
        defer { dir.remove() }
        let store = try await OpLogStore.open(directory: dir.path, options: testOptions())
        _ = try await store.append([op(1)], to: doc("a"))
        let scheduler = try CompactionScheduler(store: store, policy: CompactionPolicy(), reducer: TextReducer())
        try await store.close()
        #expect(throws: OpLogError.closed) { try scheduler.start() }
        let stopped = await Self.completes(within: Int(hangBoundSeconds)) { await scheduler.stop() }
        #expect(stopped, "stop() did not return within the hang bound after start() failed")
    }

    @Test func aServiceGroupRunsTheSchedulerAndShutsItDownGracefully() async throws {
        // Method: the scheduler runs as a service next to nothing else; it compacts what is due,
        // then graceful shutdown ends its run() after the step in progress, within the bound.
        let dir = TemporaryDirectory("oplog-scheduler-service")
        defer { dir.remove() }
        let store = try await OpLogStore.open(directory: dir.path, options: testOptions())
        var policy = CompactionPolicy()
        policy.snapshotEveryOps = 2
        let scheduler = try CompactionScheduler(store: store, policy: policy, reducer: TextReducer())
        let group = ServiceGroup(configuration: .init(services: [scheduler], logger: Logger(label: "test")))
        let running = Task { try await group.run() }
        let patch = TextPatch(position: 0, deleted: 0, inserted: "x").jsonBytes()
        _ = try await store.append(
            [
                NewOp(opID: OpID(high: 1, low: 1), author: [], payload: patch),
                NewOp(opID: OpID(high: 1, low: 2), author: [], payload: patch),
            ], to: doc("d"))
        try await waitUntil("the service's first snapshot") { try !store.snapshots(of: doc("d")).isEmpty }
        await group.triggerGracefulShutdown()
        let ended = await Self.completes(within: Int(hangBoundSeconds)) { _ = try? await running.value }
        #expect(ended, "run() did not return after graceful shutdown")
        // A scheduler runs once.
        await #expect(throws: OpLogError.self) { try await scheduler.run() }
        try await store.close()
    }
}
