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
        try Self.checkRange(position: patch.position, deleted: patch.deleted, length: count)
        let inserted = patch.inserted.unicodeScalars
        replace(at: patch.position, deleting: patch.deleted, insertingCount: inserted.count) { insert in
            for scalar in inserted { insert(scalar) }
        }
    }

    /// Applies a patch parsed on its bytes, decoding the inserted text straight into the buffer.
    mutating func apply(_ patch: PatchBytes.Patch) throws(TextPatchError) {
        try Self.checkRange(position: patch.position, deleted: patch.deleted, length: count)
        replace(at: patch.position, deleting: patch.deleted, insertingCount: patch.inserted.scalarCount) { insert in
            patch.inserted.forEachScalar(insert)
        }
    }

    static func checkRange(position: Int, deleted: Int, length: Int) throws(TextPatchError) {
        guard position >= 0, deleted >= 0, position <= length, deleted <= length - position else {
            throw TextPatchError(detail: "patch deletes \(deleted) at \(position) in a text of \(length) scalars")
        }
    }

    /// Deletes `deleted` scalars at `position`, then inserts the `insertingCount` scalars that
    /// `produce` hands to its argument. The range is already checked.
    private mutating func replace(
        at position: Int, deleting deleted: Int, insertingCount: Int, _ produce: ((Unicode.Scalar) -> Void) -> Void
    ) {
        moveGap(to: position)
        gapEnd += deleted
        if gapEnd - gapStart < insertingCount { grow(by: insertingCount) }
        let end = gapStart + insertingCount
        produce { scalar in
            // `insertingCount` is the producer's own count: more would overwrite the text after the gap.
            precondition(gapStart < end, "more scalars than counted")
            storage[gapStart] = scalar
            gapStart += 1
        }
        assert(gapStart == end, "fewer scalars than counted")
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
