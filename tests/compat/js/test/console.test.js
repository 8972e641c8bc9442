// The web console in a real browser (Debian's headless Chromium through playwright-core): signing
// in with the admin token and what a wrong one gets, the session cookie's attributes, a forged
// change refused for want of the CSRF token, the tenants page and the Clock. The Autopilot and
// profile pages have files of their own (console-*.test.js).

import assert from "node:assert/strict";
import { after, test } from "node:test";
import { TENANT } from "../lib/dmsync.js";
import { CONSOLE, closeBrowser, screenshot, signIn, withConsole } from "../lib/console.js";

const opts = { timeout: 120_000 };
after(closeBrowser);

test("a wrong admin token is refused; the right one signs in with a strict, HttpOnly, Secure cookie", opts, async () => {
  await withConsole(
    [],
    async ({ server, page, context }) => {
      // A page asked for while signed out leads to the sign-in form, and back after it.
      await page.goto(`${server.base}${CONSOLE}/clock`);
      assert.match(page.url(), /\/_dmsync\/console\/login\?next=%2F_dmsync%2Fconsole%2Fclock$/);
      assert.equal(await page.locator("#token").getAttribute("type"), "password");

      await page.fill("#token", "not-the-token");
      const refused = page.waitForResponse((r) => r.request().method() === "POST");
      await page.click('button[type="submit"]');
      assert.equal((await refused).status(), 401);
      await page.getByText("That is not the admin token.").waitFor();
      assert.deepEqual(await context.cookies(), []);

      await page.fill("#token", "dmsync-dev-admin");
      await Promise.all([page.waitForURL(/\/_dmsync\/console\/clock$/), page.click('button[type="submit"]')]);
      const [cookie] = await context.cookies();
      assert.equal(cookie.name, "__Host-dmsync_console");
      assert.equal(cookie.httpOnly, true);
      assert.equal(cookie.secure, true);
      assert.equal(cookie.sameSite, "Strict");
      assert.equal(cookie.path, "/");

      // The page loads nothing from elsewhere and allows no inline script.
      const response = await page.goto(`${server.base}${CONSOLE}/clock`);
      const csp = response.headers()["content-security-policy"];
      assert.match(csp, /default-src 'none'/);
      assert.match(csp, /script-src 'self'/);
      assert.doesNotMatch(csp, /unsafe-inline/);

      // Signing out forgets the cookie.
      await Promise.all([page.waitForURL(/\/login$/), page.click("text=Sign out")]);
      assert.deepEqual(await context.cookies(), []);
    },
    { signedIn: false },
  );
});

test("a change without the session's CSRF token is refused and changes nothing", opts, async () => {
  await withConsole([], async ({ server, page }) => {
    const clock = async () => (await (await server.admin("GET", "/_dmsync/clock")).json()).offsetSeconds;
    const before = await clock();
    // The browser's own cookie, a form post without the token, and one with a wrong token: both
    // as a page on the console's origin would send them.
    for (const body of ["seconds=3600", "seconds=3600&csrf=forged"]) {
      const status = await page.evaluate(
        async ([url, body]) =>
          (await fetch(url, { method: "POST", body, headers: { "Content-Type": "application/x-www-form-urlencoded" } })).status,
        [`${server.base}${CONSOLE}/clock`, body],
      );
      assert.equal(status, 403, body);
    }
    assert.equal(await clock(), before);
    // Another origin is refused before any token is looked at.
    const cookie = (await page.context().cookies())[0];
    const foreign = await fetch(`${server.base}${CONSOLE}/clock`, {
      method: "POST",
      headers: { Origin: "https://evil.example", Cookie: `${cookie.name}=${cookie.value}`, "Content-Type": "application/x-www-form-urlencoded" },
      body: "seconds=3600",
    });
    assert.equal(foreign.status, 403);
    assert.equal(await clock(), before);
  });
});

test("the tenants page lists and creates tenants; the Clock page advances the Clock", opts, async () => {
  await withConsole([], async ({ server, page }) => {
    await page.goto(`${server.base}${CONSOLE}/tenants`);
    await page.getByRole("cell", { name: TENANT }).waitFor();
    await page.fill('input[name="domain"]', "fabrikam.onmicrosoft.com");
    await Promise.all([page.waitForURL(/created=/), page.click("text=Create tenant")]);
    await page.getByRole("cell", { name: "fabrikam.onmicrosoft.com" }).waitFor();
    const listed = await (await server.admin("GET", "/_dmsync/tenants")).json();
    assert.ok(listed.value.some((t) => t.domain === "fabrikam.onmicrosoft.com"));
    await screenshot(page, "tenants");

    await page.goto(`${server.base}${CONSOLE}/clock`);
    assert.equal(await page.textContent("#clock-offset"), "none");
    await Promise.all([page.waitForURL(/advanced=3600/), page.click("text=+ 1 hour")]);
    assert.equal(await page.textContent("#clock-offset"), "1 h");
    await page.getByText("Advanced the Clock by 1 h.").waitFor();
    await screenshot(page, "clock");
    // The keyboard reaches the content first.
    await page.keyboard.press("Tab");
    assert.equal(await page.evaluate(() => document.activeElement.textContent), "Skip to content");
  });
});

test("a browser asking for / is sent to the console; an SDK asking for / is not", opts, async () => {
  await withConsole(
    [],
    async ({ server, page }) => {
      await page.goto(`${server.base}/`);
      assert.match(page.url(), /\/_dmsync\/console\/login/);
      const sdk = await fetch(`${server.base}/`, { headers: { Accept: "application/json" } });
      assert.notEqual(sdk.status, 303);
      assert.match(sdk.headers.get("content-type") ?? "", /json/);
      await signIn(page, server);
    },
    { signedIn: false },
  );
});
