import WorkloadEngines

/// The workloads, each described by the ops it appends and the snapshots it stores.
enum Workload: String, CaseIterable, Sendable {
    /// Many concurrent writers, one durable append per op.
    case w1 = "W1"
    /// One writer committing G ops at a time.
    case w2 = "W2"
    /// Opening documents (snapshot + ops replayed into text) at head and at past revisions.
    case w3 = "W3"

    /// Ops of a document between two snapshots.
    var snapshotInterval: Int { self == .w2 ? 1000 : 500 }
}

/// Everything one document appends, computed before timing so the harness costs the same for
/// every engine and text replay never runs inside the measurement.
struct DocumentPlan: Sendable {
    var name: String
    /// `ops[r - 1]` is the op at revision r.
    var ops: [BenchOp]
    /// Head revision → the document's UTF-8 text at that revision, for every multiple of the interval.
    var snapshots: [Int: [UInt8]]
    /// The text before revision 1 (W1 and W3: the trace's text where the window starts).
    var startText: String?
}

struct WorkloadPlan: Sendable {
    var workload: Workload
    var documents: [DocumentPlan]
    var totalOps: Int { documents.reduce(0) { $0 + $1.ops.count } }
    /// Bytes of every op's four parts: the payload a user asked to store.
    var opBytes: Int { documents.reduce(0) { $0 + $1.ops.reduce(0) { $0 + $1.encodedCount } } }
    var snapshotBytes: Int { documents.reduce(0) { $0 + $1.snapshots.values.reduce(0) { $0 + $1.count } } }

    /// What the harness's snapshot maintenance does over the whole plan: every planned snapshot, and
    /// per document the ops below its final floor (previous-to-last snapshot + 1, see
    /// `Runner.maintainSnapshots`).
    var harnessWork: CompactionWork {
        let interval = workload.snapshotInterval
        let truncated = documents.reduce(0) { total, document in
            let snapshots = document.ops.count / interval
            return total + (snapshots >= 2 ? (snapshots - 1) * interval : 0)
        }
        return CompactionWork(
            snapshotsWritten: documents.reduce(0) { $0 + $1.snapshots.count },
            snapshotBytes: snapshotBytes, opsTruncated: truncated)
    }
}

enum PlanBuilder {
    /// W1: `documents` documents on one trace, document k starting at patch k * (patches / documents)
    /// from the trace's real text there, each appending totalOps / documents ops.
    static func w1(trace: Trace, documents: Int, totalOps: Int, seed: UInt64) -> WorkloadPlan {
        var random = SplitMix64(seed: seed)
        let stride = trace.patches.count / documents
        let windows = (0..<documents).map { (start: $0 * stride, count: totalOps / documents) }
        let texts = textsAt(trace: trace, windows: windows, interval: Workload.w1.snapshotInterval, starts: true)
        let plans = windows.enumerated().map { k, window in
            var plan = document(
                name: "doc-\(k)", trace: trace, window: window, interval: Workload.w1.snapshotInterval, texts: texts, random: &random)
            plan.startText = texts[window.start].map { String(decoding: $0, as: UTF8.self) }
            return plan
        }
        return WorkloadPlan(workload: .w1, documents: plans)
    }

    /// W3: W1's documents (windows of one trace, snapshot every 500 ops, truncation keeping the last
    /// 500), with two differences. The windows never wrap around the trace (document k starts at
    /// k * (patches - opsPerDocument) / (documents - 1)), so every stored op replays onto the stored
    /// snapshots. And document k stops at a seeded random head in the last interval
    /// (opsPerDocument - offset, offset < 500), so an open at head replays between 0 and 499 ops.
    static func w3(trace: Trace, documents: Int, totalOps: Int, seed: UInt64) throws -> WorkloadPlan {
        let interval = Workload.w3.snapshotInterval
        let perDocument = totalOps / documents
        guard perDocument >= 2 * interval else {
            throw WorkloadError("W3 needs at least \(2 * interval) ops per document (got \(perDocument)): raise --ops or lower --documents")
        }
        guard perDocument <= trace.patches.count else {
            throw WorkloadError("W3 needs at most \(trace.patches.count) ops per document (the trace's patches), got \(perDocument)")
        }
        var random = SplitMix64(seed: seed)
        var offsets = SplitMix64(seed: seed ^ 0x5733)
        let spacing = documents > 1 ? (trace.patches.count - perDocument) / (documents - 1) : 0
        let windows = (0..<documents).map { (start: $0 * spacing, count: perDocument - offsets.next(below: interval)) }
        let texts = textsAt(trace: trace, windows: windows, interval: interval, starts: true)
        let plans = windows.enumerated().map { k, window in
            var plan = document(name: "doc-\(k)", trace: trace, window: window, interval: interval, texts: texts, random: &random)
            plan.startText = texts[window.start].map { String(decoding: $0, as: UTF8.self) }
            return plan
        }
        return WorkloadPlan(workload: .w3, documents: plans)
    }

