#!/usr/bin/env bash
# Installs the Debian packages the benchmark package links, if any is missing: the library's own
# (LMDB, zlib, pkg-config, through scripts/install-deps.sh) and the baselines' (RocksDB, LevelDB,
# SQLite). Run it once before `swift build -c release --package-path Benchmarks`.
set -euo pipefail
cd "$(dirname "$0")/../.."
exec scripts/install-deps.sh librocksdb-dev libleveldb-dev libsqlite3-dev "$@"
