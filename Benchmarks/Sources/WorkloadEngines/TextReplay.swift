import OpLogText

/// The baselines' half of W3: what OpLog's `replay` with `TextReducer` does, over a baseline's own
/// stored snapshot and ops. The snapshot decodes the way `TextReducer.decode` does (UTF-8 text into
/// a `TextBuffer`), each op's patch JSON (`BenchOp.encoded` from `patchOffset` on) goes through
/// `TextPatch(json:)` and `TextBuffer.apply`, and the result is the buffer's text — so every engine
/// pays the same decoding and patching cost and only its reads differ.
public struct TextReplay {
    private let engine: String
    private let document: String
    private var buffer: TextBuffer
    /// The revision the buffer stands at.
    public private(set) var revision: UInt64

    /// Starts from the snapshot taken at `revision` (nil: no snapshot, the empty text at revision 0).
    public init(engine: String, document: String, snapshot: (revision: UInt64, bytes: UnsafeRawBufferPointer)?) throws {
        self.engine = engine
        self.document = document
        if let snapshot {
            guard let text = String(validating: snapshot.bytes, as: UTF8.self) else {
                throw EngineError(
                    engine: engine, call: "replay", code: 0, message: "\(document): snapshot \(snapshot.revision) is not UTF-8")
            }
            buffer = TextBuffer(text)
            revision = snapshot.revision
        } else {
            buffer = TextBuffer()
            revision = 0
        }
    }

    /// Applies the stored op at `opRevision`, which must be the next one.
    public mutating func apply(opRevision: UInt64, encodedOp: UnsafeRawBufferPointer) throws {
        guard opRevision == revision + 1 else {
            throw EngineError(
                engine: engine, call: "replay", code: 0,
                message: "\(document): expected op \(revision + 1), found \(opRevision)")
        }
        guard encodedOp.count > BenchOp.patchOffset else {
            throw EngineError(engine: engine, call: "replay", code: 0, message: "\(document): op \(opRevision) is too short")
        }
        do {
            try buffer.apply(TextPatch(json: Array(encodedOp[BenchOp.patchOffset...])))
        } catch {
            throw EngineError(engine: engine, call: "replay", code: 0, message: "\(document): op \(opRevision): \(error)")
        }
        revision = opRevision
    }

    /// The text, once the buffer stands at `target`.
    public func text(at target: UInt64) throws -> String {
        guard revision == target else {
            throw EngineError(
                engine: engine, call: "replay", code: 0,
                message: "\(document): ops end at \(revision), wanted \(target)")
        }
        return buffer.text
    }
}
