// Interactive sign-in as an admin does it, with real unmodified clients: msal-node's
// PublicClientApplication.acquireTokenInteractive opens dmsync's sign-in page in a real browser
// (Debian's headless Chromium, driven by playwright-core: browsers cannot be downloaded here),
// the user name and password are typed into the page, the page's form posts the code to
// msal-node's loopback listener (form_post, as msal-node asks), and msal-node redeems it with its
// PKCE verifier. The token then reads Graph, and acquireTokenSilent answers from the cache and,
// forced, through the refresh token. One browser run, to keep CI short.

import assert from "node:assert/strict";
import { test } from "node:test";
import { PublicClientApplication } from "@azure/msal-node";
import { chromium } from "playwright-core";
import { CLIENT_ID, PASSWORD, TENANT, USERNAME } from "../lib/dmsync.js";
import { withServer } from "../lib/harness.js";

const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const SCOPES = ["https://graph.microsoft.com/DeviceManagementServiceConfig.ReadWrite.All"];
const TOKEN_ROUTE = "/{tenant}/oauth2/v2.0/token";
const SUCCESS = "dmsync interactive sign-in: the code reached msal-node";
const opts = { timeout: 120_000 };

const claims = (jwt) => JSON.parse(Buffer.from(jwt.split(".")[1], "base64url").toString("utf8"));

test("msal-node acquireTokenInteractive through dmsync's sign-in page in headless Chromium, then acquireTokenSilent", opts, async () => {
  await withServer([], async (server) => {
    const app = new PublicClientApplication({
      auth: {
        clientId: CLIENT_ID,
        authority: `${server.base}/organizations`,
        // MSAL takes an authority outside Microsoft's clouds only when it is listed.
        knownAuthorities: [new URL(server.base).host],
      },
    });
    // The suite's server speaks HTTPS with the suite's CA, which Node trusts through
    // NODE_EXTRA_CA_CERTS; the browser is told to accept it instead of given a profile.
    const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true });
    const seen = [];
    try {
      const context = await browser.newContext({ ignoreHTTPSErrors: true });
      const page = await context.newPage();
      page.on("request", (request) => seen.push(`${request.method()} ${new URL(request.url()).origin}${new URL(request.url()).pathname}`));

      const result = await app.acquireTokenInteractive({
        scopes: SCOPES,
        loginHint: USERNAME,
        successTemplate: SUCCESS,
        openBrowser: async (url) => {
          assert.ok(url.startsWith(`${server.base}/organizations/oauth2/v2.0/authorize?`), url);
          const shown = await page.goto(url);
          assert.equal(shown.status(), 200);
          assert.equal(shown.headers()["x-frame-options"], "DENY");
          // login_hint prefilled the user name; the password is typed.
          assert.equal(await page.inputValue("#login"), USERNAME);
          await page.fill("#passwd", PASSWORD);
          await Promise.all([page.waitForURL(/^http:\/\/localhost:\d+\/$/), page.click("#submit")]);
          await page.getByText(SUCCESS).waitFor();
        },
      });

      assert.equal(result.account.username, USERNAME);
      assert.equal(result.account.tenantId, TENANT);
      assert.equal(result.idTokenClaims.preferred_username, USERNAME);
      assert.equal(claims(result.accessToken).scp, "DeviceManagementServiceConfig.ReadWrite.All");
      // The browser went: the page, its form posted back to dmsync, the auto-posting form to
      // msal-node's loopback listener.
      const authorize = `${server.base}/organizations/oauth2/v2.0/authorize`;
      assert.deepEqual(seen.filter((s) => !s.endsWith("/favicon.ico")).map((s) => s.replace(/:\d+\/$/, ":PORT/")), [
        `GET ${authorize}`,
        `POST ${authorize}`,
        "POST http://localhost:PORT/",
      ]);

      const settings = await fetch(`${server.base}/beta/deviceManagement/windowsAutopilotSettings`, {
        headers: { authorization: `Bearer ${result.accessToken}` },
      });
      assert.equal(settings.status, 200);

      // From the cache, then through the refresh token.
      const cached = await app.acquireTokenSilent({ account: result.account, scopes: SCOPES });
      assert.equal(cached.accessToken, result.accessToken);
      const refreshed = await app.acquireTokenSilent({ account: result.account, scopes: SCOPES, forceRefresh: true });
      assert.notEqual(refreshed.accessToken, result.accessToken);
      assert.equal(claims(refreshed.accessToken).oid, claims(result.accessToken).oid);
      assert.deepEqual(await server.requestCounts(TOKEN_ROUTE, "POST"), { 200: 2 });
    } finally {
      await browser.close();
    }
  });
});
