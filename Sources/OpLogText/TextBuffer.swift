/// A text as Unicode scalars in a gap buffer: edits near the previous edit (what typing produces)
/// cost the distance moved, not the length of the text.
public struct TextBuffer: Sendable, Equatable {
    private var storage: [Unicode.Scalar]
    private var gapStart: Int
    private var gapEnd: Int

    public init(_ text: String = "") {
        storage = Array(text.unicodeScalars)
        gapStart = storage.count
        gapEnd = storage.count
    }

    /// Length in Unicode scalars.
    public var count: Int { storage.count - (gapEnd - gapStart) }

    public var text: String {
        var result = String.UnicodeScalarView()
        result.append(contentsOf: storage[0..<gapStart])
        result.append(contentsOf: storage[gapEnd...])
        return String(result)
    }

    public static func == (lhs: TextBuffer, rhs: TextBuffer) -> Bool { lhs.text == rhs.text }

    /// Applies a patch; positions count Unicode scalars.
    /// - Throws: `TextPatchError` when the range lies outside the text (the text is unchanged).
    public mutating func apply(_ patch: TextPatch) throws(TextPatchError) {
        guard patch.position >= 0, patch.deleted >= 0, patch.position <= count, patch.deleted <= count - patch.position else {
            throw TextPatchError(detail: "patch deletes \(patch.deleted) at \(patch.position) in a text of \(count) scalars")
        }
        moveGap(to: patch.position)
        gapEnd += patch.deleted
        let inserted = Array(patch.inserted.unicodeScalars)
        if gapEnd - gapStart < inserted.count { grow(by: inserted.count) }
        for scalar in inserted {
            storage[gapStart] = scalar
            gapStart += 1
        }
    }

    private mutating func moveGap(to position: Int) {
        while gapStart > position {
            gapStart -= 1
            gapEnd -= 1
            storage[gapEnd] = storage[gapStart]
        }
        while gapStart < position {
            storage[gapStart] = storage[gapEnd]
            gapStart += 1
            gapEnd += 1
        }
    }

    private mutating func grow(by needed: Int) {
        let extra = max(needed, storage.count / 2, 64)
        storage.insert(contentsOf: repeatElement(Unicode.Scalar(0), count: extra), at: gapEnd)
        gapEnd += extra
    }
}
