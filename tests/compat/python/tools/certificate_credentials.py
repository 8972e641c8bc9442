"""An unattended app signing in with a certificate, the two ways Python users write it: MSAL
Python's ConfidentialClientApplication with `private_key` and `thumbprint`, as its docs show,
and azure-identity's CertificateCredential with a PEM file of the key and the certificate.
Both use the authority https://login.microsoftonline.com/{tenant}; nothing here names dmsync.
The test runs it with HTTPS_PROXY and REQUESTS_CA_BUNDLE pointing at dmsync's proxy and CA.

Usage: python certificate_credentials.py TENANT CLIENT_ID KEY_AND_CERT_PEM THUMBPRINT
Prints one JSON object: what each library got, and what Graph answered with its token.
"""

from __future__ import annotations

import json
import sys

import msal
import requests
from azure.identity import CertificateCredential

SCOPE = "https://graph.microsoft.com/.default"
GROUPS = "https://graph.microsoft.com/v1.0/groups"


def graph_status(token: str | None) -> int | None:
    if not token:
        return None
    return requests.get(GROUPS, headers={"Authorization": f"Bearer {token}"}, timeout=30).status_code


def main(tenant: str, client_id: str, pem_path: str, thumbprint: str) -> dict:
    with open(pem_path, encoding="ascii") as f:
        pem = f.read()
    app = msal.ConfidentialClientApplication(
        client_id,
        client_credential={"private_key": pem, "thumbprint": thumbprint},
        authority=f"https://login.microsoftonline.com/{tenant}",
    )
    first = app.acquire_token_for_client(scopes=[SCOPE])
    cached = app.acquire_token_for_client(scopes=[SCOPE])
    credential = CertificateCredential(tenant, client_id, certificate_path=pem_path)
    azure = credential.get_token(SCOPE)
    return {
        "msal": {
            "error": first.get("error"),
            "error_description": first.get("error_description"),
            "token_source": first.get("token_source"),
            "graph": graph_status(first.get("access_token")),
        },
        "msal_cached": {"token_source": cached.get("token_source")},
        "azure_identity": {"graph": graph_status(azure.token), "expires_on": azure.expires_on},
    }


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:5])))
