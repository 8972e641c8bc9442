// The console's Autopilot pages in a real browser: a CSV with bad rows refused with each row
// named, a good one imported and followed to its results, the Sync button through inProgress to
// completed and then into its cooldown (an import counts as a sync, so it comes last), and a list of 10,000 devices filtered by serial number
// and by group tag and paged by skiptoken. One server serves the whole file.

import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, test } from "node:test";
import { hardwareHash, registration } from "../lib/harness.js";
import { closeBrowser, screenshot, tenantPage, withConsole } from "../lib/console.js";

const opts = { timeout: 120_000 };
after(closeBrowser);

const HEADER = "Device Serial Number,Windows Product ID,Hardware Hash,Group Tag";
const DEVICES = 10_000;

function csvFile(name, rows) {
  const file = path.join(mkdtempSync(path.join(tmpdir(), "dmsync-csv-")), name);
  writeFileSync(file, [HEADER, ...rows].join("\r\n") + "\r\n");
  return file;
}

test("import, sync and the 10,000-device list, as the admin center shows them", opts, async () => {
  await withConsole([], async ({ server, page }) => {
    const open = (rest) => page.goto(`${server.base}${tenantPage(rest)}`);

    // A file with bad rows is refused whole, each bad row named by its line.
    await open("autopilot/import");
    await page.locator("nav.tenant a[aria-current=page]", { hasText: "Import" }).waitFor();
    const bad = csvFile("bad.csv", [`OK-1,,${hardwareHash("OK-1")},`, `,,${hardwareHash("x")},`, "BAD-3,,not*base64,"]);
    await page.setInputFiles("#csv-file", bad);
    await page.click("#upload-form button[type=submit]");
    await page.locator("#bad-rows").waitFor();
    assert.match(await page.locator(".notice.error").innerText(), /Nothing was imported: 2 rows cannot be read/);
    assert.deepEqual(await page.locator("#bad-rows tbody td.mono").allInnerTexts(), ["3", "4"]);
    await screenshot(page, "import");

    // 10,000 devices registered by the OEM, in 20 group tags; the console's Sync fetches them.
    const rows = [];
    for (let i = 0; i < DEVICES; i++) {
      rows.push({ ...registration(`SN-${String(i).padStart(5, "0")}`, `Store-${String(i % 20).padStart(2, "0")}`), model: "Surface Laptop 5" });
    }
    await server.registerDevices(rows);
    await open("autopilot/devices");
    await Promise.all([page.waitForURL(/sync=started/), page.click("#sync-button")]);
    assert.match(await page.locator(".notice.success").innerText(), /Sync started/);
    assert.equal(await page.locator("#sync-status").innerText(), "inProgress");
    assert.equal(await page.locator("#sync-button").isDisabled(), true);
    await server.advanceClock(10);
    // The panel refreshes itself until the sync is over.
    await page.locator("#sync-status", { hasText: "completed" }).waitFor({ timeout: 15_000 });
    await open("autopilot/devices");
    assert.match(await page.locator("#device-count").innerText(), /^10000 devices$/);
    assert.equal(await page.locator("#devices tbody tr").count(), 50);
    await screenshot(page, "devices");

    // Filter by serial number (exact, ignoring case), and by group tag, paged by skiptoken.
    await page.fill("input[name=serial]", "sn-04321");
    await Promise.all([page.waitForURL(/serial=sn-04321/), page.click("form[role=search] button")]);
    assert.deepEqual(await page.locator("#devices tbody td.mono").allInnerTexts(), ["SN-04321"]);
    assert.equal(await page.locator("#device-count").innerText(), "1 device matches");
    await page.fill("input[name=serial]", "");
    await page.fill("input[name=groupTag]", "Store-07");
    await Promise.all([page.waitForURL(/groupTag=Store-07/), page.click("form[role=search] button")]);
    assert.equal(await page.locator("#device-count").innerText(), "500 devices match");
    const firstPage = await page.locator("#devices tbody td.mono").allInnerTexts();
    await Promise.all([page.waitForURL(/skiptoken=/), page.click("#next-page")]);
    const secondPage = await page.locator("#devices tbody td.mono").allInnerTexts();
    assert.equal(secondPage.length, 50);
    assert.ok(secondPage.every((serial) => !firstPage.includes(serial)));
    const tags = await page.locator("#devices tbody tr td:nth-child(3)").allInnerTexts();
    assert.ok(tags.every((tag) => tag === "Store-07"), tags.join());

    // One device: its fields, its Entra device object, and its groups (none here).
    await Promise.all([page.waitForURL(/\/autopilot\/devices\/[0-9a-f-]{36}$/), page.locator("#devices tbody td.mono a").first().click()]);
    await page.locator("#entra-props").waitFor();
    assert.match(await page.locator("#device-props").innerText(), /Store-07/);
    assert.match(await page.locator("#device-groups").innerText(), /in no group/);
    await screenshot(page, "device-detail");

    // A second press inside the cooldown: 429, and a countdown to the next allowed sync.
    await open("autopilot/devices");
    await Promise.all([page.waitForURL(/sync=cooldown/), page.click("#sync-button")]);
    assert.match(await page.locator(".notice.error").innerText(), /429 Too Many Requests/);
    const countdown = page.locator("#next-sync [data-countdown]");
    const before = await countdown.innerText();
    assert.match(before, /^\d+:\d\d$/);
    await page.waitForFunction((was) => document.querySelector("#next-sync [data-countdown]").textContent !== was, before);
    await screenshot(page, "devices-sync-cooldown");

    // A good file (an import counts as a sync, so it comes after the cooldown was seen): the progress bar runs until the import job has run, then the results.
    await open("autopilot/import");
    const good = csvFile("good.csv", ["CSV-001", "CSV-002", "CSV-003"].map((s) => `${s},,${hardwareHash(s)},Kiosk`));
    await page.setInputFiles("#csv-file", good);
    await Promise.all([page.waitForURL(/\/autopilot\/import\/progress\?ids=/), page.click("#upload-form button[type=submit]")]);
    assert.match(await page.locator("#import-progress label").innerText(), /0 of 3 rows processed/);
    await server.advanceClock(15);
    await page.locator("#import-results").waitFor({ timeout: 10_000 });
    assert.deepEqual(await page.locator("#import-results tbody td.mono").allInnerTexts(), ["CSV-001", "CSV-002", "CSV-003"]);
    assert.deepEqual(await page.locator("#import-results tbody .badge").allInnerTexts(), ["complete", "complete", "complete"]);
    await screenshot(page, "import-results");
  });
});
