#!/usr/bin/env bash
# Waking a sleeping eco app through the router, against the app's own boot time in the
# same run: (a) scale web 0 -> 1 and poll until the router answers (boot floor);
# (b) let the app sleep, then time the first request (held by the router while the
# dyno manager wakes the app). Target: wake <= boot + 100 ms. Bounded: 3 rounds.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -p hoist -p hoist-runtime -p hoist-build --bins >/dev/null 2>&1
source bench/lib.sh
HOIST_SERVER_IDLE_SECONDS=2 start_hoist
H=(-sf -H "Authorization: Bearer $token" -H "Content-Type: application/json")
curl "${H[@]}" -X POST http://127.0.0.1:$api/apps -d '{"name":"bench-wake"}' >/dev/null
mkdir "$work/app"; cd "$work/app"
printf 'web: exec python3 -m http.server $PORT\n' > Procfile; echo awake > index.html
printf '<?php\n' > index.php  # detected as PHP; the Procfile's web process wins
git init -q -b main && git add -A && git -c user.name=b -c user.email=b@b commit -qm v1
git push -q "http://h:$token@127.0.0.1:$api/bench-wake.git" main 2>/dev/null
scale() { curl "${H[@]}" -X PATCH http://127.0.0.1:$api/apps/bench-wake/formation -d "{\"updates\":[{\"type\":\"web\",\"quantity\":\"$1\",\"size\":\"$2\"}]}" >/dev/null; }
ms() { echo $(( $(date +%s%N) / 1000000 )); }
boots=(); wakes=()
for round in 1 2 3; do
  scale 0 standard-1x; sleep 2
  t0=$(ms); scale 1 standard-1x
  until curl -sf -o /dev/null -H "Host: bench-wake.localhost" http://127.0.0.1:$router/; do sleep 0.01; done
  boots+=($(( $(ms) - t0 )))
  scale 1 eco
  # Sleeping: the dyno list empties once the app idles.
  for _ in $(seq 200); do
    n=$(curl "${H[@]}" http://127.0.0.1:$api/apps/bench-wake/dynos | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
    [ "$n" = 0 ] && break; sleep 0.1
  done
  t0=$(ms); curl -sf -o /dev/null -H "Host: bench-wake.localhost" http://127.0.0.1:$router/; wakes+=($(( $(ms) - t0 )))
done
echo "boot (scale 0->1 until the router answers): ${boots[*]} ms"
echo "wake (first request to a sleeping app):     ${wakes[*]} ms"
b=$(printf '%s\n' "${boots[@]}" | sort -n | sed -n 2p); w=$(printf '%s\n' "${wakes[@]}" | sort -n | sed -n 2p)
awk -v b="$b" -v w="$w" 'BEGIN { printf "median wake %d ms vs boot %d ms: +%d ms (target <= +100 ms: %s)\n", w, b, w - b, (w - b <= 100 ? "met" : "NOT met") }'
