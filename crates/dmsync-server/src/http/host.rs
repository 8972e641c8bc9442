//! The host a request addresses. Every request must name one as HTTP/1.1 requires (RFC 9112,
//! section 3.2), and an absolute-form target must agree with its `Host`. The admin API further
//! answers only to the names it is known by: a web page that rebinds its own name to 127.0.0.1
//! reaches the server with `Host: its-name`, and on loopback the public development admin token
//! would otherwise let it mint tokens for any tenant.

use std::net::IpAddr;

use axum::extract::{OriginalUri, Request};
use axum::http::uri::{Authority, Scheme};
use axum::http::{HeaderMap, Uri, Version, header};

use crate::config::Config;
use crate::error::ApiError;
use crate::proxy::TunnelHost;

/// The request pipeline's check of every request (`http::pipeline`): refuses a request whose
/// `Host` is missing (HTTP/1.1), repeated or malformed, or whose absolute-form target names another
/// host, before anything else reads it. A request that came through the proxy's tunnel to a
/// Microsoft host must name that host, so that a tunnel opened to graph.microsoft.com cannot
/// reach the admin API under a loopback name.
pub fn require_host(request: &Request) -> Result<(), ApiError> {
    let uri = request.extensions().get::<OriginalUri>().map_or(request.uri(), |o| &o.0);
    let authority = addressed_authority(request.version(), uri, request.headers())?;
    if let Some(TunnelHost(tunnel)) = request.extensions().get::<TunnelHost>() {
        let same = authority.as_ref().is_some_and(|a| {
            crate::proxy::normalize_host(a.host()) == **tunnel
                && a.port_u16().is_none_or(|p| p == crate::proxy::PROXIED_PORT)
        });
        if !same {
            let host = authority.map(|a| a.to_string()).unwrap_or_default();
            return Err(ApiError::HostMismatch { target: tunnel.to_string(), host });
        }
    }
    Ok(())
}

/// What the client shows as `Host` and in errors: its bytes, lossily, so a hostile value is
/// still quoted rather than dropped.
fn shown(value: &[u8]) -> String {
    String::from_utf8_lossy(value).into_owned()
}

/// A host with an optional port, and nothing else: no user information, path or scheme.
pub fn parse_authority(text: &str) -> Option<Authority> {
    // A byte test, not a `char` pattern: every request's `Host` passes here.
    if text.is_empty() || text.bytes().any(|b| matches!(b, b'@' | b'/' | b'?' | b'#')) {
        return None;
    }
    text.parse::<Authority>().ok().filter(|a| !a.host().is_empty())
}

/// The port a client means when it names none.
fn default_port(scheme: Option<&Scheme>) -> u16 {
    if scheme == Some(&Scheme::HTTPS) { 443 } else { 80 }
}

/// The authority the request addresses: the absolute-form target's if there is one, otherwise
/// `Host`'s; `None` for an HTTP/1.0 request that names none, or an empty `Host`.
pub fn addressed_authority(version: Version, uri: &Uri, headers: &HeaderMap) -> Result<Option<Authority>, ApiError> {
    let mut hosts = headers.get_all(header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(ApiError::BadHost("The request has more than one Host header (RFC 9112, section 3.2).".into()));
    }
    let host = match host {
        // HTTP/2 and later carry the authority in the target; HTTP/1.0 may omit it.
        None if version == Version::HTTP_11 => {
            return Err(ApiError::BadHost(
                "The request has no Host header, which HTTP/1.1 requires (RFC 9112, section 3.2).".into(),
            ));
        }
        None => None,
        // RFC 9112 sends an empty Host for a target without an authority.
        Some(value) if value.is_empty() => None,
        Some(value) => match value.to_str().ok().and_then(parse_authority) {
            Some(authority) => Some(authority),
            None => {
                return Err(ApiError::BadHost(format!(
                    "The Host header '{}' is not a host with an optional port.",
                    shown(value.as_bytes())
                )));
            }
        },
    };
    match (uri.authority(), host) {
        (Some(target), Some(host)) if !same_authority(target, &host, uri.scheme()) => {
            Err(ApiError::HostMismatch { target: target.to_string(), host: host.to_string() })
        }
        (Some(target), None) if headers.contains_key(header::HOST) => {
            Err(ApiError::HostMismatch { target: target.to_string(), host: String::new() })
        }
        (Some(target), _) => Ok(Some(target.clone())),
        (None, host) => Ok(host),
    }
}

