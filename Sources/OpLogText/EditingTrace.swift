import Foundation
import OpLog
import OpLogStorage

/// An editing session: a starting text and the patches that turn it into the final text.
public struct EditingTrace: Sendable {
    public var name: String
    public var startContent: String
    public var endContent: String?
    public var patches: [TextPatch]

    /// Largest trace file accepted after decompression (256 MiB).
    public static let decompressedBytesMax = 256 << 20

    /// Loads a gzip-compressed JSON trace (`shared/traces` format):
    /// `{"startContent": "", "endContent": "...", "txns": [{"patches": [[pos, del, "ins"], ...]}]}`.
    /// The name is the file name without `.json.gz`.
    public static func load(path: String) throws -> EditingTrace {
        let compressed = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        let json = try Zlib.gunzip(compressed, maximumBytes: decompressedBytesMax)
        let file: TraceFile
        do { file = try JSONDecoder().decode(TraceFile.self, from: Data(json)) } catch {
            throw TextPatchError(detail: "\(path) is not an editing trace: \(error)")
        }
        var name = (path as NSString).lastPathComponent
        if name.hasSuffix(".json.gz") { name.removeLast(8) }
        return EditingTrace(
            name: name, startContent: file.startContent ?? "", endContent: file.endContent,
            patches: file.txns.flatMap { $0.patches.map(\.patch) })
    }

    /// The trace file's JSON, decoded directly into patches.
    private struct TraceFile: Decodable {
        var startContent: String?
        var endContent: String?
        var txns: [Transaction]

        struct Transaction: Decodable {
            var patches: [PatchTriple]
        }

        /// `[pos, del, "ins"]`.
        struct PatchTriple: Decodable {
            var patch: TextPatch

            init(from decoder: any Decoder) throws {
                var container = try decoder.unkeyedContainer()
                patch = TextPatch(
                    position: try container.decode(Int.self), deleted: try container.decode(Int.self),
                    inserted: try container.decode(String.self))
            }
        }
    }

    /// A seeded, generated typing session (words, spaces, newlines, backspaces, cursor jumps), for
    /// machines without the real traces. `endContent` is computed only when asked for (it replays
    /// every patch).
    public static func generated(seed: UInt64 = 42, patchCount: Int = 20_000, computeEndContent: Bool = true) -> EditingTrace {
        var random = SplitMix64(seed: seed)
        let words = [
            "the", "log", "of", "every", "edit", "is", "kept", "and", "replayed", "from", "a", "snapshot",
            "server", "revision", "document", "écrit", "naïve", "文字", "👋", "durable",
        ]
        var length = 0
        var cursor = 0
        var patches: [TextPatch] = []
        patches.reserveCapacity(patchCount)
        while patches.count < patchCount {
            let roll = random.next() % 100
            if roll < 3 && length > 0 {
                cursor = Int(random.next() % UInt64(length + 1))
            } else if roll < 12 && cursor > 0 {
                patches.append(TextPatch(position: cursor - 1, deleted: 1, inserted: ""))
                cursor -= 1
                length -= 1
            } else {
                let word = words[Int(random.next() % UInt64(words.count))]
                let separator = random.next() % 10 == 0 ? "\n" : " "
                for scalar in (word + separator).unicodeScalars where patches.count < patchCount {
                    patches.append(TextPatch(position: cursor, deleted: 0, inserted: String(Character(scalar))))
                    cursor += 1
                    length += 1
                }
            }
        }
        guard computeEndContent else { return EditingTrace(name: "generated", startContent: "", endContent: nil, patches: patches) }
        var text = TextBuffer()
        for patch in patches { try? text.apply(patch) }
        return EditingTrace(name: "generated", startContent: "", endContent: text.text, patches: patches)
    }
}

/// A small seeded generator (SplitMix64): same seed, same sequence, on every platform.
extension EditingTrace {
    /// A stable op ID per (document, patch index): replaying a session after a crash repeats the
    /// same IDs, so the append that was in flight is recognised as a retry.
    public static func opID(document: String, patchIndex: Int) -> OpID {
        OpID(high: StableHash.fnv1a(document), low: UInt64(patchIndex))
    }
}

public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
