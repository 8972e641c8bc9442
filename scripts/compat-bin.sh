# Sourced by the compatibility suites' scripts, from the repository root: sets `bin` to the
# absolute path of the dmsync binary to test ($DMSYNC_BIN, default target/debug/dmsync), or
# stops with a message prefixed by $suite.
bin="${DMSYNC_BIN:-target/debug/dmsync}"
case "$bin" in
  /*) ;;
  *) bin="$PWD/$bin" ;;
esac
if [[ ! -x "$bin" ]]; then
  echo "$suite: dmsync binary not found or not executable: $bin" >&2
  echo "$suite: build it with 'cargo build --workspace --bins' or set DMSYNC_BIN" >&2
  exit 1
fi
