import Foundation
import OpLog
import OpLogTestSupport
import OpLogText
import Testing

/// Goal: the text reducer reproduces the real editing traces, and the store replays them exactly.
/// The traces live in `../shared/traces` (not in the repository); without them these tests are
/// skipped with a message.
@Suite struct TraceTests {
    static let traceNames = ["automerge-paper", "seph-blog1", "sveltecomponent", "friendsforever_flat"]

    static func path(_ name: String) -> String? {
        tracesDirectory().map { "\($0)/\(name).json.gz" }.flatMap { FileManager.default.fileExists(atPath: $0) ? $0 : nil }
    }

    @Test(.enabled(if: tracesDirectory() != nil, "needs ../shared/traces"), arguments: traceNames)
    func textReducerReproducesTrace(_ name: String) throws {
        let trace = try EditingTrace.load(path: try #require(Self.path(name)))
        var text = TextBuffer(trace.startContent)
        for patch in trace.patches { try text.apply(patch) }
        #expect(text.text == trace.endContent)
    }

    @Test func generatedSessionReplaysAndPatchJSONRoundTrips() throws {
        let trace = EditingTrace.generated(seed: 3, patchCount: 2_000)
        var text = TextBuffer()
        for patch in trace.patches {
            let json = patch.jsonBytes()
            #expect(try TextPatch(json: json) == patch)
            try text.apply(patch)
        }
        #expect(text.text == trace.endContent)
        #expect(
            TextPatch(position: 3, deleted: 1, inserted: "a\"b\\c\n\t\r\u{1}é").jsonBytes()
                == Array(#"{"p":3,"d":1,"i":"a\"b\\c\n\t\r\u0001é"}"#.utf8))
        #expect(throws: TextPatchError.self) { try TextPatch(json: Array(#"{"p":1}"#.utf8)) }
        var small = TextBuffer("abc")
        #expect(throws: TextPatchError.self) { try small.apply(TextPatch(position: 2, deleted: 5, inserted: "")) }
        #expect(small.text == "abc")
    }

    @Test func storeReplaysTracePrefixAtRandomRevisions() async throws {
        // One patch = one op, snapshot every 500 with truncation keeping the previous 500; replay
        // at head and at random retained revisions must equal the independently computed text.
        let trace = try Self.path("automerge-paper").map { try EditingTrace.load(path: $0) } ?? EditingTrace.generated()
        let patches = Array(trace.patches.prefix(longTests ? trace.patches.count : 6_000))
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        var expected: [String] = [trace.startContent]
        var text = TextBuffer(trace.startContent)
        try await withStore(dir.path) { store async throws in
            let document = doc("paper")
            for (index, patch) in patches.enumerated() {
                try text.apply(patch)
                expected.append(text.text)
                let revision = try await store.append(
                    [NewOp(opID: OpID(high: 5, low: UInt64(index)), author: [1], payload: patch.jsonBytes())], to: document
                ).revisions[0]
                if revision % 500 == 0 {
                    try await store.putSnapshot(Array(text.text.utf8), of: document, at: revision)
                    if revision > 500 { try await store.truncate(document, below: revision - 499) }
                }
            }
            let head = try store.replay(document, with: TextReducer())
            #expect(head.revision == UInt64(patches.count) && head.state.text == expected[patches.count])
            let floor = try #require(try store.info(of: document)).floor
            var random = SplitMix64(seed: 11)
            for _ in 0..<20 {
                let revision = floor - 1 + random.next() % (UInt64(patches.count) - floor + 2)
                #expect(
                    try store.replay(document, to: revision, with: TextReducer()).state.text == expected[Int(revision)],
                    "revision \(revision)")
            }
            #expect(throws: OpLogError.self) { try store.replay(document, to: floor - 2, with: TextReducer()) }
        }
    }
}
