import ArgumentParser
import Foundation
import OpLog

struct Stats: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print per-document and store figures.")

    @OptionGroup var storeOption: StoreOption

    @Flag(help: "Print JSON: {\"store\": {...}, \"documents\": [...]}.")
    var json = false

    func run() async throws {
        try await withReadOnlyStore(storeOption.store) { store in
            let stats = try store.statistics()
            var documents: [DocumentInfo] = []
            try forEachDocument(store) { id in
                if let info = try store.info(of: id) { documents.append(info) }
            }
            if json {
                let storeObject: [String: Any] = [
                    "data_file_bytes": stats.dataFileBytes, "data_file_allocated_bytes": stats.dataFileAllocatedBytes,
                    "journal_bytes": stats.journalBytes, "map_size_bytes": stats.mapSizeBytes, "page_size_bytes": stats.pageSizeBytes,
                    "pages_used": stats.pagesUsed, "free_pages": stats.freePages, "documents": documents.count,
                ]
                let documentObjects: [[String: Any]] = documents.map {
                    [
                        "id": $0.id.value, "head": $0.head, "floor": $0.floor, "ops": $0.opCount, "bytes": $0.storedBytes,
                        "snapshots": $0.snapshots.count, "snapshot_revisions": $0.snapshots.map(\.revision),
                    ]
                }
                let data = try JSONSerialization.data(
                    withJSONObject: ["store": storeObject, "documents": documentObjects], options: [.sortedKeys])
                print(String(decoding: data, as: UTF8.self))
                return
            }
            print(
                "store \(storeOption.store): data file \(formatBytes(stats.dataFileBytes)) "
                    + "(\(formatBytes(stats.dataFileAllocatedBytes)) allocated), journal \(formatBytes(stats.journalBytes)), "
                        + "map \(formatBytes(stats.mapSizeBytes)), \(stats.pagesUsed) pages used of which \(stats.freePages) "
                            + "free, \(documents.count) documents"
            )
            for info in documents {
                print(
                    "  \(info.id): head \(info.head), floor \(info.floor), \(info.opCount) ops, "
                        + "\(formatBytes(info.storedBytes)), \(info.snapshots.count) snapshots"
                )
            }
        }
    }
}
