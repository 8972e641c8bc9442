"""Tools that hard-code Microsoft's hosts, run unmodified through dmsync's proxy (README, "Run
unmodified tools through dmsync"): each runs in its own process, as its users run it, with only
the proxy and the CA bundle in its environment. The proxy answers `login.microsoftonline.com` and
`graph.microsoft.com` itself; nothing here can reach the real ones (this machine has no route to
them, and the proxy refuses every other host).
"""

from __future__ import annotations

import base64
import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from conftest import ADMIN_TOKEN, CLIENT_ID, CLIENT_SECRET, PASSWORD, TENANT, USERNAME, DmsyncServer

HERE = Path(__file__).resolve().parent
TOOLS = HERE / "tools"
VENV_BIN = Path(sys.executable).parent
TOKEN_ROUTE = "/{tenant}/oauth2/v2.0/token"


def proxied_server(start_server) -> DmsyncServer:
    """A server with its proxy, and the permission profile under which an app-only token may
    start the sync (ClientSecretCredential and IntuneCD sign in as an application)."""
    server = start_server("--sync-duration", "0s", "--proxy-listen", "127.0.0.1:0", "--permission-profile", "current")
    assert server.proxy, f"no proxy line in the banner\n{server.logs()}"
    return server


def tool_env(server: DmsyncServer, tmp_path: Path) -> dict[str, str]:
    """The environment a user sets, and nothing more: the proxy, and dmsync's CA for each way
    Python finds its trust store (requests, httpx and Python's ssl module)."""
    ca = tmp_path / "dmsync-ca.pem"
    r = httpx.get(f"{server.base}/_dmsync/ca.pem", timeout=10.0)
    assert r.status_code == 200, r.text
    ca.write_text(r.text)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("DMSYNC_") and k.lower() not in ("no_proxy", "http_proxy", "https_proxy", "all_proxy")
    }
    env.update(
        {
            "HTTPS_PROXY": server.proxy,
            "REQUESTS_CA_BUNDLE": str(ca),
            "SSL_CERT_FILE": str(ca),
            "PYTHONPATH": "",
        }
    )
    return env


def run_tool(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 45.0) -> subprocess.CompletedProcess:
    run = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert run.returncode == 0, f"{args[0]} exited {run.returncode}\n--- stdout\n{run.stdout}\n--- stderr\n{run.stderr[-6000:]}"
    return run


def token_requests(server: DmsyncServer) -> int:
    return server.request_counts(TOKEN_ROUTE, "POST").get(200, 0)


def assert_graph_accepts(server: DmsyncServer, access_token: str) -> None:
    """The token reads Graph (the Autopilot settings) on the server directly."""
    r = httpx.get(
        f"{server.base}/beta/deviceManagement/windowsAutopilotSettings",
        headers={"Authorization": f"Bearer {access_token}"},
        timeout=10.0,
    )
    assert r.status_code == 200, r.text


def test_azure_identity_and_the_beta_sdk_with_their_defaults(start_server, tmp_path):
    server = proxied_server(start_server)
    run = run_tool(
        [sys.executable, str(TOOLS / "azure_identity_graph.py"), TENANT, CLIENT_ID, CLIENT_SECRET],
        tool_env(server, tmp_path),
        tmp_path,
    )
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["sync"] is None, out  # 204, no body
    assert out["last_manual_sync_trigger"], out
    assert out["sync_status"] in ("inProgress", "completed"), out
    # The credential asked dmsync's identity provider, through the proxy, once.
    assert token_requests(server) == 1, server.request_counts(TOKEN_ROUTE, "POST")
    assert server.request_counts("/beta/deviceManagement/windowsAutopilotSettings/sync", "POST") == {204: 1}


def test_msal_confidential_client_then_its_cache(start_server, tmp_path):
    server = proxied_server(start_server)
    run = run_tool(
        [sys.executable, str(TOOLS / "msal_confidential.py"), TENANT, CLIENT_ID, CLIENT_SECRET],
        tool_env(server, tmp_path),
        tmp_path,
    )
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["first"]["error"] is None, out
    assert out["first"]["token_type"] == "Bearer", out
    assert out["first"]["token_source"] == "identity_provider", out
    assert out["second"]["token_source"] == "cache" and out["second"]["same_token"], out
    assert token_requests(server) == 1, server.request_counts(TOKEN_ROUTE, "POST")


