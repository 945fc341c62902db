import Foundation
import OpLog
import OpLogText
import Testing

/// The in-memory reference model: what the store must answer, computed the obvious way.
struct ModelDocument {
    var head: Revision = 0
    var floor: Revision = 1
    var payloads: [Revision: [UInt8]] = [:]
    var revisionOfID: [OpID: Revision] = [:]
    var snapshots: [Revision: [UInt8]] = [:]

    func latestSnapshot(atOrBelow revision: Revision) -> Revision? { snapshots.keys.filter { $0 <= revision }.max() }
}

/// Goal: random sequences of every store operation give the same answers as the reference model.
/// Method: a seeded generator drives appends (new ops, retries, stale and correct expected heads,
/// multi-document batches), snapshots, truncations (valid and invalid), snapshot and document
/// deletions, reads, checkpoints and reopens; after each step the answer is compared, and every few
/// hundred steps the whole state. Failures print the seed; rerun with OPLOG_SEED=<seed>.
@Suite struct ReferenceModelTests {
    @Test func randomOperationsMatchTheModel() async throws {
        let seed = ProcessInfo.processInfo.environment["OPLOG_SEED"].flatMap(UInt64.init) ?? UInt64.random(in: 1...UInt64.max)
        let steps = longTests ? 100_000 : 10_000
        let dir = TemporaryDirectory("oplog-model"); defer { dir.remove() }
        var runner = ModelRunner(seed: seed, directory: dir.path)
        do {
            try await runner.run(steps: steps)
        } catch {
            Issue.record("seed \(seed) failed at step \(runner.step): \(error)\nlast steps:\n\(runner.history.suffix(25).joined(separator: "\n"))")
        }
        try? await runner.store?.close()
        print("reference model: \(steps) steps, seed \(seed), \(runner.counts.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))")
    }
}

struct ModelMismatch: Error, CustomStringConvertible {
    let description: String
}

struct ModelRunner {
    var random: SplitMix64
    let directory: String
    var store: OpLogStore?
    var model: [DocumentID: ModelDocument] = [:]
    var nextID: UInt64 = 1
    var step = 0
    var counts: [String: Int] = [:]
    var history: [String] = []
    /// Op batches accepted per document, for retries.
    var accepted: [DocumentID: [[NewOp]]] = [:]
    let documents = ["a", "b", "c", "d/ü", "e"].map { try! DocumentID($0) }

    init(seed: UInt64, directory: String) {
        random = SplitMix64(seed: seed)
        self.directory = directory
    }

    mutating func pick(_ n: Int) -> Int { Int(random.next() % UInt64(n)) }

    func check(_ condition: Bool, _ message: @autoclosure () -> String) throws {
        if !condition { throw ModelMismatch(description: message()) }
    }

    mutating func run(steps: Int) async throws {
        var options = testOptions()
        options.journalApplyBytes = 1 << 20
        store = try OpLogStore.open(directory: directory, options: options)
        for index in 0..<steps {
            step = index
            let roll = pick(100)
            let document = documents[pick(documents.count)]
            history.append("step \(index): roll \(roll) \(document) model head \(model[document]?.head ?? 0) floor \(model[document]?.floor ?? 1)")
            switch roll {
            case 0..<40: try await append(document)
            case 40..<48: try await retry(document)
            case 48..<54: try await batch()
            case 54..<62: try await snapshot(document)
            case 62..<70: try await truncate(document)
            case 70..<74: try await deleteSnapshot(document)
            case 74..<76: try await deleteDocument(document)
            case 76..<96: try read(document)
            case 96..<98: try await store!.checkpoint(); counts["checkpoint", default: 0] += 1
            default:
                try await store!.close()
                store = try OpLogStore.open(directory: directory, options: options)
                counts["reopen", default: 0] += 1
            }
            if index % 500 == 499 { try compareAll() }
        }
        try compareAll()
        let report = try store!.verify()
        try check(report.isClean, "verify found \(report.problems)")
    }

    mutating func newOps(_ count: Int) -> [NewOp] {
        (0..<count).map { _ in
            defer { nextID += 1 }
            return NewOp(opID: OpID(high: 7, low: nextID), author: Array("m".utf8),
                         clientTimeMilliseconds: pick(2) == 0 ? nil : Int64(pick(1000)), payload: (0..<pick(40)).map { _ in UInt8(pick(256)) })
        }
    }

