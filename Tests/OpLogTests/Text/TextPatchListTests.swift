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

    @Test func escapesDecodeAsJSONDefinesThem() throws {
        let json = #"{"p":0,"d":0,"i":"\u0041\/\b\f\ud83d\ude00\u00e9é\"\\"}"#
        #expect(try TextPatch(json: Array(json.utf8)).inserted == "A/\u{08}\u{0C}😀éé\"\\")
        // A key may be escaped too: it is the decoded name that counts.
        #expect(try TextPatch(json: Array(#"{"\u0070":1,"d":0,"i":""}"#.utf8)) == TextPatch(position: 1, deleted: 0, inserted: ""))
    }

    /// Bytes that are not UTF-8 (overlong, surrogate, above U+10FFFF, cut short, stray continuation)
    /// and broken escapes are errors, never a trap or a replacement character.
    @Test(
        arguments: [
            [0xC0, 0x80], [0xC1, 0xBF], [0xE0, 0x80, 0x80], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xF5, 0x80, 0x80, 0x80],
            [0xE2, 0x82], [0x80], [0xFF], [0xF0, 0x9F, 0x98],
        ] as [[UInt8]])
    func invalidUTF8IsRejected(_ inside: [UInt8]) {
        let payload = Array(#"{"p":0,"d":0,"i":"a"#.utf8) + inside + Array(#"b"}"#.utf8)
        #expect(throws: TextPatchError.self) { try TextPatch(json: payload) }
        var state = TextBuffer("x")
        let view = StoredOpView(
            StoredOp(
                revision: 1, opID: OpID(high: 0, low: 1), author: [], clientTimeMilliseconds: nil, serverTimeMilliseconds: 0,
                payload: payload))
        #expect(throws: TextPatchError.self) { try TextReducer().apply(view, to: &state) }
        #expect(state.text == "x")
    }

    @Test(arguments: [
        #"\ud83d"#, #"\ud83dx"#, #"\ude00"#, #"\u12"#, #"\u12g4"#, #"\x"#, #"\"#,
    ])
    func brokenEscapesAreRejected(_ escape: String) {
        #expect(throws: TextPatchError.self) { try TextPatch(json: Array(("{\"p\":0,\"d\":0,\"i\":\"" + escape + "\"}").utf8)) }
    }

    @Test(arguments: ["-", "--1", "1234567890123456789", "", "+1"])
    func malformedIntegersAreRejected(_ number: String) {
        #expect(throws: TextPatchError.self) { try TextPatch(json: Array(("{\"p\":" + number + ",\"d\":0,\"i\":\"\"}").utf8)) }
    }

    /// Random texts of every kind of scalar (ASCII, controls, two-, three- and four-byte forms) make
    /// the same text through `jsonBytes()` and the byte parser, in both payload formats.
    @Test func randomTextsRoundTripThroughTheByteParser() throws {
        var random = SplitMix64(seed: 0x7E57_7A7C)
        let ranges: [ClosedRange<UInt32>] = [0x00...0x7F, 0x80...0x7FF, 0x800...0xD7FF, 0xE000...0xFFFF, 0x10000...0x10FFFF]
        var reference = ""
        var buffer = TextBuffer()
        for round in 0..<2_000 {
            var inserted = String.UnicodeScalarView()
            for _ in 0..<Int.random(in: 0...12, using: &random) {
                let range = ranges[Int.random(in: 0..<ranges.count, using: &random)]
                inserted.append(Unicode.Scalar(UInt32.random(in: range, using: &random))!)
            }
            let length = reference.unicodeScalars.count
            let position = Int.random(in: 0...length, using: &random)
            let deleted = Int.random(in: 0...min(3, length - position), using: &random)
            let patch = TextPatch(position: position, deleted: deleted, inserted: String(inserted))
            #expect(try TextPatch(json: patch.jsonBytes()) == patch)
            var scalars = Array(reference.unicodeScalars)
            scalars.replaceSubrange(position..<(position + deleted), with: inserted)
            reference = String(String.UnicodeScalarView(scalars))
            let payload = round % 2 == 0 ? patch.jsonBytes() : TextPatch.jsonBytes([patch])
            let op = StoredOp(
                revision: UInt64(round + 1), opID: OpID(high: 0, low: UInt64(round)), author: [], clientTimeMilliseconds: nil,
                serverTimeMilliseconds: 0, payload: payload)
            try TextReducer().apply(StoredOpView(op), to: &buffer)
        }
        #expect(buffer.text == reference)
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