def test_msal_public_client_password_sign_in_then_silent_renewal(start_server, tmp_path):
    """MSAL Python signs the development user in through `organizations`: it asks the user
    realm, then the password grant, caches the account from the id token and client_info, and
    renews silently, from its cache and then with the refresh token."""
    server = proxied_server(start_server)
    run = run_tool(
        [sys.executable, str(TOOLS / "msal_public_password.py"), CLIENT_ID, USERNAME, PASSWORD],
        tool_env(server, tmp_path),
        tmp_path,
    )
    out = json.loads(run.stdout.strip().splitlines()[-1])
    signed_in, cached, renewed = out["signed_in"], out["cached"], out["renewed"]
    assert signed_in["error"] is None and signed_in["has_access_token"], out
    assert signed_in["username"] == USERNAME, out
    assert [a["username"] for a in out["accounts"]] == [USERNAME], out
    assert out["accounts"][0]["home_account_id"].endswith(f".{TENANT}"), out
    assert cached["token_source"] == "cache" and cached["access_token"] == signed_in["access_token"], out
    assert renewed["error"] is None and renewed["token_source"] == "identity_provider", out
    assert renewed["access_token"] != signed_in["access_token"], out
    assert server.request_counts("/{tenant}/userrealm/{user}", "GET") == {200: 1}, server.request_counts(
        "/{tenant}/userrealm/{user}", "GET"
    )
    # The sign-in and the forced renewal; the cached read asked nobody.
    assert token_requests(server) == 2, server.request_counts(TOKEN_ROUTE, "POST")
    assert_graph_accepts(server, renewed["access_token"])


def test_msal_auth_code_flow_with_pkce_through_the_sign_in_page(start_server, tmp_path):
    """MSAL Python's authorization code flow (what `acquire_token_interactive` runs), with the
    page's form filled and posted as a browser would: MSAL checks the state and the id token's
    nonce, redeems the code with its PKCE verifier, and caches the account."""
    server = proxied_server(start_server)
    run = run_tool(
        [sys.executable, str(TOOLS / "msal_public_auth_code.py"), CLIENT_ID, USERNAME, PASSWORD],
        tool_env(server, tmp_path),
        tmp_path,
    )
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["error"] is None and out["access_token"], out
    assert out["username"] == USERNAME and out["nonce_checked"] and out["has_refresh_token"], out
    assert out["accounts"] == [USERNAME], out
    assert out["cached_source"] == "cache" and out["cached_same"], out
    assert server.request_counts("/{tenant}/oauth2/v2.0/authorize", "GET") == {200: 1}
    assert server.request_counts("/{tenant}/oauth2/v2.0/authorize", "POST") == {302: 1}
    assert token_requests(server) == 1, server.request_counts(TOKEN_ROUTE, "POST")
    assert_graph_accepts(server, out["access_token"])


def test_msal_device_flow_with_the_admin_api_approving(start_server, tmp_path):
    """MSAL Python's device flow through `organizations`: the code from dmsync's devicecode
    endpoint, with a verification page on the host MSAL asked (login.microsoftonline.com,
    through the proxy); approved through the admin API before the first poll; the token, the
    cached account and a silent token from the cache."""
    server = proxied_server(start_server)
    run = run_tool(
        [sys.executable, str(TOOLS / "device_flow.py"), "msal", CLIENT_ID, USERNAME, server.base, ADMIN_TOKEN],
        tool_env(server, tmp_path),
        tmp_path,
    )
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["approved"] == 204, out
    assert out["verification_uri"] == "https://login.microsoftonline.com/organizations/oauth2/deviceauth", out
    assert out["message"].startswith("To sign in, use a web browser to open the page https://login."), out
    assert out["error"] is None and out["access_token"], out
    assert out["username"] == USERNAME and out["has_refresh_token"], out
    assert out["accounts"] == [USERNAME] and out["silent_source"] == "cache", out
    assert server.request_counts("/{tenant}/oauth2/v2.0/devicecode", "POST") == {200: 1}
    assert token_requests(server) == 1, server.request_counts(TOKEN_ROUTE, "POST")
    assert_graph_accepts(server, out["access_token"])


