import OpLog

/// The reducer for plain text edited by `TextPatch` ops. A payload is either one patch's compact
/// JSON (`{"p":…,"d":…,"i":…}`, what `TextPatch.jsonBytes()` writes) or a JSON array of such
/// objects applied in order (`TextPatch.jsonBytes(_:)`; the editor server stores one submit so).
/// Snapshots are the text's UTF-8 bytes. Copy it as the model for a reducer of your own.
public struct TextReducer: Reducer {
    public init() {}

    public func initialState() -> TextBuffer { TextBuffer() }

    public func apply(_ op: StoredOp, to state: inout TextBuffer) throws {
        try apply(StoredOpView(op), to: &state)
    }

    /// Parses the payload on its bytes and edits the buffer in place: no allocation for a
    /// one-patch payload (what replay spends its time on).
    public func apply(_ op: StoredOpView, to state: inout TextBuffer) throws {
        switch try PatchBytes.parse(op.payload) {
        case .one(let patch):
            try state.apply(patch)
        case .list(let patches):
            // All or nothing: check every range against the running length first, so a list whose
            // later patch is out of range leaves the text unchanged (without copying it).
            var length = state.count
            for patch in patches {
                try TextBuffer.checkRange(position: patch.position, deleted: patch.deleted, length: length)
                length += patch.inserted.scalarCount - patch.deleted
            }
            for patch in patches { try state.apply(patch) }
        }
    }

    public func encode(_ state: TextBuffer) throws -> [UInt8] { Array(state.text.utf8) }

    public func decode(_ bytes: [UInt8]) throws -> TextBuffer {
        guard let text = String(validating: bytes, as: UTF8.self) else { throw TextPatchError(detail: "snapshot is not UTF-8") }
        return TextBuffer(text)
    }
}
