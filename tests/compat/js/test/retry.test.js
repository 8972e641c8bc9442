// The graph-client's RetryHandler against the cooldown's 429, counted on the server: dmsync's
// /metrics counts every request by route, method and status, so the number of attempts is
// what reached the server, not what the client says it did.
//
// The documented handler (RetryHandlerOptions): 429, 503 and 504 are retried, maxRetries
// times (default 3, at most 10), so 1 + maxRetries attempts in all; a Retry-After header is
// waited for (capped at 180 s); without one it waits delay + random(0..1) s before the first
// retry and round(0.5 * (2^n - 1)) + delay + random s before retry n > 1. The delays are
// shortened here through the per-request options (delay 0), which the handler allows.

import assert from "node:assert/strict";
import { test } from "node:test";
import { RetryHandlerOptions } from "@microsoft/microsoft-graph-client";
import { expectGraphError, graphClient, noRetry, waitFor, withServer } from "../lib/harness.js";

const SETTINGS = "/deviceManagement/windowsAutopilotSettings";
const SYNC_ROUTE = "/beta/deviceManagement/windowsAutopilotSettings/sync";
const opts = { timeout: 90_000 };

async function syncOnceAndWait(client) {
  assert.equal(await client.api(`${SETTINGS}/sync`).post(), undefined);
  await waitFor("the sync to complete", async () => (await client.api(SETTINGS).get()).syncStatus === "completed");
}

test("cooldown 429 without Retry-After: 1 + maxRetries attempts, then the GraphError", opts, () =>
  withServer(["--sync-duration", "0s"], async (server) => {
    const client = await graphClient(server);
    await syncOnceAndWait(client);
    assert.deepEqual(await server.requestCounts(SYNC_ROUTE, "POST"), { 204: 1 });

    // Retries off: one attempt.
    await expectGraphError(client.api(`${SETTINGS}/sync`).middlewareOptions(noRetry()).post(), 429, "TooManyRequests");
    assert.deepEqual(await server.requestCounts(SYNC_ROUTE, "POST"), { 204: 1, 429: 1 });

    // The default maxRetries (3) with no base delay: 4 attempts, each refused.
    const defaults = new RetryHandlerOptions();
    assert.equal(defaults.maxRetries, 3);
    const started = Date.now();
    const delays = [];
    const options = new RetryHandlerOptions(0, defaults.maxRetries, (delay, attempt, request, fetchOptions, response) => {
      delays.push({ attempt, retryAfter: response.headers.get("retry-after") });
      return true;
    });
    const err = await expectGraphError(client.api(`${SETTINGS}/sync`).middlewareOptions([options]).post(), 429, "TooManyRequests");
    const elapsed = (Date.now() - started) / 1000;
    assert.deepEqual(await server.requestCounts(SYNC_ROUTE, "POST"), { 204: 1, 429: 1 + 1 + defaults.maxRetries });
    assert.deepEqual(delays.map((d) => d.attempt), [0, 1, 2]);
    assert.ok(delays.every((d) => d.retryAfter === null), "no Retry-After, as real Intune");
    assert.equal(err.headers.get("retry-after"), null);
    // Backoff of 0-1 s, 2-3 s and 4-5 s: at least 6 s in all (an upper bound would time the machine).
    assert.ok(elapsed >= 6, `retries took ${elapsed} s`);
  }));

test("cooldown 429 with --sync-retry-after: the handler waits Retry-After and the retried sync succeeds", opts, () =>
  withServer(["--sync-duration", "0s", "--sync-retry-after", "--sync-cooldown", "6s"], async (server) => {
    const client = await graphClient(server);
    await syncOnceAndWait(client);

    // Retries off, to see the header the handler will honour.
    const limited = await expectGraphError(client.api(`${SETTINGS}/sync`).middlewareOptions(noRetry()).post(), 429, "TooManyRequests");
    const retryAfter = Number(limited.headers.get("retry-after"));
    assert.ok(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 6, `Retry-After ${retryAfter}`);

    // The default options: one 429, a wait of Retry-After (rounded up by the server, so the
    // cooldown is over), one 204.
    const before = await server.requestCounts(SYNC_ROUTE, "POST");
    const started = Date.now();
    assert.equal(await client.api(`${SETTINGS}/sync`).post(), undefined);
    const elapsed = (Date.now() - started) / 1000;
    const after = await server.requestCounts(SYNC_ROUTE, "POST");
    assert.equal(after[429] - before[429], 1, JSON.stringify({ before, after }));
    assert.equal(after[204] - before[204], 1, JSON.stringify({ before, after }));
    assert.ok(elapsed >= 0.9, `accepted after ${elapsed} s: no Retry-After was waited for`);
  }));

test("cooldown 429 with --sync-retry-after 600 s: the header is whole seconds within the cooldown", opts, () =>
  withServer(["--sync-duration", "0s", "--sync-retry-after"], async (server) => {
    const client = await graphClient(server);
    await syncOnceAndWait(client);
    // The handler would wait min(Retry-After, 180 s) per retry here: the test asks for none.
    const limited = await expectGraphError(client.api(`${SETTINGS}/sync`).middlewareOptions(noRetry()).post(), 429, "TooManyRequests");
    const retryAfter = limited.headers.get("retry-after");
    assert.match(retryAfter, /^\d+$/);
    assert.ok(Number(retryAfter) > 590 && Number(retryAfter) <= 600, retryAfter);
    assert.deepEqual(await server.requestCounts(SYNC_ROUTE, "POST"), { 204: 1, 429: 1 });
  }));

test("documented throttling's 429: the handler waits Retry-After and the retried read succeeds", opts, () =>
  withServer([], async (server) => {
    const client = await graphClient(server);
    // Signed in and warmed up before the limits go on, so the window below is the test's own.
    assert.ok(await client.api(SETTINGS).get());
    const limits = { limits: { enrollment: { appRequests: 2, windowSeconds: 2 } } };
    const r = await server.admin("PUT", "/_dmsync/throttling", limits);
    assert.equal(r.status, 200, await r.text());
    const READ_ROUTE = "/beta/deviceManagement/windowsAutopilotSettings";
    const before = await server.requestCounts(READ_ROUTE, "GET");
    assert.ok(await client.api(SETTINGS).get());
    assert.ok(await client.api(SETTINGS).get());

    // Retries off, to see the 429 the handler will honour: Graph's body and Retry-After.
    const limited = await expectGraphError(client.api(SETTINGS).middlewareOptions(noRetry()).get(), 429, "TooManyRequests");
    const retryAfter = Number(limited.headers.get("retry-after"));
    assert.ok(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 2, `Retry-After ${retryAfter}`);

    // The default options: the handler waits Retry-After, then its retry passes.
    const started = Date.now();
    assert.ok(await client.api(SETTINGS).get());
    const elapsed = (Date.now() - started) / 1000;
    assert.ok(elapsed >= 0.9, `accepted after ${elapsed} s: no Retry-After was waited for`);
    const after = await server.requestCounts(READ_ROUTE, "GET");
    assert.equal((after[200] ?? 0) - (before[200] ?? 0), 3, JSON.stringify({ before, after }));
    assert.ok((after[429] ?? 0) - (before[429] ?? 0) >= 2, JSON.stringify({ before, after }));
  }));
