"""The Autopilot world around the sync (groups, deployment profiles, their assignments and the
assignment engine) through real clients: the Python Graph SDKs' models, and IntuneCD, unmodified,
backing up profiles with their assignments (read with $batch) and recreating them in an empty
tenant.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from pathlib import Path

import httpx

from msgraph.generated.models.group import Group
from msgraph_beta.generated.models.azure_a_d_windows_autopilot_deployment_profile import (
    AzureADWindowsAutopilotDeploymentProfile,
)
from msgraph_beta.generated.models.group_assignment_target import GroupAssignmentTarget
from msgraph_beta.generated.models.out_of_box_experience_setting import OutOfBoxExperienceSetting
from msgraph_beta.generated.models.windows_autopilot_deployment_profile_assignment import (
    WindowsAutopilotDeploymentProfileAssignment,
)
from msgraph_beta.generated.models.windows_autopilot_profile_assignment_status import (
    WindowsAutopilotProfileAssignmentStatus,
)

from conftest import CLIENT_ID, CLIENT_SECRET, DmsyncServer
from test_through_the_proxy import (
    INTUNECD_OTHER_MODULES,
    VENV_BIN,
    proxied_server,
    run_intunecd_backup,
    run_tool,
    sync_and_wait,
    tool_env,
)

SALES, OTHER = 120, 30


def test_dynamic_group_profile_and_assignment_through_the_sdks(start_server):
    server: DmsyncServer = start_server("--sync-duration", "0s")
    rows = [
        {
            "serialNumber": f"SDK{i:04d}",
            "hardwareHash": base64.b64encode(f"sdk-hash-{i}".encode()).decode(),
            "manufacturer": "Contoso",
            "model": "Laptop 7",
            "groupTag": "Sales" if i < SALES else "Lab",
        }
        for i in range(SALES + OTHER)
    ]
    server.register_devices(rows)
    sync_and_wait(server)
    asyncio.run(_flow(server))


async def _flow(server: DmsyncServer) -> None:
    v1, beta = server.v1_client(), server.client()
    group = await v1.groups.post(
        Group(
            display_name="Autopilot Sales",
            mail_enabled=False,
            mail_nickname="autopilot-sales",
            security_enabled=True,
            group_types=["DynamicMembership"],
            membership_rule='(device.devicePhysicalIds -any (_ -eq "[OrderID]:Sales"))',
            membership_rule_processing_state="On",
        )
    )
    assert group is not None and group.id, group
    assert group.group_types == ["DynamicMembership"]

    profiles = beta.device_management.windows_autopilot_deployment_profiles
    profile = await profiles.post(
        AzureADWindowsAutopilotDeploymentProfile(
            display_name="Sales devices",
            description="Made by the SDK",
            device_name_template="SALES-%RAND:5%",
            out_of_box_experience_setting=OutOfBoxExperienceSetting(
                privacy_settings_hidden=True, eula_hidden=True, escape_link_hidden=True
            ),
        )
    )
    assert isinstance(profile, AzureADWindowsAutopilotDeploymentProfile), profile
    assert profile.id and profile.display_name == "Sales devices"

    assignment = await profiles.by_windows_autopilot_deployment_profile_id(profile.id).assignments.post(
        WindowsAutopilotDeploymentProfileAssignment(target=GroupAssignmentTarget(group_id=group.id))
    )
    assert assignment is not None and assignment.id == f"{profile.id}_{group.id}_0", assignment
    assert isinstance(assignment.target, GroupAssignmentTarget)

    # Past the group processing delay, then the profile assignment delay, on dmsync's clock; a
    # new token each time, since the clock also ages the tokens.
    deadline = time.monotonic() + 30
    while True:
        server.advance_clock(600)
        await asyncio.sleep(0.3)
        statuses = await _statuses_by_serial(server.client())
        sales = [s for serial, s in statuses.items() if int(serial[3:]) < SALES]
        if all(s == WindowsAutopilotProfileAssignmentStatus.AssignedUnkownSyncState for s in sales):
            break
        assert time.monotonic() < deadline, statuses
    assert len(statuses) == SALES + OTHER
    others = {s for serial, s in statuses.items() if int(serial[3:]) >= SALES}
    assert others == {WindowsAutopilotProfileAssignmentStatus.NotAssigned}, others

    members = await server.v1_client().groups.by_group_id(group.id).members.get()
    # The first page of the group's members; the rest is behind the nextLink.
    assert members is not None and len(members.value) == 100 and members.odata_next_link, members


async def _statuses_by_serial(beta) -> dict[str, WindowsAutopilotProfileAssignmentStatus]:
    """Every device, page by page through the SDK's own nextLink request."""
    devices = beta.device_management.windows_autopilot_device_identities
    page = await devices.get()
    out = {}
    while True:
        for d in page.value:
            out[d.serial_number] = d.deployment_profile_assignment_status
        if not page.odata_next_link:
            return out
        page = await devices.with_url(page.odata_next_link).get()


