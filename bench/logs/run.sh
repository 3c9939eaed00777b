#!/usr/bin/env bash
# Log hub ingest benchmark: push throughput with one SSE tail and one syslog drain
# attached, against a floor of format-and-write-to-/dev/null; plus tail latency at a
# paced 200k lines/s. Bounded: each phase runs at most BENCH_SECS (2) seconds or
# BENCH_MAX_LINES (1,000,000) lines.
set -euo pipefail
cd "$(dirname "$0")/../.."
exec cargo run --release -q -p hoist-logs --example ingest_bench "$@"
