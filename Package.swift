// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "OpLog",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "OpLog", targets: ["OpLog"]),
        .library(name: "OpLogText", targets: ["OpLogText"]),
        .executable(name: "oplog", targets: ["oplog"]),
        // The tests' system-call layer, loaded into child processes with LD_PRELOAD; never linked
        // into OpLog. `swift build` puts libOpLogFaultInjection.so next to the oplog executable.
        .library(name: "OpLogFaultInjection", type: .dynamic, targets: ["CFaultInjection"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        // `swift package generate-documentation` (the DocC catalog in Sources/OpLog/OpLog.docc).
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
    ],
    targets: [
        // System libraries: Debian's liblmdb-dev and zlib1g-dev, never vendored.
        .systemLibrary(name: "CLMDB", pkgConfig: "lmdb", providers: [.apt(["liblmdb-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        // The only module that calls mdb_*, zlib and the journal's file system calls.
        .target(name: "OpLogStorage", dependencies: ["CLMDB", "CZlib"]),
        // The engine: format, journal, log, snapshots, store API. Safe Swift only.
        .target(
            name: "OpLog",
            dependencies: [
                "OpLogStorage",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // The text reducer: the demo's, the tests' and the benchmarks' model of a document.
        .target(name: "OpLogText", dependencies: ["OpLog", "OpLogStorage"]),
        // The shipped command: user commands only.
        .executableTarget(
            name: "oplog",
            dependencies: [
                "OpLog",
                "OpLogText",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // Test machinery, in no product: the one reference model (the property tests and
        // fuzz-model), the fault workload, the simulated disk, the process runner.
        .target(name: "OpLogTestSupport", dependencies: ["OpLog", "OpLogStorage", "OpLogText"]),
        // The child processes of the crash, power-loss, I/O-fault, damage and multi-process tests.
        .executableTarget(
            name: "oplog-testkit",
            dependencies: [
                "OpLog",
                "OpLogStorage",
                "OpLogText",
                "OpLogTestSupport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // Records and fails the writes and syncs of a store's files (Sources/CFaultInjection).
        .target(name: "CFaultInjection", linkerSettings: [.linkedLibrary("dl")]),
        // Fuzz harnesses (Fuzz/README.md). The harness logic is a plain module, so `swift test` replays
        // the committed fuzz inputs through it without libFuzzer; the three executables are what
        // Fuzz/run.sh builds with `--sanitize fuzzer` (a normal build makes them inert executables).
        .target(name: "FuzzTargets", dependencies: ["OpLog", "OpLogStorage", "OpLogTestSupport"], path: "Fuzz/Sources/FuzzTargets"),
        .executableTarget(name: "fuzz-decode", dependencies: ["FuzzTargets", "OpLogTestSupport"], path: "Fuzz/Sources/fuzz-decode"),
        .executableTarget(name: "fuzz-model", dependencies: ["FuzzTargets", "OpLogTestSupport"], path: "Fuzz/Sources/fuzz-model"),
        .executableTarget(name: "fuzz-damage", dependencies: ["FuzzTargets", "OpLogTestSupport"], path: "Fuzz/Sources/fuzz-damage"),
        .testTarget(
            name: "OpLogTests",
            dependencies: [
                "OpLog", "OpLogStorage", "OpLogText", "OpLogTestSupport", "FuzzTargets",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