    /// W2: one document per trace, each replaying its trace from the start; op i of the run goes
    /// to document i % traces, so the traces are cycled through round robin.
    static func w2(traces: [Trace], totalOps: Int, seed: UInt64) -> WorkloadPlan {
        var random = SplitMix64(seed: seed)
        let plans = traces.enumerated().map { index, trace in
            let count = totalOps / traces.count + (index < totalOps % traces.count ? 1 : 0)
            let window = (start: 0, count: count)
            let texts = textsAt(trace: trace, windows: [window], interval: Workload.w2.snapshotInterval)
            return document(
                name: trace.name, trace: trace, window: window, interval: Workload.w2.snapshotInterval, texts: texts, random: &random)
        }
        return WorkloadPlan(workload: .w2, documents: plans)
    }

    private static func document(
        name: String, trace: Trace, window: (start: Int, count: Int), interval: Int,
        texts: [Int: [UInt8]], random: inout SplitMix64
    ) -> DocumentPlan {
        let author = random.bytes(8)
        let ops = (0..<window.count).map { offset in
            let patch = trace.patches[(window.start + offset) % trace.patches.count]
            return BenchOp(opID: random.bytes(16), author: author, clientTime: patch.timeMillis, patchJSON: patchJSON(patch))
        }
        var snapshots: [Int: [UInt8]] = [:]
        for head in Swift.stride(from: interval, through: window.count, by: interval) {
            snapshots[head] = texts[traceIndex(start: window.start, head: head, patches: trace.patches.count)]
        }
        return DocumentPlan(name: name, ops: ops, snapshots: snapshots, startText: nil)
    }

    /// The trace position whose text a document shows after `head` ops from `start`: in 1...patches.
    /// A window that runs past the end cycles to patch 0, which applies to `startContent` again.
    private static func traceIndex(start: Int, head: Int, patches: Int) -> Int {
        (start + head - 1) % patches + 1
    }

    /// Replays the trace once, keeping the text at every index a snapshot needs
    /// (index i = the text after patches 0..<i), and at each window's start if `starts`.
    private static func textsAt(trace: Trace, windows: [(start: Int, count: Int)], interval: Int, starts: Bool = false) -> [Int: [UInt8]] {
        var wanted = Set<Int>()
        for window in windows {
            for head in stride(from: interval, through: window.count, by: interval) {
                wanted.insert(traceIndex(start: window.start, head: head, patches: trace.patches.count))
            }
            if starts { wanted.insert(window.start) }
        }
        var texts: [Int: [UInt8]] = [:]
        if wanted.remove(0) != nil { texts[0] = Array(trace.startContent.utf8) }
        var text = EditableText(trace.startContent)
        for (index, patch) in trace.patches.enumerated() where !wanted.isEmpty {
            text.apply(patch)
            if wanted.remove(index + 1) != nil { texts[index + 1] = text.utf8 }
        }
        return texts
    }

    /// `{"p":<int>,"d":<int>,"i":<string>}`, escaping only `"`, `\` and control characters;
    /// everything else stays raw UTF-8, as a compact JSON encoder would write it.
    static func patchJSON(_ patch: TracePatch) -> [UInt8] {
        var json = Array("{\"p\":\(patch.position),\"d\":\(patch.deleteCount),\"i\":\"".utf8)
        for scalar in patch.insert.unicodeScalars {
            switch scalar {
            case "\"": json += Array(#"\""#.utf8)
            case "\\": json += Array(#"\\"#.utf8)
            case "\n": json += Array(#"\n"#.utf8)
            case "\t": json += Array(#"\t"#.utf8)
            case "\r": json += Array(#"\r"#.utf8)
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                json += Array(("\\u" + String(repeating: "0", count: 4 - hex.count) + hex).utf8)
            default:
                json += Array(String(scalar).utf8)
            }
        }
        json += Array("\"}".utf8)
        return json
    }
}

/// A small seeded generator (SplitMix64) so every run and engine gets identical op IDs.
struct SplitMix64 {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func next(below bound: Int) -> Int { Int(next() % UInt64(bound)) }

    mutating func bytes(_ count: Int) -> [UInt8] { (0..<count).map { _ in UInt8(truncatingIfNeeded: next()) } }
}
