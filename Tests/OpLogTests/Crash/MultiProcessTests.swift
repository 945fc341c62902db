import Foundation
import OpLog
import OpLogTestSupport
import Synchronization
import Testing

/// Goal: other processes on a live store: a reader process sees every op acknowledged before it
/// opened; a second writer process is refused with a typed error, never corrupting anything; a
/// killed process's LMDB reader slot is cleared on the next open.
@Suite struct MultiProcessTests {
    /// Starts `oplog` with arguments, collecting its standard output until stopped.
    final class Child: Sendable {
        let process: Process
        let output: PipeCollector

        init(_ arguments: [String]) throws {
            (process, output) = try launchTestKit(arguments)
        }

        /// Complete lines only: a kill may cut the last one.
        var lines: [String] {
            let text = String(decoding: output.bytes, as: UTF8.self)
            let lines = text.split(separator: "\n").map(String.init)
            return text.hasSuffix("\n") ? lines : Array(lines.dropLast())
        }

        func waitFor(_ predicate: ([String]) -> Bool, seconds: Double = hangBoundSeconds) -> Bool {
            let deadline = ContinuousClock.now + .seconds(seconds)
            while ContinuousClock.now < deadline {
                if predicate(lines) { return true }
                usleep(10_000)
            }
            return false
        }

        func kill() {
            Foundation.kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    @Test(.enabled(if: CLITests.testKit != nil, "needs the built oplog executable"))
    func readerProcessSeesAcknowledgedOpsAndSecondWriterIsRefused() async throws {
        let dir = TemporaryDirectory("oplog-processes")
        defer { dir.remove() }
        // Enough patches that the child is still appending when the loop below ends (it exits once
        // done, releasing the lock the second-writer check relies on): 800,000 ops.
        let writer = try Child(["crash-child", "--store", dir.path, "--documents", "2", "--patches", "400000"])
        defer { writer.kill() }
        #expect(writer.waitFor { $0.count > 500 }, "the writer process acknowledged nothing")
        for _ in 0..<5 {
            // Everything acknowledged before this process opened the store must be visible.
            var acknowledged: [String: Revision] = [:]
            for line in writer.lines {
                let parts = line.split(separator: " ")
                if parts.count == 3, let revision = Revision(parts[2]) {
                    acknowledged[String(parts[1])] = max(acknowledged[String(parts[1])] ?? 0, revision)
                }
            }
            var options = StoreOptions()
            options.readOnly = true
            let reader = try await OpLogStore.open(directory: dir.path, options: options)
            for (document, revision) in acknowledged {
                let head = try reader.head(of: try DocumentID(document))
                #expect(head >= revision, "\(document): head \(head) in the reader, \(revision) acknowledged before it opened")
                // The child's scheduler may have truncated below `revision` since: read from the floor.
                let floor = try reader.info(of: try DocumentID(document))?.floor ?? 1
                var from = max(floor, revision > 5 ? revision - 5 : 1)
                let id = try DocumentID(document)
                var ops: [StoredOp] = []
                for _ in 0..<3 {
                    do {
                        ops = try reader.ops(of: id, from: from, limit: 5)
                        break
                    } catch {
                        // Truncated by the writer process since this reader opened: LMDB's floor is past the view's.
                        guard case .belowFloor(_, _, let newFloor, _) = error else { throw error }
                        from = max(newFloor, from)
                    }
                }
                #expect(ops.last?.revision ?? 0 >= min(revision, from))
            }
            try await reader.close()
            // A second writer process is refused, whatever the first one is doing.
            #expect(throws: OpLogError.lockedByAnotherProcess(path: dir.path)) { try OpLogStore.open(directory: dir.path) }
            usleep(50_000)
        }
        writer.kill()
        // After the writer dies the store opens for writing and is intact.
        try await withStore(dir.path, options: StoreOptions()) { store async throws in
            await #expect(try store.verify().isClean)
        }
    }

    @Test(.enabled(if: CLITests.testKit != nil, "needs the built oplog executable"))
    func killedProcessReaderSlotIsCleared() async throws {
        let dir = TemporaryDirectory("oplog-reader-slot")
        defer { dir.remove() }
        try await withStore(dir.path) { store async throws in _ = try await store.append([op(1)], to: doc("d")) }
        // A process that stays keeps the environment open, so LMDB does not reset its reader table
        // at the next open (it does when no process has it open); the killed one leaves a slot.
        let survivor = try Child(["hold-reader", "--store", dir.path])
        defer { survivor.kill() }
        let victim = try Child(["hold-reader", "--store", dir.path])
        #expect(survivor.waitFor { $0.contains("holding") } && victim.waitFor { $0.contains("holding") })
        victim.kill()
        try await withStore(dir.path) { store async throws in
            #expect(try store.statistics().staleReadersClearedAtOpen == 1)
        }
    }
}
