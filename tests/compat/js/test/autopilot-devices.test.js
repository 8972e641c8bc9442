// Imported identities and Autopilot device identities through the real graph-client, on v1.0
// and beta: create, /import, list with PageIterator, get, delete; $filter=contains(…),
// $select, $top, nextLink paging and updateDeviceProperties. The client is the recipe's: the
// stock chain on a --tls server, so PageIterator follows dmsync's https nextLinks unaided.

import assert from "node:assert/strict";
import { test } from "node:test";
import { PageIterator } from "@microsoft/microsoft-graph-client";
import { VERSIONS, expectGraphError, graphClient, hardwareHash, registration, syncAndWait, waitFor, withServer } from "../lib/harness.js";

const IMPORTED = "/deviceManagement/importedWindowsAutopilotDeviceIdentities";
const DEVICES = "/deviceManagement/windowsAutopilotDeviceIdentities";
const opts = { timeout: 90_000 };

/** Every item of a collection, through the SDK's PageIterator, and the size of each page. */
async function iterate(client, firstPage) {
  const items = [];
  const pageSizes = [];
  let page;
  const iterator = new PageIterator(client, firstPage, (item) => {
    // PageIterator keeps the current page's `value` array in `collection`.
    if (iterator.collection !== page) {
      page = iterator.collection;
      pageSizes.push(0);
    }
    pageSizes[pageSizes.length - 1] += 1;
    items.push(item);
    return true;
  });
  await iterator.iterate();
  assert.ok(iterator.isComplete());
  return { items, pageSizes };
}

