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
        var parser = PatchParser(bytes: bytes)
        self = try parser.parse()
    }

    /// Parses an op payload: either one patch object (what `jsonBytes()` writes) or a JSON array of
    /// them, `[{"p":…,"d":…,"i":…},…]`, applied in order (the editor server stores one submit that
    /// way). An empty array is a valid payload that changes nothing.
    public static func parseList(json bytes: [UInt8]) throws(TextPatchError) -> [TextPatch] {
        var parser = PatchParser(bytes: bytes)
        return try parser.parseOneOrMany()
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

/// A small parser for the patch object: three fields, integers and one string.
private struct PatchParser {
    let bytes: [UInt8]
    var index = 0

    mutating func parse() throws(TextPatchError) -> TextPatch {
        let patch = try object()
        guard index == bytes.count else { throw TextPatchError(detail: "trailing bytes after the patch") }
        return patch
    }

    /// One object (parsed exactly as `parse()` does), or `[` objects separated by `,` `]`;
    /// whitespace is allowed only inside and after the array, since neither format writes any.
    mutating func parseOneOrMany() throws(TextPatchError) -> [TextPatch] {
        guard index < bytes.count, bytes[index] == UInt8(ascii: "[") else { return [try parse()] }
        index += 1
        var patches: [TextPatch] = []
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "]") {
            index += 1
        } else {
            while true {
                skipWhitespace()
                patches.append(try object())
                skipWhitespace()
                if try comma() { continue }
                try expect("]")
                break
            }
        }
        skipWhitespace()
        guard index == bytes.count else { throw TextPatchError(detail: "trailing bytes after the patch list") }
        return patches
    }

    mutating func skipWhitespace() {
        while index < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[index]) { index += 1 }
    }

    mutating func object() throws(TextPatchError) -> TextPatch {
        try expect("{")
        var position: Int?
        var deleted: Int?
        var inserted: String?
        repeat {
            let key = try string()
            try expect(":")
            switch key {
            case "p": position = try integer()
            case "d": deleted = try integer()
            case "i": inserted = try string()
            default: throw TextPatchError(detail: "unknown field '\(key)'")
            }
        } while try comma()
        try expect("}")
        guard let position, let deleted, let inserted else { throw TextPatchError(detail: "a patch needs p, d and i") }
        return TextPatch(position: position, deleted: deleted, inserted: inserted)
    }

    mutating func expect(_ character: Character) throws(TextPatchError) {
        guard index < bytes.count, bytes[index] == character.asciiValue else {
            throw TextPatchError(detail: "expected '\(character)' at \(index)")
        }
        index += 1
    }

    mutating func comma() throws(TextPatchError) -> Bool {
        guard index < bytes.count else { throw TextPatchError(detail: "unexpected end") }
        if bytes[index] == UInt8(ascii: ",") {
            index += 1
            return true
        }
        return false
    }

    mutating func integer() throws(TextPatchError) -> Int {
        let start = index
        while index < bytes.count,
            bytes[index] >= 0x30 && bytes[index] <= 0x39 || (index == start && bytes[index] == UInt8(ascii: "-"))
        {
            index += 1
        }
        guard index - start <= 18, let value = Int(String(decoding: bytes[start..<index], as: UTF8.self)) else {
            throw TextPatchError(detail: "expected an integer at \(start)")
        }
        return value
    }

    mutating func string() throws(TextPatchError) -> String {
        try expect("\"")
        var out: [UInt8] = []
        while index < bytes.count {
            let byte = bytes[index]
            index += 1
            if byte == UInt8(ascii: "\"") {
                guard let text = String(validating: out, as: UTF8.self) else { throw TextPatchError(detail: "string is not UTF-8") }
                return text
            }
            guard byte == UInt8(ascii: "\\") else {
                out.append(byte)
                continue
            }
            guard index < bytes.count else { break }
            let escape = bytes[index]
            index += 1
            switch escape {
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "/"), UInt8(ascii: "\\"), UInt8(ascii: "\""): out.append(escape)
            case UInt8(ascii: "u"):
                guard index + 4 <= bytes.count,
                    let code = UInt32(String(decoding: bytes[index..<(index + 4)], as: UTF8.self), radix: 16)
                else {
                    throw TextPatchError(detail: "bad \\u escape")
                }
                index += 4
                var scalarValue = code
                if (0xD800..<0xDC00).contains(code) {
                    // A surrogate pair: the low half follows as another \u escape.
                    guard index + 6 <= bytes.count, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u"),
                        let low = UInt32(String(decoding: bytes[(index + 2)..<(index + 6)], as: UTF8.self), radix: 16),
                        (0xDC00..<0xE000).contains(low)
                    else { throw TextPatchError(detail: "unpaired surrogate") }
                    index += 6
                    scalarValue = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                }
                guard let scalar = Unicode.Scalar(scalarValue) else { throw TextPatchError(detail: "invalid scalar \(scalarValue)") }
                out += Array(String(Character(scalar)).utf8)
            default: throw TextPatchError(detail: "unknown escape")
            }
        }
        throw TextPatchError(detail: "unterminated string")
    }
}
