#!/usr/bin/env bash
# Compatibility suite: drives a real dmsync binary with the real Microsoft Graph JavaScript
# client, @azure/identity and msal-node (pinned exactly in tests/compat/js/package.json).
# Installs them with `npm ci` from the committed lockfile when that changed since the last
# install, then runs Node's built-in test runner. Exits non-zero on any failure;
# nothing is skipped.
#
#   DMSYNC_BIN  the dmsync binary to test (default: target/debug/dmsync)
set -euo pipefail
cd "$(dirname "$0")/.."
dir="tests/compat/js"

suite=js-compat
source scripts/compat-bin.sh

for tool in node npm; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "js-compat: $tool not found; the suite needs Node 20 or newer with npm" >&2
    exit 1
  fi
done
major="$(node -p 'process.versions.node.split(".")[0]')"
if (( major < 20 )); then
  echo "js-compat: Node $(node --version) is too old; the suite needs Node 20 or newer" >&2
  exit 1
fi

# `npm ci` installs exactly the committed lockfile, from scratch. It runs when node_modules
# was installed from another lockfile or Node version (hash stamp inside node_modules).
stamp="$dir/node_modules/.dmsync-lock.sha256"
want="$( { cat "$dir/package.json" "$dir/package-lock.json"; node --version; } | sha256sum | cut -d' ' -f1)"
if [[ "$want" != "$(cat "$stamp" 2>/dev/null || true)" ]]; then
  echo "js-compat: npm ci in $dir" >&2
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$want" >"$stamp"
fi

# The suite's servers speak HTTPS, and Node reads NODE_EXTRA_CA_CERTS only when it starts: so
# one CA is made here, before the runner starts the test files' processes, and each --tls
# server starts on a copy of the database that holds it (tests/compat/js/lib/dmsync.js).
ca_dir="$(mktemp -d)"
trap 'rm -rf "$ca_dir"' EXIT
"$bin" ca --db "sqlite://$ca_dir/ca.db" >"$ca_dir/ca.pem"
export NODE_EXTRA_CA_CERTS="$ca_dir/ca.pem" JS_COMPAT_CA_DB="$ca_dir/ca.db"

export DMSYNC_BIN="$bin"
cd "$dir"
# One test file at a time: each test starts its own dmsync, and the machine is small.
node --test --test-concurrency=1 --test-reporter=spec test/*.test.js
