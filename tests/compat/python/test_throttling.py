"""Throttling (issue 19 §1) as the Python SDK sees it: with small limits and a short window, a
request over the limit gets Graph's 429 with `Retry-After` in whole seconds, kiota's
RetryHandler waits that long and retries, and the retry succeeds."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_http.middleware.options import RetryHandlerOption
from msgraph_beta.generated.models.o_data_errors.o_data_error import ODataError

from conftest import ADMIN_TOKEN


def test_the_retry_handler_waits_retry_after_and_succeeds(server):
    async def scenario():
        client = server.client()
        settings = client.device_management.windows_autopilot_settings
        # The client's first request signs in, which takes longer than the window below: it is
        # made before throttling is switched on.
        assert await settings.get() is not None
        r = httpx.put(f"{server.base}/_dmsync/throttling", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                      json={"limits": {"enrollment": {"appRequests": 2, "windowSeconds": 2}}}, timeout=10)
        assert r.status_code == 200, r.text
        assert await settings.get() is not None
        assert await settings.get() is not None
        # Without retries, the third read in the window is Graph's 429 with Retry-After.
        with pytest.raises(ODataError) as info:
            await settings.get(RequestConfiguration(options=[RetryHandlerOption(max_retries=0)]))
        err = info.value
        assert err.response_status_code == 429
        assert err.error.code == "TooManyRequests"
        headers = {k.lower(): v for k, v in (err.response_headers or {}).items()}
        assert headers.get("retry-after") in {"1", "2"}, headers
        # With the default options the handler waits Retry-After and the retry passes.
        started = time.monotonic()
        assert await settings.get() is not None
        elapsed = time.monotonic() - started
        assert elapsed >= 0.9, f"a read over the limit passed after {elapsed:.2f}s: nothing was waited for"

    asyncio.run(scenario())
