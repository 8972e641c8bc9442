// How to point @microsoft/microsoft-graph-client 3.x at a dmsync that serves plain HTTP (no
// --tls). docs/CLIENTS.md quotes this file between the `recipe:` markers, and
// test/autopilot-settings.test.js runs it.
//
// Over http the client's AuthenticationHandler deletes any Authorization header, so a
// middleware of this file's own sets the token; and its URL parser takes an absolute
// `@odata.nextLink` only when it starts with "https://", so this client cannot page.

// recipe: js-graph-client-plain-http
import {
  Client,
  HTTPMessageHandler,
  RedirectHandler,
  RedirectHandlerOptions,
  RetryHandler,
  RetryHandlerOptions,
  TelemetryHandler,
} from "@microsoft/microsoft-graph-client";

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
 * Without --tls: baseUrl is dmsync's http URL. Fine for single calls; absolute nextLinks
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
