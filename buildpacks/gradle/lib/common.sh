# shellcheck shell=bash
# Shared helpers for Hoist's JVM and Go classic buildpacks.
#
# The same file is copied into java/, gradle/, scala/, clojure/ and go/ under
# lib/common.sh so that each buildpack stays self-contained (it can be copied or
# pointed at on its own); buildpacks/test-b.sh checks that the copies are identical.
#
# Runtime sources
# ---------------
# When an app asks for a runtime version that the stack (the host's Debian
# packages) does not have, it is installed from a "runtime source":
#   URL template      {version} is replaced by the requested version.
#   checksum template {url} is replaced by the archive's final URL (after
#                     redirects), {version} by the version. The file it names must
#                     start with the archive's sha256 as 64 hex digits (the format
#                     of go.dev's `.sha256` files, GitHub release `.sha256.txt`
#                     files and `sha256sum` output). An archive whose checksum
#                     cannot be fetched or does not match is never installed.
#   archive           a .tar.gz / .tar.xz; a single top-level directory is stripped.
# Installed runtimes live in a per-version directory shared by all apps:
#   ${HOIST_RUNTIME_CACHE:-CACHE_DIR/runtimes}/<kind>/<version>/
# An install is built in a temporary directory and renamed into place, so
# concurrent builds of different apps never see half-extracted runtimes.

# Heroku-style output: steps, indented details, errors.
topic() { echo "-----> $*"; }
info() { echo "       $*"; }
warn() { echo " !     WARNING: $*"; }
indent() { sed -u 's/^/       /'; }
die() {
  local line
  for line in "$@"; do echo " !     $line"; done
  exit 1
}

# config_var ENV_DIR NAME [DEFAULT] -> value of a config var (ENV_DIR/NAME), else DEFAULT.
config_var() {
  local env_dir=$1 name=$2 default=${3-}
  if [ -n "$env_dir" ] && [ -f "$env_dir/$name" ]; then
    cat "$env_dir/$name"
  else
    printf '%s' "$default"
  fi
}

# runtime_root CACHE_DIR -> directory holding installed runtimes.
runtime_root() { echo "${HOIST_RUNTIME_CACHE:-$1/runtimes}"; }

# list_cached_runtimes CACHE_DIR KIND -> space-separated versions already installed.
list_cached_runtimes() {
  local root d out=""
  root=$(runtime_root "$1")
  for d in "$root/$2"/*/; do
    [ -f "$d/.hoist-complete" ] || continue
    d=${d%/}
    out="$out ${d##*/}"
  done
  echo "${out# }"
}

# _rt_die MESSAGE... -> remove the half-done install, then fail the build.
_rt_die() {
  [ -n "${_RT_TMP:-}" ] && rm -rf "$_RT_TMP"
  die "$@"
}

# install_runtime KIND VERSION URL_TEMPLATE SHA256_TEMPLATE CACHE_DIR
# Sets RUNTIME_DIR to the installed runtime (downloading it if not cached yet).
# RUNTIME_AVAILABLE (optional) names the versions usable without a download, for errors.
install_runtime() {
  local kind=$1 version=$2 url_tpl=$3 sha_tpl=$4 cache_dir=$5
  local root dest url tmp effective sha_url expected actual top entries
  root=$(runtime_root "$cache_dir")
  dest="$root/$kind/$version"
  if [ -f "$dest/.hoist-complete" ]; then
    info "Using cached $kind $version"
    RUNTIME_DIR=$dest
    return 0
  fi
  mkdir -p "$root/$kind" || _rt_die "Cannot create the runtime cache $root/$kind"
  url=${url_tpl//\{version\}/$version}
  tmp=$(mktemp -d "$root/$kind/.tmp-$version.XXXXXX")
  _RT_TMP=$tmp
  info "Downloading $kind $version from $url"
  if ! effective=$(curl -fsSL --retry 2 --connect-timeout 15 -o "$tmp/archive" -w '%{url_effective}' "$url" 2>"$tmp/err"); then
    _rt_die "Could not download $kind $version from $url: $(tail -n1 "$tmp/err")" \
      "Versions available without a download: ${RUNTIME_AVAILABLE:-none}." \
      "Ask for one of those, or point the runtime source (HOIST_${kind^^}_RUNTIME_URL) at a mirror."
  fi
  sha_url=${sha_tpl//\{url\}/$effective}
  sha_url=${sha_url//\{version\}/$version}
  if ! expected=$(curl -fsSL --retry 2 --connect-timeout 15 "$sha_url" 2>"$tmp/err"); then
    _rt_die "Could not download the checksum for $kind $version from $sha_url: $(tail -n1 "$tmp/err")" \
      "Refusing to install a runtime that cannot be verified."
  fi
  expected=$(printf '%s' "$expected" | awk 'NR==1 {print tolower($1)}')
  if ! [[ $expected =~ ^[0-9a-f]{64}$ ]]; then
    _rt_die "The checksum file $sha_url does not start with a sha256 digest."
  fi
  actual=$(sha256sum "$tmp/archive" | awk '{print $1}')
  if [ "$expected" != "$actual" ]; then
    _rt_die "Checksum mismatch for $kind $version from $url" \
      "expected sha256 $expected" "got      sha256 $actual"
  fi
  info "Verified sha256 $actual"
  mkdir "$tmp/x"
  tar -xf "$tmp/archive" -C "$tmp/x" || _rt_die "Could not unpack $url"
  entries=("$tmp/x"/* "$tmp/x"/.[!.]*)
  top="$tmp/x"
  local existing=()
  local e
  for e in "${entries[@]}"; do [ -e "$e" ] && existing+=("$e"); done
  if [ "${#existing[@]}" -eq 1 ] && [ -d "${existing[0]}" ]; then
    top=${existing[0]}
  fi
  touch "$top/.hoist-complete"
  # Another build may have installed the same version meanwhile: keep theirs.
  mv -T "$top" "$dest" 2>/dev/null || true
  [ -f "$dest/.hoist-complete" ] || _rt_die "Could not install $kind $version into $dest"
  rm -rf "$tmp"
  # shellcheck disable=SC2034 # read by the caller
  RUNTIME_DIR=$dest
}