def test_azure_identity_device_code_credential_with_a_prompt_that_approves(start_server, tmp_path):
    """azure-identity's DeviceCodeCredential, whose prompt_callback approves the code through
    the admin API while the credential polls."""
    server = proxied_server(start_server)
    run = run_tool(
        [sys.executable, str(TOOLS / "device_flow.py"), "azure-identity", CLIENT_ID, USERNAME, server.base, ADMIN_TOKEN],
        tool_env(server, tmp_path),
        tmp_path,
    )
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["approved"] == 204, out
    assert out["verification_uri"].startswith("https://login.microsoftonline.com/"), out
    assert out["expires_on"] > time.time(), out
    assert_graph_accepts(server, out["access_token"])


def test_certificate_credentials_of_msal_and_azure_identity(start_server, tmp_path):
    """An app registered through the admin API with a certificate: MSAL Python (with the
    thumbprint the user gives it) and azure-identity's CertificateCredential (which reads the
    thumbprint off the certificate) each sign client assertions that dmsync accepts, and each
    token reads Graph."""
    server = proxied_server(start_server)
    r = server.admin_post(
        f"/_dmsync/tenants/{TENANT}/applications", {"displayName": "Unattended backup", "roles": ["Group.Read.All"]}
    )
    assert r.status_code == 201, r.text
    client_id = r.json()["appId"]
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "unattended-backup")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    r = server.admin_post(f"/_dmsync/tenants/{TENANT}/applications/{client_id}/certificates", {"pem": cert_pem})
    assert r.status_code == 201, r.text
    thumbprint = cert.fingerprint(hashes.SHA1()).hex().upper()
    assert r.json()["thumbprint"] == thumbprint, r.json()
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    pem_path = tmp_path / "unattended-backup.pem"
    pem_path.write_text(key_pem + cert_pem)

    run = run_tool(
        [sys.executable, str(TOOLS / "certificate_credentials.py"), TENANT, client_id, str(pem_path), thumbprint],
        tool_env(server, tmp_path),
        tmp_path,
    )
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["msal"]["error"] is None, out
    assert out["msal"]["token_source"] == "identity_provider" and out["msal"]["graph"] == 200, out
    assert out["msal_cached"]["token_source"] == "cache", out
    assert out["azure_identity"]["graph"] == 200, out
    # One assertion each; none refused.
    assert server.request_counts(TOKEN_ROUTE, "POST") == {200: 2}, server.request_counts(TOKEN_ROUTE, "POST")


# Every IntuneCD backup module but the Autopilot devices, which `--autopilot` adds; IntuneCD's
# own names, as `IntuneCD-startbackup --help` lists them for `--exclude`.
INTUNECD_OTHER_MODULES = [
    "assignments", "AppConfigurations", "AppProtection", "APNs", "VPP", "Applications", "Compliance",
    "NotificationTemplate", "Profiles", "GPOConfigurations", "AppleEnrollmentProfile",
    "WindowsEnrollmentProfile", "EnrollmentStatusPage", "Filters", "ManagedGooglePlay", "Intents",
    "CompliancePartner", "ManagementPartner", "RemoteAssistancePartner", "ProactiveRemediation",
    "PowershellScripts", "ShellScripts", "ConfigurationPolicies", "ConditionalAccess",
    "EnrollmentConfigurations", "DeviceManagementSettings", "CustomAttributes", "DeviceCategories",
    "windowsDriverUpdates", "windowsFeatureUpdates", "windowsQualityUpdates", "Roles", "ScopeTags",
    "VPPusedLicenseCount", "GPlaySyncTime", "CompliancePartnerHeartbeat", "DeviceCompliancePolicies",
    "ComplianceScripts", "ReusablePolicySettings", "SettingsCatalog",
]  # fmt: skip


