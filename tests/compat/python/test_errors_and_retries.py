"""Errors and retries as users of msgraph-sdk (v1.0) and msgraph-beta-sdk (beta) see them.

Errors: 401, 403, 404 and 409 on both versions, 429 on beta (the only version with
windowsAutopilotSettings), each an `ODataError` with the status, Graph's code, a message and
the inner error's request id, equal to the `request-id` header.

Retries: kiota's RetryHandler (the SDKs' default middleware) retries 429, 503 and 504
`max_retries` times (default 3), so 1 + max_retries attempts; it waits `Retry-After` when the
response has one, but does not retry at all when that is 180 s or more; without one it backs
off 0.25, 0.5 and 1 s (0.5 * 2**(n-2) before retry n) plus up to 1 s of jitter plus the option's
`delay` (default 3 s). The
attempts are counted on the server, from dmsync's /metrics; the delays are shortened with the
per-request `RetryHandlerOption(delay=0)`, which the handler allows.
"""

from __future__ import annotations

import asyncio
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

import httpx
import pytest
from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_http.middleware.options import RetryHandlerOption
from msgraph.generated.device_management.exchange_connectors.item.sync.sync_post_request_body import (
    SyncPostRequestBody as V1SyncBody,
)
from msgraph.generated.models.device_management_exchange_connector import (
    DeviceManagementExchangeConnector as V1Connector,
)
from msgraph.generated.models.device_management_exchange_connector_sync_type import (
    DeviceManagementExchangeConnectorSyncType as V1SyncType,
)
from msgraph.generated.models.device_management_exchange_connector_type import (
    DeviceManagementExchangeConnectorType as V1Type,
)
from msgraph.generated.models.o_data_errors.o_data_error import ODataError as V1ODataError
from msgraph_beta.generated.device_management.exchange_connectors.item.sync.sync_post_request_body import (
    SyncPostRequestBody as BetaSyncBody,
)
from msgraph_beta.generated.models.device_management_exchange_connector import (
    DeviceManagementExchangeConnector as BetaConnector,
)
from msgraph_beta.generated.models.device_management_exchange_connector_sync_type import (
    DeviceManagementExchangeConnectorSyncType as BetaSyncType,
)
from msgraph_beta.generated.models.device_management_exchange_connector_type import (
    DeviceManagementExchangeConnectorType as BetaType,
)
from msgraph_beta.generated.models.o_data_errors.o_data_error import ODataError as BetaODataError
from msgraph_beta.generated.models.windows_autopilot_sync_status import WindowsAutopilotSyncStatus

from conftest import ADMIN_TOKEN, TENANT, DmsyncServer

MISSING = "00000000-0000-4000-8000-000000000000"
SYNC_ROUTE = "/beta/deviceManagement/windowsAutopilotSettings/sync"

VERSIONS = {
    "v1.0": dict(client="v1_client", connector=V1Connector, kind=V1Type, body=V1SyncBody, sync_type=V1SyncType, error=V1ODataError),
    "beta": dict(client="client", connector=BetaConnector, kind=BetaType, body=BetaSyncBody, sync_type=BetaSyncType, error=BetaODataError),
}
BOTH = pytest.mark.parametrize("version", list(VERSIONS))


def no_retry() -> RequestConfiguration:
    return RequestConfiguration(options=[RetryHandlerOption(max_retries=0)])


async def expect_odata_error(coro, error_type: type, status: int, code: str):
    with pytest.raises(error_type) as info:
        await coro
    err = info.value
    assert err.response_status_code == status, f"{err!r}"
    assert err.error is not None and err.error.code == code, f"{err.error!r}"
    assert err.error.message, f"empty message: {err.error!r}"
    inner = err.error.inner_error
    assert inner is not None and inner.request_id, f"{err.error!r}"
    headers = {k.lower(): v for k, v in (err.response_headers or {}).items()}
    assert headers.get("request-id") == inner.request_id, (headers, inner.request_id)
    return err


