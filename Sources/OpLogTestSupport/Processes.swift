import Foundation

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
