import Foundation
import OpLog
import OpLogStorage

/// The one reference model of OpLog: a stream of decisions drives store operations on a fresh
/// store and the same operations on an in-memory model computed the obvious way; any difference is
/// a finding. fuzz-model feeds it the fuzzer's bytes; the property test a seeded stream.
///
/// Input: a configuration byte (bit 0: a small map that fills up; bit 1: no LMDB compression; bit 2:
/// no journal compression; bit 3: a dedupe window of 1–16 ops), a byte sizing the small map or,
/// without one, choosing a dedupe time window (odd: `1 + byte / 2` seconds), then one step per opcode
/// byte, each followed by the bytes its choices read. The store runs on a manual clock that steps
/// move forward. With a small map, `storageFull` is accepted from appends and snapshots only when
/// nothing of the call is visible afterwards.
package enum ReferenceModel {
    package static let documents = ["a", "ab", "b", "ü"].map { try! DocumentID($0) }

    /// Runs up to `steps` steps (fewer when a byte input ends first), then reopens and verifies.
    /// The store lives in `directory` (default: a new scratch directory), removed afterwards.
    /// Returns how many steps of each kind ran.
    package static func run(
        _ input: FuzzInput, steps: Int,
        directory: String = FuzzScratch.newDirectory("model")
    ) async throws(FuzzFinding) -> [String: Int] {
        defer { FuzzScratch.remove(directory) }
        var runner = FuzzModelRunner(input, stepsMax: steps)
        do {
            try await runner.run(directory: directory)
            return runner.counts
        } catch {
            try? await runner.store?.close()
            let shown = ProcessInfo.processInfo.environment["OPLOG_FUZZ_TRACE"] != nil ? runner.history.count : 12
            let history = runner.history.suffix(shown).joined(separator: "\n  ")
            throw FuzzFinding("\((error as? FuzzFinding)?.description ?? "unexpected error: \(error)")\n  last steps:\n  \(history)")
        }
    }
}

/// What the store must hold for one document, computed the obvious way.
package struct FuzzModelDocument {
    package var head: Revision = 0
    package var floor: Revision = 1
    /// Every op ever accepted, at index revision − 1: kept after truncation to compute states.
    package var ops: [NewOp] = []
    /// The newest revision of each accepted op ID.
    package var revisionOfID: [OpID: Revision] = [:]
    /// The server time of each op, at index revision − 1.
    package var serverTimes: [Int64] = []
    package var snapshots: [Revision: [UInt8]] = [:]
    /// Accepted appends and the head each was based on, for retries.
    package var batches: [(ops: [NewOp], base: Revision)] = []
    package var lastServerTime: Int64 { serverTimes.last ?? 0 }

    package func latestSnapshot(atOrBelow revision: Revision) -> Revision? { snapshots.keys.filter { $0 <= revision }.max() }
    package func payloads(through revision: Revision) -> [[UInt8]] { ops.prefix(Int(revision)).map(\.payload) }
}

