//! Graph routing. Graph matches path segments case-insensitively and accepts both forms of a
//! bound action (`/sync` and `/microsoft.graph.sync`); axum matches exactly. So every Graph path
//! is first rewritten to the canonical spelling of its known segments, then routed. The same
//! table tells, for a path nothing matched, which segment Graph would call unknown.

use std::borrow::Cow;
use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::handler::Handler;
use axum::http::{Method, Uri};
use axum::routing::MethodRouter;
use dmsync_graph::ApiVersion;

use crate::error::ApiError;
use crate::http::openapi::OperationDoc;
use crate::state::AppState;

/// Which versions a resource exists in.
pub const BOTH: &[ApiVersion] = &[ApiVersion::V1, ApiVersion::Beta];
pub const BETA: &[ApiVersion] = &[ApiVersion::Beta];

/// One Graph path, relative to the version (`deviceManagement/windowsAutopilotSettings/sync`),
/// with `{name}` for key segments, and its methods.
pub struct GraphRoute {
    pub versions: &'static [ApiVersion],
    pub path: &'static str,
    pub endpoints: Vec<Endpoint>,
}

impl GraphRoute {
    pub fn new(versions: &'static [ApiVersion], path: &'static str, endpoints: Vec<Endpoint>) -> Self {
        GraphRoute { versions, path, endpoints }
    }
}

/// One method of a route: its handler, and what the OpenAPI document says of it. The router
/// and the document are both made from these, so neither can have a method the other lacks.
pub struct Endpoint {
    pub method: Method,
    pub doc: OperationDoc,
    handler: MethodRouter<AppState>,
}

macro_rules! endpoint_constructors {
    ($($name:ident => $method:ident),*) => {
        impl Endpoint {
            $(
                pub fn $name<H, T>(handler: H, doc: OperationDoc) -> Self
                where
                    H: Handler<T, AppState>,
                    T: 'static,
                {
                    Endpoint { method: Method::$method, doc, handler: axum::routing::$name(handler) }
                }
            )*
        }
    };
}

endpoint_constructors!(get => GET, post => POST, patch => PATCH, delete => DELETE);

