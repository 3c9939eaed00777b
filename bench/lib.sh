# Shared by the benchmark scripts: a release `hoist server` on free loopback ports in a
# temporary data directory, removed (with its dynos) on exit.
# After `start_hoist`: $HOIST, $work, $api, $router, $srv, $token.

start_hoist() {
  HOIST=$PWD/target/release/hoist
  work=$(mktemp -d)
  trap cleanup_hoist EXIT
  chmod 755 "$work"
  api=$((20000 + RANDOM % 20000)); router=$((api + 1))
  HOIST_LOG="${HOIST_LOG:-info}" "$HOIST" server --data-dir "$work/data" --api-addr 127.0.0.1:$api --router-addr 127.0.0.1:$router >"$work/server.log" 2>&1 &
  srv=$!
  for _ in $(seq 100); do curl -sf http://127.0.0.1:$api/healthz >/dev/null && break; sleep 0.1; done
  token=$(cat "$work/data/admin.token")
}

# Dynos outlive the daemon by design: destroy the benchmark's apps, then stop it.
cleanup_hoist() {
  if [[ -n "${token:-}" ]]; then
    for a in $(curl -sf -H "Authorization: Bearer $token" http://127.0.0.1:$api/apps | python3 -c 'import json,sys; print(" ".join(a["name"] for a in json.load(sys.stdin)))' 2>/dev/null); do
      curl -sf -X DELETE -H "Authorization: Bearer $token" http://127.0.0.1:$api/apps/$a >/dev/null || true
    done
    sleep 2
  fi
  kill "${srv:-}" 2>/dev/null || true
  sleep 1
  rm -rf "$work"
}
