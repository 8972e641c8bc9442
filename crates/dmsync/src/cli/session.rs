//! Where the CLI connects and how it authenticates: the connection flags, the choice of grant,
//! and a Graph client that holds a token (cached between runs) and renews it once on a 401.

use dmsync_client::{ClientError, Credentials, GraphClient};
use dmsync_server::bootstrap::{DEV_CLIENT_ID, DEV_TENANT_ID, DEV_USER_PASSWORD, DEV_USER_UPN};
use time::OffsetDateTime;

use super::output::OutputFormat;
use super::token_cache::{CacheKey, CachedToken, TokenCache};
use super::{CliResult, Failure};

/// The connection and authentication flags every client command takes. Each has a `DMSYNC_*`
/// variable; the flag wins.
#[derive(Debug, Clone, clap::Args)]
pub struct Connection {
    /// Graph's root URL: a dmsync server, or https://graph.microsoft.com.
    #[arg(long, env = "DMSYNC_GRAPH_URL", default_value = "http://127.0.0.1:8080", global = true)]
    pub graph_url: String,
    /// The token authority. Default: https://login.microsoftonline.com (or the national cloud's)
    /// for Microsoft's Graph hosts, else the Graph URL itself (dmsync's built-in identity provider).
    #[arg(long, env = "DMSYNC_AUTHORITY", global = true)]
    pub authority: Option<String>,
    /// Tenant id or domain, for the token endpoint. With no credentials at all, a local dmsync
    /// (a loopback --graph-url) is signed in to as its development user, in its development tenant.
    #[arg(long, env = "DMSYNC_TENANT", global = true)]
    pub tenant: Option<String>,
    /// Application (client) id, for either grant.
    #[arg(long, env = "DMSYNC_CLIENT_ID", global = true)]
    pub client_id: Option<String>,
    /// Client secret: the client credentials grant (an app token). Never cached.
    #[arg(long, env = "DMSYNC_CLIENT_SECRET", hide_env_values = true, global = true)]
    pub client_secret: Option<String>,
    /// User name: the password grant (a delegated token), with --password.
    #[arg(long, env = "DMSYNC_USERNAME", global = true)]
    pub username: Option<String>,
    /// Password for --username. Never cached.
    #[arg(long, env = "DMSYNC_PASSWORD", hide_env_values = true, global = true)]
    pub password: Option<String>,
    /// A bearer token to use as is, instead of asking the token endpoint.
    #[arg(long, env = "DMSYNC_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// Do not read or write the token cache. The variable takes true/false, 1/0, yes/no, on/off.
    #[arg(long, env = "DMSYNC_NO_TOKEN_CACHE", global = true, action = clap::ArgAction::SetTrue,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub no_token_cache: bool,
    /// Output: a table (for people), json (for scripts) or csv (lists only).
    #[arg(long, short = 'o', env = "DMSYNC_OUTPUT", value_enum, default_value = "table", global = true)]
    pub output: OutputFormat,
}

/// Microsoft's Graph hosts and the authority that issues their tokens.
const MICROSOFT_CLOUDS: &[(&str, &str)] = &[
    ("graph.microsoft.com", "https://login.microsoftonline.com"),
    ("graph.microsoft.us", "https://login.microsoftonline.us"),
    ("dod-graph.microsoft.us", "https://login.microsoftonline.us"),
    ("microsoftgraph.chinacloudapi.cn", "https://login.chinacloudapi.cn"),
];

impl Connection {
    pub fn graph_url(&self) -> &str {
        self.graph_url.trim_end_matches('/')
    }

    pub fn effective_authority(&self) -> String {
        if let Some(authority) = &self.authority {
            return authority.trim_end_matches('/').to_owned();
        }
        let host = self.graph_url().split("://").nth(1).unwrap_or("").split(['/', ':']).next().unwrap_or("");
        MICROSOFT_CLOUDS
            .iter()
            .find(|(graph, _)| host.eq_ignore_ascii_case(graph))
            .map(|(_, login)| (*login).to_owned())
            .unwrap_or_else(|| self.graph_url().to_owned())
    }

