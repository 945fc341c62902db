import ArgumentParser
import Foundation
import OpLog
import Synchronization

/// Measures subscriptions in a process of its own (hidden; the tests run it so that other tests'
/// memory does not blur the figure): memory per idle subscriber with 10,000 subscribers over 1,000
/// documents, a stalled tenth that never reads while ops arrive (their buffers must overflow, not
/// grow), and the delivery latency from acknowledgement to 1,000 live subscribers. Prints JSON.
struct SubscriberMemory: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "subscriber-memory", abstract: "Measure subscription memory and delivery latency (tests).", shouldDisplay: false)

    @OptionGroup var storeOption: StoreOption
    @Option var subscribers = 10_000
    @Option var documents = 1_000

    func run() async throws {
        var options = StoreOptions()
        options.durability = .lastAppendsMayBeLost
        let store = try await OpLogStore.open(directory: storeOption.store, options: options)
        let ids = try (0..<documents).map { try DocumentID("m\($0)") }
        func op(_ id: UInt64) -> NewOp {
            NewOp(opID: OpID(high: 3, low: id), author: [1], payload: Array("{\"p\":0,\"d\":0,\"i\":\"x\"}".utf8))
        }
        for (index, id) in ids.enumerated() { _ = try await store.append([op(UInt64(index))], to: id) }
        let before = residentBytes()
        let shared = Collected()
        var stalled: [OpSubscription.Iterator] = []
        let stalledDocuments = documents / 10
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<subscribers {
                let subscription = try store.subscribe(to: ids[index % documents], from: 2)
                if index % documents < stalledDocuments {
                    stalled.append(subscription.makeAsyncIterator())  // registered, never read
                    continue
                }
                let timed = index < documents
                group.addTask {
                    for try await op in subscription {
                        if timed {
                            let now = DispatchTime.now().uptimeNanoseconds
                            shared.delivered.withLock { $0[op.opID.low] = now }
                        }
                        shared.received.withLock { $0 += 1 }
                        if op.revision == 3 { break }
                    }
                }
            }
            try await Task.sleep(for: .milliseconds(300))
            let idle = residentBytes()
            // 2,000 ops to the stalled documents' subscribers: more than a buffer's 1,000.
            for round in 0..<(2_000 / max(1, stalledDocuments) + 1) {
                let batch = (0..<stalledDocuments).map {
                    DocumentAppend(document: ids[$0], ops: [op(UInt64(100_000 + round * documents + $0))])
                }
                _ = try await store.append(batch: batch)
            }
            let afterStalled = residentBytes()
            for round in 0..<2 {
                for index in stalledDocuments..<documents {
                    let id = UInt64(1_000_000 + round * documents + index)
                    _ = try await store.append([op(id)], to: ids[index])
                    shared.acknowledged.withLock { $0[id] = DispatchTime.now().uptimeNanoseconds }
                }
            }
            try await group.waitForAll()
            // Delivery can precede the acknowledgement's return (both follow the same sync): count 0.
            let acknowledged = shared.acknowledged.withLock { $0 }
            let latencies = shared.delivered.withLock { $0 }.compactMap { id, delivered in
                acknowledged[id].map { delivered > $0 ? delivered - $0 : 0 }
            }.sorted()
            let result: [String: Any] = [
                "subscribers": subscribers, "documents": documents,
                "bytes_per_idle_subscriber": (idle - before) / subscribers,
                "stalled_growth_bytes": afterStalled - idle,
                "deliveries": shared.received.withLock { $0 },
                "latency_p50_us": latencies.isEmpty ? 0 : latencies[latencies.count / 2] / 1_000,
                "latency_p99_us": latencies.isEmpty ? 0 : latencies[latencies.count * 99 / 100] / 1_000,
            ]
            print(String(decoding: try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys]), as: UTF8.self))
        }
        withExtendedLifetime(stalled) {}
        try await store.close()
    }

    private func residentBytes() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
        return (Int(text.split(separator: " ")[1]) ?? 0) * 4096
    }
}

final class Collected: Sendable {
    let acknowledged = Mutex<[UInt64: UInt64]>([:])
    let delivered = Mutex<[UInt64: UInt64]>([:])
    let received = Mutex(0)
}
