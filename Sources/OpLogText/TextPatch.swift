/// One edit of a text: delete `deleted` Unicode scalars at `position`, then insert `inserted` there.
/// The format of the editing traces in `shared/traces` (positions count Unicode scalars).
public struct TextPatch: Sendable, Equatable {
    public var position: Int
    public var deleted: Int
    public var inserted: String

    public init(position: Int, deleted: Int, inserted: String) {
        self.position = position
        self.deleted = deleted
        self.inserted = inserted
    }

    /// The patch as compact JSON, exactly `{"p":<int>,"d":<int>,"i":<string>}`: the string escapes
    /// only `"`, `\` and control characters (`\n`, `\t`, `\r`, else `\u00XX`); all else is raw UTF-8.
    public func jsonBytes() -> [UInt8] {
        var out = Array("{\"p\":\(position),\"d\":\(deleted),\"i\":\"".utf8)
        for byte in inserted.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out += Array("\\\"".utf8)
            case UInt8(ascii: "\\"): out += Array("\\\\".utf8)
            case 0x0A: out += Array("\\n".utf8)
            case 0x09: out += Array("\\t".utf8)
            case 0x0D: out += Array("\\r".utf8)
            case 0..<0x20:
                let hex = String(byte, radix: 16)
                out += Array(("\\u00" + (hex.count == 1 ? "0" + hex : hex)).utf8)
            default: out.append(byte)
            }
        }
        out += Array("\"}".utf8)
        return out
    }

    /// Parses what `jsonBytes()` writes (and standard JSON escapes in general).
    public init(json bytes: [UInt8]) throws(TextPatchError) {
        guard case .one(let patch) = try PatchBytes.parse(bytes[...]) else { throw TextPatchError(detail: "expected one patch object") }
        self.init(patch)
    }

    init(_ patch: PatchBytes.Patch) {
        self.init(position: patch.position, deleted: patch.deleted, inserted: patch.inserted.decoded())
    }

    /// Parses an op payload: either one patch object (what `jsonBytes()` writes) or a JSON array of
    /// them, `[{"p":…,"d":…,"i":…},…]`, applied in order (the editor server stores one submit that
    /// way). An empty array is a valid payload that changes nothing.
    public static func parseList(json bytes: [UInt8]) throws(TextPatchError) -> [TextPatch] {
        switch try PatchBytes.parse(bytes[...]) {
        case .one(let patch): [TextPatch(patch)]
        case .list(let patches): patches.map(TextPatch.init)
        }
    }

    /// The patches as one JSON array of `jsonBytes()` objects, without spaces: `[{…},{…}]`.
    public static func jsonBytes(_ patches: [TextPatch]) -> [UInt8] {
        var out: [UInt8] = [UInt8(ascii: "[")]
        for (index, patch) in patches.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            out += patch.jsonBytes()
        }
        out.append(UInt8(ascii: "]"))
        return out
    }
}

public struct TextPatchError: Error, Sendable, Equatable, CustomStringConvertible {
    public let detail: String
    public var description: String { detail }
}
