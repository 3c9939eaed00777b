# shellcheck shell=bash
# Which Python version an app asks for, with heroku/python's precedence, checks and
# messages (its documentation and error texts are the reference):
#   1. runtime.txt ("python-3.12", deprecated)   2. .python-version ("3.12" or "3.12.7";
#   blank lines and "#" comments ignored)   3. Pipfile.lock's python_full_version, then
#   python_version (Pipenv apps)   4. the major version of the last build (sticky)
#   5. the default.
# Sourced by bin/compile after lib/common.sh.

# Versions of form N.N or N.N.N, no redundant leading zeros.
PY_VERSION_RE='(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))?'
PY_OLDEST_MINOR=10 # 3.9 reached its end of life in October 2025
PY_NEWEST_MINOR=14

# Misspellings of .python-version that heroku/python refuses by name.
PY_MISSPELLED_VERSION_FILES=(
  " .python-version" ". python-version" ".python_version.txt" ".python_version"
  ".python-version " ",python-version" ".python-version." ".python-version.py"
  ".python-version.rtf" ".python-version.txt" ".python-version.TXT" ".Python-version"
  ".python.version" ".pythonversion" "'.python-version'" "python_version.txt"
  "python_version" "python-version." "python-version.txt" "python-version"
)

# The file's lines without surrounding whitespace, comments and blank lines.
py_version_lines() {
  LC_ALL=C.UTF-8 sed -E -e 's/^[[:space:]]+//' -e 's/[[:space:]]+$//' -e '/^(#|$)/d' "$1"
}

# How to write a .python-version file (part of several messages).
py_version_file_instructions() { # ORIGIN MAJOR
  if [[ "$1" == runtime.txt ]]; then
    echo "Delete your runtime.txt file and create a new file in the"
    echo "root directory of your app named:"
  else
    echo "Create a new file in the root directory of your app named:"
  fi
  cat <<EOF
.python-version

Make sure to include the '.' character at the start of the
filename. Don't add a file extension such as '.txt'.

In the new file, specify your app's major Python version number
only. Don't include quotes or a 'python-' prefix.

For example, to request the latest version of Python $2,
update your .python-version file so it contains exactly:
$2

We strongly recommend that you don't specify the Python patch
version number, since it will pin your app to an exact Python
version and so stop your app from receiving security updates
each time it builds.
EOF
}

# read_python_version_request BUILD_DIR MANAGER CACHED_FULL_VERSION DEFAULT_MAJOR
# Sets py_requested (N.N or N.N.N) and py_origin (runtime.txt, .python-version,
# Pipfile.lock, cached or default); fails with heroku/python's messages.
# shellcheck disable=SC2034 # py_requested/py_origin are read by bin/compile
read_python_version_request() {
  local dir="$1" manager="$2" cached="$3" default="$4" content f v enc
  local -a versions
  if [[ -f "$dir/runtime.txt" ]]; then
    content="$(py_version_lines "$dir/runtime.txt")"
    if [[ "$content" =~ ^python-($PY_VERSION_RE)$ ]]; then
      py_requested="${BASH_REMATCH[1]}" py_origin=runtime.txt
      return 0
    fi
    fail <<EOF
Error: Invalid Python version in runtime.txt.

The Python version specified in your runtime.txt file isn't
in the correct format.

However, the runtime.txt file is deprecated since it has been
replaced by the more widely supported .python-version file:
https://devcenter.heroku.com/changelog-items/3141

As such, we recommend that you switch to using .python-version
instead of fixing your runtime.txt file.

$(py_version_file_instructions runtime.txt "$default")
EOF
  fi
  for f in "${PY_MISSPELLED_VERSION_FILES[@]}"; do
    [[ -f "$dir/$f" ]] || continue
    fail <<EOF
Error: Your .python-version file is spelled incorrectly.

Your app's .python-version file currently has the filename:
'$f'

However, the correct spelling is (without quotes):
'.python-version'

You must rename your file to the correct name.
EOF
  done
  if [[ -f "$dir/.python-version" ]]; then
    mapfile -t versions < <(py_version_lines "$dir/.python-version")
    for v in "${versions[@]}"; do
      [[ "$v" =~ ^$PY_VERSION_RE$ ]] && continue
      enc="$(file --brief --dereference --exclude json --exclude soft "$dir/.python-version" 2>/dev/null || echo 'ASCII text')"
      case "$enc" in
        *"ASCII text"* | *"UTF-8 text"* | *"very short file"* | data)
          fail <<EOF
