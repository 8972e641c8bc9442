// A real `dmsync serve` for one test: its own port (0, read back from the banner), its own
// temporary SQLite database, and the helpers a test needs around Graph: tokens from dmsync's
// token endpoint, the admin API (registrations, clock, connector sources) and the request
// counts of /metrics, which is how the retry tests count the attempts a client made.
//
// Servers speak HTTPS (`--tls`) unless a test asks for plain HTTP. Node reads
// NODE_EXTRA_CA_CERTS once, when it starts, and the test runner starts each test file's process
// before any server exists; so scripts/js-compat.sh makes one CA with `dmsync ca` before the
// runner starts, exports it as NODE_EXTRA_CA_CERTS, and every --tls server here starts on a copy
// of the database that holds it, which is the CA it then presents.

import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync, existsSync, accessSync, constants, openSync, closeSync, readFileSync, copyFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

export const TENANT = "11111111-1111-4111-8111-111111111111";
export const CLIENT_ID = "22222222-2222-4222-8222-222222222222";
export const CLIENT_SECRET = "dmsync-dev-secret";
export const USERNAME = "admin@contoso.onmicrosoft.com";
export const PASSWORD = "dmsync-dev-password";
export const ADMIN_TOKEN = "dmsync-dev-admin";
const GRAPH_SCOPE = "https://graph.microsoft.com/.default";

const STARTUP_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 10_000;
const LISTENING = /^dmsync listening on (https?):\/\/127\.0\.0\.1:(\d+)\s*$/;
const PROXY_LISTENING = /^dmsync proxy listening on http:\/\/(127\.0\.0\.1:\d+) /m;

