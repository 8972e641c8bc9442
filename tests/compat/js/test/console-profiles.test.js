// The console's deployment profiles, Exchange connectors, request journal and control pages in a
// real browser, on one server: a profile created and assigned to a dynamic group whose devices go
// from pending to assigned as the Clock advances, a connector's full sync, a fault rule that
// answers a Graph request and shows in the journal, and the throttling switch.

import assert from "node:assert/strict";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { after, test } from "node:test";
import { CONSOLE, closeBrowser, screenshot, tenantPage, withConsole } from "../lib/console.js";
import { graphClient, noRetry, registration, syncAndWait } from "../lib/harness.js";

const EXAMPLE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../../examples/exchange/mobile-devices.csv");
const SERIALS = ["CP-SALES-1", "CP-SALES-2", "CP-SALES-3"];
const opts = { timeout: 90_000 };
after(closeBrowser);

const ARGS = ["--sync-duration", "0s", "--group-processing-delay", "0s"];

/** Seeds three Autopilot devices tagged Sales, a dynamic group of them, and an Exchange connector. */
async function seed(server) {
  const client = await graphClient(server);
  await server.registerDevices(SERIALS.map((serial) => registration(serial, "Sales")));
  await syncAndWait(client);
  await client.api("/groups").post({
    displayName: "Sales devices",
    mailEnabled: false,
    mailNickname: "sales-devices",
    securityEnabled: true,
    groupTypes: ["DynamicMembership"],
    membershipRule: '(device.devicePhysicalIds -any (_ -eq "[OrderID]:Sales"))',
    membershipRuleProcessingState: "On",
  });
  const connector = await client.api("/deviceManagement/exchangeConnectors").post({
    primarySmtpAddress: "svc@contoso.com",
    serverName: "ex01.contoso.com",
    exchangeConnectorType: "onPremises",
    exchangeOrganization: "Contoso",
    version: "19.1",
  });
  return { client, connector };
}

/** The status badges of the profile's devices table, as text. */
const statuses = (page) => page.locator("#profile-devices tbody td .badge").allTextContents();

