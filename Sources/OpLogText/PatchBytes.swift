/// The one parser of patch payloads, working on the payload's bytes: no `String` is built unless the
/// caller asks for a `TextPatch`. `TextReducer` applies what it finds straight into a `TextBuffer`,
/// so replaying an op allocates nothing for a single-patch payload.
///
/// Accepts one patch object `{"p":<int>,"d":<int>,"i":<string>}` (fields in any order, no
/// whitespace, as `TextPatch.jsonBytes()` writes) or a JSON array of them with optional whitespace
/// around the elements. Strings take the standard JSON escapes; other bytes must be valid UTF-8.
struct PatchBytes {
    private let bytes: ArraySlice<UInt8>
    private var index: Int

    init(_ bytes: ArraySlice<UInt8>) {
        self.bytes = bytes
        self.index = bytes.startIndex
    }

    /// A parsed patch whose inserted text is still the JSON string's bytes.
    struct Patch {
        var position: Int
        var deleted: Int
        var inserted: JSONString
    }

    /// A payload's patches: one object, or a list (the only case that allocates).
    enum Payload {
        case one(Patch)
        case list([Patch])
    }

    /// Parses a whole payload.
    static func parse(_ bytes: ArraySlice<UInt8>) throws(TextPatchError) -> Payload {
        var parser = PatchBytes(bytes)
        guard parser.index < bytes.endIndex, bytes[parser.index] == UInt8(ascii: "[") else {
            let patch = try parser.object()
            guard parser.index == bytes.endIndex else { throw TextPatchError(detail: "trailing bytes after the patch") }
            return .one(patch)
        }
        parser.index += 1
        var patches: [Patch] = []
        parser.skipWhitespace()
        if parser.index < bytes.endIndex, bytes[parser.index] == UInt8(ascii: "]") {
            parser.index += 1
        } else {
            while true {
                parser.skipWhitespace()
                patches.append(try parser.object())
                parser.skipWhitespace()
                if try parser.comma() { continue }
                try parser.expect(UInt8(ascii: "]"))
                break
            }
        }
        parser.skipWhitespace()
        guard parser.index == bytes.endIndex else { throw TextPatchError(detail: "trailing bytes after the patch list") }
        return .list(patches)
    }

    private var offset: Int { index - bytes.startIndex }

    private mutating func skipWhitespace() {
        while index < bytes.endIndex {
            switch bytes[index] {
            case 0x20, 0x09, 0x0A, 0x0D: index += 1
            default: return
            }
        }
    }

    private mutating func object() throws(TextPatchError) -> Patch {
        try expect(UInt8(ascii: "{"))
        var position: Int?
        var deleted: Int?
        var inserted: JSONString?
        repeat {
            let key = try fieldName()
            try expect(UInt8(ascii: ":"))
            switch key {
            case UInt8(ascii: "p"): position = try integer()
            case UInt8(ascii: "d"): deleted = try integer()
            case UInt8(ascii: "i"): inserted = try string()
            default: throw TextPatchError(detail: "unknown field at \(offset)")
            }
        } while try comma()
        try expect(UInt8(ascii: "}"))
        guard let position, let deleted, let inserted else { throw TextPatchError(detail: "a patch needs p, d and i") }
        return Patch(position: position, deleted: deleted, inserted: inserted)
    }

    /// A field name's one ASCII letter, or 0 for any other name. Names are read without building a
    /// `JSONString` when unescaped (what every writer produces), as a string otherwise.
    private mutating func fieldName() throws(TextPatchError) -> UInt8 {
        if bytes.endIndex - index >= 3, bytes[index] == UInt8(ascii: "\""), bytes[index + 2] == UInt8(ascii: "\""),
            bytes[index + 1] != UInt8(ascii: "\\"), bytes[index + 1] < 0x80
        {
            index += 3
            return bytes[index - 2]
        }
        let name = try string()
        guard let scalar = name.singleScalar, scalar.isASCII else { return 0 }
        return UInt8(scalar.value)
    }

