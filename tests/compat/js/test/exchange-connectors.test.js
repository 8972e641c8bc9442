// Exchange connectors through the real graph-client on v1.0 and beta: CRUD and the sync
// action with both sync types. The connector's source (a Get-MobileDevice export) is set
// through dmsync's admin API, which Graph has no field for.

import assert from "node:assert/strict";
import { test } from "node:test";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { VERSIONS, expectGraphError, graphClient, noRetry, waitFor, withServer } from "../lib/harness.js";

const CONNECTORS = "/deviceManagement/exchangeConnectors";
const EXAMPLE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../../examples/exchange/mobile-devices.csv");
const opts = { timeout: 60_000 };

for (const version of VERSIONS) {
  test(`${version}: connector CRUD and a fullSync then a deltaSync`, opts, () =>
    withServer([], async (server) => {
      const client = await graphClient(server, { version });
      const created = await client.api(CONNECTORS).post({
        "@odata.type": "#microsoft.graph.deviceManagementExchangeConnector",
        primarySmtpAddress: "svc@contoso.com",
        serverName: "ex01.contoso.com",
        exchangeConnectorType: "onPremises",
        exchangeOrganization: "Contoso",
        version: "19.1",
      });
      assert.match(created.id, /^[0-9a-f-]{36}$/);
      assert.equal(created.status, "connectionPending");
      const item = `${CONNECTORS}/${created.id}`;

      const patched = await client.api(item).patch({ serverName: "ex02.contoso.com" });
      assert.equal(patched.serverName, "ex02.contoso.com");
      assert.equal(patched.version, "19.1");
      assert.deepEqual((await client.api(CONNECTORS).get()).value.map((c) => c.id), [created.id]);
      assert.equal((await client.api(item).select(["serverName"]).get()).serverName, "ex02.contoso.com");

      await server.setExchangeSource(created.id, { kind: "file", path: EXAMPLE });
      let previous = Date.parse(created.lastSyncDateTime);
      for (const syncType of ["fullSync", "deltaSync"]) {
        assert.equal(await client.api(`${item}/sync`).post({ syncType }), undefined);
        const synced = await waitFor(`the ${syncType}`, async () => {
          const c = await client.api(item).get();
          return c.status === "connected" && Date.parse(c.lastSyncDateTime) > previous && c;
        });
        previous = Date.parse(synced.lastSyncDateTime);
      }

      const missing = await expectGraphError(client.api(`${item}/sync`).middlewareOptions(noRetry()).post({}), 400, "BadRequest");
      assert.match(missing.message, /syncType/);
      await expectGraphError(client.api(`${item}/sync`).post({ syncType: "sometimes" }), 400, "BadRequest");
      await expectGraphError(client.api(`${CONNECTORS}/00000000-0000-4000-8000-000000000000/sync`).post({ syncType: "fullSync" }), 404, "ResourceNotFound");

      assert.equal(await client.api(item).delete(), undefined);
      await expectGraphError(client.api(item).get(), 404, "ResourceNotFound");
    }));
}

test("v1.0: the devices a sync discovered, in managedDevices", opts, () =>
  withServer([], async (server) => {
    const client = await graphClient(server, { version: "v1.0" });
    const connector = await client.api(CONNECTORS).post({ exchangeConnectorType: "hosted" });
    await server.setExchangeSource(connector.id, { kind: "file", path: EXAMPLE });
    await client.api(`${CONNECTORS}/${connector.id}/sync`).post({ syncType: "fullSync" });
    await waitFor("connected", async () => (await client.api(`${CONNECTORS}/${connector.id}`).get()).status === "connected");

    // managedDevices needs DeviceManagementManagedDevices.Read.All: a token without it is refused;
    // the development user, who holds every permission, and a token with just it both read them.
    const lacking = await graphClient(server, { version: "v1.0", token: await server.tokenWith(["DeviceManagementServiceConfig.ReadWrite.All"]) });
    await expectGraphError(lacking.api("/deviceManagement/managedDevices").get(), 403, "Forbidden");
    const reader = await graphClient(server, { version: "v1.0", token: await server.tokenWith(["DeviceManagementManagedDevices.Read.All"]) });
    for (const c of [client, reader]) {
      const devices = await c.api("/deviceManagement/managedDevices").get();
      const ids = devices.value.map((d) => d.easDeviceId).sort();
      assert.deepEqual(ids, ["ANDROIDC0FFEE01", "ApplDMPX2Q7R8S9T", "ApplF17XK1NYMLT", "SEC1D2E3F4A5B6C7"]);
    }
  }));
