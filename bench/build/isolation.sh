#!/usr/bin/env bash
# What the runc build container costs per build, against the process sandbox, for the
# same small build in the same run (crates/build/examples/isolation_bench.rs). Bounded:
# 20 builds each unless given another count. Needs root and runc.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -q -p hoist-build --bins --example isolation_bench
exec target/release/examples/isolation_bench "$@"
