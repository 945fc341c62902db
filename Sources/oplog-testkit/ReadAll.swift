import ArgumentParser
import Foundation
import OpLog
import OpLogText

/// `oplog read-all` (hidden), the reading child of the page-damage tests: a damaged LMDB page can
/// crash the process that reads it, so the test reads in this process and compares its output with
/// the undamaged store's. Every read is one line, `name<TAB>ok<TAB>digest` or `name<TAB>error<TAB>
/// kind<TAB>description`, so that one failing read does not hide a wrong answer from a later one.
/// Read names depend only on the `--document` arguments and on `info` answers that the parent
/// checks too, never on other stored bytes. Exit 0 unless the store did not open (3).
struct ReadAll: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "read-all", abstract: "Read every document and print a digest of each read (damage tests).", shouldDisplay: false)

    @OptionGroup var storeOption: StoreOption

    @Option(help: "A document to read (repeat the option).")
    var document: [String] = []

    func run() async throws {
        let store: OpLogStore
        do { store = try await openReadOnly(storeOption.store) } catch {
            emit("open", error)
            throw ExitCode(3)
        }
        read("documents") { try store.documents().map(\.value).joined(separator: ",") }
        for name in document {
            guard let id = try? DocumentID(name) else { throw ValidationError("bad document ID '\(name)'") }
            readDocument(store, id)
        }
        try? await store.close()
    }

    private func readDocument(_ store: OpLogStore, _ id: DocumentID) {
        let info = read("info:\(id)") { () throws -> DocumentInfo? in try store.info(of: id) }
        guard let info = info ?? nil else { return }
        var from = info.floor
        while from <= info.head {
            let start = from
            read("ops:\(id):\(start)") { try store.ops(of: id, from: start, limit: 100).map(Self.describe).joined(separator: ";") }
            from += 100
        }
        for snapshot in info.snapshots {
            read("snapshot:\(id):\(snapshot.revision)") { () throws -> String in
                guard let found = try store.snapshot(of: id, atOrBelow: snapshot.revision) else { return "none" }
                return "\(found.revision) \(found.createdAtMilliseconds) \(Self.checksum(found.bytes))"
            }
        }
        read("replay:\(id)") { () throws -> String in
            let replayed = try store.replay(id, with: TextReducer())
            return "\(replayed.revision) \(Self.checksum(Array(replayed.state.text.utf8)))"
        }
    }

    /// Runs one read and prints its line; returns its value when it succeeded.
    @discardableResult
    private func read<T>(_ name: String, _ body: () throws -> T) -> T? {
        do {
            let value = try body()
            print("\(name)\tok\t\(Self.digest(value))")
            return value
        } catch {
            emit(name, error)
            return nil
        }
    }

    private func emit(_ name: String, _ error: any Error) {
        let kind: String
        switch error {
        case OpLogError.corruption: kind = "corruption"
        case is OpLogError: kind = "typed"
        default: kind = "untyped"
        }
        print("\(name)\terror\t\(kind)\t\(String(describing: error).replacingOccurrences(of: "\n", with: " "))")
    }

    private static func digest(_ value: Any) -> String {
        switch value {
        case let info as DocumentInfo?:
            guard let info else { return "absent" }
            let snapshots = info.snapshots.map { "\($0.revision)/\($0.createdAtMilliseconds)/\($0.sizeBytes)" }
            return
                "head \(info.head) floor \(info.floor) ops \(info.opCount) time \(info.lastServerTimeMilliseconds) snapshots \(snapshots)"
        default:
            return "\(value)"
        }
    }

    private static func describe(_ op: StoredOp) -> String {
        "\(op.revision) \(op.opID) \(checksum(op.author)) \(op.clientTimeMilliseconds.map(String.init) ?? "-") "
            + "\(op.serverTimeMilliseconds) \(op.payload.count) \(checksum(op.payload))"
    }

    /// Tells damaged bytes from the template's (not an integrity check).
    private static func checksum(_ bytes: [UInt8]) -> String {
        String(StableHash.fnv1a(bytes), radix: 16)
    }
}
