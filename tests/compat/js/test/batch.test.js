// JSON batching through the real client's BatchRequestContent and BatchResponseContent: it
// sends each request's URL with its version (`/beta/...`), a Content-Type for each body, and
// dependsOn; dmsync runs each one as the direct call and answers with each status and body.

import assert from "node:assert/strict";
import { test } from "node:test";
import { BatchRequestContent, BatchResponseContent } from "@microsoft/microsoft-graph-client";
import { graphClient, registration, withServer } from "../lib/harness.js";

const opts = { timeout: 60_000 };

test("a batch of a sync, a read that depends on it and a patch after that", opts, () =>
  withServer(["--sync-duration", "0s"], async (server) => {
    await server.registerDevices([registration("BATCH-1"), registration("BATCH-2")]);
    const client = await graphClient(server);
    const beta = `${server.base}/beta`;
    const batch = new BatchRequestContent([
      { id: "sync", request: new Request(`${beta}/deviceManagement/windowsAutopilotSettings/sync`, { method: "POST" }) },
      {
        id: "settings",
        request: new Request(`${beta}/deviceManagement/windowsAutopilotSettings`, { method: "GET" }),
        dependsOn: ["sync"],
      },
      {
        id: "patch",
        request: new Request(`${beta}/deviceManagement/windowsAutopilotSettings`, {
          method: "PATCH",
          body: JSON.stringify({ syncStatus: "completed" }),
          headers: { "Content-Type": "application/json" },
        }),
        dependsOn: ["settings"],
      },
    ]);
    const answer = new BatchResponseContent(await client.api("/$batch").post(await batch.getContent()));
    assert.equal(answer.getResponseById("sync").status, 204);
    const settings = answer.getResponseById("settings");
    assert.equal(settings.status, 200);
    const body = await settings.json();
    assert.equal(body["@odata.context"], "https://graph.microsoft.com/beta/$metadata#deviceManagement/windowsAutopilotSettings/$entity");
    assert.ok(["inProgress", "completed"].includes(body.syncStatus), body.syncStatus);
    assert.equal(answer.getResponseById("patch").status, 200);

    // A failure stops what depends on it: a second sync at once is refused (409 or 429), and the
    // read after it is 424.
    const again = new BatchRequestContent([
      { id: "1", request: new Request(`${beta}/deviceManagement/windowsAutopilotSettings/sync`, { method: "POST" }) },
      { id: "2", request: new Request(`${beta}/deviceManagement/windowsAutopilotSettings`), dependsOn: ["1"] },
    ]);
    const refused = new BatchResponseContent(await client.api("/$batch").post(await again.getContent()));
    assert.ok([409, 429].includes(refused.getResponseById("1").status));
    assert.equal(refused.getResponseById("2").status, 424);
    assert.equal((await refused.getResponseById("2").json()).error.code, "FailedDependency");
  }));
