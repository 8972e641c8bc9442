#!/usr/bin/env bash
# Runs every test of dmsync: the Rust unit, conformance and integration suites (nextest), then
# the compatibility suites that drive the server with the real Microsoft Graph Python SDKs, the
# real JavaScript Graph client and the real graph-rs-sdk.
# Installs what it needs on a fresh machine; in CI (CI=true) nothing is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo nextest --version >/dev/null 2>&1; then
  echo "cargo-nextest not found; installing it" >&2
  cargo install cargo-nextest --locked
fi

# The CLI's terminal tests run the real binary in a tmux pane and read the screen back.
if ! command -v tmux >/dev/null 2>&1; then
  echo "tmux not found; installing it" >&2
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq tmux
fi

# The compatibility suite runs the real binary.
cargo build --workspace --bins

cargo nextest run --workspace --profile ci

# Every compatibility suite runs even if one fails, so one run shows every failure.
status=0
DMSYNC_BIN="$PWD/target/debug/dmsync" bash scripts/python-compat.sh || status=1
DMSYNC_BIN="$PWD/target/debug/dmsync" bash scripts/js-compat.sh || status=1
DMSYNC_BIN="$PWD/target/debug/dmsync" bash scripts/rust-compat.sh || status=1
exit "$status"
