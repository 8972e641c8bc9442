//! Server configuration. The binary fills it from flags and `DMSYNC_*` variables; tests build it
//! directly with `Config::for_tests`.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use http::uri::{Authority, Scheme, Uri};

use time::Duration as ClockDuration;

pub use crate::control::throttling::ThrottlingSetting;
pub use dmsync_core::permissions::PermissionProfile;

/// The admin token accepted when none is configured, and only while listening on loopback.
pub const DEV_ADMIN_TOKEN: &str = "dmsync-dev-admin";

#[derive(Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub db: String,
    pub admin_token: Option<String>,
    /// Host names (each with an optional port) the admin API answers to besides loopback names
    /// and the listen address; see `http::host`.
    pub admin_allowed_hosts: Vec<String>,
    pub permission_profile: PermissionProfile,
    /// Minimum time between the starts of two Autopilot syncs (Intune: 10 minutes). The
    /// durations measured on the Clock (or handed to the store) are `time::Duration`s, converted
    /// once when the flags are parsed, so no call site converts or falls back.
    pub sync_cooldown: ClockDuration,
    /// Send `Retry-After` with the remaining seconds on the cooldown 429. Real Intune does not.
    pub sync_retry_after: bool,
    /// How long a sync stays `inProgress` at least, measured on the Clock.
    pub sync_duration: ClockDuration,
    /// How long the deployment service takes to process an import, on the Clock.
    pub import_delay: ClockDuration,
    /// Whether a completed import restarts the sync cooldown, as observed in real tenants.
    pub import_counts_as_sync: bool,
    /// How long a device deleted through Graph stays visible before it is deregistered.
    pub deletion_delay: ClockDuration,
    /// How long Entra takes to process dynamic group membership after a rule or a device
    /// changed, on the Clock.
    pub group_processing_delay: ClockDuration,
    /// How long a device waits `pending` for the deployment profile it came under before the
    /// profile is assigned, on the Clock (zero assigns in the pass that found it).
    pub profile_assignment_delay: ClockDuration,
    /// Scheduled Exchange connector syncs: a delta this often, a full sync this often.
    pub exchange_delta_interval: ClockDuration,
    pub exchange_full_interval: ClockDuration,
    /// Hosts an HTTP Exchange source may name (SSRF defence); empty allows none.
    pub exchange_source_allowed_hosts: Vec<String>,
    /// Largest accepted Graph request body.
    pub max_body_bytes: usize,
    /// Bytes of collection pages kept in memory between writes (SQLite only; zero keeps none).
    pub page_cache_bytes: usize,
    /// Requests the journal keeps (`control::journal`); zero turns it off.
    pub journal_entries: usize,
    /// Bytes of each request and response body the journal keeps; the rest is cut, and marked.
    pub journal_body_bytes: usize,
    /// How long a client has to send a request's head, counted from the connection's opening or
    /// from the first byte of a later request on it.
    pub header_read_timeout: Duration,
    /// How long a connection may sit with no request in flight and nothing received.
    pub idle_timeout: Duration,
    /// How long a Graph request's body may take to arrive, in total.
    pub body_read_timeout: Duration,
    /// How long a streaming admin upload may go without receiving a byte.
    pub upload_stall_timeout: Duration,
    /// Connections served at once; one more is answered 503 and closed.
    pub max_connections: usize,
    pub workers: usize,
    pub job_lease: ClockDuration,
    pub shutdown_timeout: Duration,
    pub external_issuer: Option<ExternalIssuer>,
    /// How long an idle worker waits before looking for jobs again when nothing woke it. Jobs
    /// this process enqueues and clock advances wake it at once; the poll finds jobs that came
    /// due and jobs other replicas enqueued.
    pub job_poll_interval: Duration,
    /// HTTPS on the listen address (`--tls`), and with which certificate.
    pub tls: Option<TlsCertificate>,
    /// The scheme and authority of every absolute URL dmsync writes, when no `X-Forwarded-*`
    /// header names them (`--public-url`).
    pub public_url: Option<PublicUrl>,
    /// The hostname-preserving forward proxy's listen address (`proxy.rs`); none by default.
    pub proxy_listen: Option<SocketAddr>,
    /// Whether the proxy tunnels `CONNECT`s to hosts it does not emulate (still port 443 only).
    pub proxy_pass_through: bool,
    /// Fault rules to hold from the start (`--faults FILE`), already validated.
    pub faults: Vec<crate::control::faults::Rule>,
    /// Throttling at start (`--throttling`); the admin API can switch it later.
    pub throttling: ThrottlingSetting,
}