    mutating func expectedHead(for document: DocumentID) -> Revision? {
        let head = model[document]?.head ?? 0
        switch pick(4) {
        case 0: return head
        case 1: return head > 0 ? head - 1 : head + 1
        default: return nil
        }
    }

    /// The model's answer to appending `ops` (nil: the store must throw `expected`).
    func modelAppend(_ document: DocumentID, _ ops: [NewOp], expectedHead: Revision?) -> Result<AppendResult, OpLogError> {
        let current = model[document] ?? ModelDocument()
        let known = ops.compactMap { current.revisionOfID[$0.opID] }
        if known.count == ops.count { return .success(AppendResult(revisions: known, wasRetry: true)) }
        if !known.isEmpty { return .failure(.partialRetry(document: document, acceptedCount: known.count, newCount: ops.count - known.count)) }
        if let expectedHead, expectedHead != current.head {
            return .failure(.conflict(document: document, expectedHead: expectedHead, actualHead: current.head))
        }
        return .success(AppendResult(revisions: ops.indices.map { current.head + 1 + UInt64($0) }, wasRetry: false))
    }

    mutating func commit(_ document: DocumentID, _ ops: [NewOp], _ result: AppendResult) {
        guard !result.wasRetry else { return }
        var current = model[document] ?? ModelDocument()
        for (op, revision) in zip(ops, result.revisions) {
            current.payloads[revision] = op.payload
            current.revisionOfID[op.opID] = revision
        }
        current.head += UInt64(ops.count)
        model[document] = current
        accepted[document, default: []].append(ops)
    }

    mutating func append(_ document: DocumentID) async throws {
        let ops = newOps(1 + pick(3))
        let expected = expectedHead(for: document)
        try await perform(document, ops, expected)
    }

    mutating func retry(_ document: DocumentID) async throws {
        guard let batches = accepted[document], !batches.isEmpty else { return try await append(document) }
        var ops = batches[pick(batches.count)]
        if pick(5) == 0 { ops += newOps(1) }  // mixed: must be refused whole
        try await perform(document, ops, expectedHead(for: document))
    }

    mutating func perform(_ document: DocumentID, _ ops: [NewOp], _ expectedHead: Revision?) async throws {
        let wanted = modelAppend(document, ops, expectedHead: expectedHead)
        let got: Result<AppendResult, OpLogError>
        do { got = .success(try await store!.append(ops, to: document, expectedHead: expectedHead)) } catch { got = .failure(error) }
        try check(got == wanted, "append \(document): store \(got), model \(wanted)")
        if case let .success(result) = wanted { commit(document, ops, result) }
        counts["append", default: 0] += 1
    }

    mutating func batch() async throws {
        let first = documents[pick(documents.count)]
        var second = documents[pick(documents.count)]
        if second == first { second = documents[(documents.firstIndex(of: first)! + 1) % documents.count] }
        let parts = [DocumentAppend(document: first, ops: newOps(1 + pick(2)), expectedHead: expectedHead(for: first)),
                     DocumentAppend(document: second, ops: newOps(1 + pick(2)), expectedHead: expectedHead(for: second))]
        var wanted: Result<[AppendResult], OpLogError> = .success([])
        var results: [AppendResult] = []
        for part in parts {
            switch modelAppend(part.document, part.ops, expectedHead: part.expectedHead) {
            case let .success(result): results.append(result)
            case let .failure(error): if case .success = wanted { wanted = .failure(error) }
            }
        }
        if case .success = wanted { wanted = .success(results) }
        let got: Result<[AppendResult], OpLogError>
        do { got = .success(try await store!.append(batch: parts)) } catch { got = .failure(error) }
        try check(got == wanted, "batch: store \(got), model \(wanted)")
        if case let .success(results) = wanted {
            for (part, result) in zip(parts, results) { commit(part.document, part.ops, result) }
        }
        counts["batch", default: 0] += 1
    }

    mutating func snapshot(_ document: DocumentID) async throws {
        guard let current = model[document], current.head > 0 else { return }
        let revision = Revision(pick(Int(current.head))) + 1
        let bytes = Array("state \(document) @\(revision) \(pick(1000))".utf8)
        try await store!.putSnapshot(bytes, of: document, at: revision)
        model[document]!.snapshots[revision] = bytes
        counts["snapshot", default: 0] += 1
    }

