# Sourced by the Python suites' scripts (python-compat.sh, schemathesis.sh), from the repository
# root: creates or reuses the venv .venv/compat and installs the pinned requirements only when
# they changed since the last install (hash stamp inside the venv). Sets `venv`; stops with a
# message prefixed by $suite.
#
#   PYTHON      the interpreter that creates the venv (default: python3)
req="tests/compat/python/requirements.txt"
cons="tests/compat/python/constraints.txt"
venv=".venv/compat"
stamp="$venv/.dmsync-requirements.sha256"

python="${PYTHON:-python3}"
if ! command -v "$python" >/dev/null 2>&1; then
  echo "$suite: $python not found" >&2
  exit 1
fi

# A venv whose interpreter no longer runs (moved, or its base Python gone) is made anew.
if [[ -d "$venv" ]] && ! "$venv/bin/python" -c 'import sys' >/dev/null 2>&1; then
  echo "$suite: $venv is broken; recreating it" >&2
  rm -rf "$venv"
fi
if [[ ! -x "$venv/bin/python" ]]; then
  echo "$suite: creating $venv" >&2
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
  echo "$suite: installing $req into $venv" >&2
  rm -f "$stamp"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check \
    -r "$req" -c "$cons"
  echo "$want" >"$stamp"
fi
