#!/usr/bin/env bash
# Builds one libFuzzer target (or all three, one after the other) and fuzzes it for SECONDS.
#
#   Fuzz/run.sh decode|model|damage|all SECONDS
#
# Seeds: Fuzz/Corpus/<target>/ (committed, read only). New inputs: a working corpus outside git,
# $OPLOG_FUZZ_CORPUS/<target> (default ${TMPDIR:-/tmp}/oplog-fuzz-corpus/<target>), kept between runs.
# Crashes: Fuzz/Crashes/<target>/. Exits non-zero on any finding, on a build failure, if the
# toolchain lacks libFuzzer, or if the binary did not actually fuzz (never skips).
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { echo "usage: Fuzz/run.sh decode|model|damage|all SECONDS" >&2; exit 2; }
[[ $# -eq 2 && $2 =~ ^[0-9]+$ && $2 -gt 0 ]] || usage
case $1 in
    decode|model|damage) targets=("$1") ;;
    all) targets=(decode model damage) ;;
    *) usage ;;
esac
seconds=$2

# libFuzzer ships with the Swift toolchain as clang's runtime; without it nothing can be fuzzed.
toolchain=$(dirname "$(dirname "$(command -v swiftc)")")
if ! compgen -G "$toolchain/lib/clang/*/lib/linux/libclang_rt.fuzzer-*.a" >/dev/null \
    && ! compgen -G "$toolchain/lib/swift/clang/lib/linux/libclang_rt.fuzzer-*.a" >/dev/null; then
    echo "FAIL: the Swift toolchain at $toolchain has no libFuzzer runtime (libclang_rt.fuzzer)" >&2
    exit 1
fi

# SwiftPM passes --sanitize values as separate -sanitize= flags and swiftc keeps only the last one:
# `--sanitize fuzzer --sanitize address` alone gives ASan without coverage (libFuzzer then reports
# "no interesting inputs"). The combined flag, last on the command line, restores both; the
# --sanitize options stay so that SwiftPM links libFuzzer's main instead of its own.
# -O: a debug build optimised, which runs the store harnesses about 10 times faster; overflow and
# bounds checks stay on. Its own scratch path, so it never disturbs the normal build.
build_flags=(--scratch-path .build-fuzz -c debug --sanitize fuzzer --sanitize address
             -Xswiftc -sanitize=fuzzer,address -Xswiftc -O)
bin=$(swift build "${build_flags[@]}" --show-bin-path)
corpus_root=${OPLOG_FUZZ_CORPUS:-${TMPDIR:-/tmp}/oplog-fuzz-corpus}
failed=0

for target in "${targets[@]}"; do
    echo "== fuzz-$target: build"
    if ! swift build "${build_flags[@]}" --product "fuzz-$target" 2>&1 | grep -v -e "ld.gold: warning" -e "^$"; then
        echo "FAIL: building fuzz-$target" >&2
        exit 1
    fi
    case $target in
        decode) limits=(-max_len=4096) ;;
        model) limits=(-max_len=1200 -len_control=20) ;;
        damage) limits=(-max_len=48 -len_control=0) ;;
    esac
    mkdir -p "Fuzz/Crashes/$target" "$corpus_root/$target"
    before=$(find "Fuzz/Crashes/$target" -type f | wc -l)
    scratch_base=/dev/shm
    [[ -w $scratch_base ]] || scratch_base=${TMPDIR:-/tmp}
    scratch=$(mktemp -d "$scratch_base/oplog-fuzz-run.XXXXXX")
    log=$(mktemp "${TMPDIR:-/tmp}/oplog-fuzz-$target.XXXXXX.log")
    echo "== fuzz-$target: ${seconds}s, seeds Fuzz/Corpus/$target, corpus $corpus_root/$target, log $log"
    set +e
    # -malloc_limit_mb: one allocation above Limits.recordBodyBytesMax (256 MiB + 64 KiB) is a finding.
    OPLOG_FUZZ_SCRATCH=$scratch SWIFT_BACKTRACE=enable=no "$bin/fuzz-$target" \
        -max_total_time="$seconds" -malloc_limit_mb=257 -rss_limit_mb=4096 -timeout=120 \
        -print_final_stats=1 -artifact_prefix="Fuzz/Crashes/$target/" "${limits[@]}" \
        "$corpus_root/$target" "Fuzz/Corpus/$target" >"$log" 2>&1
    status=$?
    set -e
    rm -rf "$scratch"
    grep -E "^#[0-9]+.*exec/s" "$log" | tail -n 2 || true
    grep -E "^stat::(number_of_executed_units|average_exec_per_sec)" "$log" || true
    after=$(find "Fuzz/Crashes/$target" -type f | wc -l)
    if ! grep -qE "^#[0-9]+.*exec/s" "$log"; then
        echo "FAIL: fuzz-$target printed no libFuzzer '#N ... exec/s' lines: it did not fuzz (see $log)" >&2
        failed=1
    elif [[ $status -ne 0 || $after -gt $before ]]; then
        grep -E -A3 "Fatal error|ERROR: (AddressSanitizer|libFuzzer|LeakSanitizer)" "$log" | head -n 20 >&2 || true
        echo "FAIL: fuzz-$target found a problem (exit $status); inputs in Fuzz/Crashes/$target/, log $log" >&2
        failed=1
    else
        echo "== fuzz-$target: no findings"
    fi
done
exit $failed
