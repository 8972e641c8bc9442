// What every test file shares: a server per test, stopped (and its log printed on failure)
// whatever happens; Graph clients built by the recipe; bounded polling; error assertions.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { GraphError, RetryHandlerOptions } from "@microsoft/microsoft-graph-client";
import { Dmsync } from "./dmsync.js";
import { dmsyncGraphClient } from "./graph-client.js";

export const VERSIONS = ["v1.0", "beta"];

/** Runs `body(server)` against a fresh dmsync started with `args` (and `options`, see Dmsync.start). */
export async function withServer(args, body, options = {}) {
  const server = await Dmsync.start(args, options);
  try {
    return await body(server);
  } catch (err) {
    console.error(server.logs());
    throw err;
  } finally {
    await server.stop();
  }
}

/** The recipe's client on a --tls server, with a token for the seeded admin user unless one is given. */
export async function graphClient(server, { version = "beta", token } = {}) {
  const accessToken = token ?? (await server.delegatedToken());
  return dmsyncGraphClient({ dmsyncUrl: server.base, getAccessToken: async () => accessToken, defaultVersion: version });
}

/** Per-request retry options: `.middlewareOptions(noRetry())` turns retries off. */
export const noRetry = () => [new RetryHandlerOptions(0, 0)];

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Calls `probe` until it returns something truthy, at most `timeoutMs`. */
export async function waitFor(what, probe, { timeoutMs = 15_000, intervalMs = 100 } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}

/** Awaits `promise`, expects a GraphError with this status and code, and checks the rest of it. */
export async function expectGraphError(promise, statusCode, code) {
  let err;
  try {
    await promise;
  } catch (e) {
    err = e;
  }
  assert.ok(err, `expected a GraphError ${statusCode} ${code}, got success`);
  assert.ok(err instanceof GraphError, `not a GraphError: ${err}`);
  assert.equal(err.statusCode, statusCode, err.body);
  assert.equal(err.code, code, err.body);
  assert.ok(err.message && err.message.length > 0, "empty message");
  assert.match(err.requestId ?? "", /^[0-9a-f-]{36}$/, `requestId: ${err.requestId}`);
  // The id in the body's innerError is the one in the response header.
  assert.equal(err.headers.get("request-id"), err.requestId);
  assert.ok(err.date instanceof Date && !Number.isNaN(err.date.getTime()), `date: ${err.date}`);
  return err;
}

/** A deterministic, unique-per-label stand-in for a hardware hash, base64. */
export function hardwareHash(label, size = 64) {
  const parts = [];
  for (let n = 0; parts.length * 32 < size; n++) parts.push(createHash("sha256").update(`${label}/${n}`).digest());
  return Buffer.concat(parts).subarray(0, size).toString("base64");
}

export function registration(serialNumber, groupTag = "") {
  return { serialNumber, hardwareHash: hardwareHash(serialNumber), manufacturer: "Microsoft Corporation", model: "Surface Laptop 5", groupTag };
}

/** Starts an Autopilot sync through Graph (beta) and waits for it to complete. */
export async function syncAndWait(client) {
  assert.equal(await client.api("/deviceManagement/windowsAutopilotSettings/sync").middlewareOptions(noRetry()).post(), undefined);
  return waitFor("the sync to complete", async () => {
    const s = await client.api("/deviceManagement/windowsAutopilotSettings").get();
    assert.ok(["inProgress", "completed"].includes(s.syncStatus), s.syncStatus);
    return s.syncStatus === "completed" && s;
  });
}
