"""docs/TESTING-WITH-DMSYNC.md's pytest fixtures, run as a user would run them: each test
starts from an empty tenant, whatever the test before it left behind."""

from __future__ import annotations

import base64
import re
import time
from pathlib import Path

import httpx

from recipe_fixtures import ADMIN, TENANT, dmsync, graph  # noqa: F401 (fixtures)
from test_docs_recipes import source_region

HERE = Path(__file__).resolve().parent
DOC = HERE.parents[2] / "docs" / "TESTING-WITH-DMSYNC.md"


def register_and_sync(base: str, client: httpx.Client, serial: str) -> None:
    row = {"serialNumber": serial, "hardwareHash": base64.b64encode(serial.encode()).decode()}
    httpx.post(f"{base}/_dmsync/tenants/{TENANT}/autopilot/registrations", json=[row], headers=ADMIN).raise_for_status()
    assert client.post("/beta/deviceManagement/windowsAutopilotSettings/sync").status_code == 204
    for _ in range(100):
        if client.get("/beta/deviceManagement/windowsAutopilotSettings").json()["syncStatus"] == "completed":
            return
        time.sleep(0.1)
    raise AssertionError("the sync did not complete")


def serials(client: httpx.Client) -> list[str]:
    page = client.get("/beta/deviceManagement/windowsAutopilotDeviceIdentities").json()
    return sorted(d["serialNumber"] for d in page["value"])


def test_a_first_test_syncs_a_device(dmsync, graph):  # noqa: F811
    register_and_sync(dmsync, graph, "RECIPE-1")
    assert serials(graph) == ["RECIPE-1"]


def test_the_next_test_starts_empty_and_may_sync_at_once(dmsync, graph):  # noqa: F811
    # The reset took the device and the sync's cooldown with it.
    assert serials(graph) == []
    register_and_sync(dmsync, graph, "RECIPE-2")
    assert serials(graph) == ["RECIPE-2"]


def test_the_doc_shows_these_fixtures():
    m = re.search(r"^<!-- recipe: pytest-fixtures -->\n```python\n(.*?)\n```$", DOC.read_text(), re.M | re.S)
    assert m, "docs/TESTING-WITH-DMSYNC.md has no pytest-fixtures block"
    assert m.group(1) == source_region(HERE / "recipe_fixtures.py", "pytest-fixtures")
