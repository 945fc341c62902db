#!/usr/bin/env bash
# Quick start, part 1: the demo. Installs missing system packages, builds, and appends an editing
# session to ./oplog-data one durable append per patch, with snapshots; then verifies the store.
# Uses the real automerge-paper trace from ../shared/traces when it is there, else a generated one.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
swift build -c release --product oplog
trace=../shared/traces/automerge-paper.json.gz
if [ -f "$trace" ]; then
    .build/release/oplog demo --trace "$trace" "$@"
else
    echo "(no ../shared/traces: the demo uses a generated editing session)"
    .build/release/oplog demo "$@"
fi
.build/release/oplog verify
.build/release/oplog stats
