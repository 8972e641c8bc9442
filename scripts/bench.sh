#!/usr/bin/env bash
# Runs dmsync's benchmarks against the release server and writes one Markdown report.
#
#   scripts/bench.sh                 every benchmark
#   scripts/bench.sh autopilot       only the named ones (http, pages, tls, autopilot, exchange, postgres,
#                                    assignment, assignment-postgres, reset, reset-postgres)
#   BENCH_ARGS_AUTOPILOT="--devices 100000" scripts/bench.sh autopilot
#
# `pages` is the device pages at 16 connections against a bare axum handler and WireMock serving
# the same bytes (dmsync-bench-http --pages-only); `http` runs it after the rest of the HTTP
# benchmark. WireMock comes from npm (bench/wiremock, pinned by its lockfile) and runs on Java 17.
#
# `tls` is an authenticated GET of windowsAutopilotSettings over plain HTTP, HTTPS (`serve --tls`)
# and HTTPS through the proxy (`--proxy-listen`), loaded by the bench crate's own HTTP/1.1
# generator (wrk cannot CONNECT), then a new connection per request for TLS handshakes per second
# (dmsync-bench-tls); wrk loads plain HTTP and HTTPS beside.
#
# `postgres` is the Autopilot benchmark on PostgreSQL (then GET throughput with one replica and
# two): it recreates the database `dmsync_bench` on the server named by BENCH_PG (default
# postgres://postgres@127.0.0.1:5432, where the machines here run PostgreSQL with trust auth).
#
# `assignment` is the deployment profile assignment engine (dmsync-bench-assignment, the store in
# process: a million devices, 100,000 of them in an assigned group, both passes timed) on SQLite;
# `assignment-postgres` the same on the database `dmsync_bench_assignment` of BENCH_PG.
#
# `reset` is `POST /_dmsync/reset` (dmsync-bench-reset, the server in process: a tenant of 10,000
# synced devices reset beside a small tenant, alone, once empty, and with `{}`) on SQLite;
# `reset-postgres` the same on the database `dmsync_bench_reset` of BENCH_PG.
#
# Each benchmark prints its figures beside their targets; the report (target/bench/report.md)
# is their outputs in order, and each one's own output is kept in target/bench/NAME.md.
# These are programs that measure, not tests: they fail only when something does not work.
# See docs/PERFORMANCE.md.
set -euo pipefail
cd "$(dirname "$0")/.."

all=(http tls autopilot exchange postgres assignment assignment-postgres reset reset-postgres)
known=(http pages tls autopilot exchange postgres assignment assignment-postgres reset reset-postgres)
selected=("$@")
[[ ${#selected[@]} -gt 0 ]] || selected=("${all[@]}")

# The HTTP benchmarks load the server with wrk (Debian's package).
wants_pages=false
[[ " ${selected[*]} " == *" http "* || " ${selected[*]} " == *" pages "* ]] && wants_pages=true
wants_wrk=$wants_pages
[[ " ${selected[*]} " == *" tls "* ]] && wants_wrk=true
if $wants_wrk && ! command -v wrk >/dev/null 2>&1; then
  echo "bench: installing wrk" >&2
  if [[ $(id -u) -eq 0 ]]; then apt-get update -qq && apt-get install -y -qq wrk; else sudo apt-get install -y -qq wrk; fi
fi
# The page benchmark's peer: WireMock's standalone jar, as the npm package `wiremock` carries it.
if $wants_pages; then
  command -v java >/dev/null 2>&1 || { echo "bench: the page benchmark needs Java 17 for WireMock" >&2; exit 2; }
  (cd bench/wiremock && npm ci --no-audit --no-fund --silent)
fi

cargo build --release -p dmsync -p dmsync-bench
out=target/bench
mkdir -p "$out"
report="$out/report.md"
{
  echo "# dmsync benchmark report"
  echo
  echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo
} >"$report"

for name in "${selected[@]}"; do
  case "$name" in
    autopilot) bin=target/release/dmsync-bench; extra=${BENCH_ARGS_AUTOPILOT:-} ;;
    exchange) bin=target/release/dmsync-bench-exchange; extra=${BENCH_ARGS_EXCHANGE:-} ;;
    http) bin=target/release/dmsync-bench-http; extra=${BENCH_ARGS_HTTP:-} ;;
    pages) bin=target/release/dmsync-bench-http; extra="--pages-only ${BENCH_ARGS_PAGES:-}" ;;
    tls) bin=target/release/dmsync-bench-tls; extra=${BENCH_ARGS_TLS:-} ;;
    postgres)
      pg=${BENCH_PG:-postgres://postgres@127.0.0.1:5432}
      psql -q "$pg/postgres" -c "DROP DATABASE IF EXISTS dmsync_bench" -c "CREATE DATABASE dmsync_bench"
      bin=target/release/dmsync-bench; extra="--db $pg/dmsync_bench ${BENCH_ARGS_POSTGRES:-}" ;;
    assignment) bin=target/release/dmsync-bench-assignment; extra=${BENCH_ARGS_ASSIGNMENT:-} ;;
    assignment-postgres)
      pg=${BENCH_PG:-postgres://postgres@127.0.0.1:5432}
      psql -q "$pg/postgres" -c "DROP DATABASE IF EXISTS dmsync_bench_assignment" -c "CREATE DATABASE dmsync_bench_assignment"
      bin=target/release/dmsync-bench-assignment; extra="--db $pg/dmsync_bench_assignment ${BENCH_ARGS_ASSIGNMENT:-}" ;;
    reset) bin=target/release/dmsync-bench-reset; extra=${BENCH_ARGS_RESET:-} ;;
    reset-postgres)
      pg=${BENCH_PG:-postgres://postgres@127.0.0.1:5432}
      psql -q "$pg/postgres" -c "DROP DATABASE IF EXISTS dmsync_bench_reset" -c "CREATE DATABASE dmsync_bench_reset"
      bin=target/release/dmsync-bench-reset; extra="--db $pg/dmsync_bench_reset ${BENCH_ARGS_RESET:-}" ;;
    *) echo "bench: unknown benchmark '$name' (known: ${known[*]})" >&2; exit 2 ;;
  esac
  echo "== $name" >&2
  # shellcheck disable=SC2086 # the extra arguments are meant to be split
  "$bin" --server target/release/dmsync --server-log "$out/$name-server.log" $extra | tee "$out/$name.md"
  cat "$out/$name.md" >>"$report"
  echo >>"$report"
  if [[ $name == http ]]; then
    # shellcheck disable=SC2086
    "$bin" --pages-only --server target/release/dmsync --server-log "$out/pages-server.log" ${BENCH_ARGS_PAGES:-} | tee "$out/pages.md"
    cat "$out/pages.md" >>"$report"
    echo >>"$report"
  fi
done
echo "report: $report" >&2