Error: Invalid Python version in .python-version.

The Python version specified in your .python-version file
isn't in the correct format.

The following version was found:
$(LC_ALL=C; echo "${v//[^[:print:][:blank:]]/?}")

However, the Python version must be specified as either:
1. The major version only, for example: $default (recommended)
2. An exact patch version, for example: $default.999

Don't include quotes, a 'python-' prefix or wildcards. Any
code comments must be on a separate line prefixed with '#'.

For example, to request the latest version of Python $default,
update your .python-version file so it contains exactly:
$default

We strongly recommend that you don't specify the Python patch
version number, since it will pin your app to an exact Python
version and so stop your app from receiving security updates
each time it builds.
EOF
          ;;
        *)
          fail <<EOF
Error: Unable to read .python-version.

Your .python-version file couldn't be read because it's using
an unsupported text encoding:
$enc

Configure your editor to save files as UTF-8, without a BOM,
then delete and recreate the file using the correct encoding.
EOF
          ;;
      esac
    done
    case "${#versions[@]}" in
      1)
        py_requested="${versions[0]}" py_origin=.python-version
        return 0
        ;;
      0)
        fail <<EOF
Error: No Python version found in .python-version.

No Python version was found in your .python-version file.

Update the file so that it contains your app's major Python
version number. Don't include quotes or a 'python-' prefix.

For example, to request the latest version of Python $default,
update your .python-version file so it contains exactly:
$default

If the file already contains a version, check the line doesn't
begin with a '#', otherwise it will be treated as a comment.
EOF
        ;;
      *)
        fail <<EOF
Error: Multiple Python versions found in .python-version.

Multiple versions were found in your .python-version file:

$(printf '%s\n' "${versions[@]}")

Update the file so it contains only one Python version.

For example, to request the latest version of Python $default,
update your .python-version file so it contains exactly:
$default
EOF
        ;;
    esac
  fi
  if [[ "$manager" == pipenv ]]; then
    # The stack's python3 reads the JSON (jq isn't part of every stack).
    if ! v="$(python3 -c 'import json, sys
r = json.load(open(sys.argv[1])).get("_meta", {}).get("requires", {})
v = r.get("python_full_version") or r.get("python_version")
print("null" if v is None else v)' "$dir/Pipfile.lock" 2>&1 | tail -n1)"; then
      fail <<EOF
Error: Can't parse Pipfile.lock.

A Pipfile.lock file was found, however, it couldn't be parsed:
$v

This is likely due to it not being valid JSON.

Run 'pipenv lock' to regenerate/fix the lockfile.
EOF
    fi
    if [[ "$v" != null ]]; then
      if [[ "$v" =~ ^$PY_VERSION_RE$ ]]; then
        py_requested="$v" py_origin=Pipfile.lock
        return 0
      fi
      fail <<EOF
Error: Invalid Python version in Pipfile.lock.

The Python version specified in your Pipfile.lock file by the
'python_version' or 'python_full_version' fields isn't valid.

The following version was found:
$v

However, the Python version must be specified as either:
1. The major version only, for example: $default (recommended)
2. An exact patch version, for example: $default.999

Wildcards aren't supported.

Please update your Pipfile to use a valid Python version and
then run 'pipenv lock' to regenerate Pipfile.lock.
EOF
    fi
  fi
  if [[ "$cached" =~ ^$PY_VERSION_RE$ && -n "${BASH_REMATCH[3]}" ]]; then
    py_requested="${cached%.*}" py_origin=cached
  else
    py_requested="$default" py_origin=default
  fi
}

