import Metrics

/// The store's swift-metrics instruments. Labels are prefixed with the store's label.
struct StoreMetrics: Sendable {
    let commits: Counter
    let opsPerCommit: Recorder
    let commitLatency: Metrics.Timer
    let syncLatency: Metrics.Timer
    let queueDepth: Recorder
    let applies: Counter
    let applyLatency: Metrics.Timer
    let dedupeIndexLoads: Counter
    let dedupeIndexEvictions: Counter
    let dedupeIndexBytes: Recorder

    init(label: String) {
        commits = Counter(label: "\(label).commits")
        opsPerCommit = Recorder(label: "\(label).ops_per_commit")
        commitLatency = Metrics.Timer(label: "\(label).commit_latency")
        syncLatency = Metrics.Timer(label: "\(label).sync_latency")
        queueDepth = Recorder(label: "\(label).queue_depth", aggregate: false)
        applies = Counter(label: "\(label).journal_applies")
        applyLatency = Metrics.Timer(label: "\(label).journal_apply_latency")
        dedupeIndexLoads = Counter(label: "\(label).dedupe_index_loads")
        dedupeIndexEvictions = Counter(label: "\(label).dedupe_index_evictions")
        dedupeIndexBytes = Recorder(label: "\(label).dedupe_index_bytes", aggregate: false)
    }
}
