// Errors as graph-client users see them: a thrown GraphError with Graph's statusCode, code,
// message, requestId (from innerError["request-id"], equal to the request-id header) and date,
// on v1.0 and beta wherever the resource exists.

import assert from "node:assert/strict";
import { createServer } from "node:http";
import { test } from "node:test";
import { VERSIONS, expectGraphError, graphClient, noRetry, waitFor, withServer } from "../lib/harness.js";

const SETTINGS = "/deviceManagement/windowsAutopilotSettings";
const CONNECTORS = "/deviceManagement/exchangeConnectors";
const MISSING = "00000000-0000-4000-8000-000000000000";
const opts = { timeout: 60_000 };

for (const version of VERSIONS) {
  test(`${version}: 401 for a bad or missing token`, opts, () =>
    withServer([], async (server) => {
      const bad = await graphClient(server, { version, token: "not-a-valid-token" });
      const err = await expectGraphError(bad.api(CONNECTORS).get(), 401, "InvalidAuthenticationToken");
      assert.ok(err.headers.get("www-authenticate")?.startsWith("Bearer "), "WWW-Authenticate");
      // No claims= challenge: kiota clients would resend once with claims.
      assert.ok(!err.headers.get("www-authenticate").includes("claims="));
      const none = await graphClient(server, { version, token: "" });
      await expectGraphError(none.api("/deviceManagement/windowsAutopilotDeviceIdentities").get(), 401, "InvalidAuthenticationToken");
    }));

  test(`${version}: 403 for an app token on the sync action and for a missing permission`, opts, () =>
    withServer([], async (server) => {
      const user = await graphClient(server, { version });
      const connector = await user.api(CONNECTORS).post({ exchangeConnectorType: "onPremises" });
      const app = await graphClient(server, { version, token: await server.applicationToken() });
      // The original permission profile: app tokens may not call the sync actions.
      const err = await expectGraphError(app.api(`${CONNECTORS}/${connector.id}/sync`).post({ syncType: "fullSync" }), 403, "Forbidden");
      assert.ok(err.message.length > 10, err.message);
      // Reading is allowed to the app.
      assert.equal((await app.api(`${CONNECTORS}/${connector.id}`).get()).id, connector.id);
      // A delegated token with only the read permission may not write.
      const reader = await graphClient(server, { version, token: await server.tokenWith(["DeviceManagementServiceConfig.Read.All"]) });
      await expectGraphError(reader.api(CONNECTORS).post({ exchangeConnectorType: "hosted" }), 403, "Forbidden");
      if (version === "beta") {
        await expectGraphError(app.api(`${SETTINGS}/sync`).post(), 403, "Forbidden");
        await expectGraphError(reader.api(`${SETTINGS}/sync`).post(), 403, "Forbidden");
      }
    }));

  test(`${version}: 404 for unknown ids and unknown segments`, opts, () =>
    withServer([], async (server) => {
      const client = await graphClient(server, { version });
      for (const path of [
        `${CONNECTORS}/${MISSING}`,
        `/deviceManagement/importedWindowsAutopilotDeviceIdentities/${MISSING}`,
        `/deviceManagement/windowsAutopilotDeviceIdentities/${MISSING}`,
      ]) {
        await expectGraphError(client.api(path).get(), 404, "ResourceNotFound");
      }
      // A path Graph does not have: Graph's BadRequest for the unknown segment.
      const err = await expectGraphError(client.api("/deviceManagement/noSuchThing").get(), 400, "BadRequest");
      assert.match(err.message, /noSuchThing/);
      if (version === "v1.0") {
        // windowsAutopilotSettings exists only in beta.
        await expectGraphError(client.api(SETTINGS).get(), 400, "BadRequest");
      }
    }));

  test(`${version}: 409 while an Exchange connector sync runs`, opts, async () => {
    // A slow Exchange: the source endpoint answers only when the test lets it.
    let release;
    const released = new Promise((resolve) => (release = resolve));
    const source = createServer(async (req, res) => {
      await released;
      res.writeHead(200, { "Content-Type": "application/json" }).end("[]");
    });
    await new Promise((resolve) => source.listen(0, "127.0.0.1", resolve));
    const sourceHost = `127.0.0.1:${source.address().port}`;
    try {
      await withServer(["--exchange-source-allow-host", sourceHost], async (server) => {
        const client = await graphClient(server, { version });
        const connector = await client.api(CONNECTORS).post({ exchangeConnectorType: "onPremises" });
        await server.setExchangeSource(connector.id, { kind: "http", url: `http://${sourceHost}/devices` });
        const sync = `${CONNECTORS}/${connector.id}/sync`;
        assert.equal(await client.api(sync).post({ syncType: "fullSync" }), undefined);
        const err = await expectGraphError(client.api(sync).post({ syncType: "deltaSync" }), 409, "Conflict");
        assert.ok(err.message.length > 10, err.message);
        release();
      });
    } finally {
      release();
      source.closeAllConnections();
      await new Promise((resolve) => source.close(resolve));
    }
  });
}

test("beta: 409 while an Autopilot sync runs, 429 inside the cooldown", opts, () =>
  withServer(["--sync-duration", "1s"], async (server) => {
    const client = await graphClient(server);
    await client.api(`${SETTINGS}/sync`).post();
    const conflict = await expectGraphError(client.api(`${SETTINGS}/sync`).post(), 409, "Conflict");
    assert.match(conflict.message, /in progress/i);
    await waitFor("the sync to complete", async () => (await client.api(SETTINGS).get()).syncStatus === "completed");
    const limited = await expectGraphError(client.api(`${SETTINGS}/sync`).middlewareOptions(noRetry()).post(), 429, "TooManyRequests");
    // Intune's message is itself a JSON document, as the real service sends it.
    const inner = JSON.parse(limited.message);
    assert.equal(inner._version, 3);
    assert.ok(inner.Message.includes(limited.requestId), "Activity ID is the request id");
  }));
