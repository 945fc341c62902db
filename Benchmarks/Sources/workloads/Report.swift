import Foundation

/// One result line: a configuration, an engine, and the median of each figure across runs.
struct ResultRow {
    enum Value {
        case text(String)
        case integer(Int)
        case number(Double)
    }

    var engine: String
    var workload: Workload
    var writers: Int
    var batch: Int
    /// Ordered so JSON and CSV columns read the same way every time.
    var fields: [(key: String, value: Value)]

    /// Builds the row from every run's figures; each figure is its own median across runs.
    init(engine: String, plan: WorkloadPlan, writers: Int, batch: Int, runs: [RunFigures]) {
        self.engine = engine
        self.workload = plan.workload
        self.writers = writers
        self.batch = batch
        let ops = Double(plan.totalOps)
        let opBytes = Double(plan.opBytes)
        let payload = opBytes + Double(plan.snapshotBytes)
        func median(_ figure: (RunFigures) -> Double) -> Double {
            let sorted = runs.map(figure).sorted()
            let middle = sorted.count / 2
            return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
        }
        fields = [
            ("engine", .text(engine)), ("workload", .text(plan.workload.rawValue)),
            ("writers", .integer(writers)), ("batch", .integer(batch)), ("runs", .integer(runs.count)),
            ("ops", .integer(plan.totalOps)), ("op_bytes", .integer(plan.opBytes)),
            ("snapshot_bytes", .integer(plan.snapshotBytes)),
            ("seconds", .number(median(\.seconds))), ("close_seconds", .number(median(\.closeSeconds))),
            ("ops_per_s", .number(median { ops / $0.seconds })),
            ("write_bytes", .number(median(\.writeBytes))),
            ("wa", .number(median { $0.writeBytes / payload })),
            ("wa_ops", .number(median { $0.writeBytes / opBytes })),
            ("disk_bytes", .number(median(\.diskBytes))),
            ("p50_us", .number(median(\.p50Micros))), ("p99_us", .number(median(\.p99Micros))),
            ("mean_us", .number(median(\.meanMicros))),
        ]
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

    static func csv(_ rows: [ResultRow]) -> String {
        guard let first = rows.first else { return "" }
        let header = first.fields.map(\.key).joined(separator: ",")
        let lines = rows.map { $0.fields.map { format($0.value, quoted: false) }.joined(separator: ",") }
        return ([header] + lines).joined(separator: "\n") + "\n"
    }

    /// Engine names and workloads are plain identifiers, so only JSON needs quotes.
    private static func format(_ value: Value, quoted: Bool) -> String {
        switch value {
        case .text(let text): quoted ? "\"\(text)\"" : text
        case .integer(let value): String(value)
        case .number(let value) where value == value.rounded() && abs(value) < 1e15: String(Int64(value))
        case .number(let value): String(format: abs(value) >= 100 ? "%.1f" : "%.3f", value)
        }
    }
}
