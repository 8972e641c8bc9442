// An unmodified @azure/identity app that signs in with a certificate, run by
// test/identity.test.js in a Node process of its own (Node reads NODE_EXTRA_CA_CERTS only when it
// starts), with what a user would export: HTTPS_PROXY and NODE_EXTRA_CA_CERTS. It prints one JSON
// line with what it got, for the test to check.
//
// usage: node clients/azure-identity-certificate.js TENANT CLIENT_ID PEM_FILE (key and certificate)

// recipe: js-azure-identity-certificate
import { ClientCertificateCredential } from "@azure/identity";
import { bearerTokenAuthenticationPolicy, createDefaultHttpClient, createPipelineFromOptions, createPipelineRequest } from "@azure/core-rest-pipeline";

const [tenantId, clientId, certificatePath] = process.argv.slice(2);
const GRAPH_SCOPE = "https://graph.microsoft.com/.default";

// The default authority host, https://login.microsoftonline.com: HTTPS_PROXY takes it to dmsync.
const credential = new ClientCertificateCredential(tenantId, clientId, { certificatePath });
const token = await credential.getToken(GRAPH_SCOPE);

const pipeline = createPipelineFromOptions({});
pipeline.addPolicy(bearerTokenAuthenticationPolicy({ credential, scopes: GRAPH_SCOPE }));
const groups = await pipeline.sendRequest(
  createDefaultHttpClient(),
  createPipelineRequest({ method: "GET", url: "https://graph.microsoft.com/v1.0/groups" }),
);
// end recipe: js-azure-identity-certificate

console.log(JSON.stringify({ token: token.token, groups: { status: groups.status } }));
