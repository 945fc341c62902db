import OpLog

/// The reducer for plain text edited by `TextPatch` ops (payload: the patch's compact JSON).
/// Snapshots are the text's UTF-8 bytes. Copy it as the model for a reducer of your own.
public struct TextReducer: Reducer {
    public init() {}

    public func initialState() -> TextBuffer { TextBuffer() }

    public func apply(_ op: StoredOp, to state: inout TextBuffer) throws {
        try state.apply(TextPatch(json: op.payload))
    }

    public func encode(_ state: TextBuffer) throws -> [UInt8] { Array(state.text.utf8) }

    public func decode(_ bytes: [UInt8]) throws -> TextBuffer {
        guard let text = String(validating: bytes, as: UTF8.self) else { throw TextPatchError(detail: "snapshot is not UTF-8") }
        return TextBuffer(text)
    }
}
