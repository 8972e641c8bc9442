// Microsoft's identity libraries against dmsync, unmodified: @azure/identity's
// ClientSecretCredential with its default authority host, through --proxy-listen and
// NODE_EXTRA_CA_CERTS only; and msal-node's ConfidentialClientApplication on a --tls server
// named in knownAuthorities, whose second token comes from its cache.

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { DeviceCodeCredential } from "@azure/identity";
import { PublicClientApplication } from "@azure/msal-node";
import { CLIENT_ID, CLIENT_SECRET, PASSWORD, TENANT, USERNAME, caPem } from "../lib/dmsync.js";
import { dmsyncGraphClient } from "../lib/graph-client.js";
import { dmsyncMsalApp } from "../lib/msal-node.js";
import { noRetry, waitFor, withServer } from "../lib/harness.js";

const GRAPH_SCOPE = "https://graph.microsoft.com/.default";
const TOKEN_ROUTE = "/{tenant}/oauth2/v2.0/token";
const SETTINGS = "/deviceManagement/windowsAutopilotSettings";
const SYNC_ROUTE = `/beta${SETTINGS}/sync`;
const CLIENT = fileURLToPath(new URL("../clients/azure-identity-proxy.js", import.meta.url));
const opts = { timeout: 120_000 };

/** The claims of a JWT, unverified: what the client was given. */
const claims = (jwt) => JSON.parse(Buffer.from(jwt.split(".")[1], "base64url").toString("utf8"));

/** This process's environment without any proxy or CA setting of its own, plus `extra`. */
function cleanEnv(extra) {
  const unset = new Set(["HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY", "NODE_EXTRA_CA_CERTS", "NODE_USE_ENV_PROXY"]);
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !unset.has(k.toUpperCase())));
  return { ...env, ...extra };
}

