// swift-tools-version:6.1
import PackageDescription

// Workload benchmarks for OpLog, kept in their own package so the library never links the
// baseline databases. Build only with `swift build -c release --package-path Benchmarks`.
let package = Package(
    name: "OpLogBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", exact: "1.8.2"),
        .package(name: "OpLog", path: ".."),
    ],
    targets: [
        // Debian's system libraries for the baselines (and zlib for the gzip traces), never vendored.
        .systemLibrary(name: "CLMDBBench", pkgConfig: "lmdb", providers: [.apt(["liblmdb-dev"])]),
        .systemLibrary(name: "CRocksDB", pkgConfig: "rocksdb", providers: [.apt(["librocksdb-dev"])]),
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(name: "CZlibBench", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        // The engine protocol, the three baselines and the two candidate layouts (zlib: lmdb-log).
        .target(name: "WorkloadEngines", dependencies: ["CLMDBBench", "CRocksDB", "CSQLite", "CZlibBench"]),
        // OpLog itself behind the same protocol.
        .target(name: "OpLogEngine", dependencies: ["WorkloadEngines", .product(name: "OpLog", package: "OpLog")]),
        // The driver: traces, workloads W1/W2, measurement and reports.
        .executableTarget(
            name: "workloads",
            dependencies: [
                "WorkloadEngines",
                "OpLogEngine",
                "CZlibBench",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
