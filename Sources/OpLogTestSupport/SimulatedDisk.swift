import Foundation
import OpLog
import OpLogText

/// A model of what a disk may hold after power loss, driven by the fault layer's log.
///
/// Per file: the durable bytes, and the writes and truncations since its last successful sync,
/// each of which a crash may drop, keep, or (a write) tear at 512-byte sector granularity; kept ones
/// are applied in their original order, so any subset models the kernel writing pages back in any
/// order. A write through an O_DSYNC descriptor is durable when it returns. A failed sync loses the
/// file's unsynced writes (Linux marks the pages clean). Names (creation, rename, unlink) become
/// durable only at an fsync of the directory; before that a crash keeps a prefix of them, as a
/// journaling file system replays its metadata journal in order.
package struct SimulatedDisk {
    package enum Change {
        case write(offset: Int, bytes: ArraySlice<UInt8>)
        case truncate(size: Int)
    }

    package enum NameChange {
        case link(String, Int)
        case rename(String, String)
        case unlink(String)
    }

    package struct Inode {
        var durable: [UInt8]
        var pending: [Change] = []
    }

    /// The files an image holds; LMDB and the store recreate their lock files.
    package static let imageFileNames: Set<String> = Set(["data.mdb"] + Journal.fileNames)
    package static let sectorBytes = 512

    /// Files by identity. A file system reuses a freed inode number for the next new file, so a
    /// file's identity is its inode number plus the creation that gave it that number.
    private(set) var files: [Int: Inode] = [:]
    private var fileOfInode: [UInt64: Int] = [:]
    private(set) var durableNames: [String: Int] = [:]
    private(set) var pendingNames: [NameChange] = []
    /// Names as the running process saw them (for classifying events).
    private(set) var currentNames: [String: Int] = [:]
    private var directoryInode: UInt64?

    private mutating func newFile(_ inode: UInt64, durable: [UInt8]) -> Int {
        let file = files.count
        files[file] = Inode(durable: durable)
        fileOfInode[inode] = file
        return file
    }

    /// Starts from the files of a closed store: all durable.
    package init(directory: String) throws {
        for name in Self.imageFileNames {
            let path = directory + "/" + name
            guard let data = FileManager.default.contents(atPath: path) else { continue }
            let attributes = try FileManager.default.attributesOfItem(atPath: path)
            guard let inode = attributes[.systemFileNumber] as? UInt64 else { throw FuzzFinding("no inode number for \(path)") }
            let file = newFile(inode, durable: [UInt8](data))
            durableNames[name] = file
            currentNames[name] = file
        }
    }

    package func name(of inode: UInt64) -> String? {
        guard let file = fileOfInode[inode] else { return nil }
        return currentNames.first { $0.value == file }?.key
    }

    package mutating func apply(_ event: SyscallEvent) {
        let file = fileOfInode[event.inode]
        switch event.kind {
        case .open:
            let name = event.text
            if name.isEmpty {
                directoryInode = event.inode
                return
            }
            if event.created {
                let created = newFile(event.inode, durable: [])
                pendingNames.append(.link(name, created))
                currentNames[name] = created
            } else if file == nil {
                _ = newFile(event.inode, durable: [])
            }
        case .write:
            guard let file else { return }
            let bytes = event.payload
            if event.synchronous {
                files[file]?.durable.write(bytes, at: Int(event.offset))
                files[file]?.pending.removeOverlap(Int(event.offset), bytes.count)
            } else {
                files[file]?.pending.append(.write(offset: Int(event.offset), bytes: bytes))
            }
        case .sync:
            if event.inode == directoryInode {
                if !event.failed { commitNames() }
            } else if let file, var inode = files[file] {
                // Success: everything written so far is durable. Failure: Linux drops the dirty
                // pages' errors with the pages, so those writes never reach the disk.
                if !event.failed { inode.durable = inode.contents(keeping: inode.pending.map { _ in .keep }) }
                inode.pending = []
                files[file] = inode
            }
        case .truncate:
            if let file { files[file]?.pending.append(.truncate(size: Int(event.offset))) }
        case .rename:
            let parts = event.payload.split(separator: 0, omittingEmptySubsequences: false)
            guard parts.count == 2 else { return }
            let (from, to) = (String(decoding: parts[0], as: UTF8.self), String(decoding: parts[1], as: UTF8.self))
            pendingNames.append(.rename(from, to))
            currentNames[to] = currentNames.removeValue(forKey: from)
        case .unlink:
            pendingNames.append(.unlink(event.text))
            currentNames[event.text] = nil
        case .marker, .fault:
            break
        }
    }

    private mutating func commitNames() {
        Self.applyNames(pendingNames[...], to: &durableNames)
        pendingNames = []
    }

    private static func applyNames(_ changes: ArraySlice<NameChange>, to names: inout [String: Int]) {
        for change in changes {
            switch change {
            case .link(let name, let inode): names[name] = inode
            case .rename(let from, let to): names[to] = names.removeValue(forKey: from)
            case .unlink(let name): names[name] = nil
            }
        }
    }

    /// One post-crash image with a crash while `inProgress` (if any) had not returned: a write in
    /// progress may be partly on disk. Returns file name → contents.
    package func image(inProgress: SyscallEvent?, random: inout SplitMix64) -> [String: [UInt8]] {
        var names = durableNames
        let roll = random.next() % 3
        let keptNames = roll == 0 ? 0 : roll == 1 ? pendingNames.count : Int(random.next() % UInt64(pendingNames.count + 1))
        Self.applyNames(pendingNames.prefix(keptNames), to: &names)
        // Per image, how likely an unsynced change is to have reached the disk, and to be torn.
        let keepPercent = [0, 50, 100, random.next() % 101][Int(random.next() % 4)]
        let tornPercent = random.next() % 2 == 0 ? 0 : UInt64(30)
        var contents: [String: [UInt8]] = [:]
        for (name, file) in names where Self.imageFileNames.contains(name) {
            guard var inode = files[file] else { continue }
            if let event = inProgress, event.kind == .write, fileOfInode[event.inode] == file {
                inode.pending.append(.write(offset: Int(event.offset), bytes: event.payload))
            }
            let fates = inode.pending.map { _ -> Fate in
                guard random.next() % 100 < keepPercent else { return .drop }
                return random.next() % 100 < tornPercent ? .tear(random.next()) : .keep
            }
            contents[name] = inode.contents(keeping: fates)
        }
        return contents
    }

    package enum Fate {
        case keep, drop
        /// Keep a seeded subset of the write's sectors.
        case tear(UInt64)
    }
}