/// The known Graph paths, for canonicalising and for unknown-segment errors.
#[derive(Debug, Default)]
pub struct RouteTable {
    patterns: Vec<(ApiVersion, Vec<&'static str>)>,
    /// Every method of every path, with its description, in the order the routes were given.
    operations: Vec<(ApiVersion, &'static str, Method, OperationDoc)>,
    /// Lower-cased literal segment → its canonical spelling. Both maps hash with foldhash: a
    /// client's segments are only looked up in them, never inserted, and every request's path
    /// is looked up segment by segment.
    canonical: foldhash::HashMap<String, &'static str>,
    /// The canonical spellings themselves, which need no lower-casing to be recognised.
    spellings: foldhash::HashSet<&'static str>,
}

const ACTION_NAMESPACE: &str = "microsoft.graph.";

impl RouteTable {
    /// Registers the routes in both the axum router and the table.
    pub fn build(routes: Vec<GraphRoute>) -> (Router<AppState>, RouteTable) {
        let mut router = Router::new();
        let mut table = RouteTable::default();
        for route in routes {
            let segments: Vec<&'static str> = route.path.split('/').collect();
            for s in &segments {
                if !s.starts_with('{') {
                    table.canonical.insert(s.to_ascii_lowercase(), s);
                    table.spellings.insert(s);
                }
            }
            let methods = route
                .endpoints
                .iter()
                .fold(MethodRouter::new(), |methods, endpoint| methods.merge(endpoint.handler.clone()));
            for version in route.versions {
                table.patterns.push((*version, segments.clone()));
                for endpoint in &route.endpoints {
                    table.operations.push((*version, route.path, endpoint.method.clone(), endpoint.doc));
                }
                router = router.route(&format!("/{}/{}", version.segment(), route.path), methods.clone());
            }
        }
        (router, table)
    }

    /// The operations served under `version`: path (relative to the version), method and
    /// description.
    pub fn operations(&self, version: ApiVersion) -> impl Iterator<Item = (&'static str, &Method, &OperationDoc)> {
        self.operations.iter().filter(move |(v, ..)| *v == version).map(|(_, path, method, doc)| (*path, method, doc))
    }

    /// Whether some route has the operation id `id` (an OperationDoc's id).
    pub fn has_operation(&self, id: &str) -> bool {
        self.operations.iter().any(|(.., doc)| doc.id == id)
    }

    /// The operation id of the route a request with `method` and the canonical `path` reaches,
    /// comparing segments as Graph does (ignoring case; a key segment takes any value).
    pub fn operation_id(&self, method: &Method, path: &str) -> Option<&'static str> {
        let mut segments = path.split('/').filter(|s| !s.is_empty());
        let version = ApiVersion::from_segment(segments.next()?)?;
        let rest: Vec<&str> = segments.collect();
        // Where a key and a literal both fit (`{id}` and `$count`), the literal is the route.
        self.operations
            .iter()
            .filter(|(v, route, m, _)| {
                *v == version
                    && m == method
                    && route.split('/').count() == rest.len()
                    && route.split('/').zip(&rest).all(|(p, s)| p.starts_with('{') || p.eq_ignore_ascii_case(s))
            })
            .max_by_key(|(_, route, ..)| route.split('/').filter(|p| !p.starts_with('{')).count())
            .map(|(.., doc)| doc.id)
    }

    /// Rewrites a Graph path to canonical spelling: `None` for a path outside Graph's versions,
    /// and the path itself, borrowed, when it is already canonical (the common case, which
    /// then allocates nothing). Empty segments are dropped, as Graph ignores them: the Python
    /// SDK joins its base URL and the template with one `/` too many
    /// (`/beta//deviceManagement/...`).
    pub fn canonicalize_path<'a>(&self, path: &'a str) -> Option<Cow<'a, str>> {
        let mut segments = path.split('/').filter(|s| !s.is_empty());
        let first = segments.next()?;
        let version = ApiVersion::from_segment(first)?;
        // With no empty segment anywhere, the segments after the version are `split('/')`'s
        // third onwards.
        let unchanged = first == version.segment()
            && path.starts_with('/')
            && !path.ends_with('/')
            && !path.contains("//")
            && path.split('/').skip(2).all(|segment| std::ptr::eq(self.canonical_segment(segment), segment));
        if unchanged {
            return Some(Cow::Borrowed(path));
        }
        let mut out = String::with_capacity(path.len());
        out.push('/');
        out.push_str(version.segment());
        for segment in segments {
            out.push('/');
            out.push_str(self.canonical_segment(segment));
        }
        Some(Cow::Owned(out))
    }

    /// The canonical spelling of a literal segment, or the segment itself (the very same
    /// slice) when it is a key or already canonical.
    fn canonical_segment<'a>(&'a self, segment: &'a str) -> &'a str {
        if self.spellings.contains(segment) {
            return segment;
        }
        // `$count` may arrive percent-encoded.
        let mut lower = segment.to_ascii_lowercase();
        if lower.contains("%24") {
            lower = lower.replace("%24", "$");
        }
        if let Some(c) = self.canonical.get(&lower) {
            return c;
        }
        if let Some(action) = lower.strip_prefix(ACTION_NAMESPACE)
            && let Some(c) = self.canonical.get(action)
        {
            return c;
        }
        segment
    }

    /// The error Graph gives for a path that matched no route.
    pub fn unmatched(&self, path: &str) -> ApiError {
        let mut segments = path.trim_start_matches('/').split('/').filter(|s| !s.is_empty());
        let Some(first) = segments.next() else {
            return ApiError::InvalidVersion(String::new());
        };
        let Some(version) = ApiVersion::from_segment(first) else {
            return ApiError::InvalidVersion(first.to_owned());
        };
        let rest: Vec<&str> = segments.collect();
        let mut candidates: Vec<&Vec<&'static str>> =
            self.patterns.iter().filter(|(v, _)| *v == version).map(|(_, p)| p).collect();
        for (i, segment) in rest.iter().enumerate() {
            candidates.retain(|p| p.get(i).is_some_and(|s| s.starts_with('{') || s.eq_ignore_ascii_case(segment)));
            if candidates.is_empty() {
                return ApiError::UnknownSegment((*segment).to_owned());
            }
        }
        // Every segment is known but the path stops short of a resource dmsync serves.
        ApiError::UnknownSegment(rest.last().copied().unwrap_or(first).to_owned())
    }

    /// The known route nearest to a path that matched none, as `/{version}/{pattern}`: the one
    /// sharing the longest run of leading segments, then the one whose next segment is the
    /// fewest edits from the path's, then the one closest in length. `None` outside Graph's
    /// versions. The journal shows it, so a tester sees at once what dmsync did not understand.
    pub fn nearest(&self, path: &str) -> Option<String> {
        let mut segments = path.split('/').filter(|s| !s.is_empty());
        let version = ApiVersion::from_segment(segments.next()?)?;
        // Bounded: a path is cut at a few dozen segments, a segment's edits at a few dozen bytes.
        let rest: Vec<&str> = segments.take(MAX_NEAREST_SEGMENTS).collect();
        let score = |pattern: &[&str]| {
            let shared =
                pattern.iter().zip(&rest).take_while(|(p, s)| p.starts_with('{') || p.eq_ignore_ascii_case(s)).count();
            // A segment on one side only counts as that many insertions.
            let edits = edit_distance(pattern.get(shared).unwrap_or(&""), rest.get(shared).unwrap_or(&""));
            (std::cmp::Reverse(shared), edits, pattern.len().abs_diff(rest.len()))
        };
        self.patterns
            .iter()
            .filter(|(v, _)| *v == version)
            .min_by_key(|(_, pattern)| score(pattern))
            .map(|(_, pattern)| format!("/{}/{}", version.segment(), pattern.join("/")))
    }
}

