import OpLog

/// The reducer for plain text edited by `TextPatch` ops. A payload is either one patch's compact
/// JSON (`{"p":…,"d":…,"i":…}`, what `TextPatch.jsonBytes()` writes) or a JSON array of such
/// objects applied in order (`TextPatch.jsonBytes(_:)`; the editor server stores one submit so).
/// Snapshots are the text's UTF-8 bytes. Copy it as the model for a reducer of your own.
public struct TextReducer: Reducer {
    public init() {}

    public func initialState() -> TextBuffer { TextBuffer() }

    public func apply(_ op: StoredOp, to state: inout TextBuffer) throws {
        let patches = try TextPatch.parseList(json: op.payload)
        // All or nothing: check every range against the running length first, so a list whose later
        // patch is out of range leaves the text unchanged (without copying it).
        var length = state.count
        for patch in patches {
            guard patch.position >= 0, patch.deleted >= 0, patch.position <= length, patch.deleted <= length - patch.position else {
                throw TextPatchError(detail: "patch deletes \(patch.deleted) at \(patch.position) in a text of \(length) scalars")
            }
            length += patch.inserted.unicodeScalars.count - patch.deleted
        }
        for patch in patches { try state.apply(patch) }
    }

    public func encode(_ state: TextBuffer) throws -> [UInt8] { Array(state.text.utf8) }

    public func decode(_ bytes: [UInt8]) throws -> TextBuffer {
        guard let text = String(validating: bytes, as: UTF8.self) else { throw TextPatchError(detail: "snapshot is not UTF-8") }
        return TextBuffer(text)
    }
}