extension SimulatedDisk.Inode {
    /// The durable bytes with the pending changes applied as `fates` say.
    package func contents(keeping fates: [SimulatedDisk.Fate]) -> [UInt8] {
        var bytes = durable
        for (change, fate) in zip(pending, fates) {
            switch (change, fate) {
            case (_, .drop):
                continue
            case (.truncate(let size), _):
                if size < bytes.count { bytes.removeSubrange(size...) } else { bytes += [UInt8](repeating: 0, count: size - bytes.count) }
            case (.write(let offset, let data), .keep):
                bytes.write(data, at: offset)
            case (.write(let offset, let data), .tear(let seed)):
                var random = SplitMix64(seed: seed)
                var start = offset
                while start < offset + data.count {
                    let end = min(offset + data.count, (start / SimulatedDisk.sectorBytes + 1) * SimulatedDisk.sectorBytes)
                    if random.next() % 2 == 0 {
                        bytes.write(data[(data.startIndex + start - offset)..<(data.startIndex + end - offset)], at: start)
                    }
                    start = end
                }
            }
        }
        return bytes
    }
}

extension [UInt8] {
    /// Writes `data` at `offset`, extending with zeros as a file would.
    package mutating func write(_ data: ArraySlice<UInt8>, at offset: Int) {
        if count < offset + data.count { self += [UInt8](repeating: 0, count: offset + data.count - count) }
        replaceSubrange(offset..<(offset + data.count), with: data)
    }
}

extension [SimulatedDisk.Change] {
    /// Removes the parts of pending writes that a later synchronous write replaced: the page cache
    /// holds the newer bytes there, so no write-back can put the older ones on disk afterwards.
    package mutating func removeOverlap(_ offset: Int, _ length: Int) {
        let end = offset + length
        self = flatMap { change -> [SimulatedDisk.Change] in
            guard case .write(let start, let data) = change, start < end, start + data.count > offset else { return [change] }
            var pieces: [SimulatedDisk.Change] = []
            if start < offset { pieces.append(.write(offset: start, bytes: data.prefix(offset - start))) }
            if start + data.count > end { pieces.append(.write(offset: end, bytes: data.suffix(start + data.count - end))) }
            return pieces
        }
    }
}

/// One record of the layer's log (see CFaultInjection.h for the layout).
package struct SyscallEvent {
    package init(kind: Kind, flags: UInt32, inode: UInt64, offset: UInt64, payload: ArraySlice<UInt8>) {
        self.kind = kind
        self.flags = flags
        self.inode = inode
        self.offset = offset
        self.payload = payload
    }

    package enum Kind: UInt32 {
        case open = 1
        case write, sync, truncate, rename, unlink, marker, fault
    }

    package var kind: Kind
    package var flags: UInt32
    package var inode: UInt64
    package var offset: UInt64
    package var payload: ArraySlice<UInt8>

    package var created: Bool { flags & 1 != 0 }
    /// A write through an O_DSYNC/O_SYNC descriptor: durable when it returned.
    package var synchronous: Bool { flags & 2 != 0 }
    package var failed: Bool { flags & 1 != 0 }
    package var text: String { String(decoding: payload, as: UTF8.self) }

    /// Parses a whole log; a truncated last record (a killed child) is dropped.
    package static func parse(_ bytes: [UInt8]) throws -> [SyscallEvent] {
        func field(_ at: Int, _ size: Int) -> UInt64 {
            (0..<size).reduce(0) { $0 | UInt64(bytes[at + $1]) << (8 * $1) }
        }
        var events: [SyscallEvent] = []
        var offset = 0
        while offset + 32 <= bytes.count {
            let length = Int(field(offset + 24, 8))
            guard offset + 32 + length <= bytes.count else { break }
            guard let kind = Kind(rawValue: UInt32(field(offset, 4))) else {
                throw FuzzFinding("unknown fault-log record kind at offset \(offset)")
            }
            events.append(
                SyscallEvent(
                    kind: kind, flags: UInt32(field(offset + 4, 4)), inode: field(offset + 8, 8),
                    offset: field(offset + 16, 8), payload: bytes[(offset + 32)..<(offset + 32 + length)]))
            offset += 32 + length
        }
        return events
    }
}
