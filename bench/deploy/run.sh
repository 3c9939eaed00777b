#!/usr/bin/env bash
# Push-to-release for an app with a Procfile and no dependencies (PHP detected by
# index.php), against the floor: `git push` to a bare local repository plus packing the
# same files with tar | gzip. Prints both and the ratio. Bounded: 5 runs each.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -p hoist -p hoist-runtime -p hoist-build --bins >/dev/null 2>&1
source bench/lib.sh
start_hoist
curl -sf -H "Authorization: Bearer $token" -X POST http://127.0.0.1:$api/apps -d '{"name":"bench-push"}' >/dev/null

mkdir "$work/app"; cd "$work/app"
printf 'web: php -S 0.0.0.0:$PORT -t .\n' > Procfile
printf '<?php echo "hello";\n' > index.php
git init -q -b main && git add -A && git -c user.name=b -c user.email=b@b commit -qm v0
git init -q --bare "$work/floor.git"

runs=5
hoist_ms=(); floor_ms=()
for i in $(seq $runs); do
  echo "// run $i" >> index.php; git add -A; git -c user.name=b -c user.email=b@b commit -qm "v$i"
  t0=$(date +%s%N)
  git push -q "http://h:$token@127.0.0.1:$api/bench-push.git" main 2>/dev/null
  t1=$(date +%s%N)
  git push -q "$work/floor.git" main 2>/dev/null
  tar -cf - --exclude=.git . | gzip -1 > "$work/floor.tgz"
  t2=$(date +%s%N)
  hoist_ms+=($(( (t1 - t0) / 1000000 ))); floor_ms+=($(( (t2 - t1) / 1000000 )))
done
median() { printf '%s\n' "$@" | sort -n | sed -n "$(( ($# + 1) / 2 ))p"; }
h=$(median "${hoist_ms[@]}"); f=$(median "${floor_ms[@]}")
echo "push-to-release (git push until the release exists), median of $runs: ${h} ms  (all: ${hoist_ms[*]})"
echo "floor (git push to a bare repo + tar|gzip -1), median of $runs:      ${f} ms  (all: ${floor_ms[*]})"
awk -v h="$h" -v f="$f" 'BEGIN { printf "ratio hoist/floor: %.1fx; target: push-to-release under 2000 ms -> %s\n", h / (f > 0 ? f : 1), (h < 2000 ? "met" : "NOT met") }'
