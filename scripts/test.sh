#!/usr/bin/env bash
# Quick start, part 2: the tests. Installs missing system packages, builds with warnings as errors,
# and runs the whole suite (unit, reference-model property test, corruption, concurrency, CLI).
# Long variants: OPLOG_LONG_TESTS=1 scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
swift build --build-tests -Xswiftc -warnings-as-errors
OPLOG_BINARY="$(swift build --show-bin-path)/oplog" swift test --skip-build --disable-xctest