    mutating func truncate(_ document: DocumentID) async throws {
        guard let current = model[document], current.head > 0 else { return }
        let candidates = current.snapshots.keys.filter { $0 + 1 > current.floor }.sorted()
        if candidates.isEmpty || pick(6) == 0 {
            // Invalid: no snapshot right below the requested floor.
            let floor = current.floor + 1 + Revision(pick(Int(current.head)))
            let wanted: OpLogError = floor > current.head + 1
                ? .beyondHead(document: document, requested: floor - 1, head: current.head)
                : .snapshotRequired(document: document, revision: floor - 1)
            if current.snapshots[floor - 1] != nil && floor <= current.head + 1 { return }
            do {
                try await store!.truncate(document, below: floor)
                throw ModelMismatch(description: "truncate \(document) below \(floor) succeeded; model expected \(wanted)")
            } catch let error as OpLogError {
                try check(error == wanted, "truncate \(document) below \(floor): store \(error), model \(wanted)")
            }
            return
        }
        let floor = candidates[pick(candidates.count)] + 1
        try await store!.truncate(document, below: floor)
        model[document]!.floor = floor
        for revision in model[document]!.payloads.keys where revision < floor { model[document]!.payloads[revision] = nil }
        counts["truncate", default: 0] += 1
    }

    mutating func deleteSnapshot(_ document: DocumentID) async throws {
        guard let current = model[document], let revision = current.snapshots.keys.randomElement(using: &random) else { return }
        do {
            try await store!.deleteSnapshot(of: document, at: revision)
            try check(!(current.floor > 1 && revision == current.floor - 1), "deleted the snapshot covering the floor")
            model[document]!.snapshots[revision] = nil
        } catch let error as OpLogError {
            try check(error == .snapshotProtected(document: document, revision: revision), "delete snapshot: \(error)")
        }
        counts["deleteSnapshot", default: 0] += 1
    }

    mutating func deleteDocument(_ document: DocumentID) async throws {
        try await store!.deleteDocument(document)
        model[document] = nil
        accepted[document] = nil
        counts["deleteDocument", default: 0] += 1
    }

    mutating func read(_ document: DocumentID) throws {
        let current = model[document] ?? ModelDocument()
        let from = Revision(pick(Int(current.head) + 2)) + 1
        let limit = 1 + pick(50)
        do {
            let ops = try store!.ops(of: document, from: from, limit: limit)
            try check(from >= current.floor && from <= current.head + 1, "read from \(from) succeeded; floor \(current.floor) head \(current.head)")
            let expected = (0..<min(UInt64(limit), current.head + 1 - from)).map { from + $0 }
            try check(ops.map(\.revision) == expected, "read \(document) from \(from): revisions \(ops.map(\.revision)), expected \(expected)")
            for op in ops { try check(op.payload == current.payloads[op.revision], "payload of \(document)@\(op.revision)") }
        } catch let error as OpLogError {
            let wanted: OpLogError = from < current.floor
                ? .belowFloor(document: document, requested: from, floor: current.floor, latestSnapshot: current.latestSnapshot(atOrBelow: current.floor - 1))
                : .beyondHead(document: document, requested: from, head: current.head)
            try check(error == wanted, "read \(document) from \(from): store \(error), model \(wanted)")
        }
        counts["read", default: 0] += 1
    }

    func compareAll() throws {
        for document in documents {
            let current = model[document] ?? ModelDocument()
            let info = try store!.info(of: document)
            try check((info?.head ?? 0) == current.head, "\(document) head \(info?.head ?? 0), model \(current.head)")
            guard let info else { continue }
            try check(info.floor == current.floor, "\(document) floor \(info.floor), model \(current.floor)")
            try check(info.snapshots.map(\.revision) == current.snapshots.keys.sorted(), "\(document) snapshots \(info.snapshots.map(\.revision)), model \(current.snapshots.keys.sorted())")
            for (revision, bytes) in current.snapshots {
                try check(try store!.snapshot(of: document, atOrBelow: revision)?.bytes == bytes, "\(document) snapshot \(revision) bytes")
            }
            var next = current.floor
            while next <= current.head {
                let ops = try store!.ops(of: document, from: next, limit: 1_000)
                for op in ops { try check(op.payload == current.payloads[op.revision], "\(document)@\(op.revision) payload differs") }
                try check(!ops.isEmpty, "\(document): no ops from \(next)")
                next += UInt64(ops.count)
            }
        }
    }
}
