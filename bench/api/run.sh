#!/usr/bin/env bash
# Platform API latency at a fixed rate with 1,000 apps / 100,000 releases, vs the store
# directly (floor), and the server's idle RSS. Bounded: 5 s per request kind.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -p hoist --examples
exec target/release/examples/api_bench
