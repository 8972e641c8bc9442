// How to point msal-node at dmsync's own identity provider over `dmsync serve --tls`.
// docs/CLIENTS.md quotes the region between the `recipe:` markers, and test/identity.test.js
// gets its tokens through it.

// recipe: js-msal-node
import { ConfidentialClientApplication } from "@azure/msal-node";

/**
 * An msal-node app whose authority is a `dmsync serve --tls` server: `dmsyncUrl` is its https
 * URL, e.g. https://127.0.0.1:8080. Then, for example,
 * `app.acquireTokenByClientCredential({ scopes: ["https://graph.microsoft.com/.default"] })`.
 */
export function dmsyncMsalApp({ dmsyncUrl, tenantId, clientId, clientSecret }) {
  return new ConfidentialClientApplication({
    auth: {
      clientId,
      clientSecret,
      authority: `${dmsyncUrl}/${tenantId}`,
      // MSAL takes an authority outside Microsoft's clouds only when it is listed: host and port.
      knownAuthorities: [new URL(dmsyncUrl).host],
    },
  });
}
// end recipe: js-msal-node
