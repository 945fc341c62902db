import OpLog
import OpLogEngine
import WorkloadEngines

/// How the driver opens each engine under test, by the name used on the command line.
/// To add an engine: implement `WorkloadEngine` and add one line here.
struct EngineFactory: Sendable {
    var name: String
    /// Opens a store inside the given existing directory: fresh (empty), or one this engine wrote
    /// and closed (W3 reopens its store before reading).
    var open: @Sendable (String, EngineSetup) throws -> any WorkloadEngine
}

enum Engines {
    static let all: [EngineFactory] = [
        // Only OpLog compacts by itself; the baselines ignore `setup.compaction` and get harness snapshots.
        EngineFactory(name: "oplog") { try OpLogWorkloadEngine(path: $0, setup: $1) },
        // OpLog with the journal applied only at close (1 GiB between applies): beside "oplog", the
        // latency the background applies add.
        EngineFactory(name: "oplog-noapply") {
            var options = StoreOptions()
            options.journalApplyBytes = 1 << 30
            return try OpLogWorkloadEngine(path: $0, options: options, setup: $1, name: "oplog-noapply")
        },
        // OpLog with the change feed on (256 MiB of history): beside "oplog", what the feed's
        // history costs in appends/s and bytes written.
        EngineFactory(name: "oplog-feed") {
            var options = StoreOptions()
            options.feedRetentionBytes = 256 << 20
            return try OpLogWorkloadEngine(path: $0, options: options, setup: $1, name: "oplog-feed")
        },
        EngineFactory(name: "lmdb-naive") { path, _ in try LMDBNaiveEngine(path: path) },
        EngineFactory(name: "lmdb-group") { path, _ in try LMDBGroupEngine(path: path) },
        EngineFactory(name: "lmdb-log") { path, _ in try LMDBLogEngine(path: path) },
        EngineFactory(name: "sqlite") { path, _ in try SQLiteEngine(directory: path) },
        EngineFactory(name: "rocksdb") { path, _ in try RocksDBEngine(path: path) },
        EngineFactory(name: "leveldb") { path, _ in try LevelDBEngine(path: path) },
    ]

    static func named(_ names: [String]) throws -> [EngineFactory] {
        try names.map { name in
            guard let factory = all.first(where: { $0.name == name }) else {
                throw WorkloadError("unknown engine \(name); known: \(all.map(\.name).joined(separator: ", "))")
            }
            return factory
        }
    }
}