    private mutating func expect(_ byte: UInt8) throws(TextPatchError) {
        guard index < bytes.endIndex, bytes[index] == byte else {
            throw TextPatchError(detail: "expected '\(Character(Unicode.Scalar(byte)))' at \(offset)")
        }
        index += 1
    }

    private mutating func comma() throws(TextPatchError) -> Bool {
        guard index < bytes.endIndex else { throw TextPatchError(detail: "unexpected end") }
        if bytes[index] == UInt8(ascii: ",") {
            index += 1
            return true
        }
        return false
    }

    /// An optional `-` and 1 to 18 characters in all (so it cannot overflow `Int`).
    private mutating func integer() throws(TextPatchError) -> Int {
        let start = index
        let negative = index < bytes.endIndex && bytes[index] == UInt8(ascii: "-")
        if negative { index += 1 }
        var value = 0
        while index < bytes.endIndex, bytes[index] >= 0x30, bytes[index] <= 0x39 {
            value = value &* 10 &+ Int(bytes[index] - 0x30)
            index += 1
        }
        let digits = index - start - (negative ? 1 : 0)
        guard digits >= 1, index - start <= 18 else { throw TextPatchError(detail: "expected an integer at \(start - bytes.startIndex)") }
        return negative ? -value : value
    }

    /// A JSON string, checked (escapes, UTF-8) and measured, not decoded.
    private mutating func string() throws(TextPatchError) -> JSONString {
        try expect(UInt8(ascii: "\""))
        let start = index
        var scalars = 0
        var plainASCII = true
        while index < bytes.endIndex {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") {
                let body = bytes[start..<index]
                index += 1
                return JSONString(body: body, scalarCount: scalars, isPlainASCII: plainASCII)
            }
            if byte < 0x80 && byte != UInt8(ascii: "\\") {
                index += 1
            } else {
                plainASCII = false
                let (_, next) = try JSONString.scalar(in: bytes, at: index)
                index = next
            }
            scalars += 1
        }
        throw TextPatchError(detail: "unterminated string")
    }
}

/// The bytes between a JSON string's quotes, already checked by `PatchBytes`.
struct JSONString {
    let body: ArraySlice<UInt8>
    /// Unicode scalars the string decodes to.
    let scalarCount: Int
    /// No escapes and no bytes above 0x7F: each byte is one scalar.
    let isPlainASCII: Bool

    /// The scalar when the string decodes to exactly one, else nil (field names).
    var singleScalar: Unicode.Scalar? {
        guard scalarCount == 1, let (scalar, _) = try? Self.scalar(in: body, at: body.startIndex) else { return nil }
        return scalar
    }

    /// Calls `body` with each scalar in order.
    func forEachScalar(_ visit: (Unicode.Scalar) -> Void) {
        if isPlainASCII {
            for byte in body { visit(Unicode.Scalar(byte)) }
            return
        }
        var index = body.startIndex
        while index < body.endIndex {
            // `PatchBytes.string()` checked every scalar of this range: a failure here is a bug.
            guard let (scalar, next) = try? Self.scalar(in: body, at: index) else {
                assertionFailure("a checked JSON string failed to decode at \(index - body.startIndex)")
                return
            }
            visit(scalar)
            index = next
        }
    }

    func decoded() -> String {
        var view = String.UnicodeScalarView()
        forEachScalar { view.append($0) }
        return String(view)
    }

