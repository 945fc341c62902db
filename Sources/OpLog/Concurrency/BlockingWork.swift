import Foundation

/// Runs blocking work (file I/O, long scans, replays) on threads of its own and hands the result
/// back to the awaiting task, so the store's `async` calls never block Swift's cooperative pool.
///
/// A small fixed pool, created on first use: open, backup, restore and verify are rare and long,
/// so threads are better kept than created per call. Thread safety: `jobs` is only touched under
/// `condition`.
final class BlockingWork: @unchecked Sendable {
    static let shared = BlockingWork(threads: 4)

    private let condition = NSCondition()
    private var jobs: [@Sendable () -> Void] = []

    private init(threads: Int) {
        for index in 0..<threads {
            let thread = Thread { [self] in runJobs() }
            thread.name = "oplog-blocking-\(index)"
            thread.start()
        }
    }

    /// Runs `body` on one of the pool's threads and returns what it returned or threw.
    func run<T: Sendable>(_ body: @escaping @Sendable () throws(OpLogError) -> T) async throws(OpLogError) -> T {
        let result: Result<T, OpLogError> = await withCheckedContinuation { continuation in
            condition.lock()
            jobs.append { continuation.resume(returning: Result { () throws(OpLogError) in try body() }) }
            condition.signal()
            condition.unlock()
        }
        return try result.get()
    }

    private func runJobs() {
        while true {
            condition.lock()
            while jobs.isEmpty { condition.wait() }
            let job = jobs.removeFirst()
            condition.unlock()
            job()
        }
    }
}
