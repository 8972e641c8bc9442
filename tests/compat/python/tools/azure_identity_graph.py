"""A Graph app as its users write it: azure-identity's ClientSecretCredential with its default
authority and msgraph-beta-sdk with its default base URL. Nothing here names dmsync; the test runs
it with HTTPS_PROXY and SSL_CERT_FILE pointing at dmsync's proxy and CA, as a user would.

Usage: python azure_identity_graph.py TENANT CLIENT_ID CLIENT_SECRET
Prints one JSON object: what the sync answered and the settings read after it.
"""

from __future__ import annotations

import asyncio
import json
import sys

from azure.identity import ClientSecretCredential
from msgraph_beta import GraphServiceClient


async def main(tenant: str, client_id: str, secret: str) -> dict:
    credential = ClientSecretCredential(tenant, client_id, secret)
    client = GraphServiceClient(credential, scopes=["https://graph.microsoft.com/.default"])
    # The sync answers 204 with no body, which the SDK returns as None.
    synced = await client.device_management.windows_autopilot_settings.sync.post()
    settings = await client.device_management.windows_autopilot_settings.get()
    return {
        "sync": synced,
        "sync_status": settings.sync_status.value if settings.sync_status else None,
        "last_manual_sync_trigger": settings.last_manual_sync_trigger_date_time.isoformat()
        if settings.last_manual_sync_trigger_date_time
        else None,
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(*sys.argv[1:4]))))