/// The certificate `serve --tls` presents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TlsCertificate {
    /// A leaf from the local CA naming `localhost`, `127.0.0.1`, `::1`, the listen host and
    /// these names (`--tls-name`).
    LocalCa { names: Vec<String> },
    /// The operator's own chain and key, PEM files (`--tls-cert`, `--tls-key`).
    Operator { cert: PathBuf, key: PathBuf },
}

/// `--public-url`: a scheme (`http` or `https`) and an authority, and nothing else.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicUrl {
    scheme: Scheme,
    authority: Authority,
    /// `scheme://authority`, what absolute URLs start with.
    origin: String,
}

impl PublicUrl {
    /// Parses `https://host[:port]` (or `http://`); a path other than `/`, a query, a fragment
    /// or user information is refused, since dmsync would not honour it.
    pub fn parse(text: &str) -> Result<PublicUrl, String> {
        let uri: Uri =
            text.parse().map_err(|e| format!("'{text}' is not a URL ({e}); try https://dmsync.example:8443"))?;
        let scheme = match uri.scheme() {
            Some(s) if *s == Scheme::HTTPS || *s == Scheme::HTTP => s.clone(),
            _ => return Err(format!("'{text}' must start with https:// or http://")),
        };
        let authority = uri
            .authority()
            .and_then(|a| crate::http::host::parse_authority(a.as_str()))
            .ok_or_else(|| format!("'{text}' names no host, or a host with user information"))?;
        if uri.path_and_query().is_some_and(|p| p.as_str() != "/" && !p.as_str().is_empty()) || text.contains('#') {
            return Err(format!(
                "'{text}' has a path, query or fragment; give only the scheme, host and port (dmsync serves Graph at the root)"
            ));
        }
        let origin = format!("{scheme}://{authority}");
        Ok(PublicUrl { scheme, authority, origin })
    }

    pub fn scheme(&self) -> &Scheme {
        &self.scheme
    }

    pub fn authority(&self) -> &Authority {
        &self.authority
    }

    /// `scheme://host[:port]`, without a trailing slash.
    pub fn origin(&self) -> &str {
        &self.origin
    }
}

