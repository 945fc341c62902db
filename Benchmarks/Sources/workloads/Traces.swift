import CZlibBench
import Foundation

/// One edit of a trace: replace `deleteCount` Unicode scalars at `position` with `insert`.
struct TracePatch: Sendable {
    var position: Int
    var deleteCount: Int
    var insert: String
    /// The transaction's recorded wall clock, milliseconds since 1970.
    var timeMillis: Int64
}

/// A real (or generated) editing session, flattened to one patch per op.
struct Trace: Sendable {
    var name: String
    var startContent: String
    /// What replaying every patch must produce; nil for generated sessions.
    var endContent: String?
    var patches: [TracePatch]
}

/// Loads the gzip JSON editing traces from `shared/traces`, documented in its README.
enum TraceLoader {
    /// The traces used by the workloads; W1 replays only the first.
    static let names = ["automerge-paper", "seph-blog1", "sveltecomponent", "friendsforever_flat"]

    /// Finds the folder: the explicit path, else `../shared/traces` from the repository root,
    /// whether the working directory is the root, `Benchmarks/`, or elsewhere (then via this file's
    /// path). Nil when the chosen folder holds no traces.
    static func locate(explicit: String?) -> String? {
        let cwd = FileManager.default.currentDirectoryPath
        let repoRootFromSource = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().path
        let candidates =
            explicit.map { [$0] } ?? [cwd + "/../shared/traces", cwd + "/../../shared/traces", repoRootFromSource + "/../shared/traces"]
        return candidates.first { FileManager.default.fileExists(atPath: $0 + "/automerge-paper.json.gz") }
            .map { URL(fileURLWithPath: $0).standardizedFileURL.path }
    }

    /// Loads `name.json.gz` from `folder` and checks it replays to its `endContent`.
    static func load(name: String, folder: String) throws -> Trace {
        let path = folder + "/" + name + ".json.gz"
        guard let compressed = FileManager.default.contents(atPath: path) else {
            throw WorkloadError("cannot read \(path)")
        }
        let json = try Gzip.decompress([UInt8](compressed))
        let file = try JSONDecoder().decode(TraceFile.self, from: Data(json))
        var patches: [TracePatch] = []
        for txn in file.txns {
            let time = ISOTime.millis(txn.time)
            for patch in txn.patches {
                patches.append(TracePatch(position: patch.position, deleteCount: patch.deleteCount, insert: patch.insert, timeMillis: time))
            }
        }
        let trace = Trace(name: name, startContent: file.startContent, endContent: file.endContent, patches: patches)
        var text = EditableText(trace.startContent)
        for patch in trace.patches { text.apply(patch) }
        guard text.string == file.endContent else { throw WorkloadError("\(name): replay does not reach endContent") }
        return trace
    }

    /// A seeded stand-in for a missing traces folder: bursts of typing at a cursor that sometimes
    /// jumps, with backspaces, roughly the shape of the real traces (mostly one-character inserts).
    static func generated(name: String, patches count: Int, seed: UInt64) -> Trace {
        var random = SplitMix64(seed: seed)
        let alphabet = Array("etaoin shrdlu cmfwyp vbgkqj xz,.\nETAOIN é—").map(String.init)
        var length = 0
        var cursor = 0
        var patches: [TracePatch] = []
        patches.reserveCapacity(count)
        for index in 0..<count {
            if random.next(below: 100) < 3 { cursor = random.next(below: length + 1) }
            let time = 1_600_000_000_000 + Int64(index) * 300
            if cursor > 0 && random.next(below: 100) < 25 {
                patches.append(TracePatch(position: cursor - 1, deleteCount: 1, insert: "", timeMillis: time))
                cursor -= 1
                length -= 1
            } else {
                patches.append(
                    TracePatch(position: cursor, deleteCount: 0, insert: alphabet[random.next(below: alphabet.count)], timeMillis: time))
                cursor += 1
                length += 1
            }
        }
        return Trace(name: name, startContent: "", endContent: nil, patches: patches)
    }
}

/// The file's JSON shape: `{"startContent", "endContent", "txns": [{"time", "patches": [[pos, del, "ins"]]}]}`.
private struct TraceFile: Decodable {
    struct Txn: Decodable {
        var time: String
        var patches: [Patch]
    }