def test_intunecd_backs_up_every_autopilot_device(start_server, tmp_path):
    server = proxied_server(start_server)
    # More devices than one page, so IntuneCD follows @odata.nextLink, which names
    # graph.microsoft.com and so goes back through the proxy.
    devices = 150
    server.register_devices(
        [
            {
                "serialNumber": f"ICD{i:05d}",
                "hardwareHash": base64.b64encode(f"intunecd-hash-{i}".encode()).decode(),
                "manufacturer": "Contoso",
                "model": "Laptop 7",
                "groupTag": "Backup",
            }
            for i in range(devices)
        ]
    )
    sync_and_wait(server)
    backup, run = run_intunecd_backup(server, tmp_path, INTUNECD_OTHER_MODULES)
    files = sorted((backup / "Autopilot Devices").glob("*.json"))
    assert len(files) == devices, f"{len(files)} files\n{run.stdout[-3000:]}"
    serials = {json.loads(f.read_text())["serialNumber"] for f in files}
    assert serials == {f"ICD{i:05d}" for i in range(devices)}
    assert "error" not in run.stdout.lower(), run.stdout[-3000:]
    # Two pages (dmsync's default page is 100 devices), the second from the nextLink.
    pages = server.request_counts("/beta/deviceManagement/windowsAutopilotDeviceIdentities", "GET")
    assert pages == {200: 2}, pages


def test_intunecd_backs_up_the_scope_tags(start_server, tmp_path):
    server = proxied_server(start_server)
    token = server.delegated_token()
    # Names with characters IntuneCD replaces in file names.
    for name, description in [("Sales EU", "Sales devices"), ("Berlin: Lab/2", "")]:
        r = httpx.post(
            f"{server.base}/beta/deviceManagement/roleScopeTags",
            headers={"Authorization": f"Bearer {token}"},
            json={"displayName": name, "description": description},
            timeout=10.0,
        )
        assert r.status_code == 200, r.text
    server.register_devices(
        [{"serialNumber": "ICD-TAGS-1", "hardwareHash": base64.b64encode(b"intunecd-tags").decode()}]
    )
    sync_and_wait(server)
    backup, run = run_intunecd_backup(server, tmp_path, [m for m in INTUNECD_OTHER_MODULES if m != "ScopeTags"])
    assert "error" not in run.stdout.lower(), run.stdout[-3000:]
    tags = {f.name: json.loads(f.read_text()) for f in (backup / "Scope Tags").glob("*.json")}
    assert sorted(tags) == ["Berlin_ Lab_2.json", "Default.json", "Sales EU.json"], run.stdout[-3000:]
    # IntuneCD keeps what it read, less the id, which differs between tenants.
    assert tags["Sales EU.json"] == {"displayName": "Sales EU", "description": "Sales devices", "isBuiltIn": False}
    assert tags["Default.json"] == {"displayName": "Default", "description": "", "isBuiltIn": True}
    assert tags["Berlin_ Lab_2.json"]["displayName"] == "Berlin: Lab/2"
    devices = [json.loads(f.read_text())["serialNumber"] for f in (backup / "Autopilot Devices").glob("*.json")]
    assert devices == ["ICD-TAGS-1"], run.stdout[-3000:]
    # Once for the names IntuneCD puts on every object, once for the scope tag backup itself.
    assert server.request_counts("/beta/deviceManagement/roleScopeTags", "GET") == {200: 2}


def run_intunecd_backup(
    server: DmsyncServer, tmp_path: Path, exclude: list[str]
) -> tuple[Path, subprocess.CompletedProcess]:
    """`IntuneCD-startbackup` with the Autopilot devices and every module but `exclude`, into
    a new directory, as an application (the development app)."""
    backup = tmp_path / "backup"
    backup.mkdir()
    env = tool_env(server, tmp_path)
    # IntuneCD's standalone mode reads the app registration from the environment and signs in
    # with MSAL at https://login.microsoftonline.com/{TENANT_NAME}.
    env.update({"TENANT_NAME": "contoso.onmicrosoft.com", "CLIENT_ID": CLIENT_ID, "CLIENT_SECRET": CLIENT_SECRET})
    run = run_tool(
        [str(VENV_BIN / "IntuneCD-startbackup"), "-m", "1", "-o", "json", "--autopilot", "-p", str(backup),
         "-e", *exclude],
        env,
        tmp_path,
        timeout=90.0,
    )  # fmt: skip
    return backup, run


