"""The Autopilot import flow and the device collection through the real Graph Python SDKs.

What a script built on msgraph-beta-sdk (beta) or msgraph-sdk (v1.0) does: `import_.post` a
batch of imported identities, poll each one until `deviceImportStatus` leaves `unknown`, then
read the device by `state.deviceRegistrationId`; create/list/delete single imported
identities; page through `windowsAutopilotDeviceIdentities` with msgraph_core's PageIterator;
`updateDeviceProperties`. Every Graph call goes through the generated request builders
(../shared/spec/clients.md §1.3); only the OEM registrations, the clock and a second tenant
are set up through dmsync's admin API.

The import delay is measured on the server's clock: the tests start dmsync with a long
`--import-delay` and advance the clock past it, so that "still unknown" is observed for sure
and the processing is not waited for in real time.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

import pytest
from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_abstractions.native_response_handler import NativeResponseHandler
from kiota_http.middleware.options import ResponseHandlerOption, RetryHandlerOption
from msgraph_core.tasks.page_iterator import PageIterator

from msgraph.generated.device_management.imported_windows_autopilot_device_identities.import_.import_post_request_body import (
    ImportPostRequestBody as V1ImportPostRequestBody,
)
from msgraph.generated.device_management.windows_autopilot_device_identities.item.update_device_properties.update_device_properties_post_request_body import (
    UpdateDevicePropertiesPostRequestBody as V1UpdateDevicePropertiesPostRequestBody,
)
from msgraph.generated.device_management.windows_autopilot_device_identities.windows_autopilot_device_identities_request_builder import (
    WindowsAutopilotDeviceIdentitiesRequestBuilder as V1DevicesBuilder,
)
from msgraph.generated.models.imported_windows_autopilot_device_identity import (
    ImportedWindowsAutopilotDeviceIdentity as V1ImportedWindowsAutopilotDeviceIdentity,
)
from msgraph.generated.models.imported_windows_autopilot_device_identity_import_status import (
    ImportedWindowsAutopilotDeviceIdentityImportStatus as V1ImportStatus,
)
from msgraph.generated.models.o_data_errors.o_data_error import ODataError as V1ODataError
from msgraph.generated.models.windows_autopilot_device_identity import (
    WindowsAutopilotDeviceIdentity as V1WindowsAutopilotDeviceIdentity,
)
from msgraph_beta.generated.device_management.imported_windows_autopilot_device_identities.import_.import_post_request_body import (
    ImportPostRequestBody as BetaImportPostRequestBody,
)
from msgraph_beta.generated.device_management.windows_autopilot_device_identities.item.update_device_properties.update_device_properties_post_request_body import (
    UpdateDevicePropertiesPostRequestBody as BetaUpdateDevicePropertiesPostRequestBody,
)
from msgraph_beta.generated.device_management.windows_autopilot_device_identities.windows_autopilot_device_identities_request_builder import (
    WindowsAutopilotDeviceIdentitiesRequestBuilder,
)
from msgraph_beta.generated.models.imported_windows_autopilot_device_identity import (
    ImportedWindowsAutopilotDeviceIdentity as BetaImportedWindowsAutopilotDeviceIdentity,
)
from msgraph_beta.generated.models.imported_windows_autopilot_device_identity_import_status import (
    ImportedWindowsAutopilotDeviceIdentityImportStatus as BetaImportStatus,
)
from msgraph_beta.generated.models.o_data_errors.o_data_error import ODataError as BetaODataError
from msgraph_beta.generated.models.windows_autopilot_device_identity import (
    WindowsAutopilotDeviceIdentity as BetaWindowsAutopilotDeviceIdentity,
)
from msgraph_beta.generated.models.windows_autopilot_device_identity_collection_response import (
    WindowsAutopilotDeviceIdentityCollectionResponse,
)
from msgraph_beta.generated.models.windows_autopilot_sync_status import WindowsAutopilotSyncStatus

from conftest import DmsyncServer

# Long enough that an import is never processed before the test advances the clock.
IMPORT_DELAY = "600s"
IMPORT_ADVANCE_S = 601
IMPORT_TIMEOUT_S = 10.0
SYNC_TIMEOUT_S = 15.0
OTHER_TENANT = "33333333-3333-4333-8333-333333333333"


@dataclass(frozen=True)
class Api:
    """One SDK flavour: the client factory and the model classes of its package."""

    name: str
    client: Callable[[DmsyncServer], Any]
    ImportPostRequestBody: type
    Imported: type
    ImportStatus: type
    Device: type
    UpdateBody: type
    ODataError: type


BETA = Api(
    "beta",
    lambda server: server.client(),
    BetaImportPostRequestBody,
    BetaImportedWindowsAutopilotDeviceIdentity,
    BetaImportStatus,
    BetaWindowsAutopilotDeviceIdentity,
    BetaUpdateDevicePropertiesPostRequestBody,
    BetaODataError,
)
V1 = Api(
    "v1.0",
    lambda server: server.v1_client(),
    V1ImportPostRequestBody,
    V1ImportedWindowsAutopilotDeviceIdentity,
    V1ImportStatus,
    V1WindowsAutopilotDeviceIdentity,
    V1UpdateDevicePropertiesPostRequestBody,
    V1ODataError,
)
BOTH = pytest.mark.parametrize("api", [BETA, V1], ids=lambda a: a.name)


# --- helpers ---------------------------------------------------------------------------


def hardware_hash(label: str, size: int = 64) -> bytes:
    """A deterministic, unique-per-label stand-in for a hardware hash."""
    out = b""
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{label}/{counter}".encode()).digest()
        counter += 1
    return out[:size]


def registration(serial: str, group_tag: str = "", model: str = "Surface Laptop 5") -> dict[str, str]:
    return {
        "serialNumber": serial,
        "hardwareHash": base64.b64encode(hardware_hash(serial)).decode(),
        "manufacturer": "Microsoft Corporation",
        "model": model,
        "groupTag": group_tag,
    }


def no_retry() -> RequestConfiguration:
    return RequestConfiguration(options=[RetryHandlerOption(max_retries=0)])


def native_response() -> RequestConfiguration:
    """Makes the SDK hand back the httpx response itself, to see the status code."""
    return RequestConfiguration(options=[ResponseHandlerOption(NativeResponseHandler())])


def imported_api(client):
    return client.device_management.imported_windows_autopilot_device_identities


def devices_api(client):
    return client.device_management.windows_autopilot_device_identities


async def expect_odata_error(coro, error_type: type, status: int, code: str):
    with pytest.raises(error_type) as info:
        await coro
    err = info.value
    assert err.response_status_code == status, f"{err!r}"
    assert err.error is not None, f"ODataError without a main error: {err!r}"
    assert err.error.code == code, f"{err.error!r}"
    assert err.error.message, f"empty error message: {err.error!r}"
    assert err.error.inner_error is not None and err.error.inner_error.request_id, f"{err.error!r}"
    return err


async def import_batch(api: Api, client, items: list[tuple[str, bytes, str]]) -> list:
    """import_.post of (serialNumber, hash, groupTag) items; returns ImportPostResponse.value."""
    body = api.ImportPostRequestBody(
        imported_windows_autopilot_device_identities=[
            api.Imported(serial_number=serial, hardware_identifier=hash_, group_tag=tag) for serial, hash_, tag in items
        ]
    )
    response = await imported_api(client).import_.post(body)
    assert response is not None and response.value is not None, response
    assert len(response.value) == len(items), response.value
    return response.value


async def poll_until_processed(api: Api, client, ids: list[str], timeout: float = IMPORT_TIMEOUT_S) -> dict[str, Any]:
    """Polls each imported identity (as the scripts do) until none is `unknown` any more."""
    deadline = time.monotonic() + timeout
    while True:
        current = {}
        for id_ in ids:
            item = await imported_api(client).by_imported_windows_autopilot_device_identity_id(id_).get()
            assert isinstance(item, api.Imported), item
            assert item.id == id_, item
            current[id_] = item
        waiting = [i for i in current.values() if i.state.device_import_status is api.ImportStatus.Unknown]
        if not waiting:
            return current
        assert time.monotonic() < deadline, f"imports still unknown after {timeout}s: {waiting}"
        await asyncio.sleep(0.1)


async def sync_and_wait(beta, timeout: float = SYNC_TIMEOUT_S) -> None:
    """Starts an Autopilot sync (beta only: v1.0 has no windowsAutopilotSettings) and waits for it."""
    settings = beta.device_management.windows_autopilot_settings
    assert await settings.sync.post(no_retry()) is None
    deadline = time.monotonic() + timeout
    while True:
        current = await settings.get()
        if current.sync_status is WindowsAutopilotSyncStatus.Completed:
            return
        assert current.sync_status is WindowsAutopilotSyncStatus.InProgress, current
        assert time.monotonic() < deadline, f"sync not completed within {timeout}s: {current}"
        await asyncio.sleep(0.1)


class PageRecorder:
    """A PageIterator callback that records every item and the size of each page."""

    def __init__(self) -> None:
        self.iterator: Optional[PageIterator] = None
        self.items: list = []
        self.page_sizes: list[int] = []
        self._page = None

    def __call__(self, item) -> bool:
        assert self.iterator is not None
        if self.iterator.current_page is not self._page:
            self._page = self.iterator.current_page
            self.page_sizes.append(0)
        self.page_sizes[-1] += 1
        self.items.append(item)
        return True

    async def run(self, first_page, adapter) -> "PageRecorder":
        self.iterator = PageIterator(first_page, adapter)
        await self.iterator.iterate(self)
        return self


# --- 1. the import loop ----------------------------------------------------------------


@BOTH
def test_import_poll_then_read_the_device(start_server, api: Api):
    server = start_server("--sync-duration", "0s", "--import-delay", IMPORT_DELAY)

    async def scenario():
        client = api.client(server)
        sent = [(f"IMP-{api.name}-{n}", hardware_hash(f"imp-{api.name}-{n}", 4096), f"Tag{n}") for n in range(3)]
        imported = await import_batch(api, client, sent)

        for item, (serial, hash_, tag) in zip(imported, sent):
            assert isinstance(item, api.Imported), item
            assert item.id, item
            assert item.serial_number == serial
            assert item.group_tag == tag
            assert isinstance(item.hardware_identifier, bytes)
            assert item.hardware_identifier == hash_
            assert item.state is not None
            assert item.state.device_import_status is api.ImportStatus.Unknown, item.state
            assert not item.state.device_registration_id, item.state
        ids = [item.id for item in imported]
        assert len(set(ids)) == 3, ids
        # All three belong to one import request.
        assert len({item.import_id for item in imported}) == 1, [item.import_id for item in imported]

        # Before the delay has passed on the server's clock the scripts keep waiting.
        for id_ in ids:
            item = await imported_api(client).by_imported_windows_autopilot_device_identity_id(id_).get()
            assert item.state.device_import_status is api.ImportStatus.Unknown, item.state

        server.advance_clock(IMPORT_ADVANCE_S)
        done = await poll_until_processed(api, client, ids)

        for id_, (serial, hash_, tag) in zip(ids, sent):
            item = done[id_]
            assert item.state.device_import_status is api.ImportStatus.Complete, item.state
            assert item.state.device_error_code in (None, 0), item.state
            assert not item.state.device_error_name, item.state
            assert item.hardware_identifier == hash_, "hardwareIdentifier did not round-trip"
            registration_id = item.state.device_registration_id
            assert registration_id, item.state
            # Readable at once, no sync needed.
            device = await devices_api(client).by_windows_autopilot_device_identity_id(registration_id).get()
            assert isinstance(device, api.Device), device
            assert device.id == registration_id
            assert device.serial_number == serial
            assert device.group_tag == tag

        # A completed import counts as a sync start: a manual sync now is inside the cooldown.
        beta = server.client()
        err = await expect_odata_error(
            beta.device_management.windows_autopilot_settings.sync.post(no_retry()), BetaODataError, 429, "TooManyRequests"
        )
        assert err.response_status_code == 429

    asyncio.run(scenario())


# --- 2. error outcomes -----------------------------------------------------------------


@BOTH
def test_import_error_outcomes(start_server, api: Api):
    server = start_server("--sync-duration", "0s", "--import-delay", IMPORT_DELAY)
    server.register_devices([registration("REG-OWN-1")])
    server.create_tenant(OTHER_TENANT, "fabrikam.onmicrosoft.com")
    server.register_devices([registration("REG-OTHER-1")], tenant=OTHER_TENANT)

    async def scenario():
        client = api.client(server)
        sent = [
            ("NEW-OK", hardware_hash("NEW-OK"), ""),
            # The hash of a device already registered in this tenant, under a new serial.
            ("NEW-DUP", hardware_hash("REG-OWN-1"), ""),
            # Too short to be a hardware hash.
            ("NEW-SHORT", b"\x01\x02", ""),
            # Registered in another tenant.
            ("NEW-FOREIGN", hardware_hash("REG-OTHER-1"), ""),
        ]
        imported = await import_batch(api, client, sent)
        assert all(i.state.device_import_status is api.ImportStatus.Unknown for i in imported)
        assert imported[2].hardware_identifier == b"\x01\x02"

        server.advance_clock(IMPORT_ADVANCE_S)
        done = await poll_until_processed(api, client, [i.id for i in imported])
        by_serial = {item.serial_number: item for item in done.values()}

        ok = by_serial["NEW-OK"].state
        assert ok.device_import_status is api.ImportStatus.Complete, ok
        assert ok.device_registration_id

        for serial, code, name in [
            ("NEW-DUP", 806, "ZtdDeviceAlreadyAssigned"),
            ("NEW-SHORT", 807, "ZtdDeviceBadHardwareHash"),
            ("NEW-FOREIGN", 808, "ZtdDeviceAssignedToOtherTenant"),
        ]:
            state = by_serial[serial].state
            assert state.device_import_status is api.ImportStatus.Error, (serial, state)
            assert state.device_error_code == code, (serial, state)
            assert state.device_error_name == name, (serial, state)
            assert not state.device_registration_id, (serial, state)

        # Importing the hash that has just been registered by the import is refused too.
        again = await import_batch(api, client, [("NEW-OK-AGAIN", hardware_hash("NEW-OK"), "")])
        server.advance_clock(IMPORT_ADVANCE_S)
        state = (await poll_until_processed(api, client, [again[0].id]))[again[0].id].state
        assert state.device_import_status is api.ImportStatus.Error, state
        assert (state.device_error_code, state.device_error_name) == (806, "ZtdDeviceAlreadyAssigned"), state

    asyncio.run(scenario())


# --- 3. create, list, delete -----------------------------------------------------------


@BOTH
def test_create_list_delete_imported_identity(start_server, api: Api):
    server = start_server("--sync-duration", "0s", "--import-delay", IMPORT_DELAY)

    async def scenario():
        client = api.client(server)
        hash_ = hardware_hash("ONE-1")
        created = await imported_api(client).post(
            api.Imported(serial_number="ONE-1", hardware_identifier=hash_, group_tag="Sales", product_key="")
        )
        assert isinstance(created, api.Imported), created
        assert created.id
        assert created.serial_number == "ONE-1"
        assert created.group_tag == "Sales"
        assert created.hardware_identifier == hash_
        assert created.state.device_import_status is api.ImportStatus.Unknown, created.state

        # The status code the SDK swallowed: 201 Created.
        raw = await imported_api(client).post(
            api.Imported(serial_number="ONE-2", hardware_identifier=hardware_hash("ONE-2")), native_response()
        )
        assert raw.status_code == 201, (raw.status_code, raw.text)
        assert raw.headers["content-type"].startswith("application/json"), raw.headers
        second_id = raw.json()["id"]

        listing = await imported_api(client).get()
        assert listing is not None and listing.value is not None
        by_id = {item.id: item for item in listing.value}
        assert set(by_id) == {created.id, second_id}, by_id
        assert by_id[created.id].serial_number == "ONE-1"
        assert by_id[created.id].hardware_identifier == hash_
        assert all(isinstance(i, api.Imported) for i in listing.value)

        item = imported_api(client).by_imported_windows_autopilot_device_identity_id(created.id)
        assert await item.delete() is None
        await expect_odata_error(item.get(), api.ODataError, 404, "ResourceNotFound")
        # A second delete finds nothing either.
        await expect_odata_error(item.delete(), api.ODataError, 404, "ResourceNotFound")

        listing = await imported_api(client).get()
        assert [i.id for i in listing.value] == [second_id]

    asyncio.run(scenario())


@BOTH
def test_list_imported_identities_with_the_page_iterator(start_server, api: Api):
    server = start_server("--import-delay", IMPORT_DELAY)

    async def scenario():
        client = api.client(server)
        sent = [(f"PIT-{n}", hardware_hash(f"PIT-{n}"), "Iter") for n in range(7)]
        await import_batch(api, client, sent)
        query = type(imported_api(client)).ImportedWindowsAutopilotDeviceIdentitiesRequestBuilderGetQueryParameters
        first = await imported_api(client).get(RequestConfiguration(query_parameters=query(top=3)))
        assert len(first.value) == 3 and first.odata_next_link, first
        assert first.odata_next_link.startswith(
            f"http://127.0.0.1:{server.port}/{api.name}/deviceManagement/importedWindowsAutopilotDeviceIdentities?"
        ), first.odata_next_link
        pages = await PageRecorder().run(first, client.request_adapter)
        assert pages.page_sizes == [3, 3, 1], pages.page_sizes
        assert all(isinstance(i, api.Imported) for i in pages.items)
        assert sorted(i.serial_number for i in pages.items) == [s for s, _, _ in sent]

    asyncio.run(scenario())


@BOTH
def test_devices_with_contains_select_and_top(start_server, api: Api):
    server = start_server("--sync-duration", "0s")
    serials = [f"CNT{n:03d}" for n in range(12)]
    server.register_devices([registration(s, group_tag="Contains") for s in serials] + [registration("ELSE-1")])

    async def scenario():
        await sync_and_wait(server.client())
        client = api.client(server)
        builder = devices_api(client)
        query = type(builder).WindowsAutopilotDeviceIdentitiesRequestBuilderGetQueryParameters
        # contains() as Get-AutopilotDevice -serial sends it; case-insensitive, like Intune.
        found = await builder.get(RequestConfiguration(query_parameters=query(filter="contains(serialNumber,'cnt01')", select=["id", "serialNumber"])))
        assert sorted(d.serial_number for d in found.value) == ["CNT010", "CNT011"]
        assert all(d.group_tag is None and d.model is None for d in found.value), "not selected, so not sent"
        assert not found.odata_next_link

        first = await builder.get(RequestConfiguration(query_parameters=query(filter="contains(serialNumber,'CNT')", select=["serialNumber", "groupTag"], top=5)))
        assert len(first.value) == 5 and first.odata_next_link
        pages = await PageRecorder().run(first, client.request_adapter)
        assert pages.page_sizes == [5, 5, 2], pages.page_sizes
        assert sorted(d.serial_number for d in pages.items) == serials
        assert all(d.group_tag == "Contains" and d.model is None for d in pages.items)

    asyncio.run(scenario())


# --- 4. paging through many devices ----------------------------------------------------
#
# The SDKs, not the server, set the pace here: deserialising one device costs about 8 ms of CPU
# in msgraph-beta-sdk (its Entity.get_field_deserializers runs some 4,900 `from . import`
# statements per object) and about 4 ms in msgraph-sdk, while the server answers a page of
# 1,000 in well under 0.1 s. So each full walk over the 2,500 devices is a test of its own,
# each bounded by 150 s (a cap for a loaded 2-core machine, not a timing).

PAGING_DEVICES = 2500
PAGING_CHUNK = 500
# The first deserialisation of a page imports thousands of the SDK's generated model modules
# lazily; on a loaded 2-core machine that alone took over 60 s. The bound is for hangs, not speed.
PAGING_TIMEOUT_S = 240
PAGING_SERIALS = [f"PG{n:05d}" for n in range(PAGING_DEVICES)]


def start_paging_server(start_server) -> DmsyncServer:
    """A server whose dev tenant has 2,500 registered devices, synced into device identities."""
    server = start_server("--sync-duration", "0s")
    for at in range(0, PAGING_DEVICES, PAGING_CHUNK):
        rows = [registration(s, group_tag="Paging") for s in PAGING_SERIALS[at : at + PAGING_CHUNK]]
        summary = server.register_devices(rows)
        assert summary.get("created") == PAGING_CHUNK, summary
    asyncio.run(sync_and_wait(server.client()))
    return server


def assert_every_device_once(items: list) -> None:
    serials = [d.serial_number for d in items]
    assert len(serials) == PAGING_DEVICES, len(serials)
    assert sorted(serials) == PAGING_SERIALS, "every serial number exactly once"
    assert len({d.id for d in items}) == PAGING_DEVICES
    assert all(d.group_tag == "Paging" and d.model == "Surface Laptop 5" for d in items)


@pytest.mark.timeout(PAGING_TIMEOUT_S)
def test_page_through_2500_devices_with_the_default_page_size(start_server):
    server = start_paging_server(start_server)

    async def scenario():
        client = server.client()
        # No $top: the default page of 100, so 25 pages and no empty one at the end.
        first = await devices_api(client).get()
        assert isinstance(first, WindowsAutopilotDeviceIdentityCollectionResponse), first
        assert len(first.value) == 100
        assert first.odata_next_link and first.odata_next_link.startswith(
            f"http://127.0.0.1:{server.port}/beta/deviceManagement/windowsAutopilotDeviceIdentities?"
        ), first.odata_next_link
        pages = await PageRecorder().run(first, client.request_adapter)
        assert all(isinstance(d, BetaWindowsAutopilotDeviceIdentity) for d in pages.items)
        assert_every_device_once(pages.items)
        assert pages.page_sizes == [100] * 25, pages.page_sizes

    asyncio.run(scenario())


@pytest.mark.timeout(PAGING_TIMEOUT_S)
def test_page_through_2500_devices_with_top_1000_and_filter_with_count(start_server):
    server = start_paging_server(start_server)

    async def scenario():
        # v1.0 SDK, $top=1000 (the largest page the server honours): 1000 + 1000 + 500.
        v1 = server.v1_client()
        v1_query = V1DevicesBuilder.WindowsAutopilotDeviceIdentitiesRequestBuilderGetQueryParameters
        first = await devices_api(v1).get(RequestConfiguration(query_parameters=v1_query(top=1000)))
        assert len(first.value) == 1000
        assert first.odata_next_link and first.odata_next_link.startswith(
            f"http://127.0.0.1:{server.port}/v1.0/deviceManagement/windowsAutopilotDeviceIdentities?"
        ), first.odata_next_link
        pages = await PageRecorder().run(first, v1.request_adapter)
        assert all(isinstance(d, V1WindowsAutopilotDeviceIdentity) for d in pages.items)
        assert_every_device_once(pages.items)
        assert pages.page_sizes == [1000, 1000, 500], pages.page_sizes

        # Beta, $filter + $count: the count is of all matches, not of the page, and the
        # nextLinks keep the filter.
        client = server.client()
        devices = devices_api(client)
        query = WindowsAutopilotDeviceIdentitiesRequestBuilder.WindowsAutopilotDeviceIdentitiesRequestBuilderGetQueryParameters
        first = await devices.get(
            RequestConfiguration(query_parameters=query(filter="startswith(serialNumber,'PG024')", count=True, top=30))
        )
        assert first.odata_count == 100, first.odata_count
        assert len(first.value) == 30
        pages = await PageRecorder().run(first, client.request_adapter)
        assert sorted(d.serial_number for d in pages.items) == PAGING_SERIALS[2400:]
        assert pages.page_sizes == [30, 30, 30, 10], pages.page_sizes

        page = await devices.get(
            RequestConfiguration(
                query_parameters=query(filter="startswith(serialNumber,'PG02')", count=True, select=["id", "serialNumber"])
            )
        )
        assert page.odata_count == 500, page.odata_count
        assert len(page.value) == 100 and page.odata_next_link
        assert all(d.serial_number.startswith("PG02") for d in page.value)
        assert all(d.group_tag is None for d in page.value), "not selected, so not sent"

        page = await devices.get(RequestConfiguration(query_parameters=query(filter="startswith(serialNumber,'NONE')", count=True)))
        assert page.odata_count == 0 and page.value == [] and not page.odata_next_link

    asyncio.run(scenario())


# --- 5. updateDeviceProperties ---------------------------------------------------------


@BOTH
def test_update_device_properties(start_server, api: Api):
    server = start_server("--sync-duration", "0s")
    server.register_devices([registration("UPD-1", group_tag="Before"), registration("UPD-2", group_tag="Other")])

    async def scenario():
        await sync_and_wait(server.client())
        client = api.client(server)
        listing = await devices_api(client).get()
        by_serial = {d.serial_number: d for d in listing.value}
        assert set(by_serial) == {"UPD-1", "UPD-2"}, by_serial
        device = by_serial["UPD-1"]
        assert device.group_tag == "Before"

        item = devices_api(client).by_windows_autopilot_device_identity_id(device.id)
        result = await item.update_device_properties.post(
            api.UpdateBody(display_name=f"KIOSK-{api.name}", group_tag="After")
        )
        assert result is None  # 204

        updated = await item.get()
        assert isinstance(updated, api.Device), updated
        assert updated.display_name == f"KIOSK-{api.name}"
        assert updated.group_tag == "After"
        assert updated.serial_number == "UPD-1"
        # Untouched properties stay, and the other device is unchanged.
        assert updated.model == device.model
        other = await devices_api(client).by_windows_autopilot_device_identity_id(by_serial["UPD-2"].id).get()
        assert other.group_tag == "Other"
        assert not other.display_name

        # Only what is sent changes.
        assert await item.update_device_properties.post(api.UpdateBody(group_tag="Third")) is None
        again = await item.get()
        assert again.group_tag == "Third"
        assert again.display_name == f"KIOSK-{api.name}"

    asyncio.run(scenario())