    /// Whether `--graph-url` is on this machine (a loopback name or address), where a dmsync
    /// server, not Microsoft's Graph, is what listens, and the authority is that server.
    fn is_local(&self) -> bool {
        let host = self.graph_url().split("://").nth(1).unwrap_or("").split('/').next().unwrap_or("");
        let host =
            host.rsplit_once(':').map_or(host, |(name, port)| if port.parse::<u16>().is_ok() { name } else { host });
        let host = host.trim_start_matches('[').trim_end_matches(']');
        self.authority.is_none()
            && (host.eq_ignore_ascii_case("localhost")
                || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback()))
    }

    /// The grant these flags ask for; `None` when a ready token was given.
    fn credentials(&self) -> CliResult<Option<(String, Credentials)>> {
        if self.token.is_some() {
            return Ok(None);
        }
        let tenant = || {
            self.tenant.clone().ok_or_else(|| Failure::usage("--tenant (or DMSYNC_TENANT) is required to get a token"))
        };
        let client_id = || {
            self.client_id
                .clone()
                .ok_or_else(|| Failure::usage("--client-id (or DMSYNC_CLIENT_ID) is required to get a token"))
        };
        match (&self.client_secret, &self.username, &self.password) {
            (Some(_), Some(_), _) => Err(Failure::usage(
                "give either --client-secret (an app token) or --username/--password (a user token), not both",
            )),
            (Some(secret), None, _) => Ok(Some((
                tenant()?,
                Credentials::ClientSecret { client_id: client_id()?, client_secret: secret.clone() },
            ))),
            (None, Some(username), Some(password)) => Ok(Some((
                tenant()?,
                Credentials::Password {
                    client_id: client_id()?,
                    username: username.clone(),
                    password: password.clone(),
                },
            ))),
            (None, Some(_), None) => Err(Failure::usage("--username needs --password (or DMSYNC_PASSWORD)")),
            (None, None, _) if self.is_local() => {
                // A local dmsync has the well-known development user: sign in as it, and say so,
                // so that nobody mistakes whose token a command ran with.
                eprintln!(
                    "note: no credentials given; signing in to the local dmsync as its development user {DEV_USER_UPN}"
                );
                Ok(Some((
                    self.tenant.clone().unwrap_or_else(|| DEV_TENANT_ID.to_string()),
                    Credentials::Password {
                        client_id: self.client_id.clone().unwrap_or_else(|| DEV_CLIENT_ID.to_string()),
                        username: DEV_USER_UPN.to_owned(),
                        password: DEV_USER_PASSWORD.to_owned(),
                    },
                )))
            }
            (None, None, _) => Err(Failure::usage(
                "no credentials: give --token, --client-id with --client-secret, or --client-id with --username and --password \
                 (or their DMSYNC_* variables)",
            )),
        }
    }
}

/// An authenticated Graph client for one command.
pub struct Session {
    pub output: OutputFormat,
    graph: GraphClient,
    token: String,
    /// When the token expires (Unix seconds), when the token endpoint said so.
    expires_on: Option<i64>,
    /// How to renew the token; `None` for a token given with --token.
    grant: Option<Grant>,
}

struct Grant {
    authority: String,
    tenant: String,
    credentials: Credentials,
    cache: Option<TokenCache>,
}

impl Grant {
    fn cache_key(&self) -> CacheKey {
        CacheKey::new(&self.authority, &self.tenant, self.credentials.client_id(), self.credentials.username())
    }

    /// A token from the cache if one is still good for a minute, else from the token endpoint.
    async fn token(&self, graph: &GraphClient, allow_cached: bool) -> Result<CachedToken, ClientError> {
        let key = self.cache_key();
        if allow_cached && let Some(cached) = self.cache.as_ref().and_then(|c| c.get(&key, OffsetDateTime::now_utc())) {
            return Ok(cached);
        }
        let response = graph.acquire_token(&self.authority, &self.tenant, &self.credentials).await?;
        let token = CachedToken {
            access_token: response.access_token,
            expires_on: OffsetDateTime::now_utc().unix_timestamp() + response.expires_in,
        };
        if let Some(cache) = &self.cache {
            // A cache that cannot be written costs a token request next time, nothing more.
            if let Err(e) = cache.put(&key, &token) {
                eprintln!("warning: could not write the token cache ({}): {e}", cache.dir().display());
            }
        }
        Ok(token)
    }

    fn forget(&self) {
        if let Some(cache) = &self.cache {
            cache.remove(&self.cache_key());
        }
    }
}

impl Session {
    pub async fn connect(connection: &Connection) -> CliResult<Session> {
        let graph = GraphClient::new(connection.graph_url());
        let cache = if connection.no_token_cache { None } else { TokenCache::default_location() };
        let (token, expires_on, grant) = match connection.credentials()? {
            None => (connection.token.clone().unwrap_or_default(), None, None),
            Some((tenant, credentials)) => {
                let grant = Grant { authority: connection.effective_authority(), tenant, credentials, cache };
                let token = grant.token(&graph, true).await?;
                (token.access_token, Some(token.expires_on), Some(grant))
            }
        };
        Ok(Session { output: connection.output, graph: graph.with_token(&token), token, expires_on, grant })
    }

