"""The pytest fixtures of docs/TESTING-WITH-DMSYNC.md, as the suite runs them
(test_testing_recipe.py): one dmsync for the session, emptied before each test."""

# recipe: pytest-fixtures
import os
import re
import subprocess

import httpx
import pytest

ADMIN = {"Authorization": "Bearer dmsync-dev-admin"}
TENANT = "11111111-1111-4111-8111-111111111111"


@pytest.fixture(scope="session")
def dmsync(tmp_path_factory):
    """One dmsync for the whole session, on a free port with its own database."""
    db = tmp_path_factory.mktemp("dmsync") / "dmsync.db"
    server = subprocess.Popen(
        [os.environ.get("DMSYNC_BIN", "dmsync"), "serve", "--listen", "127.0.0.1:0",
         "--db", f"sqlite://{db}", "--sync-duration", "0s"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    # The first line names the address, once the server is ready.
    base = re.match(r"dmsync listening on (\S+)", server.stdout.readline()).group(1)
    yield base
    server.terminate()
    server.wait(timeout=10)


@pytest.fixture
def graph(dmsync):
    """A Graph client signed in as the development user, on an empty tenant."""
    httpx.post(f"{dmsync}/_dmsync/reset", json={}, headers=ADMIN).raise_for_status()
    token = httpx.post(f"{dmsync}/{TENANT}/oauth2/v2.0/token", data={
        "grant_type": "password", "client_id": "22222222-2222-4222-8222-222222222222",
        "username": "admin@contoso.onmicrosoft.com", "password": "dmsync-dev-password",
        "scope": "https://graph.microsoft.com/.default",
    }).json()["access_token"]  # fmt: skip
    with httpx.Client(base_url=dmsync, headers={"Authorization": f"Bearer {token}"}) as client:
        yield client
# end recipe: pytest-fixtures
