#!/usr/bin/env bash
# Compatibility suite: drives a real dmsync binary with the real graph-rs-sdk (pinned in
# tests/compat/rust/Cargo.toml, locked by its Cargo.lock). The crate is a workspace of its own,
# built into target/compat-rust, so graph-rs-sdk never enters the product's build; the first
# build takes about 10 minutes on two cores, later ones are incremental. Exits non-zero on any
# failure; nothing is skipped.
#
#   DMSYNC_BIN  the dmsync binary to test (default: target/debug/dmsync)
set -euo pipefail
cd "$(dirname "$0")/.."

suite=rust-compat
source scripts/compat-bin.sh

export DMSYNC_BIN="$bin"
export CARGO_TARGET_DIR="$PWD/target/compat-rust"
cd tests/compat/rust
# --tests: the unit and integration tests, without the empty doc-test run, so that the run's
# last line is the suite's own result.
cargo test --locked --tests -- --test-threads=2
