#!/usr/bin/env bash
# Dyno numbers: (1) `ps:scale web=20` of a small app until all 20 are up (target < 5 s);
# (2) host-side RSS of the shims per running dyno (target < 3 MB); (3) dyno start vs a
# bare `runc run` of an equivalent bundle (crates/runtime/examples/start_bench.rs).
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -p hoist -p hoist-runtime -p hoist-build --bins >/dev/null 2>&1
cargo build --release -p hoist-runtime --examples >/dev/null 2>&1
source bench/lib.sh
start_hoist
H=(-sf -H "Authorization: Bearer $token" -H "Content-Type: application/json")
curl "${H[@]}" -X POST http://127.0.0.1:$api/apps -d '{"name":"bench-scale"}' >/dev/null
mkdir "$work/app"; cd "$work/app"
printf 'web: php -S 0.0.0.0:$PORT -t .\n' > Procfile; printf '<?php echo "hi";\n' > index.php
git init -q -b main && git add -A && git -c user.name=b -c user.email=b@b commit -qm v1
git push -q "http://h:$token@127.0.0.1:$api/bench-scale.git" main 2>/dev/null
up() { curl "${H[@]}" http://127.0.0.1:$api/apps/bench-scale/dynos | python3 -c 'import json,sys; print(sum(1 for d in json.load(sys.stdin) if d["state"]=="up"))'; }
for _ in $(seq 300); do [ "$(up)" = 1 ] && break; sleep 0.1; done
t0=$(date +%s%N)
curl "${H[@]}" -X PATCH http://127.0.0.1:$api/apps/bench-scale/formation -d '{"updates":[{"type":"web","quantity":"20"}]}' >/dev/null
for _ in $(seq 600); do [ "$(up)" = 20 ] && break; sleep 0.05; done
t1=$(date +%s%N)
n=$(up)
echo "ps:scale web=20 until $n/20 up: $(( (t1 - t0) / 1000000 )) ms (target < 5000 ms)"
# RSS counts the hoist binary's shared pages in every shim; PSS splits them fairly.
rss=0; pss=0; count=0
for pid in $(pgrep -f "shim $work"); do
  r=$(awk '/^VmRSS:/{print $2}' /proc/$pid/status 2>/dev/null || echo 0)
  s=$(awk '/^Pss:/{print $2}' /proc/$pid/smaps_rollup 2>/dev/null || echo 0)
  rss=$((rss + r)); pss=$((pss + s)); count=$((count + 1))
done
[ "$count" -gt 0 ] && echo "shim memory: $count shims, RSS $((rss / count)) KB, PSS $((pss / count)) KB each on average (target < 3072 KB RSS per dyno)"
cd - >/dev/null
if [ -x target/release/examples/start_bench ]; then
  echo "dyno start vs bare runc run (30 runs):"
  target/release/examples/start_bench 30 || true
fi
