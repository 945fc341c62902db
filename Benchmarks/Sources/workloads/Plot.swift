import Foundation

/// A hand-written SVG chart: one row per workload, two panels per row (appends/s and write
/// amplification), x = writers (W1) or ops per commit (W2), one line per engine, log-scale y.
/// W3 (no appends) is in the CSV and JSON only. With `--compaction on`, OpLog's scheduler run is its
/// own line ("oplog +compaction"); the baselines' compaction-on runs (harness snapshots, as with off)
/// are not drawn twice.
enum Plot {
    private static let panelWidth = 440.0, panelHeight = 300.0
    private static let margin = (left: 70.0, right: 20.0, top: 40.0, bottom: 50.0)
    private static let colors = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf"]
    private static let metrics = [("ops_per_s", "appends/s"), ("wa", "write amplification (written / payload)")]

    /// True when `svg` would draw anything.
    static func hasPanels(_ rows: [ResultRow]) -> Bool { rows.contains { $0.workload != .w3 } }

    static func svg(_ rows: [ResultRow]) -> String {
        let rows = rows.filter {
            $0.workload != .w3 && (!$0.compaction || $0.fields.contains { $0.key == "snapshotter" && $0.value.isScheduler })
        }
        let workloads = Workload.allCases.filter { workload in rows.contains { $0.workload == workload } }
        let engines = rows.reduce(into: [String]()) { names, row in if !names.contains(row.series) { names.append(row.series) } }
        let width = 2 * panelWidth
        let height = Double(workloads.count) * panelHeight + 30
        var svg = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" \
            font-family="sans-serif" font-size="12">
            <rect width="100%" height="100%" fill="white"/>\n
            """
        for (rowIndex, workload) in workloads.enumerated() {
            for (column, metric) in metrics.enumerated() {
                let origin = (x: Double(column) * panelWidth, y: Double(rowIndex) * panelHeight)
                let mine = rows.filter { $0.workload == workload }
                svg += panel(mine, engines: engines, workload: workload, metric: metric, origin: origin)
            }
        }
        for (index, engine) in engines.enumerated() {
            let x = 20.0 + Double(index) * min(140, (width - 40) / Double(engines.count))
            let y = height - 12
            svg += "<line x1=\"\(x)\" y1=\"\(y - 4)\" x2=\"\(x + 24)\" y2=\"\(y - 4)\" stroke=\"\(color(index))\" stroke-width=\"2.5\"/>"
            svg += "<text x=\"\(x + 30)\" y=\"\(y)\">\(engine)</text>\n"
        }
        return svg + "</svg>\n"
    }

    private static func panel(
        _ rows: [ResultRow], engines: [String], workload: Workload, metric: (key: String, title: String),
        origin: (x: Double, y: Double)
    ) -> String {
        let xKey = workload == .w1 ? "writers" : "batch"
        let xValues = Array(Set(rows.map { $0.number(xKey) })).sorted()
        let yValues = rows.map { $0.number(metric.key) }.filter { $0 > 0 }
        guard !xValues.isEmpty, let low = yValues.min(), let high = yValues.max() else { return "" }
        // Whole decades around the data, so gridlines fall on 1, 10, 100, ...
        let decades = (low: floor(log10(low)), high: max(ceil(log10(high)), floor(log10(low)) + 1))
        let plot = (
            left: origin.x + margin.left, right: origin.x + panelWidth - margin.right,
            top: origin.y + margin.top, bottom: origin.y + panelHeight - margin.bottom
        )
        func x(_ value: Double) -> Double {
            // Evenly spaced categories: the swept values (1, 8, 64 or 10, 100, 1000) are geometric.
            let index = Double(xValues.firstIndex(of: value) ?? 0)
            return xValues.count == 1
                ? (plot.left + plot.right) / 2
                : plot.left + 20 + index * (plot.right - plot.left - 40) / Double(xValues.count - 1)
        }
        func y(_ value: Double) -> Double {
            plot.bottom - (log10(value) - decades.low) / (decades.high - decades.low) * (plot.bottom - plot.top)
        }
        var svg = "<text x=\"\(origin.x + margin.left)\" y=\"\(origin.y + 24)\" font-weight=\"bold\">"
        svg += "\(workload.rawValue): \(metric.title)</text>\n"
        svg +=
            "<rect x=\"\(plot.left)\" y=\"\(plot.top)\" width=\"\(plot.right - plot.left)\" "
                + "height=\"\(plot.bottom - plot.top)\" fill=\"none\" stroke=\"#444\"/>\n"
        for decade in stride(from: decades.low, through: decades.high, by: 1) {
            let value = pow(10, decade)
            svg += "<line x1=\"\(plot.left)\" y1=\"\(y(value))\" x2=\"\(plot.right)\" y2=\"\(y(value))\" stroke=\"#ddd\"/>"
            svg += "<text x=\"\(plot.left - 6)\" y=\"\(y(value) + 4)\" text-anchor=\"end\">\(label(value))</text>\n"
        }
        for value in xValues {
            svg += "<text x=\"\(x(value))\" y=\"\(plot.bottom + 18)\" text-anchor=\"middle\">\(label(value))</text>\n"
        }
        let xTitle = workload == .w1 ? "concurrent writers" : "ops per commit"
        svg += "<text x=\"\((plot.left + plot.right) / 2)\" y=\"\(plot.bottom + 38)\" text-anchor=\"middle\">\(xTitle)</text>\n"
        for (index, engine) in engines.enumerated() {
            let points = rows.filter { $0.series == engine && $0.number(metric.key) > 0 }
                .sorted { $0.number(xKey) < $1.number(xKey) }
                .map { (x: x($0.number(xKey)), y: y($0.number(metric.key))) }
            guard !points.isEmpty else { continue }
            let path = points.map { "\($0.x),\($0.y)" }.joined(separator: " ")
            svg += "<polyline points=\"\(path)\" fill=\"none\" stroke=\"\(color(index))\" stroke-width=\"2.5\"/>"
            for point in points {
                svg += "<circle cx=\"\(point.x)\" cy=\"\(point.y)\" r=\"3.5\" fill=\"\(color(index))\"/>"
            }
            svg += "\n"
        }
        return svg
    }

    private static func color(_ index: Int) -> String { colors[index % colors.count] }

    private static func label(_ value: Double) -> String {
        if value >= 1_000_000 { return String(format: "%gM", value / 1_000_000) }
        if value >= 1000 { return String(format: "%gk", value / 1000) }
        return String(format: "%g", value)
    }
}

extension ResultRow {
    /// The plotted line this row belongs to.
    var series: String { compaction ? engine + " +compaction" : engine }
}

extension ResultRow.Value {
    var isScheduler: Bool {
        if case .text("scheduler") = self { return true }
        return false
    }
}