def mint_token(server: DmsyncServer, permissions: list[str]) -> str:
    r = httpx.post(f"{server.base}/_dmsync/tokens", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=10,
                   json={"tenantId": TENANT, "kind": "delegated", "accountType": "work", "permissions": permissions})
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


def set_source(server: DmsyncServer, connector_id: str, source: dict) -> None:
    r = httpx.put(f"{server.base}/_dmsync/tenants/{TENANT}/exchangeConnectors/{connector_id}/source", json=source,
                  headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=10)
    assert r.status_code == 204, r.text


class SlowExchange:
    """An Exchange inventory endpoint on loopback that answers only once released."""

    def __init__(self) -> None:
        self.released = threading.Event()
        released = self.released

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                released.wait(timeout=20)
                body = b"[]"
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.host = f"127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.released.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def slow_exchange() -> Iterator[SlowExchange]:
    source = SlowExchange()
    yield source
    source.close()


# --- errors ------------------------------------------------------------------------------


@BOTH
def test_401_for_a_bad_token(server: DmsyncServer, version):
    v = VERSIONS[version]

    async def scenario():
        client = getattr(server, v["client"])("not-a-valid-token")
        err = await expect_odata_error(client.device_management.exchange_connectors.get(), v["error"], 401, "InvalidAuthenticationToken")
        challenge = {k.lower(): val for k, val in err.response_headers.items()}["www-authenticate"]
        # No claims= in the challenge: kiota would resend the request once with claims.
        assert challenge.startswith("Bearer ") and "claims=" not in challenge, challenge

    asyncio.run(scenario())


@BOTH
def test_403_for_an_app_on_the_sync_action_and_a_missing_permission(server: DmsyncServer, version):
    v = VERSIONS[version]

    async def scenario():
        user = getattr(server, v["client"])()
        connector = await user.device_management.exchange_connectors.post(v["connector"](exchange_connector_type=v["kind"].OnPremises))
        app = getattr(server, v["client"])(server.application_token())
        item = app.device_management.exchange_connectors.by_device_management_exchange_connector_id(connector.id)
        # The original permission profile: app tokens may not call the sync actions, but may read.
        await expect_odata_error(item.sync.post(v["body"](sync_type=v["sync_type"].FullSync)), v["error"], 403, "Forbidden")
        assert (await item.get()).id == connector.id
        reader = getattr(server, v["client"])(mint_token(server, ["DeviceManagementServiceConfig.Read.All"]))
        await expect_odata_error(
            reader.device_management.exchange_connectors.post(v["connector"](exchange_connector_type=v["kind"].Hosted)),
            v["error"], 403, "Forbidden")

    asyncio.run(scenario())


@BOTH
def test_404_for_unknown_ids(server: DmsyncServer, version):
    v = VERSIONS[version]

    async def scenario():
        dm = getattr(server, v["client"])().device_management
        for request in (
            dm.exchange_connectors.by_device_management_exchange_connector_id(MISSING).get(),
            dm.imported_windows_autopilot_device_identities.by_imported_windows_autopilot_device_identity_id(MISSING).get(),
            dm.windows_autopilot_device_identities.by_windows_autopilot_device_identity_id(MISSING).get(),
        ):
            await expect_odata_error(request, v["error"], 404, "ResourceNotFound")

    asyncio.run(scenario())


@BOTH
def test_409_while_an_exchange_connector_sync_runs(start_server, slow_exchange: SlowExchange, version):
    v = VERSIONS[version]
    server = start_server("--exchange-source-allow-host", slow_exchange.host)

    async def scenario():
        client = getattr(server, v["client"])()
        connector = await client.device_management.exchange_connectors.post(v["connector"](exchange_connector_type=v["kind"].OnPremises))
        set_source(server, connector.id, {"kind": "http", "url": f"http://{slow_exchange.host}/devices"})
        item = client.device_management.exchange_connectors.by_device_management_exchange_connector_id(connector.id)
        assert await item.sync.post(v["body"](sync_type=v["sync_type"].FullSync)) is None
        # 409 is not retried: the default options give it at once.
        err = await expect_odata_error(item.sync.post(v["body"](sync_type=v["sync_type"].DeltaSync)), v["error"], 409, "Conflict")
        assert "already in progress" in err.error.message, err.error.message
        slow_exchange.released.set()

    asyncio.run(scenario())


