#!/usr/bin/env bash
# Slug packing throughput of pack_slug vs `tar -c | gzip -1` of the same ~100 MB tree,
# measured in the same run (crates/build/examples/pack_bench.rs).
set -euo pipefail
cd "$(dirname "$0")/../.."
exec cargo run --release -q -p hoist-build --example pack_bench "$@"