# check_python_version_supported REQUESTED ORIGIN: heroku/python's end-of-life and
# unknown-version errors.
check_python_version_supported() {
  local requested="$1" origin="$2" major minor
  [[ "$requested" =~ ^$PY_VERSION_RE$ ]] || fail "Internal error: invalid Python version $requested"
  major="${BASH_REMATCH[1]}" minor="${BASH_REMATCH[2]}"
  if ((major < 3 || (major == 3 && minor < PY_OLDEST_MINOR))); then
    if [[ "$origin" == cached ]]; then
      fail <<EOF
Error: The cached Python version has reached end-of-life.

Your app doesn't specify a Python version, and so normally
would use the version cached from the last build ($requested).

However, Python $major.$minor has reached its upstream end-of-life,
and is therefore no longer receiving security updates:
https://devguide.python.org/versions/#supported-versions

Please upgrade to at least Python 3.$PY_OLDEST_MINOR by configuring an
explicit Python version for your app.

$(py_version_file_instructions cached "3.$PY_OLDEST_MINOR")
EOF
    fi
    fail <<EOF
Error: The requested Python version has reached end-of-life.

Python $major.$minor has reached its upstream end-of-life, and is
therefore no longer receiving security updates:
https://devguide.python.org/versions/#supported-versions

As such, it's no longer supported by this buildpack:
https://devcenter.heroku.com/articles/python-support#supported-python-versions

Please upgrade to at least Python 3.$PY_OLDEST_MINOR by changing the
version in your $origin file.
EOF
  fi
  if (((major == 3 && minor > PY_NEWEST_MINOR) || major >= 4)); then
    fail <<EOF
Error: The requested Python version isn't recognised.

The requested Python version $major.$minor isn't recognised.

Check that this Python version has been officially released,
and that the Python buildpack has added support for it:
https://devguide.python.org/versions/#supported-versions
https://devcenter.heroku.com/articles/python-support#supported-python-versions

Otherwise, switch to a supported version (such as Python 3.$PY_NEWEST_MINOR)
by changing the version in your $origin file.
EOF
  fi
}

# warn_python_version_origin ORIGIN MAJOR MANAGER: heroku/python's warning for an
# app without .python-version, and its errors for uv apps without one.
warn_python_version_origin() {
  local origin="$1" major="$2" manager="$3"
  case "$origin" in
    default | cached)
      if [[ "$manager" == uv ]]; then
        fail <<EOF
Error: No Python version was specified.

When using the package manager uv on Heroku, you must specify
your app's Python version with a .python-version file.

To add a .python-version file:

1. Make sure you are in the root directory of your app
   and not a subdirectory.
2. Run 'uv python pin $major'
   (adjust to match your app's major Python version).
3. Commit the changes to your Git repository using
   'git add --all' and then 'git commit'.
EOF
      fi
      warn <<EOF

Warning: No Python version was specified.

Your app doesn't specify a Python version and so the buildpack
picked a default version for you.

Relying on this default version isn't recommended, since it
can change over time and may not be consistent with your local
development environment, CI or other instances of your app.

Please configure an explicit Python version for your app.

$(py_version_file_instructions "$origin" "$major")

EOF
      ;;
    runtime.txt)
      if [[ "$manager" == uv ]]; then
        fail <<EOF
Error: The runtime.txt file isn't supported when using uv.

When using the package manager uv on Heroku, you must specify
your app's Python version with a .python-version file and not
a runtime.txt file.

To switch to a .python-version file:

1. Make sure you are in the root directory of your app
   and not a subdirectory.
2. Delete your runtime.txt file.
3. Run 'uv python pin $major'
   (adjust to match your app's major Python version).
4. Commit the changes to your Git repository using
   'git add --all' and then 'git commit'.
EOF
      fi
      warn <<EOF

Warning: The runtime.txt file is deprecated.

The runtime.txt file is deprecated since it has been replaced
by the more widely supported .python-version file:
https://devcenter.heroku.com/changelog-items/3141

Please switch to using a .python-version file instead.

$(py_version_file_instructions runtime.txt "$major")

EOF
      ;;
  esac
}
