import CSyncCeiling
import Foundation

/// The sync ceiling of the disk under `--dir`: how many durable 100-byte acknowledgements per
/// second a plain C loop gets, one `fdatasync` each, with no engine in the way.
///
/// Two loops, in one fresh directory each time: into a preallocated file (zeros written and fsynced
/// first, so a sync flushes data only: the best case a log on this disk can reach) and appending to
/// a growing file (each sync also commits the new file size through the filesystem's journal: what
/// a log that grows by appending pays, as RocksDB's and LevelDB's WALs do). An engine's one-writer
/// appends/s divided by these rates says how close it gets to the disk.
struct SyncCeiling {
    /// Its name in `--workload` and in the `workload` field of its JSON line.
    static let workloadName = "sync-ceiling"
    /// When it was measured: `before` / `after` the engine runs, or `alone` (`--workload sync-ceiling`).
    var phase: String
    var syncs: Int
    var recordBytes: Int
    var preallocatedPerSecond: Double
    var growingPerSecond: Double

    /// Runs both loops (`syncs` rounds of `recordBytes` each) in a fresh directory under `parent`,
    /// removed afterwards.
    static func measure(phase: String, in parent: String, syncs: Int, recordBytes: Int = 100) throws -> SyncCeiling {
        let directory = try StoreDirectory.makeUnique(in: parent, prefix: "sync-ceiling")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        func rate(_ file: String, preallocate: Bool) throws -> Double {
            let result = sync_ceiling_run(directory + "/" + file, Int32(syncs), Int32(recordBytes), preallocate ? 1 : 0)
            guard result.error == 0 else {
                let call = result.failed_call.map { String(cString: $0) } ?? "?"
                throw WorkloadError("sync ceiling (\(file)): \(call) failed: \(String(cString: strerror(result.error)))")
            }
            return Double(syncs) / (Double(result.nanoseconds) / 1e9)
        }
        let ceiling = SyncCeiling(
            phase: phase, syncs: syncs, recordBytes: recordBytes,
            preallocatedPerSecond: try rate("preallocated", preallocate: true),
            growingPerSecond: try rate("growing", preallocate: false))
        progress(
            "sync ceiling (\(phase)): preallocated \(Int(ceiling.preallocatedPerSecond)) syncs/s, "
                + "growing \(Int(ceiling.growingPerSecond)) syncs/s (\(syncs) syncs of \(recordBytes) bytes each)")
        return ceiling
    }

    /// One JSON object on one line, like the result rows (which the CSV holds; these it does not).
    var jsonLine: String {
        "{\"workload\":\"\(Self.workloadName)\",\"phase\":\"\(phase)\","
            + "\"preallocated_syncs_per_s\":\(String(format: "%.1f", preallocatedPerSecond)),"
            + "\"growing_syncs_per_s\":\(String(format: "%.1f", growingPerSecond)),"
            + "\"syncs\":\(syncs),\"record_bytes\":\(recordBytes)}"
    }
}
