"""MSAL Python's authorization code flow with PKCE, the flow `acquire_token_interactive` runs,
with the authority https://login.microsoftonline.com/organizations: `initiate_auth_code_flow`
makes the authorization URL (state, nonce, S256 challenge); a browser's part is played by
`requests`, which opens the URL, fills the sign-in page's form and posts it; the redirect's query
goes to `acquire_token_by_auth_code_flow`, which checks the state and the id token's nonce and
redeems the code with the verifier. Then the account from the cache, silently. Nothing here names
dmsync; the test runs it with HTTPS_PROXY and REQUESTS_CA_BUNDLE pointing at dmsync's proxy and CA.

Usage: python msal_public_auth_code.py CLIENT_ID USERNAME PASSWORD
Prints one JSON object: what each step returned.
"""

from __future__ import annotations

import hashlib
import json
import sys
from html.parser import HTMLParser
from urllib.parse import parse_qsl, urljoin, urlsplit

import msal
import requests

SCOPES = ["https://graph.microsoft.com/DeviceManagementServiceConfig.ReadWrite.All"]
REDIRECT_URI = "http://localhost:8400"


class SignInForm(HTMLParser):
    """The page's form: where it posts and its fields, as a browser reads them."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "form":
            self.action = a.get("action")
        elif tag == "input" and a.get("name"):
            self.fields[a["name"] or ""] = a.get("value") or ""


def browser_sign_in(auth_uri: str, username: str, password: str) -> dict:
    session = requests.Session()
    page = session.get(auth_uri, timeout=30)
    page.raise_for_status()
    form = SignInForm()
    form.feed(page.text)
    assert form.action, page.text
    fields = dict(form.fields, login=username, passwd=password)
    answer = session.post(urljoin(auth_uri, form.action), data=fields, allow_redirects=False, timeout=30)
    assert answer.status_code == 302, (answer.status_code, answer.text)
    location = answer.headers["Location"]
    assert location.startswith(REDIRECT_URI), location
    return dict(parse_qsl(urlsplit(location).query))


def main(client_id: str, username: str, password: str) -> dict:
    app = msal.PublicClientApplication(client_id, authority="https://login.microsoftonline.com/organizations")
    flow = app.initiate_auth_code_flow(SCOPES, redirect_uri=REDIRECT_URI, login_hint=username)
    auth_response = browser_sign_in(flow["auth_uri"], username, password)
    result = app.acquire_token_by_auth_code_flow(flow, auth_response)
    accounts = app.get_accounts(username=username)
    cached = app.acquire_token_silent(SCOPES, account=accounts[0]) if accounts else None
    return {
        "error": result.get("error"),
        "error_description": result.get("error_description"),
        "username": (result.get("id_token_claims") or {}).get("preferred_username"),
        # MSAL sends the SHA-256 of its nonce and checks that the id token repeats it.
        "nonce_checked": (result.get("id_token_claims") or {}).get("nonce")
        == hashlib.sha256(flow["nonce"].encode("ascii")).hexdigest(),
        "access_token": result.get("access_token"),
        "has_refresh_token": bool(result.get("refresh_token")),
        "accounts": [a.get("username") for a in accounts],
        "cached_source": (cached or {}).get("token_source"),
        "cached_same": (cached or {}).get("access_token") == result.get("access_token"),
    }


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:4])))
