import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The wall clock a store reads all of its time from.
///
/// Everything in OpLog that depends on the date goes through the store's clock
/// (`StoreOptions.clock`): the server time stamped on each op, the dedupe window, the creation time
/// of snapshots and of the store, and the compaction scheduler's age triggers, keep-durations and
/// waits. Latency figures and rate limits measure durations with a monotonic clock instead; they
/// never depend on the date.
///
/// Implementations must be safe to call from any thread. `now` should not go backwards, but OpLog
/// tolerates it: a document's server times never decrease whatever the clock says (an op is stamped
/// `max(now, the document's last server time)`).
public protocol StoreClock: Sendable {
    /// The current time in milliseconds since 1970-01-01 00:00 UTC.
    var now: Int64 { get }

    /// Suspends until `now` has reached `deadline` (milliseconds since 1970), or throws
    /// `CancellationError` when the calling task is cancelled first. Returns at once for a deadline
    /// in the past.
    func sleep(until deadline: Int64) async throws
}

/// The operating system's wall clock (`CLOCK_REALTIME`), optionally shifted by a fixed offset.
///
/// The default clock of every store. Tests shift it without touching the system clock by setting
/// `OPLOG_CLOCK_OFFSET_MILLISECONDS` (a signed integer) in the environment: the default clock adds
/// it to every reading, so a whole process — child processes included — runs as if it were that
/// far in the future or the past. Only this type reads that variable.
public struct SystemClock: StoreClock {
    /// Added to every reading of the system clock.
    public let offsetMilliseconds: Int64

    /// The name of the environment variable the default clock takes its offset from.
    public static let offsetVariable = "OPLOG_CLOCK_OFFSET_MILLISECONDS"

    /// A clock `offsetMilliseconds` ahead of the system clock (behind it when negative).
    public init(offsetMilliseconds: Int64) {
        self.offsetMilliseconds = offsetMilliseconds
    }

    /// The system clock, shifted by `OPLOG_CLOCK_OFFSET_MILLISECONDS` when that is set.
    public init() {
        self.init(offsetMilliseconds: Self.environmentOffset)
    }

    private static let environmentOffset: Int64 = {
        guard let text = getenv(offsetVariable).map({ String(cString: $0) }) else { return 0 }
        return Int64(text.trimmingPrefix("+")) ?? 0
    }()

    public var now: Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Int64(spec.tv_sec) * 1000 + Int64(spec.tv_nsec) / 1_000_000 + offsetMilliseconds
    }

    public func sleep(until deadline: Int64) async throws {
        // Re-read after each sleep: the system clock may be stepped while we wait.
        while true {
            let remaining = deadline - now
            if remaining <= 0 { return }
            try await Task.sleep(for: .milliseconds(remaining))
        }
    }
}

/// A clock that moves only when told to: for tests of time-bound behaviour without real waiting.
///
/// `advance(by:)` and `set(to:)` move it and resume every sleeper whose deadline has been reached,
/// before they return. Either may move it backwards (to test a clock that jumps back), which wakes
/// nobody.
public final class ManualClock: StoreClock {
    private struct Sleeper {
        let deadline: Int64
        let continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var now: Int64
        var sleepers: [UInt64: Sleeper] = [:]
        var nextToken: UInt64 = 0
    }

    private let state: Mutex<State>

    /// A clock standing at `start` milliseconds since 1970.
    public init(startingAt start: Int64) {
        state = Mutex(State(now: start))
    }

    public var now: Int64 { state.withLock { $0.now } }

    /// Tasks currently suspended in `sleep(until:)`.
    public var sleeperCount: Int { state.withLock { $0.sleepers.count } }

    /// Moves the clock by `milliseconds` (forward when positive) and wakes the sleepers now due.
    public func advance(by milliseconds: Int64) {
        move { $0 &+ milliseconds }
    }

    /// Sets the clock to `milliseconds` since 1970 and wakes the sleepers now due.
    public func set(to milliseconds: Int64) {
        move { _ in milliseconds }
    }

    private func move(_ change: (Int64) -> Int64) {
        let due: [CheckedContinuation<Void, any Error>] = state.withLock { state in
            state.now = change(state.now)
            let now = state.now
            let tokens = state.sleepers.filter { $0.value.deadline <= now }.map(\.key)
            return tokens.compactMap { state.sleepers.removeValue(forKey: $0)?.continuation }
        }
        for continuation in due { continuation.resume() }
    }

    public func sleep(until deadline: Int64) async throws {
        let token: UInt64 = state.withLock { state in
            defer { state.nextToken += 1 }
            return state.nextToken
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let resumeNow: (any Error)?? = state.withLock { state in
                    if Task.isCancelled { return .some(CancellationError()) }
                    if deadline <= state.now { return .some(nil) }
                    state.sleepers[token] = Sleeper(deadline: deadline, continuation: continuation)
                    return .none
                }
                switch resumeNow {
                case .none: break
                case .some(nil): continuation.resume()
                case .some(let error?): continuation.resume(throwing: error)
                }
            }
        } onCancel: {
            let cancelled = state.withLock { $0.sleepers.removeValue(forKey: token) }
            cancelled?.continuation.resume(throwing: CancellationError())
        }
    }
}
