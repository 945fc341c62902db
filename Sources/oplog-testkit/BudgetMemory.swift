import ArgumentParser
import Foundation
import OpLog

/// Streams appends over many documents under a small memory budget in a process of its own
/// (hidden; the tests run it so that other tests' memory does not blur the figure) and samples
/// `RssAnon` (the process's own memory; LMDB's mapped pages are `RssFile`, reported beside it).
/// Prints JSON: the figures right after open, the peak above them, and the writer's counters.
struct BudgetMemory: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "budget-memory", abstract: "Measure memory under a memory budget (tests).", shouldDisplay: false)

    @OptionGroup var storeOption: StoreOption
    @Option var documents = 50_000
    @Option var opsPerDocument = 16
    @Option var budgetMegabytes = 16

    func run() async throws {
        var options = StoreOptions()
        options.durability = .lastAppendsMayBeLost
        options.memoryBudgetBytes = budgetMegabytes << 20
        options.journalApplyBytes = 1 << 20
        let store = try await OpLogStore.open(directory: storeOption.store, options: options)
        let afterOpen = Self.memory()
        var peakAnon = afterOpen.anon
        var peakFile = afterOpen.file
        var next: UInt64 = 0
        for index in 0..<documents {
            let ops = (0..<opsPerDocument).map { _ in
                next += 1
                return NewOp(opID: OpID(high: 0xB06, low: next), author: [1], payload: Array("{\"p\":0,\"d\":0,\"i\":\"\(next)\"}".utf8))
            }
            _ = try await store.append(ops, to: try DocumentID("stream-\(index)"))
            if index % 500 == 0 {
                let now = Self.memory()
                peakAnon = max(peakAnon, now.anon)
                peakFile = max(peakFile, now.file)
            }
        }
        let end = Self.memory()
        let counters = store.writerCounters()
        try await store.close()
        let result: [String: Int] = [
            "documents": documents, "budget_bytes": options.memoryBudgetBytes,
            "rss_anon_after_open": afterOpen.anon, "rss_anon_peak": max(peakAnon, end.anon), "rss_anon_end": end.anon,
            "rss_file_peak": max(peakFile, end.file),
            "index_loads": counters.dedupeIndexLoads, "index_evictions": counters.dedupeIndexEvictions,
            "index_bytes_end": counters.dedupeIndexBytes,
        ]
        print(String(decoding: try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys]), as: UTF8.self))
    }

    /// `RssAnon` and `RssFile` from `/proc/self/status`, in bytes.
    static func memory() -> (anon: Int, file: Int) {
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return (0, 0) }
        func field(_ name: String) -> Int {
            guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix(name + ":") }) else { return 0 }
            return (Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0) * 1024
        }
        return (field("RssAnon"), field("RssFile"))
    }
}
