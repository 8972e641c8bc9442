// How to point @microsoft/microsoft-graph-client 3.x at dmsync. docs/CLIENTS.md quotes this
// file between the `recipe:` markers, and the suite builds every client through it, so the
// recipe in the documentation is the code the tests run.
//
// Over `dmsync serve --tls` the stock client works: its URL parser takes an absolute
// `@odata.nextLink` only when it starts with "https://", which dmsync's links now do. Its
// AuthenticationHandler sends the token only to Graph's own hosts and to `customHosts` (names
// without a port), so dmsync's host name is one of those. The process trusts dmsync's CA through
// NODE_EXTRA_CA_CERTS, which scripts/js-compat.sh sets before Node starts.

// recipe: js-graph-client
import { Client } from "@microsoft/microsoft-graph-client";

/**
 * A Graph client on a `dmsync serve --tls` server, with the SDK's default middleware chain.
 * `dmsyncUrl` is the server's https URL, e.g. https://127.0.0.1:8080, and `getAccessToken`
 * returns a token from its token endpoint (POST {dmsyncUrl}/{tenant}/oauth2/v2.0/token).
 */
export function dmsyncGraphClient({ dmsyncUrl, getAccessToken, defaultVersion = "beta" }) {
  return Client.initWithMiddleware({
    baseUrl: dmsyncUrl,
    defaultVersion,
    authProvider: { getAccessToken },
    // The token goes only to Graph's hosts and to these: a host name, without the port.
    customHosts: new Set([new URL(dmsyncUrl).hostname]),
  });
}
// end recipe: js-graph-client
