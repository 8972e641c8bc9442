"""The device code flow with the real libraries, as their docs show it, against
https://login.microsoftonline.com/organizations: MSAL Python's PublicClientApplication
(`initiate_device_flow`, then `acquire_token_by_device_flow`, then the account it cached and a
silent token), or azure-identity's DeviceCodeCredential, whose `prompt_callback` is where a
person would be shown the code. Here the person is dmsync's admin API, which approves the code
for the user (the direct URL of dmsync, not through the proxy). Nothing else names dmsync; the
test runs this with HTTPS_PROXY and REQUESTS_CA_BUNDLE pointing at dmsync's proxy and CA.

Usage: python device_flow.py msal|azure-identity CLIENT_ID USERNAME ADMIN_BASE ADMIN_TOKEN
Prints one JSON object: what each step returned.
"""

from __future__ import annotations

import json
import sys

import requests

SCOPES = ["https://graph.microsoft.com/DeviceManagementServiceConfig.ReadWrite.All"]
AUTHORITY = "https://login.microsoftonline.com/organizations"


def approver(username: str, admin_base: str, admin_token: str):
    def approve(user_code: str) -> int:
        r = requests.post(
            f"{admin_base}/_dmsync/device-codes/{user_code}/approve",
            json={"userPrincipalName": username},
            headers={"Authorization": f"Bearer {admin_token}"},
            # The admin API is dmsync's own address, never a Microsoft host.
            proxies={"http": None, "https": None},
            timeout=10,
        )
        return r.status_code

    return approve


def with_msal(client_id: str, approve) -> dict:
    import msal

    app = msal.PublicClientApplication(client_id, authority=AUTHORITY)
    flow = app.initiate_device_flow(scopes=SCOPES)
    if "user_code" not in flow:
        return {"flow": flow}
    approved = approve(flow["user_code"])
    result = app.acquire_token_by_device_flow(flow)
    accounts = app.get_accounts()
    silent = app.acquire_token_silent(SCOPES, account=accounts[0]) if accounts else None
    return {
        "message": flow.get("message"),
        "verification_uri": flow.get("verification_uri"),
        "approved": approved,
        "error": result.get("error"),
        "error_description": result.get("error_description"),
        "has_refresh_token": bool(result.get("refresh_token")),
        "username": (result.get("id_token_claims") or {}).get("preferred_username"),
        "access_token": result.get("access_token"),
        "accounts": [a.get("username") for a in accounts],
        "silent_source": (silent or {}).get("token_source"),
    }


def with_azure_identity(client_id: str, approve) -> dict:
    from azure.identity import DeviceCodeCredential

    seen: dict = {}

    def prompt(verification_uri: str, user_code: str, expires_on) -> None:
        seen["verification_uri"] = verification_uri
        seen["approved"] = approve(user_code)

    credential = DeviceCodeCredential(client_id=client_id, tenant_id="organizations", prompt_callback=prompt)
    token = credential.get_token("https://graph.microsoft.com/.default")
    return {**seen, "access_token": token.token, "expires_on": token.expires_on}


def main(mode: str, client_id: str, username: str, admin_base: str, admin_token: str) -> dict:
    approve = approver(username, admin_base, admin_token)
    return with_msal(client_id, approve) if mode == "msal" else with_azure_identity(client_id, approve)


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:6])))
