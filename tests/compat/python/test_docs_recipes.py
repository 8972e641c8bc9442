"""docs/CLIENTS.md shows the code the suite runs: its Python and curl recipes are compared
with the source the suite uses (graph_clients.py, ../recipes/curl.sh), and the curl recipe is
run as a bash script against a real dmsync. (tests/compat/js/test/docs.test.js does the same for
the JavaScript recipes.)
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from conftest import DmsyncServer

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
DOC = ROOT / "docs" / "CLIENTS.md"


def source_region(path: Path, name: str) -> str:
    """The lines between `# recipe: NAME` and `# end recipe: NAME`."""
    lines = path.read_text().split("\n")
    start = [i for i, line in enumerate(lines) if line.strip() == f"# recipe: {name}"]
    end = [i for i, line in enumerate(lines) if line.strip() == f"# end recipe: {name}"]
    assert len(start) == 1 and len(end) == 1 and start[0] < end[0], f"{path}: markers of {name}"
    return "\n".join(lines[start[0] + 1 : end[0]])


def doc_recipe(name: str) -> str:
    """The fenced block right after `<!-- recipe: NAME -->` in docs/CLIENTS.md."""
    text = DOC.read_text()
    m = re.search(rf"^<!-- recipe: {re.escape(name)} -->\n```[a-z]*\n(.*?)\n```$", text, re.M | re.S)
    assert m, f"docs/CLIENTS.md has no recipe block {name}"
    return m.group(1)


def test_the_python_recipe_is_the_code_the_suite_runs():
    assert doc_recipe("python-graph-sdk") == source_region(HERE / "graph_clients.py", "python-graph-sdk")


def test_the_curl_recipe_is_the_script_this_suite_runs():
    assert doc_recipe("curl") == source_region(ROOT / "tests" / "compat" / "recipes" / "curl.sh", "curl")


def test_the_curl_recipe_runs(start_server):
    assert shutil.which("curl"), "the curl recipe needs curl on PATH"
    server: DmsyncServer = start_server("--sync-duration", "0s")
    server.register_devices(
        [
            {"serialNumber": serial, "hardwareHash": "VGhpcyBpcyBhIGhhc2g" + suffix, "manufacturer": "Contoso", "model": "Laptop 7"}
            for serial, suffix in [("PF1GHXN3", "="), ("PF1GHXN4", "A"), ("R90ZZ001", "B")]
        ]
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("DMSYNC_")}
    env["B"] = server.base
    script = "set -euo pipefail\n" + doc_recipe("curl")
    run = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=45)
    assert run.returncode == 0, f"exit {run.returncode}\n{run.stdout}\n{run.stderr}"
    lines = run.stdout.splitlines()
    assert lines[0] == "sync: 204", run.stdout
    assert lines[1] == "syncStatus: completed", run.stdout
    assert lines[2] == "found: PF1GHXN3 PF1GHXN4" or lines[2] == "found: PF1GHXN4 PF1GHXN3", run.stdout
    pages = [line.removeprefix("page: ").split() for line in lines[3:-1]]
    assert [len(p) for p in pages] == [2, 1], run.stdout
    assert sorted(sum(pages, [])) == ["PF1GHXN3", "PF1GHXN4", "R90ZZ001"], run.stdout
    assert lines[-1] == "error: TooManyRequests", run.stdout


def test_the_curl_proxy_recipe_is_the_script_this_suite_runs():
    assert doc_recipe("curl-proxy") == source_region(ROOT / "tests" / "compat" / "recipes" / "curl-proxy.sh", "curl-proxy")


def test_the_curl_proxy_recipe_runs_with_microsofts_host_names(start_server, tmp_path):
    server: DmsyncServer = start_server("--sync-duration", "0s", "--proxy-listen", "127.0.0.1:0")
    assert server.proxy, server.logs()
    server.register_devices(
        [
            {"serialNumber": f"PX{i}", "hardwareHash": f"cHJveHk{i}", "manufacturer": "Contoso", "model": "Laptop 7"}
            for i in range(3)
        ]
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("DMSYNC_") and "proxy" not in k.lower()}
    env.update({"B": server.base, "P": server.proxy})
    script = "set -euo pipefail\n" + doc_recipe("curl-proxy")
    run = subprocess.run(["bash", "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=45)
    assert run.returncode == 0, f"exit {run.returncode}\n{run.stdout}\n{run.stderr}"
    lines = run.stdout.splitlines()
    assert lines[0] == "sync: 204", run.stdout
    assert lines[1:-1] == [
        "page of 2 from https://graph.microsoft.com",
        "page of 1 from https://graph.microsoft.com",
    ], run.stdout
    assert lines[-1] == "example.com: 403", run.stdout
