#!/usr/bin/env bash
# Rebuild of the Node.js example after a one-line change with a warm build cache,
# against the cold build of the same app (target: warm at most 30 % of cold). Each is
# measured as `git push` until the release exists. Bounded: 1 cold + 3 warm pushes.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -p hoist -p hoist-runtime -p hoist-build --bins >/dev/null 2>&1
source bench/lib.sh
start_hoist
curl -sf -H "Authorization: Bearer $token" -X POST http://127.0.0.1:$api/apps -d '{"name":"bench-node"}' >/dev/null
cp -a examples/nodejs "$work/app"; cd "$work/app"
git init -q -b main && git add -A && git -c user.name=b -c user.email=b@b commit -qm v0
push() { local t0 t1; t0=$(date +%s%N); git push -q "http://h:$token@127.0.0.1:$api/bench-node.git" main 2>/dev/null; t1=$(date +%s%N); echo $(( (t1 - t0) / 1000000 )); }
cold=$(push)
warm=()
for i in 1 2 3; do
  echo "// change $i" >> "$(ls *.js | head -1)"; git add -A; git -c user.name=b -c user.email=b@b commit -qm "v$i"
  warm+=("$(push)")
done
w=$(printf '%s\n' "${warm[@]}" | sort -n | sed -n 2p)
echo "cold build (empty cache, npm registry): ${cold} ms; warm rebuilds: ${warm[*]} ms (median ${w})"
awk -v c="$cold" -v w="$w" 'BEGIN { printf "warm/cold: %.0f%% (target <= 30%%: %s)\n", 100 * w / c, (w <= 0.3 * c ? "met" : "NOT met") }'