test("profiles, connectors, the journal and the control page", opts, async () => {
  await withConsole(ARGS, async ({ server, page }) => {
    const { client, connector } = await seed(server);

    // An empty tenant's profiles page, then a profile created through its form.
    await page.goto(`${server.base}${tenantPage("profiles")}`);
    await page.getByText(/^No deployment profiles in .* yet\.$/).waitFor();
    await page.getByLabel("Name", { exact: true }).fill("Sales Autopilot");
    await page.getByLabel("Description").fill("Entra join for the sales team");
    await page.getByLabel(/Device name template/).fill("SALES-%RAND:4%");
    await Promise.all([page.waitForURL(/\/profiles\/[0-9a-f-]{36}\?created=1$/), page.click("text=Create profile")]);
    await page.getByText("Created the profile.").waitFor();
    await page.getByText("Not assigned.").waitFor();

    // Assigned to the dynamic group: its devices are pending, then assigned once the Clock has
    // passed the assignment delay; the region refreshes itself meanwhile.
    await page.selectOption("#assign-target", { label: "Sales devices" });
    await Promise.all([page.waitForURL(/\?assigned=1$/), page.click('button:text-is("Assign")')]);
    await page.locator("#assignments").getByText("Sales devices").waitFor();
    await page.waitForFunction(
      () => [...document.querySelectorAll("#profile-devices tbody .badge")].filter((b) => b.textContent === "pending").length === 3,
      null,
      { timeout: 15_000 },
    );
    assert.equal(await page.locator("#profile-status").getAttribute("data-refresh"), "2000");
    assert.equal(await page.locator("#status-chart rect.status-pending").count(), 1);
    await server.advanceClock(16 * 60);
    await page.waitForFunction(
      () =>
        [...document.querySelectorAll("#profile-devices tbody .badge")].filter((b) => b.textContent === "assignedUnkownSyncState")
          .length === 3,
      null,
      { timeout: 15_000 },
    );
    assert.deepEqual(await statuses(page), Array(3).fill("assignedUnkownSyncState"));
    // Nothing is pending any more: the region stops refreshing, and the chart has one bar.
    assert.equal(await page.locator("#profile-status").getAttribute("data-refresh"), null);
    assert.equal(await page.locator("#status-chart rect.status-assignedUnkownSyncState").count(), 1);
    assert.equal(await page.locator("#status-chart rect.status-pending").count(), 0);
    assert.match(await page.locator("#status-chart title").textContent(), /assignedUnkownSyncState: 3/);
    await screenshot(page, "profile-detail");

    await page.click('nav.tenant >> text="Deployment profiles"');
    await page.locator("table.data").getByText("Sales Autopilot").waitFor();
    await screenshot(page, "profiles");

    // A full sync from the connectors page: the last sync changes from never to a time. The
    // source is set only now, so the Clock's advance above started no scheduled sync.
    await server.setExchangeSource(connector.id, { kind: "file", path: EXAMPLE });
    await page.goto(`${server.base}${tenantPage("connectors")}`);
    const lastSync = page.locator("#connectors td.last-sync");
    assert.equal((await lastSync.textContent()).trim(), "never");
    await Promise.all([page.waitForURL(/\?synced=fullSync$/), page.click('button:text-is("Full sync")')]);
    await page.getByText("A full sync started").waitFor();
    await page.locator("#connectors td.last-sync time").waitFor({ timeout: 15_000 });
    await page.locator("#connectors .badge", { hasText: "connected" }).waitFor();
    const discovered = await page.locator("#access-counts dd").allTextContents();
    assert.ok(discovered.map(Number).reduce((a, b) => a + b, 0) > 0, `discovered: ${discovered}`);
    await screenshot(page, "connectors");

    // A fault rule from the control page answers a Graph request, which the journal shows.
    await page.goto(`${server.base}${CONSOLE}/control`);
    await page.getByText("No fault rules.").waitFor();
    assert.match(await page.locator("#rule").inputValue(), /windowsAutopilotSettings/);
    await Promise.all([page.waitForURL(/done=added$/), page.click("text=Add rule")]);
    assert.equal(await page.locator("#fault-rules tbody tr").count(), 1);
    const failed = await client
      .api("/deviceManagement/windowsAutopilotSettings")
      .middlewareOptions(noRetry())
      .get()
      .catch((error) => error);
    assert.equal(failed.statusCode, 503);

    await page.click('header >> text="Requests"');
    await page.getByLabel("Path (* for any text)").fill("/beta/deviceManagement/windowsAutopilotSettings");
    await page.getByLabel("Status").fill("5xx");
    await Promise.all([page.waitForURL(/status=5xx/), page.click('button:text-is("Filter")')]);
    const row = page.locator("#journal tbody tr").first();
    // Exact: the row's response body may hold "503" inside a random request id.
    await row.getByText("503", { exact: true }).waitFor();
    await row.getByText("fault", { exact: true }).waitFor();
    await row.locator("summary").click();
    await row.getByText("Response body").waitFor();
    await screenshot(page, "requests");

    // Throttling on, then the rule deleted.
    await page.goto(`${server.base}${CONSOLE}/control`);
    await page.getByLabel("Graph's documented Intune limits").check();
    await Promise.all([page.waitForURL(/done=documented$/), page.click('button:text-is("Apply")')]);
    assert.equal(await page.locator("#throttling-mode").textContent(), "documented");
    const throttling = await (await server.admin("GET", "/_dmsync/throttling")).json();
    assert.equal(throttling.mode, "documented");
    await screenshot(page, "control");
    await Promise.all([page.waitForURL(/done=deleted$/), page.click('#fault-rules button:text-is("Delete")')]);
    await page.getByText("No fault rules.").waitFor();
    assert.deepEqual((await (await server.admin("GET", "/_dmsync/faults")).json()).value, []);

    // The pages ask for no favicon, so none reached the journal.
    const favicons = await (await server.admin("GET", "/_dmsync/requests?path=/favicon.ico")).json();
    assert.deepEqual(favicons.value, []);
  });
});
