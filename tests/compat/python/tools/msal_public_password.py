"""MSAL Python's PublicClientApplication signing a user in with a user name and a password, as
its docs show it, with the authority https://login.microsoftonline.com/organizations; then the
account it cached and a silent renewal, first from the cache, then (forced) with the refresh
token. Nothing here names dmsync; the test runs it with HTTPS_PROXY and REQUESTS_CA_BUNDLE
pointing at dmsync's proxy and CA.

Usage: python msal_public_password.py CLIENT_ID USERNAME PASSWORD
Prints one JSON object: what each step returned.
"""

from __future__ import annotations

import json
import sys

import msal

SCOPES = ["https://graph.microsoft.com/DeviceManagementServiceConfig.ReadWrite.All"]


def summary(result: dict | None) -> dict:
    result = result or {}
    return {
        "error": result.get("error"),
        "error_description": result.get("error_description"),
        "token_source": result.get("token_source"),
        "has_access_token": bool(result.get("access_token")),
        "has_refresh_token": bool(result.get("refresh_token")),
        "username": (result.get("id_token_claims") or {}).get("preferred_username"),
        "access_token": result.get("access_token"),
    }


def main(client_id: str, username: str, password: str) -> dict:
    app = msal.PublicClientApplication(client_id, authority="https://login.microsoftonline.com/organizations")
    signed_in = app.acquire_token_by_username_password(username, password, scopes=SCOPES)
    accounts = app.get_accounts(username=username)
    account = accounts[0] if accounts else None
    cached = app.acquire_token_silent(SCOPES, account=account) if account else None
    renewed = app.acquire_token_silent(SCOPES, account=account, force_refresh=True) if account else None
    return {
        "signed_in": summary(signed_in),
        "accounts": [{"username": a.get("username"), "home_account_id": a.get("home_account_id")} for a in accounts],
        "cached": summary(cached),
        "renewed": summary(renewed),
    }


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:4])))
