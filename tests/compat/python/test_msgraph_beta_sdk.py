"""The real Microsoft Graph Beta Python SDK (msgraph-beta-sdk) against a real dmsync.

Each test starts its own dmsync (see conftest.py), gets a token from dmsync's token
endpoint and calls the Autopilot settings API only through the generated SDK:
`device_management.windows_autopilot_settings.get()` and `.sync.post()`, and the role scope
tags through `device_management.role_scope_tags`. What is checked is
what an SDK user sees: parsed models, enum members, `None` on 204, and `ODataError` with the
status code, the Graph error code and the inner error's request id.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from importlib import metadata
from pathlib import Path
from typing import Optional

import pytest
from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_http.middleware.options import RetryHandlerOption
from msgraph_beta.generated.models.o_data_errors.o_data_error import ODataError
from msgraph_beta.generated.models.role_scope_tag import RoleScopeTag
from msgraph_beta.generated.models.windows_autopilot_settings import WindowsAutopilotSettings
from msgraph_beta.generated.models.windows_autopilot_sync_status import WindowsAutopilotSyncStatus

from conftest import DmsyncServer

UTC = dt.timezone.utc
YEAR_ONE = dt.datetime(1, 1, 1, tzinfo=UTC)
COMPLETION_TIMEOUT_S = 15.0


def no_retry() -> RequestConfiguration:
    """Turns the SDK's retry handler off for one request (it retries 429/503/504)."""
    return RequestConfiguration(options=[RetryHandlerOption(max_retries=0)])


def settings_api(client):
    return client.device_management.windows_autopilot_settings


async def get_settings(client) -> WindowsAutopilotSettings:
    settings = await settings_api(client).get()
    assert isinstance(settings, WindowsAutopilotSettings)
    return settings


async def wait_until_completed(client, timeout: float = COMPLETION_TIMEOUT_S) -> WindowsAutopilotSettings:
    deadline = time.monotonic() + timeout
    while True:
        settings = await get_settings(client)
        if settings.sync_status == WindowsAutopilotSyncStatus.Completed:
            return settings
        assert settings.sync_status == WindowsAutopilotSyncStatus.InProgress, settings
        assert time.monotonic() < deadline, f"sync not completed within {timeout}s: {settings}"
        await asyncio.sleep(0.2)


async def expect_odata_error(coro, status: int, code: str) -> ODataError:
    with pytest.raises(ODataError) as info:
        await coro
    err = info.value
    assert err.response_status_code == status, f"{err!r}"
    assert err.error is not None, f"ODataError without a main error: {err!r}"
    assert err.error.code == code, f"{err.error!r}"
    assert err.error.message, f"empty error message: {err.error!r}"
    inner = err.error.inner_error
    assert inner is not None, f"no innerError: {err.error!r}"
    assert inner.request_id, f"empty innerError.request-id: {inner!r}"
    headers = {k.lower(): v for k, v in (err.response_headers or {}).items()}
    if "request-id" in headers:
        assert inner.request_id == headers["request-id"], (inner.request_id, headers)
    return err


def header(err: ODataError, name: str) -> Optional[str]:
    for k, v in (err.response_headers or {}).items():
        if k.lower() == name.lower():
            return v if isinstance(v, str) else ",".join(v)
    return None


def assert_recent(value: Optional[dt.datetime], what: str, slack_s: float = 60.0) -> None:
    assert isinstance(value, dt.datetime), f"{what}: {value!r}"
    assert value.tzinfo is not None, f"{what} is naive: {value!r}"
    now = dt.datetime.now(UTC)
    assert abs((now - value).total_seconds()) <= slack_s, f"{what}={value.isoformat()} not near now={now.isoformat()}"


