// swift-tools-version:6.1
import PackageDescription

// Workload benchmarks and micro-benchmarks for OpLog, kept in their own package so the library never
// links the baseline databases or package-benchmark. Not part of CI. Build with
// `swift build -c release --package-path Benchmarks`; micro-benchmarks run with
// `swift package --package-path Benchmarks benchmark`.
let package = Package(
    name: "OpLogBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", exact: "1.8.2"),
        // Without the explicit trait list, resolution fails on Linux (it would pull in the runtime interposer).
        .package(url: "https://github.com/ordo-one/benchmark", exact: "1.38.1", traits: ["MallocInterposer"]),
        .package(name: "OpLog", path: ".."),
    ],
    targets: [
        // Debian's system libraries for the baselines (and zlib for the gzip traces), never vendored.
        .systemLibrary(name: "CLMDBBench", pkgConfig: "lmdb", providers: [.apt(["liblmdb-dev"])]),
        .systemLibrary(name: "CRocksDB", pkgConfig: "rocksdb", providers: [.apt(["librocksdb-dev"])]),
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(name: "CZlibBench", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        // Debian's libleveldb-dev ships no pkg-config file: the module map links "leveldb" by name.
        .systemLibrary(name: "CLevelDB", providers: [.apt(["libleveldb-dev"])]),
        // The sync ceiling: a plain C write + fdatasync loop, so no Swift or engine cost is in it.
        .target(name: "CSyncCeiling"),
        // The engine protocol, the four baselines and the two candidate layouts (zlib: lmdb-log);
        // TextBuffer/TextPatch for the baselines' replay (W3).
        .target(
            name: "WorkloadEngines",
            dependencies: [
                "CLMDBBench", "CRocksDB", "CLevelDB", "CSQLite", "CZlibBench", .product(name: "OpLogText", package: "OpLog"),
            ]),
        // OpLog itself behind the same protocol.
        .target(
            name: "OpLogEngine",
            dependencies: ["WorkloadEngines", .product(name: "OpLogText", package: "OpLog"), .product(name: "OpLog", package: "OpLog")]),
        // The driver: traces, workloads W1/W2/W3 and the sync ceiling, measurement and reports.
        .executableTarget(
            name: "workloads",
            dependencies: [
                "WorkloadEngines",
                "OpLogEngine",
                "CSyncCeiling",
                .product(name: "OpLogText", package: "OpLog"),
                "CZlibBench",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // The change feed's targets: catch-up, live delivery, follower lag.
        .executableTarget(
            name: "feed-bench",
            dependencies: [
                .product(name: "OpLog", package: "OpLog"), .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // package-benchmark's convention: one executable target per suite under Benchmarks/<Name>/.
        .executableTarget(
            name: "OpLogMicro",
            dependencies: [
                .product(name: "OpLogText", package: "OpLog"),
                .product(name: "OpLog", package: "OpLog"),
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/OpLogMicro",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ],
    swiftLanguageModes: [.v6]
)