    /// The scalar starting at `index` (a raw UTF-8 sequence or an escape) and the index after it.
    static func scalar(in bytes: ArraySlice<UInt8>, at index: Int) throws(TextPatchError) -> (Unicode.Scalar, Int) {
        let lead = bytes[index]
        if lead == UInt8(ascii: "\\") { return try escape(in: bytes, at: index + 1) }
        if lead < 0x80 { return (Unicode.Scalar(lead), index + 1) }
        // UTF-8 (RFC 3629): the lead byte gives the length and the range of the second byte, which
        // rules out overlong forms, surrogates and values above U+10FFFF.
        let length: Int
        var secondRange: ClosedRange<UInt8> = 0x80...0xBF
        var value: UInt32
        switch lead {
        case 0xC2...0xDF: (length, value) = (2, UInt32(lead & 0x1F))
        case 0xE0: (length, value, secondRange) = (3, UInt32(lead & 0x0F), 0xA0...0xBF)
        case 0xE1...0xEC, 0xEE...0xEF: (length, value) = (3, UInt32(lead & 0x0F))
        case 0xED: (length, value, secondRange) = (3, UInt32(lead & 0x0F), 0x80...0x9F)
        case 0xF0: (length, value, secondRange) = (4, UInt32(lead & 0x07), 0x90...0xBF)
        case 0xF1...0xF3: (length, value) = (4, UInt32(lead & 0x07))
        case 0xF4: (length, value, secondRange) = (4, UInt32(lead & 0x07), 0x80...0x8F)
        default: throw TextPatchError(detail: "string is not UTF-8")
        }
        guard bytes.endIndex - index >= length, secondRange.contains(bytes[index + 1]) else {
            throw TextPatchError(detail: "string is not UTF-8")
        }
        for position in (index + 1)..<(index + length) {
            let byte = bytes[position]
            guard byte & 0xC0 == 0x80 else { throw TextPatchError(detail: "string is not UTF-8") }
            value = value << 6 | UInt32(byte & 0x3F)
        }
        guard let scalar = Unicode.Scalar(value) else { throw TextPatchError(detail: "string is not UTF-8") }
        return (scalar, index + length)
    }

    /// The escape whose letter is at `index` (after the backslash).
    private static func escape(in bytes: ArraySlice<UInt8>, at index: Int) throws(TextPatchError) -> (Unicode.Scalar, Int) {
        guard index < bytes.endIndex else { throw TextPatchError(detail: "unterminated string") }
        switch bytes[index] {
        case UInt8(ascii: "n"): return ("\n", index + 1)
        case UInt8(ascii: "t"): return ("\t", index + 1)
        case UInt8(ascii: "r"): return ("\r", index + 1)
        case UInt8(ascii: "b"): return ("\u{08}", index + 1)
        case UInt8(ascii: "f"): return ("\u{0C}", index + 1)
        case UInt8(ascii: "/"), UInt8(ascii: "\\"), UInt8(ascii: "\""): return (Unicode.Scalar(bytes[index]), index + 1)
        case UInt8(ascii: "u"):
            guard let code = hex4(bytes, at: index + 1) else { throw TextPatchError(detail: "bad \\u escape") }
            var next = index + 5
            var value = code
            if (0xD800..<0xDC00).contains(code) {
                // A surrogate pair: the low half follows as another \u escape.
                guard next + 6 <= bytes.endIndex, bytes[next] == UInt8(ascii: "\\"), bytes[next + 1] == UInt8(ascii: "u"),
                    let low = hex4(bytes, at: next + 2), (0xDC00..<0xE000).contains(low)
                else { throw TextPatchError(detail: "unpaired surrogate") }
                next += 6
                value = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
            }
            guard let scalar = Unicode.Scalar(value) else { throw TextPatchError(detail: "invalid scalar \(value)") }
            return (scalar, next)
        default: throw TextPatchError(detail: "unknown escape")
        }
    }

    private static func hex4(_ bytes: ArraySlice<UInt8>, at index: Int) -> UInt32? {
        guard bytes.endIndex - index >= 4 else { return nil }
        var value: UInt32 = 0
        for byte in bytes[index..<(index + 4)] {
            let digit: UInt8
            switch byte {
            case 0x30...0x39: digit = byte - 0x30
            case 0x41...0x46: digit = byte - 0x41 + 10
            case 0x61...0x66: digit = byte - 0x61 + 10
            default: return nil
            }
            value = value << 4 | UInt32(digit)
        }
        return value
    }
}