/// Tokens from a real Entra ID app registration (or any issuer that signs Entra-shaped tokens).
#[derive(Clone, Debug)]
pub struct ExternalIssuer {
    pub jwks_url: String,
    /// Extra accepted audiences, for example the API's own client id.
    pub audiences: Vec<String>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The admin token is a secret: never print it.
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("db", &self.db)
            .field("admin_token", &self.admin_token.as_ref().map(|_| "<redacted>"))
            .field("admin_allowed_hosts", &self.admin_allowed_hosts)
            .field("permission_profile", &self.permission_profile)
            .field("sync_cooldown", &self.sync_cooldown)
            .field("sync_retry_after", &self.sync_retry_after)
            .field("sync_duration", &self.sync_duration)
            .field("import_delay", &self.import_delay)
            .field("import_counts_as_sync", &self.import_counts_as_sync)
            .field("deletion_delay", &self.deletion_delay)
            .field("group_processing_delay", &self.group_processing_delay)
            .field("profile_assignment_delay", &self.profile_assignment_delay)
            .field("exchange_delta_interval", &self.exchange_delta_interval)
            .field("exchange_full_interval", &self.exchange_full_interval)
            .field("exchange_source_allowed_hosts", &self.exchange_source_allowed_hosts)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("page_cache_bytes", &self.page_cache_bytes)
            .field("journal_entries", &self.journal_entries)
            .field("journal_body_bytes", &self.journal_body_bytes)
            .field("header_read_timeout", &self.header_read_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("body_read_timeout", &self.body_read_timeout)
            .field("upload_stall_timeout", &self.upload_stall_timeout)
            .field("max_connections", &self.max_connections)
            .field("workers", &self.workers)
            .field("job_lease", &self.job_lease)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .field("external_issuer", &self.external_issuer)
            .field("job_poll_interval", &self.job_poll_interval)
            .field("tls", &self.tls)
            .field("public_url", &self.public_url)
            .field("proxy_listen", &self.proxy_listen)
            .field("proxy_pass_through", &self.proxy_pass_through)
            .field("faults", &self.faults.len())
            .field("throttling", &self.throttling.mode())
            .finish()
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".parse().expect("literal address"),
            db: "sqlite://dmsync.db".into(),
            admin_token: None,
            admin_allowed_hosts: Vec::new(),
            permission_profile: PermissionProfile::Original,
            sync_cooldown: ClockDuration::minutes(10),
            sync_retry_after: false,
            sync_duration: ClockDuration::seconds(5),
            import_delay: ClockDuration::seconds(10),
            import_counts_as_sync: true,
            deletion_delay: ClockDuration::seconds(10),
            group_processing_delay: ClockDuration::minutes(5),
            profile_assignment_delay: ClockDuration::minutes(15),
            exchange_delta_interval: ClockDuration::minutes(15),
            exchange_full_interval: ClockDuration::hours(24),
            exchange_source_allowed_hosts: Vec::new(),
            max_body_bytes: 4 * 1024 * 1024,
            page_cache_bytes: 64 * 1024 * 1024,
            journal_entries: 1000,
            journal_body_bytes: 8 * 1024,
            header_read_timeout: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(60),
            body_read_timeout: Duration::from_secs(60),
            upload_stall_timeout: Duration::from_secs(30),
            max_connections: 512,
            workers: 2,
            job_lease: ClockDuration::seconds(30),
            shutdown_timeout: Duration::from_secs(10),
            external_issuer: None,
            job_poll_interval: Duration::from_millis(500),
            tls: None,
            public_url: None,
            proxy_listen: None,
            proxy_pass_through: false,
            faults: Vec::new(),
            throttling: ThrottlingSetting::Off,
        }
    }
}

impl Config {
    /// Port 0 and the given database; everything else at its default.
    pub fn for_tests(db: impl Into<String>) -> Config {
        Config { listen: "127.0.0.1:0".parse().expect("literal address"), db: db.into(), ..Config::default() }
    }

