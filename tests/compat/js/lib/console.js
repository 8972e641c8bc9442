// What the web console's browser tests share: one headless Chromium (Debian's: browsers cannot be
// downloaded here) per test file, a fresh dmsync per test, a page signed in with the admin token,
// and screenshots kept under target/console-screenshots for a person to look at.

import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { ADMIN_TOKEN, TENANT } from "./dmsync.js";
import { withServer } from "./harness.js";

const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../..");
export const SCREENSHOTS = path.join(ROOT, "target", "console-screenshots");

export const CONSOLE = "/_dmsync/console";
export const tenantPage = (rest) => `${CONSOLE}/tenants/${TENANT}/${rest}`;

let browser;

/** The file's one browser, launched on first use; call `closeBrowser` in the file's `after`. */
export async function sharedBrowser() {
  browser ??= await chromium.launch({ executablePath: CHROMIUM, headless: true });
  return browser;
}

export async function closeBrowser() {
  if (browser) await browser.close();
  browser = undefined;
}

/** Signs `page` in through the console's form and waits for the page sign-in leads to. */
export async function signIn(page, server, { token = ADMIN_TOKEN, next } = {}) {
  const query = next ? `?next=${encodeURIComponent(next)}` : "";
  await page.goto(`${server.base}${CONSOLE}/login${query}`);
  await page.fill("#token", token);
  await Promise.all([page.waitForLoadState("load"), page.click('button[type="submit"]')]);
}

/**
 * Runs `body({ server, page, context })` against a fresh dmsync (started with `args`), in a new
 * browser context signed in to the console. The server's log is printed if the body throws.
 */
export async function withConsole(args, body, { signedIn = true, viewport = { width: 1366, height: 900 } } = {}) {
  const chromium = await sharedBrowser();
  return withServer(args, async (server) => {
    // The suite's servers speak HTTPS with the suite's own CA; the browser is told to accept it.
    const context = await chromium.newContext({ ignoreHTTPSErrors: true, viewport });
    try {
      const page = await context.newPage();
      const problems = [];
      page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
      page.on("console", (message) => {
        if (message.type() === "error") problems.push(`console error: ${message.text()}`);
      });
      if (signedIn) {
        await signIn(page, server);
        assert.match(page.url(), new RegExp(`${CONSOLE}/tenants`));
      }
      const result = await body({ server, page, context });
      // A script error or a blocked resource (the page's CSP) shows in the console. Pages a test
      // expects to be refused (a 4xx) log their status there too, and are not problems.
      assert.deepEqual(problems.filter((p) => !p.includes("favicon") && !/status of 4\d\d/.test(p)), []);
      return result;
    } finally {
      await context.close();
    }
  });
}

/** Saves a screenshot of the page as target/console-screenshots/NAME.png. */
export async function screenshot(page, name) {
  mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`), fullPage: true });
}