fn same_authority(a: &Authority, b: &Authority, scheme: Option<&Scheme>) -> bool {
    a.host().eq_ignore_ascii_case(b.host())
        && a.port_u16().unwrap_or(default_port(scheme)) == b.port_u16().unwrap_or(default_port(scheme))
}

/// Whether the admin API answers to `host` (with `port`, the client's or its scheme's default).
///
/// Loopback names and addresses can only come from this machine, and the listen address is
/// what a client on the network types; anything else must be named by the operator with
/// `--admin-allow-host`. The names the server is published under join them, with any port
/// (what defends against rebinding is the name): the host of `--public-url` and every
/// `--tls-name`, or the admin API would refuse them.
fn admin_answers_to(config: &Config, host: &str, port: u16) -> bool {
    let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    if let Ok(ip) = bare.parse::<IpAddr>() {
        let listen = config.listen.ip();
        if ip.is_loopback() || (!listen.is_unspecified() && ip == listen) {
            return true;
        }
    }
    if config.public_url.as_ref().is_some_and(|public| public.authority().host().eq_ignore_ascii_case(host)) {
        return true;
    }
    if let Some(crate::config::TlsCertificate::LocalCa { names }) = &config.tls
        && names.iter().any(|name| name.trim_end_matches('.').eq_ignore_ascii_case(bare))
    {
        return true;
    }
    config
        .admin_allowed_hosts
        .iter()
        .filter_map(|entry| parse_authority(entry))
        .any(|allowed| allowed.host().eq_ignore_ascii_case(host) && allowed.port_u16().is_none_or(|p| p == port))
}

