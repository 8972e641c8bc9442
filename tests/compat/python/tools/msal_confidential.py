"""MSAL Python's ConfidentialClientApplication as the docs show it, with the authority
https://login.microsoftonline.com/{tenant}. Nothing here names dmsync; the test runs it with
HTTPS_PROXY and REQUESTS_CA_BUNDLE pointing at dmsync's proxy and CA.

Usage: python msal_confidential.py TENANT CLIENT_ID CLIENT_SECRET
Prints one JSON object: where each of two token requests was answered from.
"""

from __future__ import annotations

import json
import sys

import msal

SCOPES = ["https://graph.microsoft.com/.default"]


def main(tenant: str, client_id: str, secret: str) -> dict:
    app = msal.ConfidentialClientApplication(
        client_id,
        client_credential=secret,
        authority=f"https://login.microsoftonline.com/{tenant}",
    )
    first = app.acquire_token_for_client(scopes=SCOPES)
    second = app.acquire_token_for_client(scopes=SCOPES)
    out = {}
    for name, result in (("first", first), ("second", second)):
        out[name] = {
            "error": result.get("error"),
            "error_description": result.get("error_description"),
            "token_type": result.get("token_type"),
            "token_source": result.get("token_source"),
            "same_token": result.get("access_token") == first.get("access_token"),
        }
    return out


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:4])))
