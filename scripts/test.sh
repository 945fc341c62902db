#!/usr/bin/env bash
# Quick start, part 2: the tests. Installs missing system packages, builds with warnings as errors,
# runs the whole suite (unit, reference-model property test, corruption, concurrency, CLI, fuzz
# regressions), then a 30-second fuzz smoke run per target.
# Long variants: OPLOG_LONG_TESTS=1 scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh faketime
swift build --build-tests -Xswiftc -warnings-as-errors
# No line over 140 columns (the .swift-format configuration's limit).
long=$(git ls-files 'Sources/*.swift' 'Tests/*.swift' 'Fuzz/*.swift' 'Benchmarks/*.swift' | xargs awk 'length > 140 { print FILENAME ":" FNR }')
if [ -n "$long" ]; then echo "lines over 140 columns:"; echo "$long"; exit 1; fi
OPLOG_BINARY="$(swift build --show-bin-path)/oplog" swift test --skip-build --disable-xctest
# Time-bound behaviour holds on any date: the time-dependent suites again with the default clock
# 3 years ahead and 3 years behind (an offset only OpLog's SystemClock reads), and the fixtures
# under libfaketime with the system clock itself 3 years ahead, which proves nothing else reads
# the time (only suites that never sleep can run there: libfaketime stops Task.sleep firing).
timed='FixtureTests|DedupeWindowTests|ClockTests|CompactionClockTests|SchedulerLifecycleTests|CompactionTests/steadyWorkloadStopsGrowingTheFiles'
for offset in 94608000000 -94608000000; do
    echo "time-dependent suites with the clock shifted by ${offset} ms"
    OPLOG_CLOCK_OFFSET_MILLISECONDS=$offset swift test --skip-build --disable-xctest --filter "$timed"
done
echo "FixtureTests under faketime, system clock 3 years ahead"
faketime -f '+3y' swift test --skip-build --disable-xctest --filter FixtureTests
# The DocC catalog builds with warnings as errors and every public symbol is documented.
scripts/check-docs.sh
# Fuzz smoke: each libFuzzer target for 30 s with address sanitizer (Fuzz/README.md). Fails loudly
# on a toolchain without libFuzzer; long runs: Fuzz/run.sh all 600.
Fuzz/run.sh all "${OPLOG_FUZZ_SECONDS:-30}"