# Every IntuneCD update module but the Windows enrollment profiles and the scope tags
# (`IntuneCD-startupdate --help`): the update maps the backup's scope tag names back to ids only
# when the scope tag module runs.
INTUNECD_OTHER_UPDATE_MODULES = [
    "AppConfigurations", "AppProtection", "Compliance", "NotificationTemplate", "Profiles", "GPOConfigurations",
    "AppleEnrollmentProfile", "EnrollmentStatusPage", "Filters", "Intents", "ProactiveRemediation",
    "PowershellScripts", "ShellScripts", "ConfigurationPolicies", "ConditionalAccess", "EnrollmentConfigurations",
    "DeviceManagementSettings", "CustomAttributes", "DeviceCategories", "Roles",
    "DeviceCompliancePolicies", "ComplianceScripts", "ReusablePolicySettings",
]  # fmt: skip

SALES_RULE = '(device.devicePhysicalIds -any (_ -eq "[OrderID]:Sales"))'


def graph(server: DmsyncServer, method: str, path: str, body=None) -> httpx.Response:
    return httpx.request(
        method,
        f"{server.base}{path}",
        headers={"Authorization": f"Bearer {server.delegated_token()}"},
        json=body,
        timeout=10.0,
    )


def test_intunecd_backs_up_profiles_with_assignments_and_recreates_them_in_an_empty_tenant(start_server, tmp_path):
    source = proxied_server(start_server)
    source.register_devices(
        [{"serialNumber": "ICD-PROF-1", "hardwareHash": base64.b64encode(b"icd-prof").decode(), "groupTag": "Sales"}]
    )
    sync_and_wait(source)
    group = graph(source, "POST", "/beta/groups", {
        "displayName": "Autopilot Sales", "mailEnabled": False, "mailNickname": "autopilotsales",
        "securityEnabled": True, "groupTypes": ["DynamicMembership"], "membershipRule": SALES_RULE,
        "membershipRuleProcessingState": "On",
    })  # fmt: skip
    assert group.status_code == 201, group.text
    profile = graph(source, "POST", "/beta/deviceManagement/windowsAutopilotDeploymentProfiles", {
        "@odata.type": "#microsoft.graph.azureADWindowsAutopilotDeploymentProfile",
        "displayName": "Sales devices", "description": "Backed up by IntuneCD", "deviceNameTemplate": "SALES-%RAND:4%",
        "outOfBoxExperienceSetting": {"privacySettingsHidden": True, "eulaHidden": True, "userType": "standard",
                                      "deviceUsageType": "singleUser", "escapeLinkHidden": True},
    })  # fmt: skip
    assert profile.status_code == 201, profile.text
    profile_id, group_id = profile.json()["id"], group.json()["id"]
    assignment = graph(source, "POST", f"/beta/deviceManagement/windowsAutopilotDeploymentProfiles/{profile_id}/assignments",
                       {"target": {"@odata.type": "#microsoft.graph.groupAssignmentTarget", "groupId": group_id}})
    assert assignment.status_code == 201, assignment.text

    keep = {"WindowsEnrollmentProfile", "assignments", "ScopeTags"}
    backup, run = run_intunecd_backup(source, tmp_path, [m for m in INTUNECD_OTHER_MODULES if m not in keep])
    assert "error" not in run.stdout.lower(), run.stdout[-3000:]
    assert source.request_counts("/beta/$batch", "POST").get(200, 0) >= 1, "assignments are read by $batch"
    saved = json.loads((backup / "Enrollment Profiles" / "Windows" / "Sales devices_azureADWindowsAutopilotDeploymentProfile.json").read_text())
    assert saved["deviceNameTemplate"] == "SALES-%RAND:4%"
    [target] = [a["target"] for a in saved["assignments"]]
    assert target["groupName"] == "Autopilot Sales" and target["groupType"] == "DynamicMembership", target
    assert target["membershipRule"] == SALES_RULE
    assert [f.name for f in (backup / "Autopilot Devices").glob("*.json")], "the devices are backed up too"
    assert (backup / "Scope Tags" / "Default.json").exists()

    # A second dmsync is a second tenant, empty: IntuneCD creates the group (-g) and the profile,
    # then assigns it (-u).
    target_server = proxied_server(start_server)
    env = tool_env(target_server, tmp_path)
    env.update({"TENANT_NAME": "contoso.onmicrosoft.com", "CLIENT_ID": CLIENT_ID, "CLIENT_SECRET": CLIENT_SECRET})
    update = run_tool(
        [str(VENV_BIN / "IntuneCD-startupdate"), "-m", "1", "-p", str(backup), "-u", "-g",
         "-e", *INTUNECD_OTHER_UPDATE_MODULES],
        env,
        tmp_path,
        timeout=90.0,
    )  # fmt: skip
    assert "error" not in update.stdout.lower(), update.stdout[-3000:]
    created = graph(target_server, "GET", "/beta/deviceManagement/windowsAutopilotDeploymentProfiles").json()["value"]
    assert [p["displayName"] for p in created] == ["Sales devices"], update.stdout[-3000:]
    assert created[0]["deviceNameTemplate"] == "SALES-%RAND:4%"
    assert created[0]["description"] == "Backed up by IntuneCD"
    groups = graph(target_server, "GET", "/beta/groups").json()["value"]
    assert [(g["displayName"], g["membershipRule"]) for g in groups] == [("Autopilot Sales", SALES_RULE)], groups
    assignments = graph(
        target_server, "GET", f"/beta/deviceManagement/windowsAutopilotDeploymentProfiles/{created[0]['id']}/assignments"
    ).json()["value"]
    assert [a["target"].get("groupId") for a in assignments] == [groups[0]["id"]], assignments