/// The admin API's check of `Host` (or the absolute-form target) and of every `Origin`: a
/// request must name a host the admin API answers to, and a browser's request must come from
/// a page served under such a name. `Origin: null` (a sandboxed or local page) is refused.
pub fn check_admin_host(config: &Config, version: Version, uri: &Uri, headers: &HeaderMap) -> Result<(), ApiError> {
    let refused = |header: &'static str, value: &[u8]| ApiError::AdminHostRefused { header, value: shown(value) };
    let authority = addressed_authority(version, uri, headers)?;
    let Some(authority) = authority else {
        return Err(refused("Host", b""));
    };
    let port = authority.port_u16().unwrap_or(default_port(uri.scheme()));
    if !admin_answers_to(config, authority.host(), port) {
        return Err(refused("Host", authority.as_str().as_bytes()));
    }
    for origin in headers.get_all(header::ORIGIN) {
        let parsed = origin.to_str().ok().and_then(|o| o.parse::<Uri>().ok());
        let allowed = parsed.is_some_and(|o| {
            let web = o.scheme() == Some(&Scheme::HTTP) || o.scheme() == Some(&Scheme::HTTPS);
            let only_origin = o.path_and_query().is_none_or(|p| p.as_str() == "/" || p.as_str().is_empty());
            match o.authority() {
                Some(a) if web && only_origin && parse_authority(a.as_str()).is_some() => {
                    admin_answers_to(config, a.host(), a.port_u16().unwrap_or(default_port(o.scheme())))
                }
                _ => false,
            }
        });
        if !allowed {
            return Err(refused("Origin", origin.as_bytes()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(*name, HeaderValue::from_static(value));
        }
        h
    }

    fn admin(config: &Config, uri: &str, pairs: &[(&'static str, &'static str)]) -> Result<(), ApiError> {
        check_admin_host(config, Version::HTTP_11, &uri.parse().unwrap(), &headers(pairs))
    }

    #[test]
    fn http_1_1_needs_exactly_one_well_formed_host() {
        let origin_form: Uri = "/beta/x".parse().unwrap();
        let check = |version, pairs: &[(&'static str, &'static str)]| {
            addressed_authority(version, &origin_form, &headers(pairs))
        };
        assert!(matches!(check(Version::HTTP_11, &[]), Err(ApiError::BadHost(_))));
        assert!(matches!(check(Version::HTTP_10, &[]), Ok(None)));
        assert!(matches!(check(Version::HTTP_11, &[("host", "a"), ("host", "b")]), Err(ApiError::BadHost(_))));
        assert!(matches!(check(Version::HTTP_11, &[("host", "user@a")]), Err(ApiError::BadHost(_))));
        assert!(matches!(check(Version::HTTP_11, &[("host", "a/b")]), Err(ApiError::BadHost(_))));
        assert_eq!(
            check(Version::HTTP_11, &[("host", "Graph.Example:8080")]).unwrap().unwrap().as_str(),
            "Graph.Example:8080"
        );
    }

    #[test]
    fn an_absolute_form_target_must_name_the_host_header() {
        let check = |uri: &str, host: &'static str| {
            addressed_authority(Version::HTTP_11, &uri.parse().unwrap(), &headers(&[("host", host)]))
        };
        assert!(check("http://127.0.0.1:8080/beta/x", "127.0.0.1:8080").is_ok());
        assert!(check("http://LOCALHOST/beta/x", "localhost:80").is_ok());
        assert!(matches!(check("http://evil.example/beta/x", "127.0.0.1:8080"), Err(ApiError::HostMismatch { .. })));
        assert!(matches!(check("http://127.0.0.1:9/beta/x", "127.0.0.1:8080"), Err(ApiError::HostMismatch { .. })));
    }

    #[test]
    fn the_admin_api_answers_to_loopback_the_listen_address_and_configured_names() {
        let mut config = Config::for_tests("sqlite::memory:");
        config.listen = "10.1.2.3:8080".parse().unwrap();
        config.admin_allowed_hosts = vec!["dmsync.lan".into(), "admin.example:9443".into()];
        for ok in [
            "localhost:1",
            "LocalHost",
            "127.0.0.1:8080",
            "127.9.9.9",
            "[::1]:8080",
            "10.1.2.3:8080",
            "dmsync.lan:1234",
            "admin.example:9443",
        ] {
            let h = HeaderValue::from_str(ok).unwrap();
            let mut map = HeaderMap::new();
            map.insert(header::HOST, h);
            assert!(
                check_admin_host(&config, Version::HTTP_11, &"/_dmsync/clock".parse().unwrap(), &map).is_ok(),
                "{ok}"
            );
        }
        for refused in ["evil.example", "localhost.evil.example", "admin.example:9444", "10.1.2.4:8080", "0.0.0.0:8080"]
        {
            let mut map = HeaderMap::new();
            map.insert(header::HOST, HeaderValue::from_str(refused).unwrap());
            assert!(
                matches!(
                    check_admin_host(&config, Version::HTTP_11, &"/_dmsync/clock".parse().unwrap(), &map),
                    Err(ApiError::AdminHostRefused { header: "Host", .. })
                ),
                "{refused}"
            );
        }
        // The absolute-form target is what the request addresses.
        assert!(admin(&config, "http://evil.example/_dmsync/clock", &[("host", "evil.example")]).is_err());
        // The names the server is published under.
        let mut published = Config::for_tests("sqlite::memory:");
        published.public_url = Some(crate::config::PublicUrl::parse("https://dmsync.example").unwrap());
        published.tls = Some(crate::config::TlsCertificate::LocalCa { names: vec!["dmsync.lan".into()] });
        for (host, answered) in
            [("dmsync.example", true), ("dmsync.example:8443", true), ("dmsync.lan:9", true), ("other.lan", false)]
        {
            let mut map = HeaderMap::new();
            map.insert(header::HOST, HeaderValue::from_str(host).unwrap());
            let checked = check_admin_host(&published, Version::HTTP_11, &"/_dmsync/clock".parse().unwrap(), &map);
            assert_eq!(checked.is_ok(), answered, "{host}");
        }
        // A request that names no host at all is not answered either.
        assert!(
            check_admin_host(&config, Version::HTTP_10, &"/_dmsync/clock".parse().unwrap(), &HeaderMap::new()).is_err()
        );
    }

    #[test]
    fn a_browser_origin_must_be_a_name_the_admin_api_answers_to() {
        let config = Config::for_tests("sqlite::memory:");
        assert!(
            admin(&config, "/_dmsync/clock", &[("host", "localhost:8080"), ("origin", "http://localhost:8080")])
                .is_ok()
        );
        assert!(admin(&config, "/_dmsync/clock", &[("host", "localhost:8080"), ("origin", "https://[::1]")]).is_ok());
        for origin in [
            "http://evil.example",
            "null",
            "file://",
            "chrome-extension://abc",
            "http://localhost:8080/path",
            "garbage",
        ] {
            assert!(
                matches!(
                    admin(&config, "/_dmsync/clock", &[("host", "localhost:8080"), ("origin", origin)]),
                    Err(ApiError::AdminHostRefused { header: "Origin", .. })
                ),
                "{origin}"
            );
        }
    }
}
