#!/usr/bin/env bash
# Quick start, part 2: the tests. Installs missing system packages, builds with warnings as errors,
# runs the whole suite (unit, reference-model property test, corruption, concurrency, CLI, fuzz
# regressions), then a 30-second fuzz smoke run per target.
# Long variants: OPLOG_LONG_TESTS=1 scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
swift build --build-tests -Xswiftc -warnings-as-errors
OPLOG_BINARY="$(swift build --show-bin-path)/oplog" swift test --skip-build --disable-xctest
# Fuzz smoke: each libFuzzer target for 30 s with address sanitizer (Fuzz/README.md). Fails loudly
# on a toolchain without libFuzzer; long runs: Fuzz/run.sh all 600.
Fuzz/run.sh all "${OPLOG_FUZZ_SECONDS:-30}"
