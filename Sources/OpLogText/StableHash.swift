/// FNV-1a, 64 bits: a fast, stable hash for deriving IDs and telling bytes apart. Not an integrity
/// check (OpLog's records carry CRC-32s) and not cryptographic.
public enum StableHash {
    public static func fnv1a(_ bytes: some Sequence<UInt8>) -> UInt64 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
        return hash
    }

    public static func fnv1a(_ text: String) -> UInt64 { fnv1a(text.utf8) }
}
