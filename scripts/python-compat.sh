#!/usr/bin/env bash
# Compatibility suite: drives a real dmsync binary with the real Microsoft Graph Python SDK
# (msgraph-beta-sdk). Creates or reuses the venv .venv/compat, installs the pinned
# requirements only when they changed since the last install (hash stamp inside the venv),
# then runs pytest. Exits non-zero on any failure; nothing is skipped.
#
#   DMSYNC_BIN  the dmsync binary to test (default: target/debug/dmsync)
#   PYTHON      the interpreter that creates the venv (default: python3)
set -euo pipefail
cd "$(dirname "$0")/.."

req="tests/compat/python/requirements.txt"
cons="tests/compat/python/constraints.txt"
venv=".venv/compat"
stamp="$venv/.dmsync-requirements.sha256"

suite=python-compat
source scripts/compat-bin.sh

python="${PYTHON:-python3}"
if ! command -v "$python" >/dev/null 2>&1; then
  echo "python-compat: $python not found" >&2
  exit 1
fi

# A venv whose interpreter no longer runs (moved, or its base Python gone) is made anew.
if [[ -d "$venv" ]] && ! "$venv/bin/python" -c 'import sys' >/dev/null 2>&1; then
  echo "python-compat: $venv is broken; recreating it" >&2
  rm -rf "$venv"
fi
if [[ ! -x "$venv/bin/python" ]]; then
  echo "python-compat: creating $venv" >&2
  "$python" -m venv "$venv"
fi

# What the installed set depends on: both requirement files and the venv's Python version.
want="$(
  {
    cat "$req" "$cons"
    "$venv/bin/python" -c 'import sys; print(sys.version)'
  } | sha256sum | cut -d' ' -f1
)"
have="$(cat "$stamp" 2>/dev/null || true)"
if [[ "$want" != "$have" ]]; then
  echo "python-compat: installing $req into $venv" >&2
  rm -f "$stamp"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check \
    -r "$req" -c "$cons"
  echo "$want" >"$stamp"
fi

export DMSYNC_BIN="$bin"
exec "$venv/bin/python" -m pytest tests/compat/python -q -p no:cacheprovider -rfEs
