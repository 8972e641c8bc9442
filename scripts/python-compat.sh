#!/usr/bin/env bash
# Compatibility suite: drives a real dmsync binary with the real Microsoft Graph Python SDK
# (msgraph-beta-sdk). Creates or reuses the venv .venv/compat and installs the pinned
# requirements when they changed (scripts/python-venv.sh), then runs pytest. Exits non-zero on
# any failure; nothing is skipped.
#
#   DMSYNC_BIN  the dmsync binary to test (default: target/debug/dmsync)
#   PYTHON      the interpreter that creates the venv (default: python3)
set -euo pipefail
cd "$(dirname "$0")/.."

suite=python-compat
source scripts/compat-bin.sh
source scripts/python-venv.sh

export DMSYNC_BIN="$bin"
exec "$venv/bin/python" -m pytest tests/compat/python -q -p no:cacheprovider -rfEs
