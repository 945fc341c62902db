import Foundation
import Synchronization

/// How long a test or harness waits for something before calling it a hang. Only a bound against
/// hangs: nothing relies on anything taking less, so a loaded machine makes tests slower, never
/// failing.
package let hangBoundSeconds: Double = 600

/// Runs an executable with this process's environment plus `environment` (nil removes a variable),
/// killing it after `timeoutSeconds`; returns its exit status (or signal), whether it died by a
/// signal, and its standard output (and error, `withErrors`).
package func runProcess(
    _ path: String, _ arguments: [String], environment extra: [String: String?] = [:], timeoutSeconds: Double = hangBoundSeconds,
    withErrors: Bool = true
) throws -> (status: Int32, signaled: Bool, timedOut: Bool, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    var environment = ProcessInfo.processInfo.environment
    environment["SWIFT_BACKTRACE"] = "enable=no"
    for (name, value) in extra { environment[name] = value }
    process.environment = environment
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = withErrors ? pipe : FileHandle.nullDevice
    try process.run()
    let deadline = DispatchTime.now() + timeoutSeconds
    let timedOut = DispatchQueue.global().asyncAfterTimer(deadline) { kill(process.processIdentifier, SIGKILL) }
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    let fired = timedOut.cancelAndReport()
    return (process.terminationStatus, process.terminationReason == .uncaughtSignal, fired, String(decoding: data, as: UTF8.self))
}

/// A one-shot timer whose firing can be cancelled and queried.
package final class KillTimer: @unchecked Sendable {
    // Invariant: `fired` and `cancelled` are only touched under `lock`.
    private let lock = NSLock()
    private var fired = false
    private var cancelled = false

    package func fire(_ action: () -> Void) {
        lock.lock()
        defer { lock.unlock() }
        if cancelled { return }
        fired = true
        action()
    }

    /// Cancels the timer; returns whether it had already fired.
    package func cancelAndReport() -> Bool {
        lock.lock()
        defer { lock.unlock() }
        cancelled = true
        return fired
    }
}

extension DispatchQueue {
    package func asyncAfterTimer(_ deadline: DispatchTime, _ action: @escaping @Sendable () -> Void) -> KillTimer {
        let timer = KillTimer()
        asyncAfter(deadline: deadline) { timer.fire(action) }
        return timer
    }
}

/// Collects what a child process writes to a pipe while it runs, on a thread of its own that
/// blocks in `read(2)` until end of file (every write end closed: the child exited or was killed).
///
/// Not `FileHandle.readabilityHandler`: its dispatch source watches the descriptor through
/// libdispatch's epoll loop, keeps firing at end of file, and a handle released while it is
/// registered leaves epoll watching a descriptor number that the next `open` reuses — the
/// suite crashed in `_dispatch_event_loop_drain` that way. Here the thread holds the handle, so
/// its descriptor cannot close before the reads end.
package final class PipeCollector: @unchecked Sendable {
    // Invariant: `collected` is only touched under its mutex; `handle` is read only by the
    // reading thread, and outlives it (the thread holds `self`).
    private let handle: FileHandle
    private let collected = Mutex<[UInt8]>([])
    private let ended = DispatchSemaphore(value: 0)

    /// Starts reading `handle` (a pipe's read end) at once.
    package init(_ handle: FileHandle) {
        self.handle = handle
        let thread = Thread { [self] in readToEnd() }
        thread.name = "test-pipe-reader"
        thread.start()
    }

    /// The bytes read so far.
    package var bytes: [UInt8] { collected.withLock { $0 } }

    /// Waits for end of file and returns everything read.
    package func waitForEnd() -> [UInt8] {
        ended.wait()
        ended.signal()
        return bytes
    }

    private func readToEnd() {
        let descriptor = handle.fileDescriptor
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count > 0 {
                collected.withLock { $0 += buffer[0..<count] }
            } else if count < 0 && errno == EINTR {
                continue
            } else {
                break
            }
        }
        ended.signal()
    }
}