def test_installed_sdk_versions_match_the_pins():
    pins = {}
    for line in (Path(__file__).parent / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[name.strip()] = version.strip()
    assert pins["msgraph-beta-sdk"] == "1.66.0"
    for name, version in pins.items():
        assert metadata.version(name) == version, name


def test_get_before_any_sync(server: DmsyncServer):
    async def scenario():
        settings = await get_settings(server.client())
        assert settings.id
        assert settings.sync_status == WindowsAutopilotSyncStatus.Unknown
        assert settings.last_sync_date_time == YEAR_ONE
        assert settings.last_sync_date_time.year == 1
        assert settings.last_manual_sync_trigger_date_time == YEAR_ONE

    asyncio.run(scenario())


def test_patch_is_acknowledged_and_changes_nothing_the_service_owns(server: DmsyncServer):
    async def scenario():
        client = server.client()
        before = await get_settings(client)
        # All three properties record what syncs did; the PATCH returns the entity unchanged.
        patched = await settings_api(client).patch(WindowsAutopilotSettings(sync_status=WindowsAutopilotSyncStatus.Completed))
        assert isinstance(patched, WindowsAutopilotSettings), patched
        assert patched.id == before.id
        assert patched.sync_status is WindowsAutopilotSyncStatus.Unknown
        after = await get_settings(client)
        assert (after.id, after.sync_status, after.last_sync_date_time, after.last_manual_sync_trigger_date_time) == (
            before.id, before.sync_status, before.last_sync_date_time, before.last_manual_sync_trigger_date_time)

    asyncio.run(scenario())


def test_sync_returns_none_then_get_shows_in_progress(server: DmsyncServer):
    async def scenario():
        client = server.client()
        before = dt.datetime.now(UTC)
        assert await settings_api(client).sync.post() is None
        settings = await get_settings(client)
        assert settings.sync_status is WindowsAutopilotSyncStatus.InProgress
        assert_recent(settings.last_manual_sync_trigger_date_time, "lastManualSyncTriggerDateTime")
        assert settings.last_manual_sync_trigger_date_time >= before - dt.timedelta(seconds=5)
        # Not finished yet: the last completed sync is still "never".
        assert settings.last_sync_date_time == YEAR_ONE

        done = await wait_until_completed(client)
        assert done.sync_status is WindowsAutopilotSyncStatus.Completed
        assert_recent(done.last_sync_date_time, "lastSyncDateTime")
        assert done.last_sync_date_time >= done.last_manual_sync_trigger_date_time
        assert done.last_manual_sync_trigger_date_time == settings.last_manual_sync_trigger_date_time

    asyncio.run(scenario())


def test_second_sync_while_in_progress_is_conflict(server: DmsyncServer):
    async def scenario():
        client = server.client()
        assert await settings_api(client).sync.post() is None
        await expect_odata_error(settings_api(client).sync.post(no_retry()), 409, "Conflict")
        # 409 is not a status the SDK retries: the default handler gives the same answer.
        started = time.monotonic()
        await expect_odata_error(settings_api(client).sync.post(), 409, "Conflict")
        assert time.monotonic() - started < 2.0
        settings = await get_settings(client)
        assert settings.sync_status is WindowsAutopilotSyncStatus.InProgress

    asyncio.run(scenario())


def test_sync_inside_cooldown_is_too_many_requests(server: DmsyncServer):
    async def scenario():
        client = server.client()
        assert await settings_api(client).sync.post() is None
        done = await wait_until_completed(client)
        err = await expect_odata_error(settings_api(client).sync.post(no_retry()), 429, "TooManyRequests")
        # Like real Intune: no Retry-After unless --sync-retry-after.
        assert header(err, "Retry-After") is None, err.response_headers
        # The refused sync changed nothing.
        after = await get_settings(client)
        assert after.sync_status is WindowsAutopilotSyncStatus.Completed
        assert after.last_manual_sync_trigger_date_time == done.last_manual_sync_trigger_date_time
        assert after.last_sync_date_time == done.last_sync_date_time

    asyncio.run(scenario())


def test_default_retry_gives_up_at_once_when_retry_after_is_beyond_its_max_delay(start_server):
    # The default handler waits for Retry-After, but not when it is 180 s or more: a 600 s
    # cooldown comes back to the caller as the 429 at once.
    server = start_server("--sync-duration", "0s", "--sync-retry-after", "--sync-cooldown", "600s")

    async def scenario():
        client = server.client()
        assert await settings_api(client).sync.post() is None
        await wait_until_completed(client)
        started = time.monotonic()
        err = await expect_odata_error(settings_api(client).sync.post(), 429, "TooManyRequests")
        assert time.monotonic() - started < 5.0
        retry_after = header(err, "Retry-After")
        assert retry_after is not None and retry_after.isdigit(), err.response_headers
        assert 590 <= int(retry_after) <= 600, retry_after

    asyncio.run(scenario())


def test_default_retry_honours_retry_after_and_the_retried_sync_succeeds(start_server):
    # 4 s leaves ample margin for the second post to land inside the cooldown on a busy machine.
    server = start_server("--sync-duration", "0s", "--sync-retry-after", "--sync-cooldown", "4s")

    async def scenario():
        client = server.client()
        assert await settings_api(client).sync.post() is None
        first = await wait_until_completed(client)

        started = time.monotonic()
        result = await settings_api(client).sync.post()  # the SDK's default retry options
        elapsed = time.monotonic() - started
        assert result is None
        # It was refused first (inside the cooldown) and the SDK slept for Retry-After.
        assert elapsed >= 1.0, f"sync accepted after {elapsed:.2f}s: no 429 was honoured"
        assert elapsed < 15.0, f"retry took {elapsed:.2f}s"

        second = await wait_until_completed(client)
        assert second.last_manual_sync_trigger_date_time > first.last_manual_sync_trigger_date_time

    asyncio.run(scenario())


def test_retry_after_is_whole_seconds_within_the_cooldown(start_server):
    server = start_server("--sync-duration", "0s", "--sync-retry-after", "--sync-cooldown", "5s")

    async def scenario():
        client = server.client()
        assert await settings_api(client).sync.post() is None
        await wait_until_completed(client)
        err = await expect_odata_error(settings_api(client).sync.post(no_retry()), 429, "TooManyRequests")
        retry_after = header(err, "Retry-After")
        assert retry_after is not None and retry_after.isdigit(), err.response_headers
        assert 1 <= int(retry_after) <= 5, retry_after

    asyncio.run(scenario())


def test_clock_advance_past_cooldown_allows_sync_again(server: DmsyncServer):
    async def scenario():
        client = server.client()
        assert await settings_api(client).sync.post() is None
        first = await wait_until_completed(client)
        await expect_odata_error(settings_api(client).sync.post(no_retry()), 429, "TooManyRequests")

        server.advance_clock(601)

        assert await settings_api(client).sync.post(no_retry()) is None
        settings = await get_settings(client)
        assert settings.sync_status is WindowsAutopilotSyncStatus.InProgress
        gap = settings.last_manual_sync_trigger_date_time - first.last_manual_sync_trigger_date_time
        assert gap >= dt.timedelta(seconds=601), gap

    asyncio.run(scenario())


def test_application_token_is_forbidden_on_sync(server: DmsyncServer):
    async def scenario():
        client = server.client(server.application_token())
        await expect_odata_error(settings_api(client).sync.post(no_retry()), 403, "Forbidden")
        # Nothing was started.
        delegated = server.client()
        settings = await get_settings(delegated)
        assert settings.sync_status is WindowsAutopilotSyncStatus.Unknown
        assert settings.last_manual_sync_trigger_date_time == YEAR_ONE

    asyncio.run(scenario())


def test_bad_token_is_unauthorized(server: DmsyncServer):
    async def scenario():
        client = server.client("not-a-valid-token")
        err = await expect_odata_error(settings_api(client).get(), 401, "InvalidAuthenticationToken")
        assert header(err, "WWW-Authenticate"), err.response_headers

    asyncio.run(scenario())


def test_role_scope_tags_through_the_models(server: DmsyncServer):
    """Create (which Intune answers 200), list, update and delete a scope tag, and the refusal to
    delete the built-in Default tag, as the SDK's models and errors show them."""
    async def scenario():
        tags = server.client().device_management.role_scope_tags
        created = await tags.post(RoleScopeTag(display_name="Sales EU", description="Sales devices"))
        assert isinstance(created, RoleScopeTag), created
        assert (created.id, created.display_name, created.is_built_in) == ("1", "Sales EU", False)
        listed = await tags.get()
        assert [(t.id, t.display_name, t.is_built_in) for t in listed.value] == [
            ("0", "Default", True), ("1", "Sales EU", False)]  # fmt: skip
        patched = await tags.by_role_scope_tag_id("1").patch(RoleScopeTag(description="Every sales device"))
        assert (patched.display_name, patched.description) == ("Sales EU", "Every sales device")
        assert await tags.by_role_scope_tag_id("1").delete() is None
        error = await expect_odata_error(tags.by_role_scope_tag_id("0").delete(), 400, "BadRequest")
        assert "Default" in error.error.message
        await expect_odata_error(tags.by_role_scope_tag_id("1").get(), 404, "ResourceNotFound")

    asyncio.run(scenario())