for (const version of VERSIONS) {
  test(`${version}: create, /import, list with PageIterator, get, delete imported identities`, opts, () =>
    withServer(["--sync-duration", "0s", "--import-delay", "600s"], async (server) => {
      const client = await graphClient(server, { version });
      const hash = hardwareHash("JS-ONE");
      const created = await client.api(IMPORTED).post({
        "@odata.type": "#microsoft.graph.importedWindowsAutopilotDeviceIdentity",
        serialNumber: "JS-ONE",
        hardwareIdentifier: hash,
        groupTag: "Sales",
        productKey: "",
      });
      assert.match(created.id, /^[0-9a-f-]{36}$/);
      assert.equal(created.hardwareIdentifier, hash);
      assert.equal(created.state.deviceImportStatus, "unknown");

      const batch = Array.from({ length: 5 }, (_, n) => ({ serialNumber: `JS-IMP-${n}`, hardwareIdentifier: hardwareHash(`JS-IMP-${n}`), groupTag: "Batch" }));
      const imported = await client.api(`${IMPORTED}/import`).post({ importedWindowsAutopilotDeviceIdentities: batch });
      assert.equal(imported.value.length, 5);
      assert.equal(new Set(imported.value.map((i) => i.importId)).size, 1, "one import request");
      assert.ok(imported.value.every((i) => i.state.deviceImportStatus === "unknown"));

      // A page of 2 and PageIterator over the absolute nextLinks: 2 + 2 + 2. Over --tls they
      // are https links to dmsync itself, which the client follows as they are.
      const first = await client.api(IMPORTED).top(2).get();
      assert.ok(first["@odata.nextLink"].startsWith(`${server.base}/${version}${IMPORTED}?`), first["@odata.nextLink"]);
      const { items, pageSizes } = await iterate(client, first);
      assert.deepEqual(pageSizes, [2, 2, 2]);
      assert.deepEqual(items.map((i) => i.serialNumber).sort(), ["JS-IMP-0", "JS-IMP-1", "JS-IMP-2", "JS-IMP-3", "JS-IMP-4", "JS-ONE"]);

      await server.advanceClock(601);
      const ids = imported.value.map((i) => i.id);
      const done = await waitFor("the imports to be processed", async () => {
        const all = await Promise.all(ids.map((id) => client.api(`${IMPORTED}/${id}`).get()));
        return all.every((i) => i.state.deviceImportStatus !== "unknown") && all;
      });
      for (const item of done) {
        assert.equal(item.state.deviceImportStatus, "complete", JSON.stringify(item.state));
        const device = await client.api(`${DEVICES}/${item.state.deviceRegistrationId}`).get();
        assert.equal(device.serialNumber, item.serialNumber);
        assert.equal(device.groupTag, "Batch");
      }

      assert.equal(await client.api(`${IMPORTED}/${created.id}`).delete(), undefined);
      await expectGraphError(client.api(`${IMPORTED}/${created.id}`).get(), 404, "ResourceNotFound");
      await expectGraphError(client.api(`${IMPORTED}/${created.id}`).delete(), 404, "ResourceNotFound");
      const left = await client.api(IMPORTED).get();
      assert.equal(left.value.length, 5);
      assert.ok(!left.value.some((i) => i.id === created.id));
    }));

  test(`${version}: device identities with contains(), $select, $top, paging and updateDeviceProperties`, opts, () =>
    withServer(["--sync-duration", "0s"], async (server) => {
      const serials = Array.from({ length: 23 }, (_, n) => `JSDEV${String(n).padStart(3, "0")}`);
      await server.registerDevices([...serials.map((s) => registration(s, "Paging")), registration("OTHER-9", "Other")]);
      await syncAndWait(await graphClient(server, { version: "beta" }));
      const client = await graphClient(server, { version });

      // contains() on the serial, as Get-AutopilotDevice -serial sends it; case-insensitive.
      const found = await client.api(DEVICES).filter("contains(serialNumber,'jsdev01')").select(["id", "serialNumber"]).get();
      assert.deepEqual(found.value.map((d) => d.serialNumber).sort(), serials.slice(10, 20));
      for (const d of found.value) assert.deepEqual(Object.keys(d).sort(), ["id", "serialNumber"]);
      assert.equal(found["@odata.nextLink"], undefined);

      // $top 5 with a filter: 5 pages, the nextLinks keep the filter and the select.
      const first = await client.api(DEVICES).filter("contains(serialNumber,'JSDEV')").select(["serialNumber", "groupTag"]).top(5).get();
      assert.equal(first.value.length, 5);
      assert.ok(first["@odata.nextLink"].startsWith(`https://127.0.0.1:${server.port}/${version}${DEVICES}?`), first["@odata.nextLink"]);
      const link = decodeURIComponent(first["@odata.nextLink"]);
      assert.ok(link.includes("$filter=contains(serialNumber,'JSDEV')") && link.includes("$select=serialNumber,groupTag"), link);
      const { items, pageSizes } = await iterate(client, first);
      assert.deepEqual(pageSizes, [5, 5, 5, 5, 3]);
      assert.deepEqual(items.map((d) => d.serialNumber).sort(), serials);
      assert.ok(items.every((d) => d.groupTag === "Paging" && d.model === undefined));

      // Following one nextLink by hand, as scripts do: client.api(nextLink).get().
      const second = await client.api(first["@odata.nextLink"]).get();
      assert.equal(second.value.length, 5);

      const device = (await client.api(DEVICES).filter("serialNumber eq 'JSDEV000'").get()).value[0];
      const action = `${DEVICES}/${device.id}/updateDeviceProperties`;
      assert.equal(await client.api(action).post({ displayName: `KIOSK-${version}`, groupTag: "After" }), undefined);
      let updated = await client.api(`${DEVICES}/${device.id}`).get();
      assert.equal(updated.displayName, `KIOSK-${version}`);
      assert.equal(updated.groupTag, "After");
      assert.equal(updated.model, device.model);
      // Only what is sent changes; the PascalCase spelling of the module is routed too.
      assert.equal(await client.api(`${DEVICES}/${device.id}/UpdateDeviceProperties`).post({ groupTag: "Third" }), undefined);
      updated = await client.api(`${DEVICES}/${device.id}`).get();
      assert.equal(updated.groupTag, "Third");
      assert.equal(updated.displayName, `KIOSK-${version}`);
      await expectGraphError(client.api(`${DEVICES}/00000000-0000-4000-8000-000000000000/updateDeviceProperties`).post({ groupTag: "x" }), 404, "ResourceNotFound");
    }));
}