    /// Runs one Graph call. A cached token can be refused before its time (dmsync's clock can be
    /// moved forward, and Entra ID can revoke), so a 401 drops it, gets a new one and retries once.
    pub async fn call<T>(&mut self, f: impl AsyncFn(&GraphClient) -> Result<T, ClientError>) -> Result<T, ClientError> {
        match f(&self.graph).await {
            Err(e) if e.status() == Some(401) && self.grant.is_some() => {
                self.renew_token().await?;
                f(&self.graph).await
            }
            other => other,
        }
    }

    /// Drops the cached token and gets a new one. A no-op for a token given with --token.
    pub async fn renew_token(&mut self) -> Result<(), ClientError> {
        let Some(grant) = &self.grant else { return Ok(()) };
        grant.forget();
        let fresh = grant.token(&self.graph, false).await?;
        self.token = fresh.access_token;
        self.expires_on = Some(fresh.expires_on);
        self.graph = self.graph.with_token(&self.token);
        Ok(())
    }

    /// Now on the server's clock, to measure Graph's timestamps against: a dmsync clock advance
    /// moves the server's time and not this machine's. This machine's clock until the server
    /// has answered with a `Date`.
    pub fn server_now(&self) -> OffsetDateTime {
        self.graph.server_now().unwrap_or_else(OffsetDateTime::now_utc)
    }

    /// The client, for calls that run concurrently and handle a 401 themselves.
    pub fn graph(&self) -> &GraphClient {
        &self.graph
    }
}

/// `dmsync token`: prints an access token, for `curl -H "Authorization: Bearer $(dmsync token)"`.
#[derive(Debug, clap::Args)]
pub struct TokenArgs {
    #[command(flatten)]
    pub connection: Connection,
    /// Sign a user in with the device code flow: print where to sign in and the code on
    /// standard error, wait for the sign-in, then print the token. Needs --tenant and
    /// --client-id; the token is not cached.
    #[arg(long)]
    pub device_code: bool,
}

/// The scopes the device code flow asks for: every Graph permission the user consented to,
/// and the OpenID scopes MSAL asks for too.
const DEVICE_CODE_SCOPE: &str = "https://graph.microsoft.com/.default openid profile offline_access";

pub async fn print_token(args: TokenArgs) -> CliResult {
    let output = args.connection.output;
    if output == OutputFormat::Csv {
        return Err(Failure::usage("--output csv is for lists; use table or json"));
    }
    let (token, expires_on) = if args.device_code {
        device_code_token(&args.connection).await?
    } else {
        let session = Session::connect(&args.connection).await?;
        (session.token, session.expires_on)
    };
    match output {
        OutputFormat::Json => {
            let doc = serde_json::json!({ "accessToken": token, "expiresOn": expires_on });
            println!("{doc}");
        }
        _ => println!("{token}"),
    }
    Ok(())
}

/// The device code flow: asks for a code, tells the person where to enter it, and polls every
/// `interval` seconds (five more after each `slow_down`, as RFC 8628 asks) until the token
/// endpoint answers with a token or refuses for good.
async fn device_code_token(connection: &Connection) -> CliResult<(String, Option<i64>)> {
    let tenant = connection
        .tenant
        .clone()
        .ok_or_else(|| Failure::usage("--tenant (or DMSYNC_TENANT) is required for --device-code"))?;
    let client_id = connection
        .client_id
        .clone()
        .ok_or_else(|| Failure::usage("--client-id (or DMSYNC_CLIENT_ID) is required for --device-code"))?;
    let authority = connection.effective_authority();
    let graph = GraphClient::new(connection.graph_url());
    let flow = graph.request_device_code(&authority, &tenant, &client_id, DEVICE_CODE_SCOPE).await?;
    eprintln!("{}", flow.message);
    let mut interval = flow.interval.clamp(1, 60) as u64;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(flow.expires_in.clamp(1, 3600) as u64);
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(interval)).await;
        match graph.poll_device_code(&authority, &tenant, &client_id, &flow.device_code).await {
            Ok(token) => {
                let expires_on = OffsetDateTime::now_utc().unix_timestamp() + token.expires_in;
                return Ok((token.access_token, Some(expires_on)));
            }
            Err(ClientError::Identity { error, .. }) if error == "authorization_pending" => {}
            Err(ClientError::Identity { error, .. }) if error == "slow_down" => interval += 5,
            Err(e) => return Err(e.into()),
        }
        if std::time::Instant::now() >= deadline {
            return Err(Failure::new(super::Exit::Authentication, "the device code expired before the sign-in"));
        }
    }
}
