import OpLog
import OpLogText

/// The power-loss and I/O-fault tests' workload: every op and snapshot is a function of
/// (document, revision), so the test that checks a post-crash image knows what each revision must
/// hold without the child having to report it. Shared by `oplog power-child`/`fault-child` and the
/// tests, so the two can never disagree about it.
package enum FaultWorkload {
    /// The op ID of `revision` of `document`.
    package static func opID(document: String, revision: Revision) -> OpID {
        OpID(high: hash(document), low: revision)
    }

    /// The payload of `revision`: 200 to 6,199 seeded bytes, incompressible so that the journal
    /// reaches `journalApplyBytes` after a few hundred ops and applies by itself.
    package static func payload(document: String, revision: Revision) -> [UInt8] {
        var random = SplitMix64(seed: hash(document) ^ (revision &* 0x9E37_79B9_7F4A_7C15))
        let count = 200 + Int(random.next() % 6_000)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(count + 8)
        while bytes.count < count {
            withUnsafeBytes(of: random.next().littleEndian) { bytes.append(contentsOf: $0) }
        }
        return Array(bytes.prefix(count))
    }

    /// The op appended as `revision` of `document` by `author`.
    package static func op(document: String, revision: Revision, author: UInt8) -> NewOp {
        NewOp(
            opID: opID(document: document, revision: revision), author: [author], payload: payload(document: document, revision: revision))
    }

    /// The snapshot taken at `revision` (its content is opaque to the store).
    package static func snapshot(document: String, revision: Revision) -> [UInt8] {
        Array("snapshot of \(document) at \(revision)\n".utf8) + payload(document: document, revision: revision).prefix(500)
    }

    private static func hash(_ text: String) -> UInt64 { StableHash.fnv1a(text) }
}