    /// Refuses a configuration that would make an empty value a credential or an allowed
    /// name. Checked before the server opens its database or listens, so a bad start fails
    /// loudly instead of serving.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let blank = |s: &str| s.trim().is_empty();
        if self.admin_token.as_deref().is_some_and(blank) {
            // An empty token would match an empty `Authorization: Bearer`.
            return Err(ConfigError(
                "the admin token (--admin-token, DMSYNC_ADMIN_TOKEN) is empty or only whitespace; \
                 set a secret, or unset it (the admin API then answers on loopback only, to the \
                 development token)"
                    .into(),
            ));
        }
        for host in &self.admin_allowed_hosts {
            if crate::http::host::parse_authority(host.trim()).is_none() {
                return Err(ConfigError(format!(
                    "--admin-allow-host (DMSYNC_ADMIN_ALLOW_HOST) '{host}' is not a host name with an optional port"
                )));
            }
        }
        self.validate_durations()?;
        if let Some(TlsCertificate::LocalCa { names }) = &self.tls {
            for name in names {
                let bare = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')).unwrap_or(name);
                if bare.parse::<IpAddr>().is_err() && rustls::pki_types::DnsName::try_from(name.as_str()).is_err() {
                    return Err(ConfigError(format!(
                        "--tls-name (DMSYNC_TLS_NAME) '{name}' is not a host name or an IP address"
                    )));
                }
            }
        }
        if let Some(issuer) = &self.external_issuer {
            if blank(&issuer.jwks_url) {
                return Err(ConfigError(
                    "the external issuer's JWKS URL (--external-jwks-url, DMSYNC_EXTERNAL_JWKS_URL) is empty; \
                     set it, or unset it to accept only dmsync's own tokens"
                        .into(),
                ));
            }
            if issuer.audiences.iter().any(|a| blank(a)) {
                // An empty audience would accept tokens whose `aud` is empty.
                return Err(ConfigError(
                    "an external audience (--external-audiences, DMSYNC_EXTERNAL_AUDIENCES) is empty".into(),
                ));
            }
        }
        Ok(())
    }

    /// Refuses a negative duration, and zero where zero means nothing: a lease that expires
    /// at once, a schedule that fires continuously, a connection that is cut before it starts.
    fn validate_durations(&self) -> Result<(), ConfigError> {
        let clock = [
            (self.sync_cooldown, "--sync-cooldown (DMSYNC_SYNC_COOLDOWN)", false),
            (self.sync_duration, "--sync-duration (DMSYNC_SYNC_DURATION)", false),
            (self.import_delay, "--import-delay (DMSYNC_IMPORT_DELAY)", false),
            (self.deletion_delay, "--deletion-delay (DMSYNC_DELETION_DELAY)", false),
            (self.group_processing_delay, "--group-processing-delay (DMSYNC_GROUP_PROCESSING_DELAY)", false),
            (self.profile_assignment_delay, "--profile-assignment-delay (DMSYNC_PROFILE_ASSIGNMENT_DELAY)", false),
            (self.exchange_delta_interval, "--exchange-delta-interval (DMSYNC_EXCHANGE_DELTA_INTERVAL)", true),
            (self.exchange_full_interval, "--exchange-full-interval (DMSYNC_EXCHANGE_FULL_INTERVAL)", true),
            (self.job_lease, "--job-lease (DMSYNC_JOB_LEASE)", true),
        ];
        for (value, flag, must_be_positive) in clock {
            if value.is_negative() {
                return Err(ConfigError(format!("{flag} is negative ({value}); durations count forward")));
            }
            if must_be_positive && value.is_zero() {
                return Err(ConfigError(format!("{flag} is zero; it must be longer than zero")));
            }
        }
        let wall = [
            (self.header_read_timeout, "--header-read-timeout (DMSYNC_HEADER_READ_TIMEOUT)"),
            (self.idle_timeout, "--idle-timeout (DMSYNC_IDLE_TIMEOUT)"),
            (self.body_read_timeout, "--body-read-timeout (DMSYNC_BODY_READ_TIMEOUT)"),
            (self.upload_stall_timeout, "--upload-stall-timeout (DMSYNC_UPLOAD_STALL_TIMEOUT)"),
        ];
        for (value, flag) in wall {
            if value.is_zero() {
                return Err(ConfigError(format!("{flag} is zero; a zero timeout would cut every connection at once")));
            }
        }
        Ok(())
    }

    /// Whether clients on other hosts can reach the admin API: a configured token on an
    /// address that is not loopback (the development token never works off loopback).
    pub fn admin_reachable_from_other_hosts(&self) -> bool {
        self.admin_token.is_some() && !self.listen.ip().is_loopback()
    }

    /// The names the local CA's leaf for `--tls` names: loopback, the listen host (unless it is
    /// the unspecified address, which no client connects to) and every `--tls-name`.
    pub fn tls_names(&self) -> Vec<String> {
        let mut names: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
        if !self.listen.ip().is_unspecified() {
            names.push(self.listen.ip().to_string());
        }
        if let Some(TlsCertificate::LocalCa { names: extra }) = &self.tls {
            names.extend(extra.iter().map(|n| n.trim_end_matches('.').to_ascii_lowercase()));
        }
        let mut seen = std::collections::HashSet::new();
        names.retain(|n| seen.insert(n.clone()));
        names
    }

    /// The admin token in force: the configured one, or the development default on loopback.
    pub fn effective_admin_token(&self) -> Option<String> {
        match &self.admin_token {
            Some(t) => Some(t.clone()),
            None if self.listen.ip().is_loopback() => Some(DEV_ADMIN_TOKEN.to_owned()),
            None => None,
        }
    }
}

