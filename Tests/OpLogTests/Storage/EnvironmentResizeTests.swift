import Foundation
import OpLogStorage
import Synchronization
import Testing

/// Goal: a map resize never runs while another thread reads the map. `mdb_env_set_mapsize` unmaps
/// the old map; `mdb_env_info` and `mdb_env_stat` read the meta pages through it, and a copy reads
/// every page through it, so each of them racing a resize used to read unmapped memory (or, once
/// another store's file was mapped at that address, past that file's end: SIGBUS). Since the journal
/// is applied on its own thread, a resize there runs beside the writer's and the readers' calls.
/// Method: one thread resizes the map back and forth while two others, on their own threads, call
/// `info`, read a value, commit and sync, a bounded number of times each; every figure read must be
/// one of the two map sizes and the value must read back whole.
@Suite struct EnvironmentResizeTests {
    @Test func resizesWaitForEveryCallThatReadsTheMap() throws {
        let dir = TemporaryDirectory("oplog-resize")
        defer { dir.remove() }
        try FileManager.default.createDirectory(atPath: dir.path, withIntermediateDirectories: true)
        let small = 8 << 20
        let large = 16 << 20
        let environment = try Environment(directory: dir.path, configuration: EnvironmentConfiguration(mapSizeBytes: small))
        defer { environment.close() }
        let database = try environment.openDatabase(named: "values", create: true)
        let value = [UInt8](repeating: 0x5A, count: 3 * 4096)
        try environment.write { txn in try txn.put(database, key: [1], value: value) }

        let resizes = 400
        let callsPerThread = 4_000
        let problems = Mutex<[String]>([])
        let group = DispatchGroup()
        func onThread(_ body: @escaping @Sendable () -> Void) {
            group.enter()
            Thread {
                body()
                group.leave()
            }.start()
        }
        onThread {
            for index in 0..<resizes {
                do { try environment.setMapSize(index % 2 == 0 ? large : small) } catch {
                    problems.withLock { $0.append("resize \(index): \(error)") }
                }
            }
        }
        for reader in 0..<2 {
            onThread {
                for index in 0..<callsPerThread {
                    do {
                        let info = try environment.info()
                        if info.mapSizeBytes != small && info.mapSizeBytes != large {
                            problems.withLock { $0.append("reader \(reader): map size \(info.mapSizeBytes)") }
                        }
                        let read = try environment.read { txn in try txn.get(database, key: [1]) }
                        if read != value { problems.withLock { $0.append("reader \(reader): value read back differs") } }
                        if index % 100 == 0 {
                            try environment.write { txn in try txn.put(database, key: [2, UInt8(reader)], value: [UInt8(index % 256)]) }
                            try environment.sync()
                        }
                    } catch {
                        problems.withLock { $0.append("reader \(reader) call \(index): \(error)") }
                    }
                }
            }
        }
        #expect(group.wait(timeout: .now() + 120) == .success, "the threads did not finish within 120 s")
        #expect(problems.withLock { $0 }.isEmpty, "\(problems.withLock { $0.prefix(5) })")
    }
}