    /// A patch is a heterogeneous JSON array, so it decodes from an unkeyed container.
    struct Patch: Decodable {
        var position: Int
        var deleteCount: Int
        var insert: String

        init(from decoder: any Decoder) throws {
            var fields = try decoder.unkeyedContainer()
            position = try fields.decode(Int.self)
            deleteCount = try fields.decode(Int.self)
            insert = try fields.decode(String.self)
        }
    }

    var startContent: String
    var endContent: String
    var txns: [Txn]
}

/// Parses the traces' fixed `YYYY-MM-DDTHH:MM:SS.sssZ` timestamps; 0 if the shape differs.
enum ISOTime {
    static func millis(_ text: String) -> Int64 {
        let digits = text.utf8.map { Int64($0) - 48 }
        guard digits.count >= 19 else { return 0 }
        func number(_ range: Range<Int>) -> Int64 { range.reduce(0) { $0 * 10 + digits[$1] } }
        let (year, month, day) = (number(0..<4), number(5..<7), number(8..<10))
        let seconds = number(11..<13) * 3600 + number(14..<16) * 60 + number(17..<19)
        let millis = digits.count >= 23 ? number(20..<23) : 0
        return (daysFromCivil(year: year, month: month, day: day) * 86_400 + seconds) * 1000 + millis
    }

    /// Howard Hinnant's days-from-civil: days since 1970-01-01 in the proleptic Gregorian calendar.
    private static func daysFromCivil(year: Int64, month: Int64, day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }
}

/// gzip decompression through zlib.
enum Gzip {
    static func decompress(_ input: [UInt8]) throws -> [UInt8] {
        var stream = z_stream()
        // windowBits 16 + 15: expect a gzip header and allow the largest window. The inflateInit2
        // macro is not imported into Swift, so call the function it expands to.
        var rc = inflateInit2_(&stream, 16 + 15, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size))
        guard rc == Z_OK else { throw WorkloadError("inflateInit2 failed (\(rc))") }
        defer { inflateEnd(&stream) }
        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        var input = input
        try input.withUnsafeMutableBufferPointer { inputBuffer in
            stream.next_in = inputBuffer.baseAddress
            stream.avail_in = UInt32(inputBuffer.count)
            repeat {
                let produced = chunk.withUnsafeMutableBufferPointer { chunkBuffer in
                    stream.next_out = chunkBuffer.baseAddress
                    stream.avail_out = UInt32(chunkBuffer.count)
                    rc = inflate(&stream, Z_NO_FLUSH)
                    return chunkBuffer.count - Int(stream.avail_out)
                }
                guard rc == Z_OK || rc == Z_STREAM_END else { throw WorkloadError("inflate failed (\(rc))") }
                output += chunk[..<produced]
                if rc == Z_OK && produced == 0 && stream.avail_in == 0 { throw WorkloadError("truncated gzip") }
            } while rc != Z_STREAM_END
        }
        return output
    }
}

/// A document's text as Unicode scalars split at a cursor: typing is local, so moving the cursor
/// costs the distance between consecutive edits instead of the document's length.
struct EditableText {
    private var beforeCursor: [Unicode.Scalar]
    /// The text after the cursor, last scalar first, so both sides grow and shrink at their ends.
    private var afterCursorReversed: [Unicode.Scalar] = []

    init(_ text: String) { beforeCursor = Array(text.unicodeScalars) }

    var count: Int { beforeCursor.count + afterCursorReversed.count }

    mutating func apply(_ patch: TracePatch) {
        precondition(patch.position + patch.deleteCount <= count, "patch outside the text")
        while beforeCursor.count > patch.position { afterCursorReversed.append(beforeCursor.removeLast()) }
        while beforeCursor.count < patch.position { beforeCursor.append(afterCursorReversed.removeLast()) }
        afterCursorReversed.removeLast(patch.deleteCount)
        beforeCursor += patch.insert.unicodeScalars
    }

    var string: String {
        var scalars = String.UnicodeScalarView()
        scalars.append(contentsOf: beforeCursor)
        scalars.append(contentsOf: afterCursorReversed.reversed())
        return String(scalars)
    }

    var utf8: [UInt8] { Array(string.utf8) }
}

struct WorkloadError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