# --- retries on the cooldown's 429 (beta: the only version with the Autopilot sync) -----------


async def sync_and_wait(client) -> None:
    settings = client.device_management.windows_autopilot_settings
    assert await settings.sync.post(no_retry()) is None
    deadline = time.monotonic() + 15
    while (await settings.get()).sync_status is not WindowsAutopilotSyncStatus.Completed:
        assert time.monotonic() < deadline, "sync not completed"
        await asyncio.sleep(0.1)


def test_cooldown_429_without_retry_after_is_tried_1_plus_max_retries_times(start_server):
    server = start_server("--sync-duration", "0s")

    async def scenario():
        client = server.client()
        sync = client.device_management.windows_autopilot_settings.sync
        await sync_and_wait(client)
        assert server.request_counts(SYNC_ROUTE, "POST") == {204: 1}

        await expect_odata_error(sync.post(no_retry()), BetaODataError, 429, "TooManyRequests")
        assert server.request_counts(SYNC_ROUTE, "POST") == {204: 1, 429: 1}

        # The default max_retries with no base delay: four attempts, each refused.
        default_retries = RetryHandlerOption().max_retry
        assert default_retries == 3
        started = time.monotonic()
        err = await expect_odata_error(
            sync.post(RequestConfiguration(options=[RetryHandlerOption(delay=0, max_retries=default_retries)])),
            BetaODataError, 429, "TooManyRequests")
        elapsed = time.monotonic() - started
        assert server.request_counts(SYNC_ROUTE, "POST") == {204: 1, 429: 1 + 1 + default_retries}
        assert "retry-after" not in {k.lower() for k in err.response_headers}, "no Retry-After, as real Intune"
        # Backoffs of 0.25, 0.5 and 1 s plus jitter: at least 1.75 s (no upper bound: that would
        # time the machine).
        assert elapsed >= 1.7, elapsed

    asyncio.run(scenario())


def test_cooldown_429_with_retry_after_beyond_180s_is_not_retried(start_server):
    server = start_server("--sync-duration", "0s", "--sync-retry-after")

    async def scenario():
        client = server.client()
        await sync_and_wait(client)
        # The default options: Retry-After is about 600 s, so the handler gives the 429 back at once.
        err = await expect_odata_error(client.device_management.windows_autopilot_settings.sync.post(),
                                       BetaODataError, 429, "TooManyRequests")
        retry_after = {k.lower(): v for k, v in err.response_headers.items()}["retry-after"]
        assert retry_after.isdigit() and 590 < int(retry_after) <= 600, retry_after
        assert server.request_counts(SYNC_ROUTE, "POST") == {204: 1, 429: 1}

    asyncio.run(scenario())


def test_cooldown_429_with_a_short_retry_after_is_waited_for_once(start_server):
    # 6 s: the first sync must complete and the second post still land inside the cooldown.
    server = start_server("--sync-duration", "0s", "--sync-retry-after", "--sync-cooldown", "6s")

    async def scenario():
        client = server.client()
        await sync_and_wait(client)
        started = time.monotonic()
        # The default options: one 429, a wait of Retry-After (rounded up by the server, so the
        # cooldown is over by then), and the retried sync is accepted.
        assert await client.device_management.windows_autopilot_settings.sync.post() is None
        elapsed = time.monotonic() - started
        assert server.request_counts(SYNC_ROUTE, "POST") == {204: 2, 429: 1}
        assert elapsed >= 0.9, f"accepted after {elapsed:.2f}s: no Retry-After was waited for"

    asyncio.run(scenario())
