/// LMDB key encodings (FORMAT.md, "Keys"). Revisions are big-endian so that keys sort in revision
/// order; the document ID is followed by a 0x00 byte so that one document's keys never interleave
/// with another's (IDs cannot contain NUL).
package enum KeyCoding {
    package static let separator: UInt8 = 0x00

    /// `documents` database: the ID's UTF-8 bytes.
    package static func documentKey(_ document: DocumentID) -> [UInt8] { document.utf8 }

    /// `ops`, `snapshots` and `dedupe` databases: ID, 0x00, revision (u64 big-endian).
    package static func revisionKey(_ document: DocumentID, _ revision: Revision) -> [UInt8] {
        var key = document.utf8
        key.reserveCapacity(key.count + 9)
        key.append(separator)
        for shift in stride(from: 56, through: 0, by: -8) { key.append(UInt8(truncatingIfNeeded: revision >> UInt64(shift))) }
        return key
    }

    /// The prefix shared by all of a document's revision keys.
    package static func documentPrefix(_ document: DocumentID) -> [UInt8] { document.utf8 + [separator] }

    /// Splits a revision key; nil if it is not one (damaged key).
    package static func parseRevisionKey(_ key: [UInt8]) -> (document: DocumentID, revision: Revision)? {
        guard key.count >= 10, key[key.count - 9] == separator,
            let document = DocumentID(keyBytes: key[0..<(key.count - 9)])
        else { return nil }
        let revision = key[(key.count - 8)...].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        return (document, revision)
    }

    /// True if `key` belongs to `document` in a revision-keyed database.
    package static func belongs(_ key: [UInt8], to document: DocumentID) -> Bool {
        key.count == document.utf8.count + 9 && key.starts(with: document.utf8) && key[document.utf8.count] == separator
    }
}