def sync_and_wait(server: DmsyncServer) -> None:
    """Starts an Autopilot sync, so that registered devices become device identities, and waits
    until it has completed."""
    sync = httpx.post(
        f"{server.base}/beta/deviceManagement/windowsAutopilotSettings/sync",
        headers={"Authorization": f"Bearer {server.delegated_token()}"},
        timeout=10.0,
    )
    assert sync.status_code == 204, sync.text
    wait_for_sync(server)


def wait_for_sync(server: DmsyncServer) -> None:
    token = server.delegated_token()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        r = httpx.get(
            f"{server.base}/beta/deviceManagement/windowsAutopilotSettings",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10.0,
        )
        if r.json().get("syncStatus") == "completed":
            return
        time.sleep(0.2)
    raise AssertionError(f"the sync did not complete: {r.text}")


def test_aiohttp_with_trust_env_and_ssl_cert_file(start_server, tmp_path):
    """aiohttp reads HTTPS_PROXY only with trust_env=True, and its default SSL context reads
    SSL_CERT_FILE through OpenSSL's default verify paths (docs/CLIENTS.md's table)."""
    server = proxied_server(start_server)
    script = (
        "import asyncio, aiohttp, sys\n"
        "async def main():\n"
        "    async with aiohttp.ClientSession(trust_env=True) as s:\n"
        "        async with s.get(sys.argv[1]) as r:\n"
        "            print(r.status, (await r.json())['token_endpoint'])\n"
        "asyncio.run(main())\n"
    )
    url = f"https://login.microsoftonline.com/{TENANT}/v2.0/.well-known/openid-configuration"
    run = run_tool([sys.executable, "-c", script, url], tool_env(server, tmp_path), tmp_path)
    assert run.stdout.split() == ["200", f"https://login.microsoftonline.com/{TENANT}/oauth2/v2.0/token"], run.stdout


