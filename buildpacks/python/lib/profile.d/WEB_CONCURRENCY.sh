# shellcheck shell=bash
# Written by Hoist's Python buildpack; sourced at dyno boot (so: no exit, no set -e).
# Defaults WEB_CONCURRENCY (the worker count gunicorn and uvicorn read) from the dyno's
# memory and CPUs the way heroku/python does: the lower of CPUs * 2 + 1 and one process
# per 256 MB (at least 1). A WEB_CONCURRENCY config var wins; WEB_CONCURRENCY_SET_BY
# tells the two apart. DYNO_RAM is the memory in MB. Messages only on web dynos.

_hoist_py_say() {
  case "${DYNO:-}" in web.*) echo "Python buildpack: $*" >&2 ;; esac
}

# The dyno's memory quota in MB: HOIST_DYNO_MEMORY_MB when the platform passes it, else
# from the memory cgroup. Hoist's dyno cgroup limit is the R15 point, twice the quota.
_hoist_py_memory_mb() {
  local f limit
  if [ -n "${HOIST_DYNO_MEMORY_MB:-}" ]; then
    echo "$HOIST_DYNO_MEMORY_MB"
    return 0
  fi
  for f in /sys/fs/cgroup/memory.max /sys/fs/cgroup/memory/memory.limit_in_bytes; do
    [ -r "$f" ] || continue
    limit="$(cat "$f" 2>/dev/null)"
    case "$limit" in '' | *[!0-9]*) continue ;; esac
    limit=$((limit / 1048576 / 2))
    # cgroup v1 reports thousands of TB when there is no limit.
    if [ "$limit" -gt 0 ] && [ "$limit" -le 1048576 ]; then
      echo "$limit"
      return 0
    fi
  done
  return 1
}

_hoist_py_web_concurrency() {
  local mem cpus by_mem by_cpu
  if ! mem="$(_hoist_py_memory_mb)"; then
    _hoist_py_say "Couldn't determine available memory. Skipping automatic configuration of WEB_CONCURRENCY."
    return 0
  fi
  if ! cpus="$(nproc 2>/dev/null)"; then
    _hoist_py_say "Couldn't determine number of CPU cores. Skipping automatic configuration of WEB_CONCURRENCY."
    return 0
  fi
  _hoist_py_say "Detected $mem MB available memory and $cpus CPU cores."
  export DYNO_RAM="$mem"
  if [ -n "${WEB_CONCURRENCY+set}" ]; then
    _hoist_py_say "Skipping automatic configuration of WEB_CONCURRENCY since it's already set."
    return 0
  fi
  export WEB_CONCURRENCY_SET_BY="heroku/python"
  by_mem=$((mem / 256))
  [ "$by_mem" -ge 1 ] || by_mem=1
  by_cpu=$((cpus * 2 + 1))
  if [ "$by_mem" -lt "$by_cpu" ]; then
    export WEB_CONCURRENCY="$by_mem"
    _hoist_py_say "Defaulting WEB_CONCURRENCY to $WEB_CONCURRENCY based on the available memory."
  else
    export WEB_CONCURRENCY="$by_cpu"
    _hoist_py_say "Defaulting WEB_CONCURRENCY to $WEB_CONCURRENCY based on the number of CPU cores."
  fi
}
_hoist_py_web_concurrency
unset -f _hoist_py_say _hoist_py_memory_mb _hoist_py_web_concurrency
