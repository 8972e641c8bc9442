// How to point @microsoft/microsoft-graph-client 3.x at dmsync. docs/CLIENTS.md quotes this
// file between the `recipe:` markers, and the suite builds every client through it, so the
// recipe in the documentation is the code the tests run.
//
// Two traps decide the shape. The client's AuthenticationHandler adds the bearer token only to
// https URLs of Graph (or of an https custom host) and deletes any Authorization header
// otherwise; and its URL parser understands absolute links only when they start with
// "https://", so an `@odata.nextLink` of http://127.0.0.1:PORT/... is glued onto the base URL
// and PageIterator breaks. Both are avoided by leaving the client pointed at
// https://graph.microsoft.com and swapping the last middleware, the one that calls fetch, for
// one that sends the request to dmsync.

// recipe: js-graph-client
import {
  AuthenticationHandler,
  Client,
  HTTPMessageHandler,
  RedirectHandler,
  RedirectHandlerOptions,
  RetryHandler,
  RetryHandlerOptions,
  TelemetryHandler,
} from "@microsoft/microsoft-graph-client";

/** The last middleware: fetch, but against dmsync instead of https://graph.microsoft.com. */
export class DmsyncFetchHandler {
  constructor(dmsyncUrl) {
    this.target = new URL(dmsyncUrl); // e.g. http://127.0.0.1:8080
  }

  async execute(context) {
    const url = new URL(typeof context.request === "string" ? context.request : context.request.url);
    const graphHost = url.host;
    url.protocol = this.target.protocol;
    url.host = this.target.host;
    // dmsync builds its absolute links (@odata.nextLink) from these two, as behind a reverse
    // proxy, so they come back under https://graph.microsoft.com, which the client parses and
    // this handler maps again. (fetch does not let a caller set Host itself.)
    const headers = { ...context.options.headers, "X-Forwarded-Host": graphHost, "X-Forwarded-Proto": "https" };
    const request = typeof context.request === "string" ? url.toString() : new Request(url, context.request);
    context.response = await fetch(request, { ...context.options, headers });
  }
}

/**
 * A Graph client whose requests go to dmsync. `getAccessToken` returns a token from dmsync's
 * token endpoint (POST {dmsyncUrl}/{tenant}/oauth2/v2.0/token), as an Entra ID app would get one.
 * The chain is the SDK's default one (MiddlewareFactory.getDefaultMiddlewareChain in Node),
 * with the fetch at its end replaced.
 */
export function dmsyncGraphClient({ dmsyncUrl, getAccessToken, defaultVersion = "beta" }) {
  const middleware = [
    new AuthenticationHandler({ getAccessToken }),
    new RetryHandler(new RetryHandlerOptions()),
    new RedirectHandler(new RedirectHandlerOptions()),
    new TelemetryHandler(),
    new DmsyncFetchHandler(dmsyncUrl),
  ];
  return Client.initWithMiddleware({ middleware, defaultVersion });
}
// end recipe: js-graph-client

// recipe: js-graph-client-plain-http
/** Sets the bearer token on every request, http or not (AuthenticationHandler would not). */
export class StaticBearer {
  constructor(token) {
    this.token = token;
  }

  async execute(context) {
    context.options.headers = { ...context.options.headers, Authorization: `Bearer ${this.token}` };
    await this.nextMiddleware.execute(context);
  }

  setNext(next) {
    this.nextMiddleware = next;
  }
}

/**
 * The shorter way: baseUrl points at dmsync itself. Fine for single calls; absolute nextLinks
 * (PageIterator, or client.api(nextLink)) do not work over http in graph-client 3.x.
 */
export function plainHttpGraphClient({ dmsyncUrl, token, defaultVersion = "beta" }) {
  const middleware = [
    new RetryHandler(new RetryHandlerOptions()),
    new RedirectHandler(new RedirectHandlerOptions()),
    new StaticBearer(token),
    new TelemetryHandler(),
    new HTTPMessageHandler(),
  ];
  return Client.initWithMiddleware({ baseUrl: `${dmsyncUrl}/`, defaultVersion, middleware });
}
// end recipe: js-graph-client-plain-http