def test_the_debian_system_store_recipe(start_server, tmp_path):
    """docs/CLIENTS.md's Debian recipe (a `.crt` under the local certificates directory, then
    update-ca-certificates), run on a private copy of the store so that the machine's own trust
    is not touched; curl then trusts the proxy's certificate through the bundle it wrote."""
    server = proxied_server(start_server)
    env = tool_env(server, tmp_path)
    local, etc, hooks = (tmp_path / d for d in ("local", "etc", "hooks"))
    for d in (local, etc, hooks):
        d.mkdir()
    (local / "dmsync-ca.crt").write_text((tmp_path / "dmsync-ca.pem").read_text())
    update = subprocess.run(
        ["update-ca-certificates", "--localcertsdir", str(local), "--etccertsdir", str(etc),
         "--hooksdir", str(hooks), "--certbundle", "ca-certificates.crt"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert update.returncode == 0, update.stderr
    bundle = etc / "ca-certificates.crt"
    # The store is made afresh, so every system root is "added"; dmsync's CA must be among them.
    assert (tmp_path / "dmsync-ca.pem").read_text().strip() in bundle.read_text(), update.stdout
    assert (etc / "dmsync-ca.pem").is_symlink(), sorted(p.name for p in etc.iterdir())[:5]
    run = run_tool(
        ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--proxy", server.proxy, "--cacert", str(bundle),
         f"https://login.microsoftonline.com/{TENANT}/v2.0/.well-known/openid-configuration"],
        env, tmp_path,
    )  # fmt: skip
    assert run.stdout == "200", run.stdout


def test_an_intunecd_backup_replays_into_another_dmsync(start_server, tmp_path, dmsync_bin):
    """A real IntuneCD backup of one dmsync (devices, a deployment profile assigned to a
    dynamic group, a scope tag) loaded into a fresh one with `dmsync seed --intunecd`: the
    second has the same shape, the group found again by its name and rule."""
    source = proxied_server(start_server)
    token = source.delegated_token()
    graph = {"Authorization": f"Bearer {token}"}
    source.register_devices(
        [{"serialNumber": f"REPLAY-{i}", "hardwareHash": base64.b64encode(f"replay-{i}".encode()).decode(),
          "groupTag": "Kiosk"} for i in range(3)]
    )  # fmt: skip
    sync_and_wait(source)
    r = httpx.post(f"{source.base}/beta/deviceManagement/roleScopeTags", headers=graph,
                   json={"displayName": "Kiosks", "description": "Kiosk devices"}, timeout=10.0)  # fmt: skip
    assert r.status_code == 200, r.text
    rule = '(device.devicePhysicalIds -any (_ -eq "[OrderID]:Kiosk"))'
    r = httpx.post(f"{source.base}/v1.0/groups", headers=graph, timeout=10.0, json={
        "displayName": "Kiosk devices", "mailEnabled": False, "mailNickname": "kiosks", "securityEnabled": True,
        "groupTypes": ["DynamicMembership"], "membershipRule": rule, "membershipRuleProcessingState": "On",
    })  # fmt: skip
    assert r.status_code == 201, r.text
    group_id = r.json()["id"]
    profiles = f"{source.base}/beta/deviceManagement/windowsAutopilotDeploymentProfiles"
    r = httpx.post(profiles, headers=graph, timeout=10.0, json={
        "@odata.type": "#microsoft.graph.azureADWindowsAutopilotDeploymentProfile", "displayName": "Kiosk profile",
        "deviceNameTemplate": "KIOSK-%RAND:4%",
    })  # fmt: skip
    assert r.status_code == 201, r.text
    r = httpx.post(f"{profiles}/{r.json()['id']}/assignments", headers=graph, timeout=10.0, json={
        "target": {"@odata.type": "#microsoft.graph.groupAssignmentTarget", "groupId": group_id},
    })  # fmt: skip
    assert r.status_code == 201, r.text

    keep = {"assignments", "WindowsEnrollmentProfile", "ScopeTags"}
    backup, run = run_intunecd_backup(source, tmp_path, [m for m in INTUNECD_OTHER_MODULES if m not in keep])
    assert "error" not in run.stdout.lower(), run.stdout[-3000:]

    target = start_server()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DMSYNC_")}
    env["DMSYNC_GRAPH_URL"] = target.base
    seed = subprocess.run([dmsync_bin, "seed", "--intunecd", str(backup)], env=env, capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert seed.returncode == 0, seed.stderr

    graph = {"Authorization": f"Bearer {target.delegated_token()}"}
    devices = httpx.get(f"{target.base}/beta/deviceManagement/windowsAutopilotDeviceIdentities", headers=graph).json()
    assert sorted((d["serialNumber"], d["groupTag"]) for d in devices["value"]) == [
        (f"REPLAY-{i}", "Kiosk") for i in range(3)
    ]
    tags = httpx.get(f"{target.base}/beta/deviceManagement/roleScopeTags", headers=graph).json()["value"]
    assert [t["displayName"] for t in tags] == ["Default", "Kiosks"]
    groups = httpx.get(f"{target.base}/v1.0/groups", headers=graph).json()["value"]
    assert [(g["displayName"], g["membershipRule"]) for g in groups] == [("Kiosk devices", rule)]
    replayed = httpx.get(
        f"{target.base}/beta/deviceManagement/windowsAutopilotDeploymentProfiles?$expand=assignments", headers=graph
    ).json()["value"]
    assert [p["displayName"] for p in replayed] == ["Kiosk profile"]
    assert replayed[0]["deviceNameTemplate"] == "KIOSK-%RAND:4%"
    assert [a["target"]["groupId"] for a in replayed[0]["assignments"]] == [groups[0]["id"]]
