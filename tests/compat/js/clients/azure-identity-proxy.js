// An unmodified @azure/identity app, run by test/identity.test.js in a Node process of its own,
// because Node reads NODE_EXTRA_CA_CERTS only when it starts. The process gets what a user
// would export: HTTPS_PROXY (dmsync's --proxy-listen) and NODE_EXTRA_CA_CERTS (the PEM that
// `dmsync ca` printed). It prints one JSON line with what it got, for the test to check.
//
// usage: node clients/azure-identity-proxy.js TENANT CLIENT_ID CLIENT_SECRET

// recipe: js-azure-identity-proxy
import { ClientSecretCredential } from "@azure/identity";
import { bearerTokenAuthenticationPolicy, createDefaultHttpClient, createPipelineFromOptions, createPipelineRequest } from "@azure/core-rest-pipeline";

const [tenantId, clientId, clientSecret] = process.argv.slice(2);
const GRAPH_SCOPE = "https://graph.microsoft.com/.default";
const SETTINGS = "https://graph.microsoft.com/beta/deviceManagement/windowsAutopilotSettings";

// The default authority host, https://login.microsoftonline.com: HTTPS_PROXY takes it to dmsync.
const credential = new ClientSecretCredential(tenantId, clientId, clientSecret);
const token = await credential.getToken(GRAPH_SCOPE);

// Graph through the Azure SDK's own HTTP pipeline, whose proxy policy reads HTTPS_PROXY as the
// credential's does (Node 20's global fetch, which the Graph client uses, ignores it).
const pipeline = createPipelineFromOptions({});
pipeline.addPolicy(bearerTokenAuthenticationPolicy({ credential, scopes: GRAPH_SCOPE }));
const httpClient = createDefaultHttpClient();
const send = (method, url) => pipeline.sendRequest(httpClient, createPipelineRequest({ method, url }));

const sync = await send("POST", `${SETTINGS}/sync`); // 204, no body
const settings = await send("GET", SETTINGS);
// end recipe: js-azure-identity-proxy

console.log(
  JSON.stringify({
    token: token.token,
    expiresOnTimestamp: token.expiresOnTimestamp,
    sync: { status: sync.status, body: sync.bodyAsText ?? "" },
    settings: { status: settings.status, body: JSON.parse(settings.bodyAsText) },
  }),
);
