#!/usr/bin/env bash
# Runs every test of dmsync: the Rust unit, conformance and integration suites (nextest), the
# integration suite a second time on PostgreSQL, then the compatibility suites that drive the
# server with the real Microsoft Graph Python SDKs, the real JavaScript Graph client and the real
# graph-rs-sdk, and schemathesis against dmsync's own OpenAPI documents. Installs what it needs
# on a fresh machine; in CI (CI=true) nothing is skipped, and an unreachable PostgreSQL fails the
# run.
#
# PostgreSQL: DMSYNC_TEST_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres), a
# server where that user may create databases; each test creates and drops its own.
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

# The interactive sign-in test drives dmsync's sign-in page in Debian's headless Chromium
# (playwright-core cannot download browsers here; tests/compat/js/test/interactive.test.js).
if [ ! -x /usr/bin/chromium ]; then
  echo "chromium not found; installing it" >&2
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq chromium
fi

# Formatting and lints are part of the test command, so drift fails CI.
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings

# The compatibility suite runs the real binary.
cargo build --workspace --bins

# SQLite for the integration suite; the conformance suite and the replica tests use both
# backends here already.
cargo nextest run --workspace --profile ci

# The integration suite again, on PostgreSQL. Left out: the tests that are about SQLite itself
# (lifecycle: its lock file and restart requeue), and the replica tests, the crash harness and the
# CLI's terminal tests, which ran above (the first two on both backends already).
pg_reachable() {
  [[ -n "${DMSYNC_TEST_POSTGRES_URL:-}" ]] || (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null
}
if [[ "${CI:-}" == "true" ]] || pg_reachable; then
  DMSYNC_TEST_BACKEND=postgres cargo nextest run -p dmsync --test it --profile ci \
    -E 'not test(/^lifecycle::/) and not test(/^replicas::/) and not test(/^crash::/) and not test(/^cli_terminal::/)'
else
  echo "*** SKIPPED: the integration suite on PostgreSQL (nothing listens on 127.0.0.1:5432 and" >&2
  echo "*** DMSYNC_TEST_POSTGRES_URL is unset; see README). With CI=true this fails instead. ***" >&2
fi

# Every compatibility suite runs even if one fails, so one run shows every failure.
status=0
DMSYNC_BIN="$PWD/target/debug/dmsync" bash scripts/python-compat.sh || status=1
DMSYNC_BIN="$PWD/target/debug/dmsync" bash scripts/schemathesis.sh || status=1
DMSYNC_BIN="$PWD/target/debug/dmsync" bash scripts/js-compat.sh || status=1
DMSYNC_BIN="$PWD/target/debug/dmsync" bash scripts/rust-compat.sh || status=1
exit "$status"
