# Helpers shared by Hoist's built-in classic buildpacks.
# The same file is copied into each buildpack (a buildpack must be self-contained);
# keep the copies identical (test-a.sh checks this).

# Heroku-style output: "-----> step" and 7-space indented details.
topic() { echo "-----> $*"; }
info() { echo "       $*"; }
indent() { sed -u -e '/^[[:space:]]*$/d' -e 's/^/       /'; }
# warn/fail take the message as arguments or, without any, from stdin (a heredoc for
# Heroku's multi-line messages); every line gets the " !     " prefix.
warn() {
  if [[ $# -gt 0 ]]; then printf '%s\n' "$*"; else cat; fi | sed 's/^/ !     /'
}
fail() {
  warn "$@" >&2
  exit 1
}

# Exports config vars from ENV_DIR (one file per var) into this process, except the
# ones that would break the build machinery itself (same deny-list as Heroku's).
export_env_dir() {
  local env_dir="$1" f name
  [[ -d "$env_dir" ]] || return 0
  for f in "$env_dir"/*; do
    [[ -f "$f" ]] || continue
    name="${f##*/}"
    [[ "$name" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || continue
    case "$name" in
      PATH | GIT_DIR | CPATH | CPPATH | LD_PRELOAD | LIBRARY_PATH | LD_LIBRARY_PATH | HOME | IFS) continue ;;
    esac
    export "$name=$(<"$f")"
  done
}

# Reads one config var: the process env wins over ENV_DIR, then the default.
config_var() {
  local env_dir="$1" name="$2" default="${3-}"
  if [[ -n "${!name-}" ]]; then
    printf '%s' "${!name}"
  elif [[ -f "$env_dir/$name" ]]; then
    cat "$env_dir/$name"
  else
    printf '%s' "$default"
  fi
}

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

# Fetches the expected sha256 of URL. Looked up, in order:
#   1. <url>.sha256            (first word of the file)
#   2. <dir of url>/SHASUMS256.txt  ("<hex>  <file name>" lines, nodejs.org format)
#   3. <dir of url>/SHA256SUMS      (same format)
# Prints the hex digest, or nothing when no checksum source answered.
runtime_expected_sha256() {
  local url="$1" dir base sums sum
  dir="${url%/*}"
  base="${url##*/}"
  if sum="$(curl -fsSL --retry 2 "$url.sha256" 2>/dev/null)"; then
    sum="$(printf '%s' "$sum" | awk 'NR==1 {print $1}')"
    [[ "$sum" =~ ^[0-9a-fA-F]{64}$ ]] && { echo "$sum"; return 0; }
  fi
  for sums in SHASUMS256.txt SHA256SUMS; do
    if sum="$(curl -fsSL --retry 2 "$dir/$sums" 2>/dev/null)"; then
      sum="$(printf '%s\n' "$sum" | awk -v f="$base" '$2 == f || $2 == "*" f || $2 == "./" f {print $1; exit}')"
      [[ "$sum" =~ ^[0-9a-fA-F]{64}$ ]] && { echo "$sum"; return 0; }
    fi
  done
  return 0
}

# install_runtime NAME VERSION URL_TEMPLATE CACHE_ROOT
# Makes sure CACHE_ROOT/NAME-VERSION holds the unpacked runtime, downloading
# URL_TEMPLATE (with {version} replaced) and verifying its sha256 when it isn't
# cached yet. The cache is shared by all apps, so the unpacked tree is renamed into
# place atomically and a concurrent build that lost the race just uses the winner's.
# Prints the runtime directory on stdout; progress goes to stderr.
install_runtime() {
  local name="$1" version="$2" template="$3" root="$4"
  local dest="$root/$name-$version" url tmp expected actual entries
  if [[ -x "$dest/bin/$name" || -e "$dest/.hoist-runtime" ]]; then
    info "Using cached $name $version" >&2
    echo "$dest"
    return 0
  fi
  url="${template//\{version\}/$version}"
  mkdir -p "$root" || fail "Can't create the runtime cache $root"
  tmp="$(mktemp -d "$root/.partial-$name-$version.XXXXXX")"
  info "Downloading $name $version from $url" >&2
  if ! curl -fsSL --retry 2 -o "$tmp/archive" "$url"; then
    rm -rf "$tmp"
    fail "Couldn't download $name $version from $url"
  fi
  expected="$(runtime_expected_sha256 "$url")"
  if [[ -z "$expected" ]]; then
    rm -rf "$tmp"
    fail "No checksum for $url (looked for $url.sha256, SHASUMS256.txt and SHA256SUMS beside it); refusing an unverified runtime"
  fi
  actual="$(sha256_of "$tmp/archive")"
  if [[ "${expected,,}" != "$actual" ]]; then
    rm -rf "$tmp"
    fail "Checksum mismatch for $url: expected $expected, got $actual"
  fi
  info "Verified sha256 $actual" >&2
  mkdir "$tmp/x"
  # GNU tar detects gzip/xz/bzip2/zstd compression by itself when reading a file.
  if ! tar -xf "$tmp/archive" -C "$tmp/x" --no-same-owner; then
    rm -rf "$tmp"
    fail "Couldn't unpack $url"
  fi
  # Official archives wrap everything in one top directory (node-v22.1.0-linux-x64/,
  # package/, python/); use its content.
  mapfile -t entries < <(ls -A "$tmp/x")
  local top="$tmp/x"
  if [[ ${#entries[@]} -eq 1 && -d "$tmp/x/${entries[0]}" ]]; then
    top="$tmp/x/${entries[0]}"
  fi
  if [[ ! -d "$top/bin" ]]; then
    rm -rf "$tmp"
    fail "The archive at $url has no bin/ directory; it isn't a $name runtime"
  fi
  echo "$url sha256=$actual" >"$top/.hoist-runtime"
  chmod -R a+rX "$top" 2>/dev/null || true
  if ! mv -T "$top" "$dest" 2>/dev/null; then
    [[ -e "$dest/.hoist-runtime" ]] || { rm -rf "$tmp"; fail "Couldn't move the runtime into $dest"; }
  fi
  rm -rf "$tmp"
  echo "$dest"
}

# Lists versions already in the runtime cache for NAME (one per line).
cached_runtime_versions() {
  local name="$1" root="$2" d
  for d in "$root/$name"-*; do
    [[ -e "$d/.hoist-runtime" ]] && echo "${d##*/$name-}"
  done
  return 0
}

# Copies a directory tree (e.g. a cached runtime) into the slug. A real copy, not
# hard links: later build steps may write into it and the cache is shared.
copy_tree() {
  local src="$1" dst="$2"
  rm -rf "$dst"
  mkdir -p "$(dirname "$dst")"
  cp -a "$src" "$dst"
}