package struct FuzzModelRunner {
    package var input: FuzzInput
    package var options = StoreOptions()
    package var store: OpLogStore?
    package var model: [DocumentID: FuzzModelDocument] = [:]
    /// Fencing epochs by document (the default scope: each document its own); they outlive a
    /// document's deletion. 0 or absent: unfenced.
    package var epochs: [DocumentID: UInt64] = [:]
    /// Op IDs in acceptance order (choices never iterate a dictionary: its order changes per process).
    package var acceptedIDs: [OpID] = []
    package var nextID: UInt64 = 1
    package var smallMap = false
    package var history: [String] = []
    /// Steps run, by kind.
    package var counts: [String: Int] = [:]
    package let stepsMax: Int
    package let clock = ManualClock(startingAt: fuzzClockStart)

    package init(_ input: FuzzInput, stepsMax: Int) {
        self.input = input
        self.stepsMax = stepsMax
    }

    package mutating func run(directory: String) async throws {
        let configuration = input.byte()
        let mapByte = input.byte()
        smallMap = configuration & 1 != 0
        options.durability = .lastAppendsMayBeLost
        options.mapSizeInitialBytes = 1 << 20
        options.journalApplyBytes = 1 << 20
        options.compressionLevel = configuration & 2 != 0 ? 0 : 6
        options.journalCompressionLevel = configuration & 4 != 0 ? 0 : 1
        if configuration & 8 != 0 { options.dedupeWindowOps = 1 + Int(configuration >> 4) }
        if smallMap {
            options.mapSizeMaximumBytes = (2 + Int(mapByte % 3)) << 20
            options.reservedBytesForDeletion = (32 + Int(mapByte >> 2) * 8) << 10
        } else if mapByte & 1 != 0 {
            options.dedupeWindowMilliseconds = 1_000 * (1 + Int64(mapByte >> 1))
        }
        // Half the runs keep no dedupe index past its group: every append rebuilds its document's
        // index from disk, as after an eviction or a reopen, and must answer retries the same.
        // Decided from bytes already read, so earlier inputs (fuzz regressions) keep their meaning.
        if (configuration ^ mapByte) & 0x40 != 0 { options.sharedMemoryBudget = MemoryBudget(evictingEverythingForTesting: ()) }
        options.logger.logLevel = .critical
        // A manual clock: a run's server times, and so every answer, depend on the input alone.
        options.clock = clock
        store = try await OpLogStore.open(directory: directory, options: options)
        var steps = 0
        while !input.isAtEnd && steps < stepsMax {
            steps += 1
            try await step(directory: directory)
        }
        try compareAll()
        try await reopen(directory: directory)
        if ProcessInfo.processInfo.environment["OPLOG_FUZZ_TRACE"] != nil { print(history.joined(separator: "\n")) }
        let report = try await store!.verify()
        try fuzzCheck(report.isClean, "verify found \(report.problems)")
        try await store!.close()
        store = nil
    }

    package mutating func step(directory: String) async throws {
        let opcode = input.byte() % 16
        let document = ReferenceModel.documents[input.pick(ReferenceModel.documents.count)]
        let current = model[document] ?? FuzzModelDocument()
        history.append(
            "step \(history.count): opcode \(opcode) '\(document)' head \(current.head) floor \(current.floor) snapshots "
                + "\(current.snapshots.keys.sorted())"
        )
        switch opcode {
        case 0...3: try await append(document)
        case 4: try await retry(document)
        case 5: try await batch()
        case 6: try await putSnapshot(document)
        case 7: try await truncate(document)
        case 8: try await deleteSnapshot(document)
        case 9:
            try await store!.deleteDocument(document, epoch: epochs[document])
            model[document] = nil
        case 10, 11: try read(document)
        case 12: try replay(document)
        case 13: try await store!.checkpoint()
        case 14: try await reopen(directory: directory)
        default:
            if input.flag() {
                // Time passes: up to about twice the longest time window.
                let step = Int64(input.u16()) * 8
                clock.advance(by: step)
                note("clock +\(step) ms")
            } else {
                try compareAll()
            }
        }
        counts[Self.stepNames[Int(opcode)], default: 0] += 1
    }

    /// Adds what a step did to its history line (printed with OPLOG_FUZZ_TRACE=1, and in findings).
    package mutating func note(_ outcome: @autoclosure () -> String) {
        if !history.isEmpty { history[history.count - 1] += " → " + outcome() }
    }

    package mutating func reopen(directory: String) async throws {
        try await store!.close()
        store = nil
        store = try await OpLogStore.open(directory: directory, options: options)
        try compareAll()
    }

    // MARK: Appends

    package mutating func newOp() -> NewOp {
        let shape = input.byte()
        var id = OpID(high: 0xF0, low: nextID)
        nextID += 1
        if shape & 0x80 != 0, !acceptedIDs.isEmpty { id = acceptedIDs[input.u16() % acceptedIDs.count] }
        let author: [UInt8] = [[], Array("u1".utf8), Array(repeating: 0x41, count: 64), Array(repeating: 0x42, count: 65)][
            shape & 0x40 != 0 && input.pick(16) == 0 ? 3 : Int(shape & 3) % 3]
        let clientTime: Int64? = [nil, 0, -1, .max, .min, Int64(shape) * 1000][Int(shape >> 2 & 7) % 6]
        let size = smallMap ? Int(input.byte()) << 8 : Int(input.byte() & 0x3F)
        let payload = fuzzFiller(seed: nextID, count: size, compressible: shape & 0x20 != 0)
        return NewOp(opID: id, author: author, clientTimeMilliseconds: clientTime, payload: payload)
    }

    package mutating func newOps() -> [NewOp] {
        var ops = (0..<input.pick(5)).map { _ in newOp() }
        if ops.count > 1 && input.pick(16) == 0 { ops[1].opID = ops[0].opID }
        return ops
    }

    /// An epoch for an append: mostly the document's own (none while unfenced), sometimes one
    /// below it (stale), above it (a raise) or none at all (refused once fenced).
    package mutating func epoch(_ document: DocumentID) -> UInt64? {
        let current = epochs[document] ?? 0
        let choice = input.pick(8)
        switch choice {
        case 0: return current + 1
        case 1: return current > 1 ? current - 1 : nil
        case 2: return nil
        default: return current == 0 ? nil : current
        }
    }

    package mutating func expectedHead(_ document: DocumentID) -> Revision? {
        let head = model[document]?.head ?? 0
        return [nil, nil, head, head &+ 1, head &- 1][input.pick(5)]
    }

    package static let stepNames = [
        "append", "append", "append", "append", "retry", "batch", "snapshot", "truncate", "deleteSnapshot",
        "deleteDocument", "read", "read", "replay", "checkpoint", "reopen", "clockOrCompare",
    ]

    /// The revision a plain retry of `id` gets (nil: a new op): inside the op-count window, and at
    /// most `dedupeWindowMilliseconds` older than the document's newest op.
    package func knownRevision(_ id: OpID, in document: FuzzModelDocument) -> Revision? {
        guard let revision = document.revisionOfID[id], revision + UInt64(options.dedupeWindowOps) > document.head,
            document.serverTimes[Int(revision) - 1] >= document.lastServerTime &- options.dedupeWindowMilliseconds
        else { return nil }
        return revision
    }

    /// The revision a retry based on `basedOn` gets: the window's answer, else any op after the base.
    package func knownRevision(_ id: OpID, in document: FuzzModelDocument, basedOn: Revision?) -> Revision? {
        if let revision = knownRevision(id, in: document) { return revision }
        guard let basedOn, let revision = document.revisionOfID[id], revision > basedOn else { return nil }
        return revision
    }

    /// The model's answer to an append: validation of the whole batch first, then each part.
    package func expectedAppend(_ batch: [DocumentAppend]) -> Result<[AppendResult], OpLogError> {
        guard !batch.isEmpty else { return .failure(.invalidArgument("")) }
        var documents: Set<DocumentID> = []
        for part in batch {
            guard documents.insert(part.document).inserted else { return .failure(.duplicateInBatch(document: part.document, detail: "")) }
            guard !part.ops.isEmpty else { return .failure(.invalidArgument("")) }
            var ids: Set<OpID> = []
            for op in part.ops {
                if op.author.count > Limits.authorBytesMax {
                    return .failure(.limitExceeded(.authorBytes, value: op.author.count, maximum: Limits.authorBytesMax))
                }
                guard ids.insert(op.opID).inserted else { return .failure(.duplicateInBatch(document: part.document, detail: "")) }
            }
        }
        var results: [AppendResult] = []
        for part in batch {
            let fence = epochs[part.document] ?? 0
            if let epoch = part.epoch, epoch > 0 {
                if epoch < fence {
                    return .failure(.staleEpoch(scope: FencingScope(document: part.document), epoch: epoch, current: fence))
                }
            } else if fence > 0 {
                return .failure(.epochRequired(scope: FencingScope(document: part.document), current: fence))
            }
            let current = model[part.document] ?? FuzzModelDocument()
            if let basedOn = part.basedOn, basedOn > current.head {
                return .failure(.beyondHead(document: part.document, requested: basedOn, head: current.head))
            }
            let known = part.ops.compactMap { knownRevision($0.opID, in: current, basedOn: part.basedOn) }
            if known.count == part.ops.count {
                results.append(AppendResult(revisions: known, wasRetry: true))
                continue
            }
            if !known.isEmpty {
                return .failure(.partialRetry(document: part.document, acceptedCount: known.count, newCount: part.ops.count - known.count))
            }
            if let expected = part.expectedHead, expected != current.head {
                return .failure(.conflict(document: part.document, expectedHead: expected, actualHead: current.head))
            }
            results.append(AppendResult(revisions: part.ops.indices.map { current.head + 1 + UInt64($0) }, wasRetry: false))
        }
        return .success(results)
    }

    package mutating func perform(_ batch: [DocumentAppend], asBatch: Bool) async throws {
        let wanted = expectedAppend(batch)
        let got: Result<[AppendResult], OpLogError>
        do {
            if asBatch {
                got = .success(try await store!.append(batch: batch))
            } else {
                got = .success([
                    try await store!.append(
                        batch[0].ops, to: batch[0].document, expectedHead: batch[0].expectedHead,
                        basedOn: batch[0].basedOn, epoch: batch[0].epoch)
                ])
            }
        } catch { got = .failure(error) }
        note("append \(batch.map { "'\($0.document)' \($0.ops.count) ops" }): \(got.map { $0.map(\.revisions) })")
        switch (wanted, got) {
        case (.success(let want), .success(let have)):
            try fuzzCheck(want == have, "append: store \(have), model \(want)")
            for (part, result) in zip(batch, want) where !result.wasRetry { accept(part) }
            // A successful append raises its scope's epoch, a retry's included.
            for part in batch { if let epoch = part.epoch, epoch > epochs[part.document] ?? 0 { epochs[part.document] = epoch } }
        case (_, .failure(.retryUnverifiable(let document, let basedOn, _))):
            // Op IDs below the floor may be gone (the op-count window of dedupe records): then the
            // store cannot check, says so, and writes nothing. Retained ops are always checkable.
            let floor = model[document]?.floor ?? 1
            try fuzzCheck(basedOn + 1 < floor, "retryUnverifiable based on \(basedOn) with the floor at \(floor)")
            for part in batch {
                try fuzzCheck(
                    try store!.head(of: part.document) == model[part.document]?.head ?? 0, "retryUnverifiable but '\(part.document)' moved")
            }
        case (.failure(let want), .failure(let have)):
            try fuzzCheck(fuzzSameError(want, have), "append: store \(have), model \(want)")
            switch have {
            case .staleEpoch: counts["staleEpoch", default: 0] += 1
            case .epochRequired: counts["epochRequired", default: 0] += 1
            default: break
            }
        case (.success(let want), .failure(.storageFull(let detail))) where smallMap && want.contains { !$0.wasRetry }:
            // Accepted only as "nothing of this append is visible".
            for part in batch {
                let head = try store!.head(of: part.document)
                try fuzzCheck(
                    head == model[part.document]?.head ?? 0, "storage full (\(detail)) but '\(part.document)' moved to head \(head)")
            }
            let bytes = batch.reduce(0) { $0 + $1.ops.reduce(0) { $0 + $1.payload.count } }
            try fuzzCheck(!model.isEmpty || bytes > 64 << 10, "storage full on an empty store for \(bytes) bytes: \(detail)")
        default:
            throw FuzzFinding("append: store \(got), model \(wanted)")
        }
    }

    package mutating func accept(_ part: DocumentAppend) {
        var current = model[part.document] ?? FuzzModelDocument()
        let base = current.head
        // One server time per append: the clock, never below the document's last.
        let serverTime = max(clock.now, current.lastServerTime)
        for op in part.ops {
            current.ops.append(op)
            current.serverTimes.append(serverTime)
            current.revisionOfID[op.opID] = UInt64(current.ops.count)
            acceptedIDs.append(op.opID)
        }
        current.head = UInt64(current.ops.count)
        current.batches.append((part.ops, base))
        model[part.document] = current
    }

    package mutating func append(_ document: DocumentID) async throws {
        let ops = newOps()
        try await perform(
            [DocumentAppend(document: document, ops: ops, expectedHead: expectedHead(document), epoch: epoch(document))],
            asBatch: input.pick(4) == 0)
    }

    /// An accepted append again: all of it (a retry), reversed, or with a new op (refused whole).
    package mutating func retry(_ document: DocumentID) async throws {
        guard let batches = model[document]?.batches, !batches.isEmpty else { return try await append(document) }
        let chosen = batches[input.u16() % batches.count]
        var ops = chosen.ops
        switch input.pick(4) {
        case 0: ops.reverse()
        case 1: ops.append(newOp())
        default: break
        }
        // Half the retries name the revision they were based on (or a wrong one).
        let basedOn: Revision? = [nil, chosen.base, chosen.base, chosen.base &+ 1][input.pick(4)]
        try await perform(
            [DocumentAppend(document: document, ops: ops, expectedHead: expectedHead(document), basedOn: basedOn, epoch: epoch(document))],
            asBatch: false)
    }

    package mutating func batch() async throws {
        var parts: [DocumentAppend] = []
        for _ in 0..<(1 + input.pick(3)) {
            let document = ReferenceModel.documents[input.pick(ReferenceModel.documents.count)]
            let batches = model[document]?.batches ?? []
            let ops = !batches.isEmpty && input.pick(4) == 0 ? batches[input.u16() % batches.count].ops : newOps()
            parts.append(DocumentAppend(document: document, ops: ops, expectedHead: expectedHead(document), epoch: epoch(document)))
        }
        try await perform(parts, asBatch: true)
    }

    // MARK: Snapshots, truncation, deletion

    package mutating func putSnapshot(_ document: DocumentID) async throws {
        let current = model[document] ?? FuzzModelDocument()
        let revision: Revision = [current.head > 0 ? 1 + UInt64(input.u16()) % current.head : 1, current.head, current.head + 1, 0][
            input.pick(4)]
        // A true state, or bogus bytes: replay must then answer from exactly the snapshot it chose.
        let state = input.pick(4) == 0 ? [[0xEE, input.byte()]] : current.payloads(through: revision)
        let bytes = try FuzzPayloadListReducer().encode(state)
        let wanted: OpLogError? =
            current.head == 0
            ? .documentNotFound(document)
            : (revision < 1 || revision > current.head) ? .beyondHead(document: document, requested: revision, head: current.head) : nil
        do {
            try await store!.putSnapshot(bytes, of: document, at: revision, epoch: epochs[document])
            try fuzzCheck(wanted == nil, "putSnapshot \(revision) succeeded, model \(String(describing: wanted))")
            model[document]!.snapshots[revision] = bytes
            note("snapshot \(revision) of \(bytes.count) bytes")
        } catch let error as OpLogError {
            note("snapshot \(revision): \(error)")
            if case .storageFull = error, smallMap, wanted == nil {
                let stored = try store!.snapshot(of: document, atOrBelow: revision)
                try fuzzCheck(
                    stored?.revision != revision || stored?.bytes == current.snapshots[revision],
                    "storage full but snapshot \(revision) changed")
                return
            }
            try fuzzCheck(
                wanted.map { fuzzSameError($0, error) } ?? false,
                "putSnapshot \(revision): store \(error), model \(String(describing: wanted))")
        }
    }

    package mutating func truncate(_ document: DocumentID) async throws {
        let current = model[document] ?? FuzzModelDocument()
        let candidates = current.snapshots.keys.sorted().map { $0 + 1 }
        let floor: Revision =
            !candidates.isEmpty && input.pick(3) != 0 ? candidates[input.pick(candidates.count)] : UInt64(input.u16()) % (current.head + 3)
        let wanted: OpLogError?
        if current.head == 0 {
            wanted = .documentNotFound(document)
        } else if floor <= current.floor {
            wanted = nil
        } else if floor > current.head + 1 {
            wanted = .beyondHead(document: document, requested: floor - 1, head: current.head)
        } else if current.snapshots[floor - 1] == nil {
            wanted = .snapshotRequired(document: document, revision: floor - 1)
        } else {
            wanted = nil
        }
        do {
            try await store!.truncate(document, below: floor, epoch: epochs[document])
            try fuzzCheck(wanted == nil, "truncate below \(floor) succeeded, model \(String(describing: wanted))")
            if floor > current.floor { model[document]!.floor = floor }
            note("truncated below \(floor)")
        } catch let error as OpLogError {
            note("truncate below \(floor): \(error)")
            try fuzzCheck(
                wanted.map { fuzzSameError($0, error) } ?? false,
                "truncate below \(floor): store \(error), model \(String(describing: wanted))")
        }
    }

    package mutating func deleteSnapshot(_ document: DocumentID) async throws {
        let current = model[document] ?? FuzzModelDocument()
        let existing = current.snapshots.keys.sorted()
        let revision = !existing.isEmpty && input.pick(4) != 0 ? existing[input.pick(existing.count)] : UInt64(input.byte())
        let wanted: OpLogError? =
            current.floor > 1 && revision == current.floor - 1
            ? .snapshotProtected(document: document, revision: revision)
            : current.snapshots[revision] == nil ? .snapshotNotFound(document: document, revision: revision) : nil
        do {
            try await store!.deleteSnapshot(of: document, at: revision, epoch: epochs[document])
            try fuzzCheck(wanted == nil, "deleteSnapshot \(revision) succeeded, model \(String(describing: wanted))")
            model[document]!.snapshots[revision] = nil
            note("deleted snapshot \(revision)")
        } catch let error as OpLogError {
            note("delete snapshot \(revision): \(error)")
            try fuzzCheck(
                wanted.map { fuzzSameError($0, error) } ?? false,
                "deleteSnapshot \(revision): store \(error), model \(String(describing: wanted))")
        }
    }

    // MARK: Reads

    package mutating func read(_ document: DocumentID) throws {
        let current = model[document] ?? FuzzModelDocument()
        let from: Revision = [current.floor, current.floor &- 1, UInt64(input.u16()) % (current.head + 3), current.head + 1][input.pick(4)]
        let limit = [1, 7, 1000, 0][input.pick(4)]
        let wanted: OpLogError?
        if limit < 1 || from < 1 {
            wanted = .invalidArgument("")
        } else if from < current.floor {
            wanted = .belowFloor(
                document: document, requested: from, floor: current.floor,
                latestSnapshot: current.latestSnapshot(atOrBelow: current.floor - 1))
        } else if from > current.head + 1 {
            wanted = .beyondHead(document: document, requested: from, head: current.head)
        } else {
            wanted = nil
        }
        do {
            let ops = try store!.ops(of: document, from: from, limit: limit)
            try fuzzCheck(wanted == nil, "read from \(from) limit \(limit) succeeded, model \(String(describing: wanted))")
            try checkOps(ops, of: document, from: from, count: min(UInt64(limit), current.head + 1 - from))
            note("read \(ops.count) ops from \(from)")
        } catch let error as OpLogError {
            note("read from \(from) limit \(limit): \(error)")
            try fuzzCheck(
                wanted.map { fuzzSameError($0, error) } ?? false,
                "read from \(from) limit \(limit): store \(error), model \(String(describing: wanted))")
        }
    }

    package func checkOps(_ ops: [StoredOp], of document: DocumentID, from: Revision, count: UInt64) throws {
        let current = model[document] ?? FuzzModelDocument()
        try fuzzCheck(ops.count == count, "'\(document)' from \(from): \(ops.count) ops, model \(count)")
        for (index, op) in ops.enumerated() {
            let want = current.ops[Int(from) - 1 + index]
            try fuzzCheck(
                op.revision == from + UInt64(index) && op.opID == want.opID && op.payload == want.payload && op.author == want.author
                    && op.clientTimeMilliseconds == want.clientTimeMilliseconds, "'\(document)'@\(op.revision) differs from the model")
            if index > 0 {
                try fuzzCheck(ops[index - 1].serverTimeMilliseconds <= op.serverTimeMilliseconds, "server time decreases at \(op.revision)")
            }
        }
    }

    package mutating func replay(_ document: DocumentID) throws {
        let current = model[document] ?? FuzzModelDocument()
        let target: Revision? = input.pick(3) == 0 ? nil : UInt64(input.u16()) % (current.head + 2)
        let wanted: Result<([[UInt8]], Revision), OpLogError>
        let goal = target ?? current.head
        if current.head == 0 {
            wanted = .success(([], 0))
        } else if goal > current.head {
            wanted = .failure(.beyondHead(document: document, requested: goal, head: current.head))
        } else if let base = current.latestSnapshot(atOrBelow: goal), base >= current.floor - 1 {
            let state = try FuzzPayloadListReducer().decode(current.snapshots[base]!)
            wanted = .success((state + current.ops[Int(base)..<Int(goal)].map(\.payload), goal))
        } else if current.floor > 1 {
            wanted = .failure(
                .belowFloor(
                    document: document, requested: goal, floor: current.floor,
                    latestSnapshot: current.latestSnapshot(atOrBelow: current.floor - 1)))
        } else {
            wanted = .success((current.payloads(through: goal), goal))
        }
        note("replay to \(target.map(String.init) ?? "head"): \(wanted.map { "\($0.0.count) payloads at \($0.1)" })")
        do {
            let (state, revision) = try store!.replay(document, to: target, with: FuzzPayloadListReducer())
            guard case .success((let wantedState, let wantedRevision)) = wanted, state == wantedState, revision == wantedRevision else {
                throw FuzzFinding(
                    "replay to \(String(describing: target)) gave revision \(revision) with \(state.count) payloads, model "
                        + "\(wanted.map { ($0.0.count, $0.1) })"
                )
            }
        } catch let error as OpLogError {
            guard case .failure(let wantedError) = wanted, fuzzSameError(error, wantedError) else {
                throw FuzzFinding("replay to \(String(describing: target)): store \(error), model \(wanted.map { ($0.0.count, $0.1) })")
            }
        }
    }

    /// Every document's figures, ops and snapshots against the model.
    package func compareAll() throws {
        let listed = try store!.documents()
        let wanted = model.filter { $0.value.head > 0 }.keys.sorted()
        try fuzzCheck(listed == wanted, "documents \(listed), model \(wanted)")
        for document in ReferenceModel.documents {
            let current = model[document] ?? FuzzModelDocument()
            let info = try store!.info(of: document)
            try fuzzCheck((info?.head ?? 0) == current.head, "'\(document)' head \(info?.head ?? 0), model \(current.head)")
            guard let info else { continue }
            try fuzzCheck(
                info.floor == current.floor && info.opCount == Int(current.head + 1 - current.floor),
                "'\(document)' floor \(info.floor), model \(current.floor)")
            try fuzzCheck(
                info.snapshots.map(\.revision) == current.snapshots.keys.sorted(),
                "'\(document)' snapshots \(info.snapshots.map(\.revision)), model \(current.snapshots.keys.sorted())")
            for (revision, bytes) in current.snapshots {
                let snapshot = try store!.snapshot(of: document, atOrBelow: revision)
                try fuzzCheck(snapshot?.revision == revision && snapshot?.bytes == bytes, "'\(document)' snapshot \(revision) differs")
            }
            var next = current.floor
            while next <= current.head {
                let ops = try store!.ops(of: document, from: next, limit: 1000)
                try checkOps(ops, of: document, from: next, count: min(1000, current.head + 1 - next))
                next += UInt64(ops.count)
            }
        }
    }
}
