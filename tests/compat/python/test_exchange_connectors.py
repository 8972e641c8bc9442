"""Exchange connectors through the real Graph Python SDKs: CRUD and the `sync` action, as
`exchange_connectors.by_device_management_exchange_connector_id(id).sync.post(SyncPostRequestBody(sync_type=…))`
sends it, on v1.0 (msgraph-sdk) and beta (msgraph-beta-sdk). The connector's source (a
Get-MobileDevice CSV) is set through dmsync's admin API, which Graph has no field for.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

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
from msgraph.generated.models.device_management_exchange_connector_status import (
    DeviceManagementExchangeConnectorStatus as V1Status,
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
from msgraph_beta.generated.models.device_management_exchange_connector_status import (
    DeviceManagementExchangeConnectorStatus as BetaStatus,
)
from msgraph_beta.generated.models.device_management_exchange_connector_sync_type import (
    DeviceManagementExchangeConnectorSyncType as BetaSyncType,
)
from msgraph_beta.generated.models.device_management_exchange_connector_type import (
    DeviceManagementExchangeConnectorType as BetaType,
)
from msgraph_beta.generated.models.o_data_errors.o_data_error import ODataError as BetaODataError

from conftest import ADMIN_TOKEN, TENANT

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "exchange" / "mobile-devices.csv"

VERSIONS = {
    "v1.0": dict(client="v1_client", connector=V1Connector, kind=V1Type, status=V1Status,
                 body=V1SyncBody, sync_type=V1SyncType, error=V1ODataError),
    "beta": dict(client="client", connector=BetaConnector, kind=BetaType, status=BetaStatus,
                 body=BetaSyncBody, sync_type=BetaSyncType, error=BetaODataError),
}


def no_retry() -> RequestConfiguration:
    return RequestConfiguration(options=[RetryHandlerOption(max_retries=0)])


@pytest.mark.parametrize("version", ["v1.0", "beta"])
def test_connector_crud_and_both_sync_types(start_server, version):
    server = start_server("--import-delay", "0s")
    v = VERSIONS[version]

    async def scenario():
        client = getattr(server, v["client"])()
        connectors = client.device_management.exchange_connectors
        created = await connectors.post(v["connector"](
            primary_smtp_address="svc@contoso.com", server_name="ex01.contoso.com",
            exchange_connector_type=v["kind"].OnPremises, exchange_organization="Contoso", version="19.1"))
        assert created.id and created.status == v["status"].ConnectionPending
        item = connectors.by_device_management_exchange_connector_id(created.id)

        patched = await item.patch(v["connector"](server_name="ex02.contoso.com"))
        assert patched.server_name == "ex02.contoso.com" and patched.version == "19.1"
        listed = await connectors.get()
        assert [c.id for c in listed.value] == [created.id]

        r = httpx.put(f"{server.base}/_dmsync/tenants/{TENANT}/exchangeConnectors/{created.id}/source",
                      json={"kind": "file", "path": str(EXAMPLE)},
                      headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=10)
        assert r.status_code == 204, r.text

        previous = created.last_sync_date_time
        for sync_type in (v["sync_type"].FullSync, v["sync_type"].DeltaSync):
            assert await item.sync.post(v["body"](sync_type=sync_type)) is None
            deadline = time.monotonic() + 15
            while True:
                got = await item.get()
                # The connector reads connected with a new lastSyncDateTime once this sync ended.
                if got.status == v["status"].Connected and got.last_sync_date_time > previous:
                    previous = got.last_sync_date_time
                    break
                assert time.monotonic() < deadline, f"never connected: {got.status}"
                await asyncio.sleep(0.05)

        # A missing syncType is a 400 ODataError; an unknown connector a 404.
        with pytest.raises(v["error"]) as missing:
            await item.sync.post(v["body"](), request_configuration=no_retry())
        assert missing.value.response_status_code == 400
        with pytest.raises(v["error"]) as unknown:
            await connectors.by_device_management_exchange_connector_id(
                "00000000-0000-4000-8000-000000000000").sync.post(v["body"](sync_type=v["sync_type"].FullSync))
        assert unknown.value.response_status_code == 404
        assert unknown.value.error.code == "ResourceNotFound"

        assert await item.delete() is None
        with pytest.raises(v["error"]) as gone:
            await item.get()
        assert gone.value.response_status_code == 404

    asyncio.run(scenario())


def test_managed_devices_show_what_a_sync_discovered(start_server):
    server = start_server()

    async def scenario():
        client = server.v1_client()
        connector = await client.device_management.exchange_connectors.post(
            V1Connector(exchange_connector_type=V1Type.Hosted))
        r = httpx.put(f"{server.base}/_dmsync/tenants/{TENANT}/exchangeConnectors/{connector.id}/source",
                      json={"kind": "file", "path": str(EXAMPLE)},
                      headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=10)
        assert r.status_code == 204
        item = client.device_management.exchange_connectors.by_device_management_exchange_connector_id(connector.id)
        await item.sync.post(V1SyncBody(sync_type=V1SyncType.FullSync))
        deadline = time.monotonic() + 15
        while (await item.get()).status != V1Status.Connected:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)

        # managedDevices needs DeviceManagementManagedDevices.Read.All.
        token = httpx.post(f"{server.base}/_dmsync/tokens", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                           json={"tenantId": TENANT, "kind": "delegated", "accountType": "work",
                                 "permissions": ["DeviceManagementManagedDevices.Read.All"]}, timeout=10).json()["access_token"]
        reader = server.v1_client(token)
        devices = await reader.device_management.managed_devices.get()
        by_id = {d.eas_device_id: d for d in devices.value}
        assert set(by_id) == {"ApplF17XK1NYMLT", "SEC1D2E3F4A5B6C7", "ApplDMPX2Q7R8S9T", "ANDROIDC0FFEE01"}
        kim = by_id["ApplF17XK1NYMLT"]
        assert kim.management_agent.value == "eas" and kim.eas_activated is True
        assert kim.exchange_access_state.value == "allowed" and kim.operating_system == "iOS"
        assert kim.user_principal_name == "kim@contoso.com" and kim.manufacturer == "Apple"
        assert by_id["SEC1D2E3F4A5B6C7"].exchange_access_state.value == "quarantined"
        assert by_id["ApplDMPX2Q7R8S9T"].exchange_access_state_reason.value == "exchangeIndividualRule"

        # Every property of each version is one its SDK's model knows: nothing lands in
        # additional_data, on the device or on its complex values.
        for client in (reader, server.client(token)):
            for device in (await client.device_management.managed_devices.get()).value:
                assert unknown_properties(device) == [], device.eas_device_id
        beta = (await server.client(token).device_management.managed_devices.get()).value[0]
        assert beta.hardware_information is not None and beta.owner_type.value == "unknown"
        assert beta.configuration_manager_client_enabled_features.office_apps is False

    asyncio.run(scenario())


def unknown_properties(model, path: str = "") -> list[str]:
    """The properties of a parsed model, and of the models inside it, that landed in
    additional_data because the model does not know them."""
    found = [f"{path}{name}" for name in (getattr(model, "additional_data", None) or {})]
    for name, value in vars(model).items():
        values = value if isinstance(value, list) else [value]
        for item in values:
            if hasattr(item, "get_field_deserializers"):
                found += unknown_properties(item, f"{path}{name}.")
    return found
