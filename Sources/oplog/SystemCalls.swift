import Foundation

#if canImport(Glibc)
import Glibc
#endif

func systemWrite(_ descriptor: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int {
    Glibc.write(descriptor, buffer, count)
}
