"""Fixtures for the compatibility suite: a real dmsync process and real Graph SDK clients.

Every test gets its own server (own port, own temporary SQLite database), so tests are
independent of each other and of their order. Nothing here skips: a missing binary or a
server that does not come up fails the test.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import httpx
import pytest

from graph_clients import beta_client, v1_client

TENANT = "11111111-1111-4111-8111-111111111111"
CLIENT_ID = "22222222-2222-4222-8222-222222222222"
CLIENT_SECRET = "dmsync-dev-secret"
USERNAME = "admin@contoso.onmicrosoft.com"
PASSWORD = "dmsync-dev-password"
ADMIN_TOKEN = "dmsync-dev-admin"
GRAPH_SCOPE = "https://graph.microsoft.com/.default"

STARTUP_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0
# Hard cap per test (pytest-timeout); the tests bound their own waits well below it.
TEST_TIMEOUT_S = 60

_LISTENING = re.compile(r"^dmsync listening on http://127\.0\.0\.1:(\d+)\s*$")
# With --proxy-listen the banner names the proxy too; it is written with the rest of the banner.
_PROXY_LISTENING = re.compile(r"^dmsync proxy listening on http://127\.0\.0\.1:(\d+) ", re.M)
_REQUESTS_TOTAL = re.compile(r"^dmsync_http_requests_total\{(.*)\} ([0-9.e+]+)$")
_LABEL = re.compile(r'(\w+)="([^"]*)"')


def pytest_configure(config: pytest.Config) -> None:
    # The generated SDK warns about its own deprecated classes on import; that is noise here.
    for module in ("msgraph_beta", "msgraph", "kiota_abstractions"):
        config.addinivalue_line("filterwarnings", f"ignore::DeprecationWarning:{module}(\\..*)?")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(TEST_TIMEOUT_S))


class DmsyncServer:
    """One running `dmsync serve` on 127.0.0.1 with a fresh SQLite database."""

    def __init__(self, binary: str, workdir: Path, extra_args: list[str]) -> None:
        self.workdir = workdir
        self.stdout_path = workdir / "stdout.log"
        self.stderr_path = workdir / "stderr.log"
        self.args = [
            os.path.abspath(binary),
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--db",
            f"sqlite://{workdir / 'dmsync.db'}",
            *extra_args,
        ]
        # The server reads DMSYNC_* settings from the environment; only the command line
        # may configure it here.
        env = {k: v for k, v in os.environ.items() if not k.startswith("DMSYNC_")}
        env.setdefault("RUST_BACKTRACE", "1")
        env.setdefault("NO_COLOR", "1")
        self._stdout = open(self.stdout_path, "wb")
        self._stderr = open(self.stderr_path, "wb")
        try:
            self.proc = subprocess.Popen(
                self.args,
                stdin=subprocess.DEVNULL,
                stdout=self._stdout,
                stderr=self._stderr,
                env=env,
                cwd=workdir,
            )
        except BaseException:
            self._stdout.close()
            self._stderr.close()
            raise
        self.port = self._wait_for_port()
        self.base = f"http://127.0.0.1:{self.port}"
        proxy = _PROXY_LISTENING.search(self.stdout_path.read_text(errors="replace"))
        self.proxy: Optional[str] = f"http://127.0.0.1:{proxy.group(1)}" if proxy else None

    def _wait_for_port(self) -> int:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            text = self.stdout_path.read_text(errors="replace")
            if "\n" in text:
                first = text.split("\n", 1)[0]
                m = _LISTENING.match(first)
                if not m:
                    self.stop()
                    raise RuntimeError(f"unexpected first stdout line from dmsync: {first!r}\n{self.logs()}")
                return int(m.group(1))
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.stop()
                raise RuntimeError(f"dmsync exited with {code} before listening\n{self.logs()}")
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"dmsync did not print its listen line within {STARTUP_TIMEOUT_S}s\n{self.logs()}")

    def logs(self) -> str:
        out = self.stdout_path.read_text(errors="replace") if self.stdout_path.exists() else ""
        err = self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""
        return f"--- dmsync {' '.join(self.args)}\n--- stdout\n{out}--- stderr (last 4000 chars)\n{err[-4000:]}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=STOP_TIMEOUT_S)
        for f in (self._stdout, self._stderr):
            if not f.closed:
                f.close()

    # --- tokens -------------------------------------------------------------------------

    def _token(self, form: dict[str, str]) -> str:
        r = httpx.post(f"{self.base}/{TENANT}/oauth2/v2.0/token", data=form, timeout=10.0)
        assert r.status_code == 200, f"token endpoint: {r.status_code} {r.text}"
        token = r.json()["access_token"]
        assert isinstance(token, str) and token
        return token

    def delegated_token(self) -> str:
        return self._token(
            {
                "grant_type": "password",
                "client_id": CLIENT_ID,
                "username": USERNAME,
                "password": PASSWORD,
                "scope": GRAPH_SCOPE,
            }
        )

    def application_token(self) -> str:
        return self._token(
            {
                "grant_type": "client_credentials",
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "scope": GRAPH_SCOPE,
            }
        )

    # --- admin API ----------------------------------------------------------------------

    def admin_post(self, path: str, body: Any, timeout: float = 10.0) -> httpx.Response:
        return httpx.post(
            f"{self.base}{path}",
            json=body,
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            timeout=timeout,
        )

    def advance_clock(self, seconds: int) -> None:
        r = self.admin_post("/_dmsync/clock/advance", {"seconds": seconds})
        assert 200 <= r.status_code < 300, f"clock advance: {r.status_code} {r.text}"

    def create_tenant(self, tenant_id: str, domain: str) -> None:
        r = self.admin_post("/_dmsync/tenants", {"tenantId": tenant_id, "domain": domain})
        assert r.status_code == 201, f"create tenant: {r.status_code} {r.text}"

    def register_devices(self, rows: list[dict[str, str]], tenant: str = TENANT) -> dict[str, int]:
        """OEM registrations (all or nothing): rows of serialNumber, hardwareHash (base64),
        manufacturer, model, groupTag. Devices appear at the tenant's next sync."""
        r = self.admin_post(f"/_dmsync/tenants/{tenant}/autopilot/registrations", rows, timeout=30.0)
        assert r.status_code == 200, f"registrations: {r.status_code} {r.text[:2000]}"
        return r.json()

    def request_counts(self, route: str, method: str) -> dict[int, int]:
        """What /metrics has counted for this route and method, by status: every request that
        reached the server, which is how the retry tests count a client's attempts."""
        r = httpx.get(f"{self.base}/metrics", timeout=10.0)
        assert r.status_code == 200, r.text
        counts: dict[int, int] = {}
        for line in r.text.splitlines():
            m = _REQUESTS_TOTAL.match(line)
            if not m:
                continue
            labels = dict(_LABEL.findall(m.group(1)))
            if labels.get("route") == route and labels.get("method") == method:
                status = int(labels["status"])
                counts[status] = counts.get(status, 0) + int(float(m.group(2)))
        return counts

    def client(self, token: Optional[str] = None):
        return beta_client(self.port, token if token is not None else self.delegated_token())

    def v1_client(self, token: Optional[str] = None):
        return v1_client(self.port, token if token is not None else self.delegated_token())


@pytest.fixture(scope="session")
def dmsync_bin() -> str:
    path = os.environ.get("DMSYNC_BIN")
    if not path:
        pytest.fail("DMSYNC_BIN is not set; run the suite through scripts/python-compat.sh")
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail(f"DMSYNC_BIN={path} is not an executable file")
    # Absolute: each server runs in its own working directory.
    return os.path.abspath(path)


@pytest.fixture
def start_server(dmsync_bin: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Callable[..., DmsyncServer]]:
    """Factory: start_server("--sync-duration", "2s", ...) starts a fresh dmsync."""
    servers: list[DmsyncServer] = []

    def start(*extra_args: str) -> DmsyncServer:
        workdir = tmp_path / f"server{len(servers)}"
        workdir.mkdir()
        server = DmsyncServer(dmsync_bin, workdir, list(extra_args))
        servers.append(server)
        return server

    yield start

    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    for server in servers:
        server.stop()
        if failed:
            print(server.logs())


@pytest.fixture
def server(start_server: Callable[..., DmsyncServer]) -> DmsyncServer:
    """A server with the defaults the tests rely on: a 2 s sync, the 600 s cooldown."""
    return start_server("--sync-duration", "2s")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)
