import Foundation

/// One result line: a configuration, an engine, and the median of each figure across runs.
struct ResultRow {
    enum Value {
        case text(String)
        case integer(Int)
        case number(Double)
        /// A figure the engine could not produce (W3 on an engine without replay).
        case null
    }

    var engine: String
    var workload: Workload
    var writers: Int
    var batch: Int
    /// W1 with the engine compacting by itself (`--compaction on`).
    var compaction: Bool
    /// Ordered so JSON and CSV columns read the same way every time.
    var fields: [(key: String, value: Value)]

    /// Builds a W1/W2 row from every run's figures; each figure is its own median across runs.
    init(engine: String, plan: WorkloadPlan, writers: Int, batch: Int, compaction: Bool, runs: [RunFigures]) {
        self.engine = engine
        self.workload = plan.workload
        self.writers = writers
        self.batch = batch
        self.compaction = compaction
        let ops = Double(plan.totalOps)
        let opBytes = Double(plan.opBytes)
        func median(_ figure: (RunFigures) -> Double) -> Double { Self.median(runs.map(figure)) }
        fields = [
            ("engine", .text(engine)), ("workload", .text(plan.workload.rawValue)),
            ("compaction", .text(compaction ? "on" : "off")), ("snapshotter", .text(runs.first?.snapshotter ?? "harness")),
            ("writers", .integer(writers)), ("batch", .integer(batch)), ("runs", .integer(runs.count)),
            ("ops", .integer(plan.totalOps)), ("op_bytes", .integer(plan.opBytes)),
            ("snapshot_bytes", .number(median { Double($0.work.snapshotBytes) })),
            ("snapshots_written", .number(median { Double($0.work.snapshotsWritten) })),
            ("ops_truncated", .number(median { Double($0.work.opsTruncated) })),
            ("seconds", .number(median(\.seconds))), ("close_seconds", .number(median(\.closeSeconds))),
            ("ops_per_s", .number(median { ops / $0.seconds })),
            ("write_bytes", .number(median(\.writeBytes))),
            ("wa", .number(median { $0.writeBytes / (opBytes + Double($0.work.snapshotBytes)) })),
            ("wa_ops", .number(median { $0.writeBytes / opBytes })),
            ("disk_bytes", .number(median(\.diskBytes))),
            ("p50_us", .number(median(\.p50Micros))), ("p99_us", .number(median(\.p99Micros))),
            ("mean_us", .number(median(\.meanMicros))),
        ]
    }

    /// Builds a W3 row; the measured fields are null when the engine cannot replay (nil runs).
    init(engine: String, plan: WorkloadPlan, opensPerDocument: Int, replayRuns runs: [ReplayFigures?]) {
        self.engine = engine
        self.workload = plan.workload
        self.writers = 1
        self.batch = 1
        self.compaction = false
        let measured = runs.compactMap { $0 }
        func median(_ figure: (ReplayFigures) -> Double) -> Value {
            measured.isEmpty || measured.count < runs.count ? .null : .number(Self.median(measured.map(figure)))
        }
        fields = [
            ("engine", .text(engine)), ("workload", .text(plan.workload.rawValue)),
            ("compaction", .text("off")), ("snapshotter", .text("harness")),
            ("documents", .integer(plan.documents.count)), ("runs", .integer(runs.count)),
            ("ops", .integer(plan.totalOps)), ("op_bytes", .integer(plan.opBytes)),
            ("snapshot_bytes", .integer(plan.snapshotBytes)),
            ("load_seconds", median(\.loadSeconds)), ("disk_bytes", median(\.diskBytes)),
            ("opens_head", .integer(plan.documents.count * opensPerDocument)),
            ("opens_past", .integer(plan.documents.count * opensPerDocument)),
            ("open_head_p50_us", median { Percentile.micros($0.headNanos, 0.50) }),
            ("open_head_p99_us", median { Percentile.micros($0.headNanos, 0.99) }),
            ("open_past_p50_us", median { Percentile.micros($0.pastNanos, 0.50) }),
            ("open_past_p99_us", median { Percentile.micros($0.pastNanos, 0.99) }),
            ("replayed_ops", median { Double($0.replayedOps) }),
            ("replayed_ops_per_s", median { Double($0.replayedOps) / (Double($0.openNanos) / 1e9) }),
        ]
    }

    private static func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        guard !sorted.isEmpty else { return .nan }
        let middle = sorted.count / 2
        return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
    }

    func number(_ key: String) -> Double {
        switch fields.first(where: { $0.key == key })?.value {
        case .integer(let value): Double(value)
        case .number(let value): value
        default: .nan
        }
    }

    /// One JSON object on one line.
    var jsonLine: String {
        "{" + fields.map { "\"\($0.key)\":" + Self.format($0.value, quoted: true) }.joined(separator: ",") + "}"
    }

    /// One header for all rows: every key in order of first appearance (W3 rows have other columns
    /// than W1/W2 rows); a row lacking a column leaves it empty, as it does a null.
    static func csv(_ rows: [ResultRow]) -> String {
        guard !rows.isEmpty else { return "" }
        var keys: [String] = []
        for row in rows {
            for key in row.fields.map(\.key) where !keys.contains(key) { keys.append(key) }
        }
        let lines = rows.map { row in
            keys.map { key in row.fields.first { $0.key == key }.map { format($0.value, quoted: false) } ?? "" }.joined(separator: ",")
        }
        return ([keys.joined(separator: ",")] + lines).joined(separator: "\n") + "\n"
    }

    /// Engine names and workloads are plain identifiers, so only JSON needs quotes.
    private static func format(_ value: Value, quoted: Bool) -> String {
        switch value {
        case .text(let text): quoted ? "\"\(text)\"" : text
        case .null: quoted ? "null" : ""
        case .number(let value) where !value.isFinite: quoted ? "null" : ""
        case .integer(let value): String(value)
        case .number(let value) where value == value.rounded() && abs(value) < 1e15: String(Int64(value))
        case .number(let value): String(format: abs(value) >= 100 ? "%.1f" : "%.3f", value)
        }
    }
}