/// A configuration the server refuses to start with; the message names the flag and variable.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(configure: impl FnOnce(&mut Config)) -> String {
        let mut config = Config::default();
        configure(&mut config);
        config.validate().expect_err("refused").to_string()
    }

    #[test]
    fn the_defaults_are_valid() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn zero_is_accepted_where_it_means_something() {
        let config = Config {
            sync_cooldown: ClockDuration::ZERO,
            sync_duration: ClockDuration::ZERO,
            import_delay: ClockDuration::ZERO,
            deletion_delay: ClockDuration::ZERO,
            group_processing_delay: ClockDuration::ZERO,
            profile_assignment_delay: ClockDuration::ZERO,
            ..Config::default()
        };
        config.validate().unwrap();
    }

    #[test]
    fn negative_durations_are_refused_naming_the_flag() {
        let message = refusal(|c| c.sync_cooldown = ClockDuration::seconds(-1));
        assert!(message.contains("--sync-cooldown (DMSYNC_SYNC_COOLDOWN) is negative"), "{message}");
        let message = refusal(|c| c.import_delay = ClockDuration::seconds(-5));
        assert!(message.contains("--import-delay"), "{message}");
    }

    #[test]
    fn zero_is_refused_where_it_means_nothing() {
        let message = refusal(|c| c.job_lease = ClockDuration::ZERO);
        assert!(message.contains("--job-lease (DMSYNC_JOB_LEASE) is zero"), "{message}");
        let message = refusal(|c| c.exchange_delta_interval = ClockDuration::ZERO);
        assert!(message.contains("--exchange-delta-interval"), "{message}");
        let message = refusal(|c| c.idle_timeout = Duration::ZERO);
        assert!(message.contains("--idle-timeout"), "{message}");
    }

    #[test]
    fn a_public_url_is_a_scheme_and_an_authority_only() {
        let url = PublicUrl::parse("https://dmsync.example:8443").unwrap();
        assert_eq!(url.origin(), "https://dmsync.example:8443");
        assert_eq!(PublicUrl::parse("http://10.0.0.5/").unwrap().origin(), "http://10.0.0.5");
        for refused in [
            "dmsync.example",
            "ftp://dmsync.example",
            "https://dmsync.example/graph",
            "https://dmsync.example/?a=b",
            "https://user@dmsync.example",
            "https://dmsync.example/#top",
            "https://",
        ] {
            assert!(PublicUrl::parse(refused).is_err(), "{refused}");
        }
    }

    #[test]
    fn tls_names_must_be_host_names_or_addresses() {
        let message = refusal(|c| c.tls = Some(TlsCertificate::LocalCa { names: vec!["bad name".into()] }));
        assert!(message.contains("--tls-name (DMSYNC_TLS_NAME) 'bad name'"), "{message}");
        let config = Config {
            tls: Some(TlsCertificate::LocalCa {
                names: vec!["dmsync.lan".into(), "10.0.0.5".into(), "LOCALHOST".into()],
            }),
            ..Config::default()
        };
        config.validate().unwrap();
        assert_eq!(config.tls_names(), ["localhost", "127.0.0.1", "::1", "dmsync.lan", "10.0.0.5"]);
    }
}
