import ArgumentParser
import Foundation
import OpLog

struct Dump: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the retained ops of one or every document.")

    @OptionGroup var storeOption: StoreOption

    @Option(help: "Only this document.")
    var document: String?

    @Flag(help: "One JSON object per op (payload as UTF-8 text where valid, else base64).")
    var json = false

    func run() async throws {
        try await withReadOnlyStore(storeOption.store) { store in
            var ids: [DocumentID] = []
            if let document { ids = [try DocumentID(document)] } else { try forEachDocument(store) { ids.append($0) } }
            for id in ids {
                guard let info = try store.info(of: id) else { throw ValidationError("no document '\(id)' in \(storeOption.store)") }
                if !json { print("document \(id): head \(info.head), floor \(info.floor), snapshots \(info.snapshots.map(\.revision))") }
                var next = info.floor
                while next <= info.head {
                    let batch = try store.ops(of: id, from: next, limit: 1_000)
                    for op in batch { print(line(id, op)) }
                    next += UInt64(batch.count)
                    if batch.isEmpty { break }
                }
            }
        }
    }

    private func line(_ document: DocumentID, _ op: StoredOp) -> String {
        let text = String(validating: op.payload, as: UTF8.self)
        if json {
            var object: [String: Any] = [
                "document": document.value, "revision": op.revision, "op_id": op.opID.description,
                "author": String(validating: op.author, as: UTF8.self) ?? Data(op.author).base64EncodedString(),
                "server_time_ms": op.serverTimeMilliseconds,
            ]
            if let clientTime = op.clientTimeMilliseconds { object["client_time_ms"] = clientTime }
            if let text { object["payload"] = text } else { object["payload_base64"] = Data(op.payload).base64EncodedString() }
            let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
            return String(decoding: data, as: UTF8.self)
        }
        let payload = text ?? "base64:" + Data(op.payload).base64EncodedString()
        return "  \(op.revision) \(op.opID) server \(op.serverTimeMilliseconds): \(payload)"
    }
}