export function binary() {
  const bin = process.env.DMSYNC_BIN;
  if (!bin) throw new Error("DMSYNC_BIN is not set; run the suite through scripts/js-compat.sh");
  const abs = path.resolve(bin);
  accessSync(abs, constants.X_OK);
  return abs;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A SQLite database URL for this file. */
export const sqliteUrl = (file) => `sqlite://${file}`;

/** What `dmsync ca --db URL` prints: the database's CA certificate (PEM), made if it has none. */
export function caPem(dbFile) {
  return execFileSync(binary(), ["ca", "--db", sqliteUrl(dbFile)], { encoding: "utf8", timeout: STARTUP_TIMEOUT_MS });
}

/** The database holding the suite's CA (see the top of this file). */
function suiteCaDatabase() {
  const file = process.env.JS_COMPAT_CA_DB;
  if (!file || !process.env.NODE_EXTRA_CA_CERTS) {
    throw new Error("JS_COMPAT_CA_DB and NODE_EXTRA_CA_CERTS are not set; run the suite through scripts/js-compat.sh");
  }
  return file;
}

/** Copies a SQLite database that no process has open, with its WAL files if it left any. */
function copyDatabase(from, to) {
  for (const suffix of ["", "-wal", "-shm"]) {
    if (existsSync(from + suffix)) copyFileSync(from + suffix, to + suffix);
  }
}

export class Dmsync {
  /**
   * Starts `dmsync serve` with these extra arguments and waits for its banner. `tls: false`
   * serves plain HTTP; `db` is a SQLite file to start on instead of a copy of the suite CA's.
   */
  static async start(extraArgs = [], { tls = true, db } = {}) {
    const server = new Dmsync(extraArgs, { tls, db });
    try {
      await server.#waitForPort();
    } catch (err) {
      await server.stop();
      throw err;
    }
    return server;
  }

  constructor(extraArgs, { tls, db }) {
    this.dir = mkdtempSync(path.join(tmpdir(), "dmsync-js-"));
    this.stdoutPath = path.join(this.dir, "stdout.log");
    this.stderrPath = path.join(this.dir, "stderr.log");
    let dbFile = db;
    if (!dbFile) {
      dbFile = path.join(this.dir, "dmsync.db");
      if (tls) copyDatabase(suiteCaDatabase(), dbFile);
    }
    this.args = ["serve", "--listen", "127.0.0.1:0", "--db", sqliteUrl(dbFile), ...(tls ? ["--tls"] : []), ...extraArgs];
    // Only the command line configures the server here, never a stray DMSYNC_* variable.
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("DMSYNC_")));
    const out = openSync(this.stdoutPath, "w");
    const err = openSync(this.stderrPath, "w");
    this.proc = spawn(binary(), this.args, { cwd: this.dir, env: { ...env, NO_COLOR: "1" }, stdio: ["ignore", out, err] });
    closeSync(out);
    closeSync(err);
    this.exited = new Promise((resolve) => this.proc.once("exit", (code, signal) => resolve({ code, signal })));
    this.exitCode = undefined;
    this.exited.then((status) => (this.exitCode = status));
  }

  async #waitForPort() {
    const deadline = Date.now() + STARTUP_TIMEOUT_MS;
    while (Date.now() < deadline) {
      const text = existsSync(this.stdoutPath) ? readFileSync(this.stdoutPath, "utf8") : "";
      if (text.includes("\n")) {
        const first = text.split("\n", 1)[0];
        const m = LISTENING.exec(first);
        if (!m) throw new Error(`unexpected first stdout line from dmsync: ${JSON.stringify(first)}\n${this.logs()}`);
        // With --proxy-listen, the proxy's line follows the banner.
        const proxy = PROXY_LISTENING.exec(text);
        if (proxy || !this.args.includes("--proxy-listen")) {
          this.port = Number(m[2]);
          this.base = `${m[1]}://127.0.0.1:${this.port}`;
          this.proxy = proxy ? `http://${proxy[1]}` : undefined;
          return;
        }
      }
      if (this.exitCode !== undefined) throw new Error(`dmsync exited (${JSON.stringify(this.exitCode)}) before listening\n${this.logs()}`);
      await sleep(50);
    }
    throw new Error(`dmsync did not print its listen line within ${STARTUP_TIMEOUT_MS} ms\n${this.logs()}`);
  }

  logs() {
    const read = (p) => (existsSync(p) ? readFileSync(p, "utf8") : "");
    return `--- dmsync ${this.args.join(" ")}\n--- stdout\n${read(this.stdoutPath)}--- stderr (last 4000 chars)\n${read(this.stderrPath).slice(-4000)}`;
  }

  async stop() {
    if (this.exitCode === undefined) {
      this.proc.kill("SIGTERM");
      const stopped = await Promise.race([this.exited, sleep(STOP_TIMEOUT_MS).then(() => null)]);
      if (stopped === null) {
        this.proc.kill("SIGKILL");
        await this.exited;
      }
    }
    rmSync(this.dir, { recursive: true, force: true });
  }

  // --- tokens ---------------------------------------------------------------------------

  async #token(form) {
    const r = await fetch(`${this.base}/${TENANT}/oauth2/v2.0/token`, { method: "POST", body: new URLSearchParams(form) });
    const body = await r.text();
    if (r.status !== 200) throw new Error(`token endpoint: ${r.status} ${body}`);
    return JSON.parse(body).access_token;
  }

  delegatedToken() {
    return this.#token({ grant_type: "password", client_id: CLIENT_ID, username: USERNAME, password: PASSWORD, scope: GRAPH_SCOPE });
  }

  applicationToken() {
    return this.#token({ grant_type: "client_credentials", client_id: CLIENT_ID, client_secret: CLIENT_SECRET, scope: GRAPH_SCOPE });
  }

  /** A token with exactly these permissions, minted by the admin API. */
  async tokenWith(permissions) {
    const r = await this.admin("POST", "/_dmsync/tokens", { tenantId: TENANT, kind: "delegated", accountType: "work", permissions });
    if (r.status !== 200) throw new Error(`mint token: ${r.status} ${await r.text()}`);
    return (await r.json()).access_token;
  }

  // --- admin API ------------------------------------------------------------------------

  admin(method, urlPath, body) {
    const headers = { Authorization: `Bearer ${ADMIN_TOKEN}` };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    return fetch(`${this.base}${urlPath}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  }

  async registerDevices(rows) {
    const r = await this.admin("POST", `/_dmsync/tenants/${TENANT}/autopilot/registrations`, rows);
    if (r.status !== 200) throw new Error(`registrations: ${r.status} ${await r.text()}`);
    return r.json();
  }

  async advanceClock(seconds) {
    const r = await this.admin("POST", "/_dmsync/clock/advance", { seconds });
    if (r.status < 200 || r.status >= 300) throw new Error(`clock advance: ${r.status} ${await r.text()}`);
  }

  async setExchangeSource(connectorId, source) {
    const r = await this.admin("PUT", `/_dmsync/tenants/${TENANT}/exchangeConnectors/${connectorId}/source`, source);
    if (r.status !== 204) throw new Error(`exchange source: ${r.status} ${await r.text()}`);
  }

  /** How many requests /metrics has counted for this route and method, by status code. */
  async requestCounts(route, method) {
    const text = await (await fetch(`${this.base}/metrics`)).text();
    const counts = {};
    for (const line of text.split("\n")) {
      const m = /^dmsync_http_requests_total\{(.*)\} (\d+)$/.exec(line);
      if (!m) continue;
      const labels = Object.fromEntries([...m[1].matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1], l[2]]));
      if (labels.route === route && labels.method === method) counts[labels.status] = (counts[labels.status] ?? 0) + Number(m[2]);
    }
    return counts;
  }
}
