#!/usr/bin/env bash
# postgresql:mini provisioning until its URL answers a query, vs the floor of
# `createuser` + `createdb` directly, and server memory per add-on with N add-ons
# (crates/addons/examples/pg_bench.rs). Default N=20; run as root.
set -euo pipefail
cd "$(dirname "$0")/../.."
exec cargo run --release -q -p hoist-addons --example pg_bench -- "${1:-20}"
