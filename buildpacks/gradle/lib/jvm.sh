# shellcheck shell=bash
# JDK selection shared by the JVM buildpacks (java, gradle, scala, clojure); the
# same file is copied into each of them (test-b.sh checks the copies are identical).
# Needs lib/common.sh.
#
# The app asks for a Java version with `java.runtime.version` in system.properties
# (e.g. `17`, `21`, `1.8`, `21.0.8`). A major version is served by a stack JDK
# (/usr/lib/jvm/*, from Debian packages, present in dynos read-only) of that major;
# an exact version only by a stack JDK of exactly that version. Otherwise the JDK
# comes from the Java runtime source:
#   HOIST_JAVA_RUNTIME_URL     default: Adoptium's "latest GA JDK of a major" API
#                              (so the default source takes majors, not exact versions)
#   HOIST_JAVA_RUNTIME_SHA256  default: {url}.sha256.txt (Adoptium's GitHub assets)
# and is copied into the slug as .jdk/. A runtime without javac (a JRE) runs the app;
# the build then compiles with the stack's default JDK, which targets its own version.

HOIST_JAVA_RUNTIME_URL_DEFAULT='https://api.adoptium.net/v3/binary/latest/{version}/ga/linux/x64/jdk/hotspot/normal/eclipse'
HOIST_JAVA_RUNTIME_SHA256_DEFAULT='{url}.sha256.txt'

# jdk_version JDK_HOME -> full version from its release file (e.g. 17.0.15).
jdk_version() {
  sed -n 's/^JAVA_VERSION="\(.*\)"/\1/p' "$1/release" 2>/dev/null | head -n1
}

# java_major VERSION -> major version (1.8.0_x -> 8, 21.0.2 -> 21).
java_major() {
  local v=$1
  v=${v#1.}
  echo "${v%%[.+_-]*}"
}

# stack_jdks -> "version path" lines, one per distinct JDK under /usr/lib/jvm.
stack_jdks() {
  local d real seen=" " v
  for d in "${HOIST_STACK_JVM_DIR:-/usr/lib/jvm}"/*/; do
    real=$(readlink -f "$d")
    case "$seen" in *" $real "*) continue ;; esac
    seen="$seen$real "
    [ -x "$real/bin/java" ] || continue
    v=$(jdk_version "$real")
    [ -n "$v" ] && echo "$v $real"
  done
}

# requested_java_version BUILD_DIR -> normalized java.runtime.version, or empty.
requested_java_version() {
  local f="$1/system.properties" v
  [ -f "$f" ] || return 0
  v=$(sed -n 's/^[[:space:]]*java\.runtime\.version[[:space:]]*[=:][[:space:]]*//p' "$f" | tr -d '\r[:space:]' | head -n1)
  # Vendor prefixes (zulu-21, heroku-21) select the vendor on Heroku; Hoist ignores them.
  v=${v##*-}
  echo "$v"
}

# select_jdk BUILD_DIR CACHE_DIR ENV_DIR
# Sets JDK_HOME (runs the app and, when it has javac, builds it), BUILD_JDK_HOME
# (has javac), and writes .profile.d/jvm.sh.
select_jdk() {
  local build_dir=$1 cache_dir=$2 requested default_home v path major available=""
  requested=$(requested_java_version "$build_dir")
  default_home=$(readlink -f "${HOIST_STACK_DEFAULT_JDK:-/usr/lib/jvm/default-java}")
  JDK_HOME=""
  while read -r v path; do
    available="$available $v"
    if [ -z "$requested" ]; then
      continue
    elif [[ $requested == *.* ]]; then
      [ "$v" = "$requested" ] && JDK_HOME=$path
    elif [ "$(java_major "$v")" = "$requested" ] && [ -z "$JDK_HOME" ]; then
      JDK_HOME=$path
    fi
  done < <(stack_jdks)
  available=${available# }

  if [ -z "$requested" ]; then
    [ -x "$default_home/bin/java" ] || die "No JDK on this stack (looked for $default_home)." \
      "Ask for a Java version in system.properties (java.runtime.version=21) to install one."
    JDK_HOME=$default_home
    topic "Using the stack's default JDK $(jdk_version "$JDK_HOME") (set java.runtime.version in system.properties to change it)"
  elif [ -n "$JDK_HOME" ]; then
    topic "Using the stack's JDK $(jdk_version "$JDK_HOME") for java.runtime.version=$requested"
  else
    topic "Installing JDK $requested (the stack has: ${available:-none})"
    # shellcheck disable=SC2034 # read by install_runtime
    RUNTIME_AVAILABLE="${available:-none} (stack); cached: $(list_cached_runtimes "$cache_dir" java)"
    install_runtime java "$requested" \
      "${HOIST_JAVA_RUNTIME_URL:-$HOIST_JAVA_RUNTIME_URL_DEFAULT}" \
      "${HOIST_JAVA_RUNTIME_SHA256:-$HOIST_JAVA_RUNTIME_SHA256_DEFAULT}" "$cache_dir"
    [ -x "$RUNTIME_DIR/bin/java" ] || die "The runtime archive for Java $requested has no bin/java."
    rm -rf "$build_dir/.jdk"
    cp -a "$RUNTIME_DIR" "$build_dir/.jdk"
    rm -f "$build_dir/.jdk/.hoist-complete"
    JDK_HOME="$build_dir/.jdk"
    info "Installed $("$JDK_HOME/bin/java" -version 2>&1 | head -n1)"
  fi

  if [ -x "$JDK_HOME/bin/javac" ]; then
    BUILD_JDK_HOME=$JDK_HOME
  else
    [ -x "$default_home/bin/javac" ] || die "Java $requested has no compiler (javac) and neither has the stack."
    BUILD_JDK_HOME=$default_home
    warn "This Java runtime has no compiler; compiling with the stack's JDK $(jdk_version "$default_home")."
  fi

  # At dyno boot: the slug's own JDK lives under $HOME (/app); a stack JDK is mounted.
  local runtime_home=$JDK_HOME
  [ "$JDK_HOME" = "$build_dir/.jdk" ] && runtime_home='$HOME/.jdk'
  major=$(java_major "$(jdk_version "$JDK_HOME")")
  mkdir -p "$build_dir/.profile.d"
  {
    echo "# Written by the Hoist JVM buildpacks."
    echo "export JAVA_HOME=\"$runtime_home\""
    echo 'export PATH="$JAVA_HOME/bin:$PATH"'
    if [ "${major:-0}" -ge 10 ] 2>/dev/null; then
      echo 'export JAVA_OPTS="${JAVA_OPTS:--XX:+UseContainerSupport -XX:MaxRAMPercentage=80.0}"'
    fi
    echo 'export JVM_OPTS="${JVM_OPTS:-$JAVA_OPTS}"'
  } >"$build_dir/.profile.d/jvm.sh"
  export JAVA_HOME=$BUILD_JDK_HOME
  export PATH="$JAVA_HOME/bin:$PATH"
}
