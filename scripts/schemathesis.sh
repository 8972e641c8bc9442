#!/usr/bin/env bash
# Fuzzes the Graph API with schemathesis, driven by the OpenAPI documents dmsync serves itself
# (/_dmsync/openapi.json?version=v1.0 and beta). Starts the real binary on port 0 with SQLite in
# a temporary directory, takes a delegated token from the built-in identity provider (password
# grant), registers and syncs a few devices so that the operations on one device find some, runs a bounded number of examples per operation with a fixed seed, and fails on any
# 5xx, any response that does not match the document, or a server that did not survive.
# Shares the compatibility suite's virtual environment (.venv/compat), where schemathesis is
# pinned with the rest (tests/compat/python/requirements.txt and constraints.txt).
#
#   DMSYNC_BIN                  the dmsync binary to test (default: target/debug/dmsync)
#   SCHEMATHESIS_MAX_EXAMPLES   examples per operation and phase (default: 15)
#   SCHEMATHESIS_SEED           the seed (default: 14)
set -euo pipefail
cd "$(dirname "$0")/.."

suite=schemathesis
source scripts/compat-bin.sh
source scripts/python-venv.sh

max_examples="${SCHEMATHESIS_MAX_EXAMPLES:-15}"
seed="${SCHEMATHESIS_SEED:-14}"
tenant=11111111-1111-4111-8111-111111111111

work="$(mktemp -d)"
server_pid=""
cleanup() {
  if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# The server reads DMSYNC_* settings from the environment; only the command line configures it.
env $(env | sed -n 's/^\(DMSYNC_[A-Za-z0-9_]*\)=.*/-u \1/p') RUST_BACKTRACE=1 \
  "$bin" serve --listen 127.0.0.1:0 --db "sqlite://$work/dmsync.db" --sync-duration 1s >"$work/stdout.log" 2>"$work/stderr.log" &
server_pid=$!

port=""
for _ in $(seq 1 400); do
  if [[ "$(head -n1 "$work/stdout.log" 2>/dev/null)" =~ ^dmsync\ listening\ on\ http://127\.0\.0\.1:([0-9]+)$ ]]; then
    port="${BASH_REMATCH[1]}"
    break
  fi
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.05
done
if [[ -z "$port" ]]; then
  echo "schemathesis: dmsync did not start" >&2
  cat "$work/stdout.log" "$work/stderr.log" >&2
  exit 1
fi
base="http://127.0.0.1:$port"

token="$(
  "$venv/bin/python" - "$base" "$tenant" <<'EOF'
import base64, sys, time, httpx
base, tenant = sys.argv[1:3]
r = httpx.post(f"{base}/{tenant}/oauth2/v2.0/token", data={
    "grant_type": "password",
    "client_id": "22222222-2222-4222-8222-222222222222",
    "username": "admin@contoso.onmicrosoft.com",
    "password": "dmsync-dev-password",
    "scope": "https://graph.microsoft.com/.default",
})
r.raise_for_status()
token = r.json()["access_token"]

# Devices for the operations on one device to find: registered as an OEM would, then synced.
admin = {"Authorization": "Bearer dmsync-dev-admin"}
devices = [{"serialNumber": f"FUZZ-{i}", "hardwareHash": base64.b64encode(f"hash {i}".encode()).decode(),
            "manufacturer": "Contoso", "model": "Laptop 7"} for i in range(3)]
r = httpx.post(f"{base}/_dmsync/tenants/{tenant}/autopilot/registrations", json=devices, headers=admin)
if r.is_error:
    sys.exit(f"registering devices: {r.status_code} {r.text}")
graph = {"Authorization": f"Bearer {token}"}
settings = f"{base}/beta/deviceManagement/windowsAutopilotSettings"
httpx.post(f"{settings}/sync", headers=graph).raise_for_status()
deadline = time.monotonic() + 30
while httpx.get(settings, headers=graph).json()["syncStatus"] != "completed":
    if time.monotonic() > deadline:
        sys.exit("the seeding sync did not complete")
    time.sleep(0.2)
print(token)
EOF
)"

status=0
for version in v1.0 beta; do
  echo "schemathesis: Graph $version, $max_examples examples per operation, seed $seed" >&2
  # The token lives for an hour, far longer than a run. No --max-time: a bounded number of
  # examples keeps the run short, and a time budget would make it depend on the machine.
  "$venv/bin/schemathesis" run "$base/_dmsync/openapi.json?version=$version" \
    --url "$base" \
    --header "Authorization: Bearer $token" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --max-examples "$max_examples" \
    --seed "$seed" \
    --workers 1 \
    --no-color \
    --report junit --report-dir "${SCHEMATHESIS_REPORT_DIR:-target/schemathesis}/$version" \
    || status=1
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "schemathesis: dmsync is no longer running after the $version run" >&2
    tail -c 4000 "$work/stderr.log" >&2
    exit 1
  fi
done

# A server that survived must also stop cleanly.
kill -TERM "$server_pid"
if ! wait "$server_pid"; then
  echo "schemathesis: dmsync did not exit cleanly on SIGTERM" >&2
  tail -c 4000 "$work/stderr.log" >&2
  status=1
fi
server_pid=""
if grep -q "panicked" "$work/stderr.log"; then
  echo "schemathesis: dmsync panicked" >&2
  grep -A5 "panicked" "$work/stderr.log" >&2
  status=1
fi
exit "$status"
