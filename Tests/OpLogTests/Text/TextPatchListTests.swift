import OpLog
import OpLogTestSupport
import OpLogText
import Testing

/// The text reducer's two payload formats: one patch object (unchanged) and a JSON array of them,
/// which the editor server stores for a submit of several patches. Checked byte for byte and by
/// applying both to a real store's replay.
@Suite struct TextPatchListTests {
    @Test func singleObjectFormatIsUnchanged() throws {
        let patch = TextPatch(position: 3, deleted: 1, inserted: "a\"\\\n😀")
        #expect(patch.jsonBytes() == Array(#"{"p":3,"d":1,"i":"a\"\\\n😀"}"#.utf8))
        #expect(try TextPatch.parseList(json: patch.jsonBytes()) == [patch])
        #expect(try TextPatch(json: patch.jsonBytes()) == patch)
    }

    @Test func arrayRoundTrip() throws {
        let patches = [
            TextPatch(position: 0, deleted: 0, inserted: "héllo"), TextPatch(position: 5, deleted: 0, inserted: " 🌍"),
            TextPatch(position: 1, deleted: 2, inserted: ""),
        ]
        let bytes = TextPatch.jsonBytes(patches)
        #expect(bytes == Array(#"[{"p":0,"d":0,"i":"héllo"},{"p":5,"d":0,"i":" 🌍"},{"p":1,"d":2,"i":""}]"#.utf8))
        #expect(try TextPatch.parseList(json: bytes) == patches)
        #expect(
            try TextPatch.parseList(json: Array(#"[ {"p":1,"d":0,"i":"x"} , {"i":"y","d":0,"p":2} ]"#.utf8))
                == [TextPatch(position: 1, deleted: 0, inserted: "x"), TextPatch(position: 2, deleted: 0, inserted: "y")])
        #expect(try TextPatch.parseList(json: Array("[]".utf8)).isEmpty)
        #expect(TextPatch.jsonBytes([]) == Array("[]".utf8))
    }

    @Test(arguments: [
        "", "[", "[{\"p\":1,\"d\":0,\"i\":\"x\"}", "[{\"p\":1,\"d\":0,\"i\":\"x\"},]", "[1]", "[{\"p\":1}]",
        "{\"p\":1,\"d\":0,\"i\":\"x\"} ", " {\"p\":1,\"d\":0,\"i\":\"x\"}", "[] x", "[{\"p\":1,\"d\":0,\"i\":\"x\"}]]",
    ])
    func malformedListsAreRejected(_ text: String) {
        #expect(throws: TextPatchError.self) { try TextPatch.parseList(json: Array(text.utf8)) }
    }

    @Test func reducerAppliesBothFormatsAndListsAtomically() throws {
        let reducer = TextReducer()
        var state = reducer.initialState()
        func op(_ payload: [UInt8], _ revision: Revision) -> StoredOp {
            StoredOp(
                revision: revision, opID: OpID(high: 0, low: revision), author: [], clientTimeMilliseconds: nil,
                serverTimeMilliseconds: 0, payload: payload)
        }
        try reducer.apply(op(TextPatch(position: 0, deleted: 0, inserted: "abc").jsonBytes(), 1), to: &state)
        let twoPatches = [TextPatch(position: 3, deleted: 0, inserted: "😀d"), TextPatch(position: 0, deleted: 1, inserted: "A")]
        try reducer.apply(op(TextPatch.jsonBytes(twoPatches), 2), to: &state)
        #expect(state.text == "Abc😀d")
        // The second patch is out of range for the text the first one leaves: nothing is applied.
        let bad = TextPatch.jsonBytes([TextPatch(position: 0, deleted: 5, inserted: ""), TextPatch(position: 1, deleted: 1, inserted: "")])
        #expect(throws: TextPatchError.self) { try reducer.apply(op(bad, 3), to: &state) }
        #expect(state.text == "Abc😀d")
        try reducer.apply(op(Array("[]".utf8), 3), to: &state)
        #expect(state.text == "Abc😀d")
    }

    @Test func storeReplaysMixedPayloads() async throws {
        let directory = TemporaryDirectory("textpatchlist")
        defer { directory.remove() }
        let document = doc("mixed")
        let payloads: [[UInt8]] = [
            TextPatch(position: 0, deleted: 0, inserted: "hello").jsonBytes(),
            TextPatch.jsonBytes([TextPatch(position: 5, deleted: 0, inserted: " world"), TextPatch(position: 0, deleted: 1, inserted: "H")]
            ),
            TextPatch(position: 11, deleted: 0, inserted: "!").jsonBytes(),
        ]
        try await withStore(directory.path) { store in
            for (index, payload) in payloads.enumerated() {
                _ = try await store.append(
                    [NewOp(opID: OpID(high: 7, low: UInt64(index)), author: Array("t".utf8), payload: payload)], to: document)
            }
            let (text, revision) = try store.replay(document, with: TextReducer())
            #expect(text.text == "Hello world!" && revision == 3)
        }
    }
}
