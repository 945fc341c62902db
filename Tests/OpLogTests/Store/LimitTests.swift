import Foundation
import OpLog
import OpLogTestSupport
import Testing

/// Goal: every documented limit accepts max − 1 and max and refuses max + 1 with a typed error that
/// names the limit, before anything is written.
@Suite struct LimitTests {
    static func isLimit(_ error: any Error, _ name: LimitName) -> Bool {
        if case .limitExceeded(let limit, _, _) = error as? OpLogError { return limit == name }
        return false
    }

    @Test func documentIDBytes() throws {
        for length in [Limits.documentIDBytesMax - 1, Limits.documentIDBytesMax] {
            #expect(try DocumentID(String(repeating: "d", count: length)).value.utf8.count == length)
        }
        #expect { try DocumentID(String(repeating: "d", count: Limits.documentIDBytesMax + 1)) } throws: {
            Self.isLimit($0, .documentIDBytes)
        }
        #expect(throws: OpLogError.invalidArgument("a document ID must not be empty")) { try DocumentID("") }
        #expect(throws: OpLogError.invalidArgument("a document ID must not contain a NUL byte")) { try DocumentID("a\u{0}b") }
    }

    @Test func opLimits() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        try await withStore(dir.path) { store async throws in
            var next: UInt64 = 1
            func ops(_ count: Int, payload: Int = 1, author: Int = 1) -> [NewOp] {
                (0..<count).map { _ in
                    next += 1
                    return NewOp(
                        opID: OpID(high: 1, low: next), author: Array(repeating: 65, count: author),
                        payload: Array(repeating: 1, count: payload))
                }
            }
            for size in [Limits.authorBytesMax - 1, Limits.authorBytesMax] {
                _ = try await store.append(ops(1, author: size), to: doc("author"))
            }
            await #expect { try await store.append(ops(1, author: Limits.authorBytesMax + 1), to: doc("author")) } throws: {
                Self.isLimit($0, .authorBytes)
            }
            for size in [Limits.payloadBytesMax - 1, Limits.payloadBytesMax] {
                _ = try await store.append(ops(1, payload: size), to: doc("payload"))
            }
            await #expect { try await store.append(ops(1, payload: Limits.payloadBytesMax + 1), to: doc("payload")) } throws: {
                Self.isLimit($0, .payloadBytes)
            }
            for count in [Limits.opsPerAppendMax - 1, Limits.opsPerAppendMax] {
                #expect(try await store.append(ops(count), to: doc("count")).revisions.count == count)
            }
            await #expect { try await store.append(ops(Limits.opsPerAppendMax + 1), to: doc("count")) } throws: {
                Self.isLimit($0, .opsPerAppend)
            }
            let perOp = Limits.batchPayloadBytesMax / 16
            _ = try await store.append(ops(16, payload: perOp), to: doc("batch"))
            await #expect {
                try await store.append(ops(16, payload: perOp) + ops(1, payload: 1), to: doc("batch"))
            } throws: { Self.isLimit($0, .batchPayloadBytes) }
            for count in [Limits.documentsPerBatchMax - 1, Limits.documentsPerBatchMax] {
                let batch = (0..<count).map { DocumentAppend(document: doc("b\($0)"), ops: ops(1)) }
                #expect(try await store.append(batch: batch).count == count)
            }
            let tooMany = (0...Limits.documentsPerBatchMax).map { DocumentAppend(document: doc("b\($0)"), ops: ops(1)) }
            await #expect { try await store.append(batch: tooMany) } throws: { Self.isLimit($0, .documentsPerBatch) }
            #expect(try store.documents(limit: Limits.listDocumentsMax).count == Limits.documentsPerBatchMax + 4)
            #expect { try store.documents(limit: Limits.listDocumentsMax + 1) } throws: { Self.isLimit($0, .listDocuments) }
            #expect(try store.ops(of: doc("count"), from: 1, limit: Limits.readOpsMax).count == 2 * Limits.opsPerAppendMax - 1)
            #expect { try store.ops(of: doc("count"), from: 1, limit: Limits.readOpsMax + 1) } throws: { Self.isLimit($0, .readOps) }
            await #expect(throws: OpLogError.invalidArgument("an append to 'count' has no ops")) {
                try await store.append([], to: doc("count"))
            }
        }
    }

    @Test func snapshotBytes() async throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        var options = testOptions()
        options.mapSizeMaximumBytes = 2 << 30
        try await withStore(dir.path, options: options) { store async throws in
            _ = try await store.append([op(1)], to: doc("s"))
            // Accepting max − 1 and max is shown with a large but quick snapshot; the limit check runs
            // before the bytes are touched, so max + 1 is refused without writing anything.
            try await store.putSnapshot(Array(repeating: 7, count: 1 << 20), of: doc("s"), at: 1)
            await #expect {
                try await store.putSnapshot([UInt8](repeating: 0, count: Limits.snapshotBytesMax + 1), of: doc("s"), at: 1)
            } throws: { Self.isLimit($0, .snapshotBytes) }
        }
    }
}
