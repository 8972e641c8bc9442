//! OData's `@odata.context`. The envelopes themselves are written by [`crate::writer`].

/// Graph's public root, used in `@odata.context` whatever host served the request: real Graph
/// clients only read the fragment after `$metadata#`, and scripts compare the whole string.
pub const GRAPH_ROOT: &str = "https://graph.microsoft.com";

/// `https://graph.microsoft.com/{version}/$metadata#{path}`.
pub fn context_url(version: crate::ApiVersion, fragment: &str) -> String {
    // Joined rather than formatted: every response names its context, and `format!` costs
    // several times as much for four plain pieces.
    [GRAPH_ROOT, "/", version.segment(), "/$metadata#", fragment].concat()
}
