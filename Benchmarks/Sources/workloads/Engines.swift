import OpLogEngine
import WorkloadEngines

/// How the driver opens each engine under test, by the name used on the command line.
/// To add an engine: implement `WorkloadEngine` and add one line here.
struct EngineFactory: Sendable {
    var name: String
    /// Opens a fresh store inside the given (existing, empty) directory.
    var open: @Sendable (String) throws -> any WorkloadEngine
}

enum Engines {
    static let all: [EngineFactory] = [
        EngineFactory(name: "oplog") { try OpLogWorkloadEngine(path: $0) },
        EngineFactory(name: "lmdb-naive") { try LMDBNaiveEngine(path: $0) },
        EngineFactory(name: "lmdb-group") { try LMDBGroupEngine(path: $0) },
        EngineFactory(name: "lmdb-log") { try LMDBLogEngine(path: $0) },
        EngineFactory(name: "sqlite") { try SQLiteEngine(directory: $0) },
        EngineFactory(name: "rocksdb") { try RocksDBEngine(path: $0) },
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
