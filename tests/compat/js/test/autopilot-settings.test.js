// windowsAutopilotSettings and its sync action (beta only: v1.0 has neither) through the
// real @microsoft/microsoft-graph-client: get, patch, and the sync's 204, 409 and 429.

import assert from "node:assert/strict";
import { test } from "node:test";
import { GraphError } from "@microsoft/microsoft-graph-client";
import { expectGraphError, graphClient, noRetry, waitFor, withServer } from "../lib/harness.js";
import { plainHttpGraphClient } from "../lib/graph-client-plain-http.js";

const SETTINGS = "/deviceManagement/windowsAutopilotSettings";
const YEAR_ONE = "0001-01-01T00:00:00Z";
const opts = { timeout: 60_000 };

test("get before any sync: unknown, never synced", opts, () =>
  withServer([], async (server) => {
    const client = await graphClient(server);
    const settings = await client.api(SETTINGS).get();
    assert.match(settings.id, /^[0-9a-f-]{36}$/);
    assert.equal(settings.syncStatus, "unknown");
    assert.equal(settings.lastSyncDateTime, YEAR_ONE);
    assert.equal(settings.lastManualSyncTriggerDateTime, YEAR_ONE);
    assert.equal(settings["@odata.context"], "https://graph.microsoft.com/beta/$metadata#deviceManagement/windowsAutopilotSettings/$entity");

    const selected = await client.api(SETTINGS).select(["syncStatus"]).get();
    // The key comes with any $select, as in Graph.
    assert.deepEqual(Object.keys(selected).filter((k) => !k.startsWith("@")).sort(), ["id", "syncStatus"]);
  }));

test("patch is acknowledged with the entity and changes nothing the service owns", opts, () =>
  withServer([], async (server) => {
    const client = await graphClient(server);
    const before = await client.api(SETTINGS).get();
    // What graph-client users send: the @odata.type, and a property they may try to set.
    const patched = await client.api(SETTINGS).patch({ "@odata.type": "#microsoft.graph.windowsAutopilotSettings", syncStatus: "completed" });
    assert.equal(patched.id, before.id);
    assert.equal(patched.syncStatus, "unknown");
    assert.deepEqual(await client.api(SETTINGS).get(), before);
  }));

test("sync: 204, then 409 while it runs, then 429 inside the cooldown", opts, () =>
  withServer(["--sync-duration", "2s"], async (server) => {
    const client = await graphClient(server);
    const started = Date.now();
    // .post() with no body: Content-Type application/json and Content-Length 0.
    assert.equal(await client.api(`${SETTINGS}/sync`).post(), undefined);
    const running = await client.api(SETTINGS).get();
    assert.equal(running.syncStatus, "inProgress");
    assert.ok(Math.abs(Date.parse(running.lastManualSyncTriggerDateTime) - started) < 60_000, running.lastManualSyncTriggerDateTime);

    // 409 is not a status the retry handler retries: the default options give it at once.
    const conflict = await expectGraphError(client.api(`${SETTINGS}/sync`).post(), 409, "Conflict");
    assert.equal(conflict.headers.get("retry-after"), null);
    // `.post({})`, as some callers send it, is the same action.
    await expectGraphError(client.api(`${SETTINGS}/sync`).middlewareOptions(noRetry()).post({}), 409, "Conflict");

    const done = await waitFor("the sync to complete", async () => {
      const s = await client.api(SETTINGS).get();
      return s.syncStatus === "completed" && s;
    });
    assert.ok(Date.parse(done.lastSyncDateTime) >= Date.parse(done.lastManualSyncTriggerDateTime));

    const limited = await expectGraphError(client.api(`${SETTINGS}/sync`).middlewareOptions(noRetry()).post(), 429, "TooManyRequests");
    // Like real Intune: no Retry-After without --sync-retry-after, and the message is Intune's.
    assert.equal(limited.headers.get("retry-after"), null);
    assert.match(JSON.parse(limited.message).Message, /synced less than 10 minutes ago/);
    assert.deepEqual(await client.api(SETTINGS).get(), done, "the refused sync changed nothing");

    // Moving the clock past the cooldown allows the next one.
    await server.advanceClock(601);
    assert.equal(await client.api(`${SETTINGS}/sync`).middlewareOptions(noRetry()).post(), undefined);
  }));

test("the plain-http recipe: baseUrl on dmsync without --tls, a StaticBearer middleware", opts, () =>
  withServer(
    ["--sync-duration", "0s"],
    async (server) => {
      assert.ok(server.base.startsWith("http://"), server.base);
      const client = plainHttpGraphClient({ dmsyncUrl: server.base, token: await server.delegatedToken() });
      assert.equal(await client.api(`${SETTINGS}/sync`).post(), undefined);
      const settings = await waitFor("completed", async () => {
        const s = await client.api(SETTINGS).get();
        return s.syncStatus === "completed" && s;
      });
      assert.notEqual(settings.lastSyncDateTime, YEAR_ONE);
      const devices = await client.api("/deviceManagement/windowsAutopilotDeviceIdentities").version("v1.0").get();
      assert.deepEqual(devices.value, []);
      // The trap this recipe works around: with the stock authProvider over http, no token is
      // sent, even to a listed custom host.
      const { Client } = await import("@microsoft/microsoft-graph-client");
      const stock = Client.initWithMiddleware({
        baseUrl: `${server.base}/`,
        defaultVersion: "beta",
        authProvider: { getAccessToken: async () => "never-sent" },
        customHosts: new Set(["127.0.0.1"]),
      });
      const err = await expectGraphError(stock.api(SETTINGS).middlewareOptions(noRetry()).get(), 401, "InvalidAuthenticationToken");
      assert.ok(err instanceof GraphError);
    },
    { tls: false },
  ));