test("@azure/identity: ClientSecretCredential with the default authority, Graph at graph.microsoft.com, through HTTPS_PROXY", opts, async () => {
  // As the README says: the CA from the database first, then a server on that database.
  const dir = mkdtempSync(path.join(tmpdir(), "dmsync-js-identity-"));
  try {
    const db = path.join(dir, "dmsync.db");
    const pem = caPem(db);
    assert.match(pem, /^-----BEGIN CERTIFICATE-----\n[\s\S]+\n-----END CERTIFICATE-----\n$/);
    const pemFile = path.join(dir, "dmsync-ca.pem");
    writeFileSync(pemFile, pem);

    // The application token may call the sync action under the current permission profile.
    const args = ["--proxy-listen", "127.0.0.1:0", "--permission-profile", "current", "--sync-duration", "0s"];
    await withServer(
      args,
      async (server) => {
        // The server presents the CA that `dmsync ca` printed.
        assert.equal(await (await fetch(`${server.base}/_dmsync/ca.pem`)).text(), pem);

        const env = cleanEnv({ HTTPS_PROXY: server.proxy, NODE_EXTRA_CA_CERTS: pemFile });
        let stdout;
        try {
          ({ stdout } = await promisify(execFile)(process.execPath, [CLIENT, TENANT, CLIENT_ID, CLIENT_SECRET], { env, timeout: 60_000 }));
        } catch (err) {
          assert.fail(`the @azure/identity client failed: ${err.message}\n--- stdout\n${err.stdout}\n--- stderr\n${err.stderr}`);
        }
        const out = JSON.parse(stdout.trim().split("\n").at(-1));

        const token = claims(out.token);
        assert.equal(token.tid, TENANT);
        assert.equal(token.appid, CLIENT_ID);
        assert.ok(out.expiresOnTimestamp > Date.now(), `expiresOnTimestamp ${out.expiresOnTimestamp}`);
        assert.deepEqual(out.sync, { status: 204, body: "" });
        assert.equal(out.settings.status, 200);
        assert.ok(["inProgress", "completed"].includes(out.settings.body.syncStatus), out.settings.body.syncStatus);
        // Served through the tunnel to graph.microsoft.com: dmsync's absolute URLs name that host.
        assert.equal(out.settings.body["@odata.context"], "https://graph.microsoft.com/beta/$metadata#deviceManagement/windowsAutopilotSettings/$entity");

        // What reached dmsync (there is no other way to Microsoft's hosts from here): two token
        // requests, since the credential keeps one MSAL app, with its own cache, for tokens
        // without continuous access evaluation and one for tokens with it, and the pipeline's
        // bearer policy asks with it by default; then one sync.
        assert.deepEqual(await server.requestCounts(TOKEN_ROUTE, "POST"), { 200: 2 });
        assert.deepEqual(await server.requestCounts(SYNC_ROUTE, "POST"), { 204: 1 });
      },
      { tls: false, db },
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("@azure/identity: ClientCertificateCredential with a certificate registered through the admin API, through HTTPS_PROXY", opts, async () => {
  const dir = mkdtempSync(path.join(tmpdir(), "dmsync-js-certificate-"));
  try {
    const db = path.join(dir, "dmsync.db");
    const caFile = path.join(dir, "dmsync-ca.pem");
    writeFileSync(caFile, caPem(db));
    // The certificate a user makes for an unattended app, as Microsoft's docs show with openssl.
    const keyFile = path.join(dir, "app.key");
    const certFile = path.join(dir, "app.crt");
    await promisify(execFile)("openssl", [
      "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", keyFile, "-out", certFile,
      "-days", "30", "-subj", "/CN=dmsync-js-unattended",
    ]);
    const certPem = readFileSync(certFile, "utf8");
    const pemFile = path.join(dir, "app.pem");
    writeFileSync(pemFile, readFileSync(keyFile, "utf8") + certPem);

    await withServer(
      ["--proxy-listen", "127.0.0.1:0"],
      async (server) => {
        const apps = `/_dmsync/tenants/${TENANT}/applications`;
        const created = await server.admin("POST", apps, { displayName: "JS unattended", roles: ["Group.Read.All"] });
        assert.equal(created.status, 201, await created.clone().text());
        const { appId } = await created.json();
        const registered = await server.admin("POST", `${apps}/${appId}/certificates`, { pem: certPem });
        assert.equal(registered.status, 201, await registered.clone().text());

        const env = cleanEnv({ HTTPS_PROXY: server.proxy, NODE_EXTRA_CA_CERTS: caFile });
        const client = fileURLToPath(new URL("../clients/azure-identity-certificate.js", import.meta.url));
        let stdout;
        try {
          ({ stdout } = await promisify(execFile)(process.execPath, [client, TENANT, appId, pemFile], { env, timeout: 60_000 }));
        } catch (err) {
          assert.fail(`the @azure/identity client failed: ${err.message}\n--- stdout\n${err.stdout}\n--- stderr\n${err.stderr}`);
        }
        const out = JSON.parse(stdout.trim().split("\n").at(-1));
        assert.equal(claims(out.token).appid, appId);
        assert.deepEqual(claims(out.token).roles, ["Group.Read.All"]);
        assert.equal(out.groups.status, 200);
        const tokens = await server.requestCounts(TOKEN_ROUTE, "POST");
        assert.equal(tokens[401] ?? 0, 0, JSON.stringify(tokens));
      },
      { tls: false, db },
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("msal-node: ConfidentialClientApplication on --tls with knownAuthorities; the second token is from its cache", opts, () =>
  withServer(["--permission-profile", "current", "--sync-duration", "0s"], async (server) => {
    assert.ok(server.base.startsWith("https://"), server.base);
    const app = dmsyncMsalApp({ dmsyncUrl: server.base, tenantId: TENANT, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET });
    const first = await app.acquireTokenByClientCredential({ scopes: [GRAPH_SCOPE] });
    assert.equal(first.fromCache, false);
    assert.equal(first.tokenType, "Bearer");
    assert.equal(claims(first.accessToken).tid, TENANT);
    assert.equal(claims(first.accessToken).appid, CLIENT_ID);

    const second = await app.acquireTokenByClientCredential({ scopes: [GRAPH_SCOPE] });
    assert.equal(second.fromCache, true);
    assert.equal(second.accessToken, first.accessToken);

    // The Graph client asks MSAL for a token on every request; MSAL answers from its cache.
    const client = dmsyncGraphClient({
      dmsyncUrl: server.base,
      getAccessToken: async () => (await app.acquireTokenByClientCredential({ scopes: [GRAPH_SCOPE] })).accessToken,
    });
    assert.equal(await client.api(`${SETTINGS}/sync`).middlewareOptions(noRetry()).post(), undefined);
    const settings = await waitFor("the sync to complete", async () => {
      const s = await client.api(SETTINGS).get();
      return s.syncStatus === "completed" && s;
    });
    assert.notEqual(settings.lastSyncDateTime, "0001-01-01T00:00:00Z");

    assert.deepEqual(await server.requestCounts(TOKEN_ROUTE, "POST"), { 200: 1 }, "one token request in all");
    assert.deepEqual(await server.requestCounts(SYNC_ROUTE, "POST"), { 204: 1 });
  }));

test("msal-node: PublicClientApplication acquireTokenByUsernamePassword on --tls, then acquireTokenSilent from its cache and through the refresh token", opts, () =>
  withServer([], async (server) => {
    const app = new PublicClientApplication({
      auth: {
        clientId: CLIENT_ID,
        authority: `${server.base}/organizations`,
        knownAuthorities: [new URL(server.base).host],
      },
    });
    const scopes = ["https://graph.microsoft.com/DeviceManagementServiceConfig.ReadWrite.All"];
    const signedIn = await app.acquireTokenByUsernamePassword({ scopes, username: USERNAME, password: PASSWORD });
    assert.equal(signedIn.account.username, USERNAME);
    assert.equal(signedIn.account.tenantId, TENANT);
    assert.equal(claims(signedIn.accessToken).scp, "DeviceManagementServiceConfig.ReadWrite.All");
    // The account is in MSAL's cache, from the id token and client_info.
    const [account] = await app.getTokenCache().getAllAccounts();
    assert.equal(account.homeAccountId, `${claims(signedIn.accessToken).oid}.${TENANT}`);

    const cached = await app.acquireTokenSilent({ account, scopes });
    assert.equal(cached.fromCache, true);
    assert.equal(cached.accessToken, signedIn.accessToken);
    const renewed = await app.acquireTokenSilent({ account, scopes, forceRefresh: true });
    assert.equal(renewed.fromCache, false);
    assert.notEqual(renewed.accessToken, signedIn.accessToken);

    const settings = await fetch(`${server.base}/beta${SETTINGS}`, { headers: { authorization: `Bearer ${renewed.accessToken}` } });
    assert.equal(settings.status, 200);
    assert.deepEqual(await server.requestCounts(TOKEN_ROUTE, "POST"), { 200: 2 }, "the sign-in and the forced renewal");
  }));

test("@azure/identity: DeviceCodeCredential on --tls, its prompt approving the code through the admin API", opts, () =>
  withServer([], async (server) => {
    let approved;
    const credential = new DeviceCodeCredential({
      tenantId: TENANT,
      clientId: CLIENT_ID,
      authorityHost: server.base,
      // dmsync is not one of Microsoft's clouds, so the authority is not checked against them.
      disableInstanceDiscovery: true,
      userPromptCallback: async (info) => {
        // A person opens info.verificationUri and types info.userCode; a test approves it.
        assert.match(info.message, /^To sign in, use a web browser to open the page https:\/\/127\.0\.0\.1:\d+\/11111111-1111-4111-8111-111111111111\/oauth2\/deviceauth and enter the code [A-Z0-9]{9} to authenticate\.$/);
        const r = await server.admin("POST", `/_dmsync/device-codes/${info.userCode}/approve`, { userPrincipalName: USERNAME });
        approved = r.status;
      },
    });
    const token = await credential.getToken("https://graph.microsoft.com/DeviceManagementServiceConfig.ReadWrite.All");
    assert.equal(approved, 204);
    assert.equal(claims(token.token).upn, USERNAME);
    const settings = await fetch(`${server.base}/beta${SETTINGS}`, { headers: { authorization: `Bearer ${token.token}` } });
    assert.equal(settings.status, 200);
  }));