/// How many segments of a path [`RouteTable::nearest`] compares.
const MAX_NEAREST_SEGMENTS: usize = 32;
/// How many bytes of a segment its edit distance looks at.
const MAX_EDIT_BYTES: usize = 64;

/// Levenshtein distance between two segments, ignoring case, on their first bytes only.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<u8> = a.bytes().take(MAX_EDIT_BYTES).map(|c| c.to_ascii_lowercase()).collect();
    let b: Vec<u8> = b.bytes().take(MAX_EDIT_BYTES).map(|c| c.to_ascii_lowercase()).collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, &ca) in a.iter().enumerate() {
        current[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

/// The `map_request` step that runs before routing.
pub fn canonicalize_request(table: Arc<RouteTable>) -> impl Fn(Request) -> Request + Clone {
    move |mut request: Request| {
        // Keep the URL as the client sent it: Intune quotes it in error messages. axum's router
        // leaves an OriginalUri that is already there alone.
        let original = request.uri().clone();
        request.extensions_mut().insert(axum::extract::OriginalUri(original));
        let uri = request.uri();
        let rewritten = match table.canonicalize_path(uri.path()) {
            Some(Cow::Owned(path)) => Some(path),
            Some(Cow::Borrowed(_)) => None,
            // The identity provider's and dmsync's own paths tolerate empty segments too.
            None if uri.path().contains("//") => Some(collapse_slashes(uri.path())),
            None => None,
        };
        if let Some(path) = rewritten
            && path != uri.path()
        {
            let rebuilt = match uri.query() {
                Some(q) => format!("{path}?{q}"),
                None => path,
            };
            if let Ok(new_uri) = rebuilt.parse::<Uri>() {
                *request.uri_mut() = new_uri;
            }
        }
        request
    }
}

/// The path with each run of `/` made one, so that empty segments match no differently.
fn collapse_slashes(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if c != '/' || !out.ends_with('/') {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::openapi::Answer;

    fn table() -> RouteTable {
        let noop = || vec![Endpoint::get(|| async {}, OperationDoc::new("noop", Answer::NoContent))];
        RouteTable::build(vec![
            GraphRoute::new(BETA, "deviceManagement/windowsAutopilotSettings", noop()),
            GraphRoute::new(BETA, "deviceManagement/windowsAutopilotSettings/sync", noop()),
            GraphRoute::new(BOTH, "deviceManagement/windowsAutopilotDeviceIdentities/{id}", noop()),
        ])
        .1
    }

    #[test]
    fn canonicalizes_case_action_namespace_and_trailing_slash() {
        let t = table();
        assert_eq!(
            t.canonicalize_path("/BETA/devicemanagement/WINDOWSAUTOPILOTSETTINGS/Microsoft.Graph.Sync").as_deref(),
            Some("/beta/deviceManagement/windowsAutopilotSettings/sync")
        );
        assert_eq!(
            t.canonicalize_path("/v1.0/deviceManagement/windowsAutopilotDeviceIdentities/AbC/").as_deref(),
            Some("/v1.0/deviceManagement/windowsAutopilotDeviceIdentities/AbC")
        );
        assert_eq!(t.canonicalize_path("/_dmsync/tokens"), None);
        // A canonical path comes back as itself, without a copy.
        for canonical in [
            "/beta/deviceManagement/windowsAutopilotSettings/sync",
            "/v1.0/deviceManagement/windowsAutopilotDeviceIdentities/AbC",
            "/beta",
        ] {
            assert!(matches!(t.canonicalize_path(canonical), Some(Cow::Borrowed(p)) if p == canonical), "{canonical}");
        }
        assert_eq!(t.canonicalize_path("/beta/").as_deref(), Some("/beta"));
    }

    #[test]
    fn empty_segments_are_dropped_anywhere_in_the_path() {
        let t = table();
        for path in [
            "/beta//deviceManagement/windowsAutopilotSettings/sync",
            "//beta/deviceManagement/windowsAutopilotSettings/sync",
            "/beta/deviceManagement///windowsAutopilotSettings/sync//",
            "/Beta//DeviceManagement/windowsAutopilotSettings//microsoft.graph.sync",
        ] {
            assert_eq!(
                t.canonicalize_path(path).as_deref(),
                Some("/beta/deviceManagement/windowsAutopilotSettings/sync"),
                "{path}"
            );
        }
        assert_eq!(t.canonicalize_path("//").as_deref(), None);
        assert_eq!(t.canonicalize_path("/beta//").as_deref(), Some("/beta"));
        assert_eq!(collapse_slashes("/tenant//oauth2///v2.0/token"), "/tenant/oauth2/v2.0/token");
        assert_eq!(collapse_slashes("//_dmsync/tokens"), "/_dmsync/tokens");
        assert_eq!(collapse_slashes("/"), "/");
    }

    #[test]
    fn names_the_first_unknown_segment() {
        let t = table();
        let seg = |p: &str| match t.unmatched(p) {
            ApiError::UnknownSegment(s) => s,
            other => panic!("{other:?}"),
        };
        assert_eq!(seg("/v1.0/deviceManagement/windowsAutopilotSettings"), "windowsAutopilotSettings");
        assert_eq!(seg("/beta/deviceManagement/nope/sync"), "nope");
        assert_eq!(seg("/beta/deviceManagement/windowsAutopilotDeviceIdentities/x/y"), "y");
        assert!(matches!(t.unmatched("/v2.0/me"), ApiError::InvalidVersion(v) if v == "v2.0"));
    }

    #[test]
    fn the_nearest_route_shares_the_most_segments_then_the_fewest_edits() {
        let t = table();
        assert_eq!(
            t.nearest("/beta/deviceManagement/windowsAutopilotSetings").as_deref(),
            Some("/beta/deviceManagement/windowsAutopilotSettings")
        );
        assert_eq!(
            t.nearest("/beta/deviceManagement/windowsAutopilotSettings/synch").as_deref(),
            Some("/beta/deviceManagement/windowsAutopilotSettings/sync")
        );
        assert_eq!(
            t.nearest("/v1.0/deviceManagement/windowsAutopilotDeviceIdentities/x/y").as_deref(),
            Some("/v1.0/deviceManagement/windowsAutopilotDeviceIdentities/{id}")
        );
        assert_eq!(t.nearest("/v2.0/me"), None);
        assert_eq!(t.nearest("/tenant/oauth2/v2.0/nope"), None);
        assert_eq!(edit_distance("kitten", "Sitting"), 3);
    }
}
