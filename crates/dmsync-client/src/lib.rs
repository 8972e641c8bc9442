//! A typed HTTP client for dmsync and for Microsoft Graph. The CLI, the integration tests and
//! the benchmarks all use it, so what they exercise is what users get.

use std::time::Duration;

use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc2822;

use dmsync_graph::autopilot::{
    ImportedWindowsAutopilotDeviceIdentity, WindowsAutopilotDeviceIdentity, WindowsAutopilotSettings,
};
use dmsync_graph::exchange::{DeviceManagementExchangeConnector, DeviceManagementExchangeConnectorSyncType};
use dmsync_graph::{ApiVersion, GraphErrorBody, IntuneErrorMessage, MainError};

pub use dmsync_graph;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Graph answered with its error body.
    #[error("{status} {}: {}", .error.code, .error.message)]
    Graph { status: u16, error: MainError, retry_after: Option<String>, request_id: Option<String> },
    /// The token endpoint answered with Entra ID's error body.
    #[error("{status} {error}: {description}")]
    Identity { status: u16, error: String, description: String },
    /// An error status whose body is neither of the above.
    #[error("HTTP {status}: {body}")]
    Status { status: u16, body: String },
    #[error("HTTP transport: {0}")]
    Transport(#[from] reqwest::Error),
    #[error("unexpected response body: {0}")]
    Decode(String),
}

impl ClientError {
    /// The HTTP status of an error answer; `None` for transport and decoding failures.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Graph { status, .. }
            | ClientError::Identity { status, .. }
            | ClientError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub fn graph_code(&self) -> Option<&str> {
        match self {
            ClientError::Graph { error, .. } => Some(&error.code),
            _ => None,
        }
    }

    /// The request id of a Graph error: the `request-id` header, else the body's `innerError`.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            ClientError::Graph { request_id: Some(id), .. } => Some(id),
            ClientError::Graph { error, .. } => error.inner_error.as_ref().map(|inner| inner.request_id.as_str()),
            _ => None,
        }
    }

    /// The `Retry-After` of a Graph error as a delay from now. Graph sends whole or fractional
    /// seconds (`2.128`); RFC 9110 also allows an HTTP date.
    pub fn retry_after(&self) -> Option<Duration> {
        let ClientError::Graph { retry_after: Some(value), .. } = self else { return None };
        parse_retry_after(value, OffsetDateTime::now_utc())
    }

    /// The message a person should read: for Intune's JSON-in-message errors, the inner
    /// `Message` without its support trailer (operation id, activity id, URL).
    pub fn readable_message(&self) -> String {
        match self {
            ClientError::Graph { error, .. } => match IntuneErrorMessage::parse(&error.message) {
                Some(intune) => match intune.message.find(" - Operation ID") {
                    Some(end) => intune.message[..end].to_owned(),
                    None => intune.message,
                },
                None => error.message.clone(),
            },
            ClientError::Identity { description, .. } => description.clone(),
            other => other.to_string(),
        }
    }
}

/// Parses a `Retry-After` value: delay-seconds (Graph sends fractions too) or an HTTP date.
pub fn parse_retry_after(value: &str, now: OffsetDateTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds));
    }
    let at = OffsetDateTime::parse(value, &Rfc2822).ok()?;
    Some((at - now).try_into().unwrap_or(Duration::ZERO))
}

pub type Result<T> = std::result::Result<T, ClientError>;

/// The token endpoint's answer.
#[derive(Debug, Clone, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: String,
    pub expires_in: i64,
    #[serde(default)]
    pub scope: Option<String>,
}

/// The device authorization endpoint's answer: the code to poll with, and what to tell the
/// person (`message` says it all, in Entra's words).
#[derive(Debug, Clone, Deserialize)]
pub struct DeviceCodeResponse {
    pub device_code: String,
    pub user_code: String,
    pub verification_uri: String,
    pub expires_in: i64,
    pub interval: i64,
    pub message: String,
}

/// One page of a Graph collection.
#[derive(Debug, Clone, Deserialize)]
pub struct Page<T> {
    #[serde(rename = "@odata.context", default)]
    pub context: Option<String>,
    #[serde(rename = "@odata.nextLink", default)]
    pub next_link: Option<String>,
    #[serde(rename = "@odata.count", default)]
    pub count: Option<u64>,
    pub value: Vec<T>,
}

async fn graph_error(response: Response) -> ClientError {
    let status = response.status().as_u16();
    let retry_after = response.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let request_id = response.headers().get("request-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let text = response.text().await.unwrap_or_default();
    if let Ok(body) = serde_json::from_str::<GraphErrorBody>(&text) {
        return ClientError::Graph { status, error: body.error, retry_after, request_id };
    }
    if let Ok(v) = serde_json::from_str::<Value>(&text)
        && let (Some(error), Some(description)) = (v["error"].as_str(), v["error_description"].as_str())
    {
        return ClientError::Identity { status, error: error.into(), description: description.into() };
    }
    ClientError::Status { status, body: text }
}

async fn expect_json<T: DeserializeOwned>(response: Response) -> Result<T> {
    if !response.status().is_success() {
        return Err(graph_error(response).await);
    }
    let bytes = response.bytes().await?;
    serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode(format!("{e}: {}", String::from_utf8_lossy(&bytes))))
}

async fn expect_no_content(response: Response) -> Result<()> {
    if response.status() == StatusCode::NO_CONTENT || response.status().is_success() {
        Ok(())
    } else {
        Err(graph_error(response).await)
    }
}

/// The server's time as its last `Date` header said, and when that answer arrived here.
#[derive(Clone, Copy, Debug)]
struct ServerDate {
    date: OffsetDateTime,
    received: std::time::Instant,
}

/// A Graph client: dmsync, or real Graph at `https://graph.microsoft.com`.
#[derive(Clone)]
pub struct GraphClient {
    http: reqwest::Client,
    base_url: String,
    token: Option<String>,
    /// Shared by the clones `with_token` makes, so a renewed token keeps what was learnt.
    server_date: std::sync::Arc<std::sync::Mutex<Option<ServerDate>>>,
}

impl GraphClient {
    /// `base_url` is the root, without the version: `http://127.0.0.1:8080`.
    pub fn new(base_url: impl Into<String>) -> GraphClient {
        GraphClient {
            http: reqwest::Client::new(),
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            token: None,
            server_date: Default::default(),
        }
    }

    pub fn with_token(&self, token: impl Into<String>) -> GraphClient {
        GraphClient { token: Some(token.into()), ..self.clone() }
    }

    /// The same client over another reqwest client: one that trusts dmsync's local CA, say.
    pub fn with_http(self, http: reqwest::Client) -> GraphClient {
        GraphClient { http, ..self }
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The server's time now: its last `Date` header plus the time since that answer arrived.
    /// Graph's timestamps (the last sync, the cooldown) are on the server's clock, which may
    /// differ from this machine's: real Graph's by clock skew, dmsync's by a clock advance.
    /// `None` until a response with a `Date` header has arrived.
    pub fn server_now(&self) -> Option<OffsetDateTime> {
        let last = (*self.server_date.lock().expect("server date lock"))?;
        Some(last.date + last.received.elapsed())
    }

    /// Sends a request and keeps the response's `Date` for [`GraphClient::server_now`]. The
    /// header has whole seconds, so the estimate runs up to a second behind.
    async fn send(&self, request: RequestBuilder) -> Result<Response> {
        let response = request.send().await?;
        let date = response.headers().get(reqwest::header::DATE).and_then(|v| v.to_str().ok());
        if let Some(date) = date.and_then(|d| OffsetDateTime::parse(d, &Rfc2822).ok()) {
            let received = std::time::Instant::now();
            *self.server_date.lock().expect("server date lock") = Some(ServerDate { date, received });
        }
        Ok(response)
    }

    /// A request to an absolute URL or to a path under the base URL.
    pub fn request(&self, method: Method, path_or_url: &str) -> RequestBuilder {
        let url = if path_or_url.starts_with("http://") || path_or_url.starts_with("https://") {
            path_or_url.to_owned()
        } else {
            format!("{}/{}", self.base_url, path_or_url.trim_start_matches('/'))
        };
        let builder = self.http.request(method, url);
        match &self.token {
            Some(t) => builder.bearer_auth(t),
            None => builder,
        }
    }

    /// Client credentials grant against `{authority}/{tenant}/oauth2/v2.0/token`.
    pub async fn token_client_credentials(
        &self,
        authority: &str,
        tenant: &str,
        client_id: &str,
        client_secret: &str,
    ) -> Result<TokenResponse> {
        let credentials =
            Credentials::ClientSecret { client_id: client_id.to_owned(), client_secret: client_secret.to_owned() };
        self.acquire_token(authority, tenant, &credentials).await
    }

    /// Resource-owner password grant.
    pub async fn token_password(
        &self,
        authority: &str,
        tenant: &str,
        client_id: &str,
        username: &str,
        password: &str,
    ) -> Result<TokenResponse> {
        let credentials = Credentials::Password {
            client_id: client_id.to_owned(),
            username: username.to_owned(),
            password: password.to_owned(),
        };
        self.acquire_token(authority, tenant, &credentials).await
    }

    /// A Graph token from the Entra ID v2.0 token endpoint, `{authority}/{tenant}/oauth2/v2.0/token`,
    /// with `scope=https://graph.microsoft.com/.default`: the request real Entra ID and dmsync's
    /// built-in identity provider both accept.
    pub async fn acquire_token(
        &self,
        authority: &str,
        tenant: &str,
        credentials: &Credentials,
    ) -> Result<TokenResponse> {
        let form: Vec<(&str, &str)> = match credentials {
            Credentials::ClientSecret { client_id, client_secret } => vec![
                ("grant_type", "client_credentials"),
                ("client_id", client_id),
                ("client_secret", client_secret),
                ("scope", GRAPH_DEFAULT_SCOPE),
            ],
            Credentials::Password { client_id, username, password } => vec![
                ("grant_type", "password"),
                ("client_id", client_id),
                ("username", username),
                ("password", password),
                ("scope", GRAPH_DEFAULT_SCOPE),
            ],
        };
        let url = token_endpoint(authority, tenant);
        expect_json(self.http.post(url).form(&form).send().await?).await
    }

    /// Starts the device code flow at `{authority}/{tenant}/oauth2/v2.0/devicecode` for a public
    /// client and the scopes asked.
    pub async fn request_device_code(
        &self,
        authority: &str,
        tenant: &str,
        client_id: &str,
        scope: &str,
    ) -> Result<DeviceCodeResponse> {
        let url = format!("{}/{tenant}/oauth2/v2.0/devicecode", authority.trim_end_matches('/'));
        expect_json(self.http.post(url).form(&[("client_id", client_id), ("scope", scope)]).send().await?).await
    }

    /// One poll of the device code grant. Until the person signs in, the token endpoint answers
    /// [`ClientError::Identity`] with `authorization_pending` (or `slow_down`); the caller waits
    /// the interval and polls again.
    pub async fn poll_device_code(
        &self,
        authority: &str,
        tenant: &str,
        client_id: &str,
        device_code: &str,
    ) -> Result<TokenResponse> {
        let form = [
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("client_id", client_id),
            ("device_code", device_code),
        ];
        expect_json(self.http.post(token_endpoint(authority, tenant)).form(&form).send().await?).await
    }

    /// GETs one entity (or any JSON document) at a path or absolute URL.
    pub async fn get_json<T: DeserializeOwned>(&self, path_or_url: &str) -> Result<T> {
        expect_json(self.send(self.request(Method::GET, path_or_url)).await?).await
    }

    /// GETs a path with query parameters, which are percent-encoded here.
    pub async fn get_json_with_query<T: DeserializeOwned>(&self, path: &str, query: &[(&str, &str)]) -> Result<T> {
        expect_json(self.send(self.request(Method::GET, path).query(query)).await?).await
    }

    /// POSTs a JSON body to a path and returns the JSON answer (a create's 200 or 201).
    pub async fn post_json(&self, path: &str, body: &Value) -> Result<Value> {
        expect_json(self.send(self.request(Method::POST, path).json(body)).await?).await
    }

    /// One page of a collection: the first (a path with its query) or the one behind a nextLink.
    pub async fn list_page<T: DeserializeOwned>(&self, path_or_next_link: &str) -> Result<Page<T>> {
        self.get_json(path_or_next_link).await
    }

    /// Every item of a collection, following `@odata.nextLink` to the end.
    pub async fn list_all<T: DeserializeOwned>(&self, path: &str) -> Result<Vec<T>> {
        let mut all = Vec::new();
        let mut next = path.to_owned();
        loop {
            let page: Page<T> = self.list_page(&next).await?;
            all.extend(page.value);
            match page.next_link {
                Some(link) => next = link,
                None => return Ok(all),
            }
        }
    }

    pub async fn get_windows_autopilot_settings(&self) -> Result<WindowsAutopilotSettings> {
        self.get_json("beta/deviceManagement/windowsAutopilotSettings").await
    }

    pub async fn sync_windows_autopilot_settings(&self) -> Result<()> {
        let request = self.request(Method::POST, "beta/deviceManagement/windowsAutopilotSettings/sync");
        expect_no_content(self.send(request).await?).await
    }

    /// The first page (`next` = None) or the page behind a nextLink.
    pub async fn list_windows_autopilot_device_identities(
        &self,
        version: ApiVersion,
        query: &str,
        next: Option<&str>,
    ) -> Result<Page<WindowsAutopilotDeviceIdentity>> {
        match next {
            Some(link) => self.list_page(link).await,
            None => {
                self.list_page(&format!(
                    "{}/deviceManagement/windowsAutopilotDeviceIdentities{query}",
                    version.segment()
                ))
                .await
            }
        }
    }

    /// Every device, following nextLinks to the end.
    pub async fn all_windows_autopilot_device_identities(
        &self,
        version: ApiVersion,
        query: &str,
    ) -> Result<Vec<WindowsAutopilotDeviceIdentity>> {
        self.list_all(&format!("{}/deviceManagement/windowsAutopilotDeviceIdentities{query}", version.segment())).await
    }

    pub async fn get_windows_autopilot_device_identity(
        &self,
        version: ApiVersion,
        id: &str,
    ) -> Result<WindowsAutopilotDeviceIdentity> {
        self.get_json(&format!("{}/deviceManagement/windowsAutopilotDeviceIdentities/{id}", version.segment())).await
    }

    /// `POST …/importedWindowsAutopilotDeviceIdentities/import`: at most 500 identities per call.
    pub async fn import_windows_autopilot_device_identities(
        &self,
        version: ApiVersion,
        devices: &[NewImportedDevice],
    ) -> Result<Vec<ImportedWindowsAutopilotDeviceIdentity>> {
        let path = format!("{}/deviceManagement/importedWindowsAutopilotDeviceIdentities/import", version.segment());
        let body = serde_json::json!({ "importedWindowsAutopilotDeviceIdentities": devices });
        let page: Page<ImportedWindowsAutopilotDeviceIdentity> =
            expect_json(self.send(self.request(Method::POST, &path).json(&body)).await?).await?;
        Ok(page.value)
    }

    pub async fn get_imported_windows_autopilot_device_identity(
        &self,
        version: ApiVersion,
        id: &str,
    ) -> Result<ImportedWindowsAutopilotDeviceIdentity> {
        self.get_json(&format!("{}/deviceManagement/importedWindowsAutopilotDeviceIdentities/{id}", version.segment()))
            .await
    }

    pub async fn list_exchange_connectors(
        &self,
        version: ApiVersion,
    ) -> Result<Vec<DeviceManagementExchangeConnector>> {
        self.list_all(&format!("{}/deviceManagement/exchangeConnectors", version.segment())).await
    }

    pub async fn get_exchange_connector(
        &self,
        version: ApiVersion,
        id: &str,
    ) -> Result<DeviceManagementExchangeConnector> {
        self.get_json(&format!("{}/deviceManagement/exchangeConnectors/{id}", version.segment())).await
    }

    pub async fn create_exchange_connector(
        &self,
        version: ApiVersion,
        connector: &NewExchangeConnector,
    ) -> Result<DeviceManagementExchangeConnector> {
        let path = format!("{}/deviceManagement/exchangeConnectors", version.segment());
        expect_json(self.send(self.request(Method::POST, &path).json(connector)).await?).await
    }

    pub async fn delete_exchange_connector(&self, version: ApiVersion, id: &str) -> Result<()> {
        let path = format!("{}/deviceManagement/exchangeConnectors/{id}", version.segment());
        expect_no_content(self.send(self.request(Method::DELETE, &path)).await?).await
    }

    /// `POST …/exchangeConnectors/{id}/sync` with `{"syncType"}`: 204, or 409 while one runs.
    pub async fn sync_exchange_connector(
        &self,
        version: ApiVersion,
        id: &str,
        sync_type: DeviceManagementExchangeConnectorSyncType,
    ) -> Result<()> {
        let path = format!("{}/deviceManagement/exchangeConnectors/{id}/sync", version.segment());
        let body = serde_json::json!({ "syncType": sync_type });
        expect_no_content(self.send(self.request(Method::POST, &path).json(&body)).await?).await
    }
}

/// The scope every Graph token request names: the app's or user's consented Graph permissions.
pub const GRAPH_DEFAULT_SCOPE: &str = "https://graph.microsoft.com/.default";

/// `{authority}/{tenant}/oauth2/v2.0/token`.
pub fn token_endpoint(authority: &str, tenant: &str) -> String {
    format!("{}/{tenant}/oauth2/v2.0/token", authority.trim_end_matches('/'))
}

/// What the token endpoint is given to issue a token.
#[derive(Clone)]
pub enum Credentials {
    /// The client credentials grant: an app token (`roles`).
    ClientSecret { client_id: String, client_secret: String },
    /// The resource-owner password grant: a delegated token (`scp`).
    Password { client_id: String, username: String, password: String },
}

impl std::fmt::Debug for Credentials {
    // Secrets never reach logs or panic messages.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::ClientSecret { client_id, .. } => f
                .debug_struct("ClientSecret")
                .field("client_id", client_id)
                .field("client_secret", &"<redacted>")
                .finish(),
            Credentials::Password { client_id, username, .. } => f
                .debug_struct("Password")
                .field("client_id", client_id)
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
        }
    }
}

impl Credentials {
    pub fn client_id(&self) -> &str {
        match self {
            Credentials::ClientSecret { client_id, .. } | Credentials::Password { client_id, .. } => client_id,
        }
    }

    /// The user a delegated token is for; `None` for an app token.
    pub fn username(&self) -> Option<&str> {
        match self {
            Credentials::ClientSecret { .. } => None,
            Credentials::Password { username, .. } => Some(username),
        }
    }
}

/// An identity for the `import` action, as Get-WindowsAutopilotInfo sends it.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewImportedDevice {
    pub serial_number: String,
    /// Base64 of the hardware hash.
    pub hardware_identifier: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub group_tag: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub product_key: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub assigned_user_principal_name: String,
}

/// A connector to create. Only what the caller sets is sent.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewExchangeConnector {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exchange_connector_type: Option<dmsync_graph::exchange::DeviceManagementExchangeConnectorType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub primary_smtp_address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connector_server_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exchange_alias: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exchange_organization: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// A registration for the admin API, as an OEM sends it.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Registration {
    pub serial_number: String,
    /// Base64 of the hardware hash.
    pub hardware_hash: String,
    pub manufacturer: String,
    pub model: String,
    pub group_tag: String,
    pub purchase_order_identifier: String,
    pub product_key: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct RegistrationSummary {
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
}

/// The filters of the request journal (`GET /_dmsync/requests`, `POST /_dmsync/requests/count`):
/// every one that is set must match. `path` is exact or has `*` wildcards; `status` is a status
/// (`409`) or a class (`4xx`); `since` is an RFC 3339 time on the server's clock.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestFilter {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
}

/// One request in dmsync's journal, with its secrets redacted and its bodies cut at the
/// server's limit.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JournalEntry {
    pub sequence: u64,
    pub time: String,
    pub tenant_id: Option<String>,
    pub app_id: Option<String>,
    pub method: String,
    pub path: String,
    pub status: u16,
    pub duration_ms: f64,
    pub request_body: Option<String>,
    pub response_body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nearest_route: Option<String>,
}

/// Client for dmsync's own admin API under `/_dmsync/`.
#[derive(Clone)]
pub struct AdminClient {
    http: reqwest::Client,
    base_url: String,
    admin_token: String,
}

impl AdminClient {
    pub fn new(base_url: impl Into<String>, admin_token: impl Into<String>) -> AdminClient {
        AdminClient {
            http: reqwest::Client::new(),
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            admin_token: admin_token.into(),
        }
    }

    /// The same client over another reqwest client: one that trusts dmsync's local CA, say.
    pub fn with_http(self, http: reqwest::Client) -> AdminClient {
        AdminClient { http, ..self }
    }

    fn post(&self, path: &str) -> RequestBuilder {
        self.http.post(format!("{}{path}", self.base_url)).bearer_auth(&self.admin_token)
    }

    /// `POST /_dmsync/tokens`. `kind` is `delegated` or `application`.
    pub async fn mint_token(
        &self,
        tenant_id: &str,
        kind: &str,
        permissions: &[&str],
        account_type: &str,
        expires_in_seconds: Option<i64>,
    ) -> Result<String> {
        let mut body = serde_json::json!({
            "tenantId": tenant_id, "kind": kind, "permissions": permissions, "accountType": account_type,
        });
        if let Some(s) = expires_in_seconds {
            body["expiresInSeconds"] = s.into();
        }
        let v: Value = expect_json(self.post("/_dmsync/tokens").json(&body).send().await?).await?;
        v["access_token"].as_str().map(str::to_owned).ok_or_else(|| ClientError::Decode(v.to_string()))
    }

    pub async fn create_tenant(&self, tenant_id: &str, domain: &str) -> Result<()> {
        let body = serde_json::json!({ "tenantId": tenant_id, "domain": domain });
        expect_json::<Value>(self.post("/_dmsync/tenants").json(&body).send().await?).await.map(|_| ())
    }

    pub async fn add_registrations(&self, tenant_id: &str, rows: &[Registration]) -> Result<RegistrationSummary> {
        let path = format!("/_dmsync/tenants/{tenant_id}/autopilot/registrations");
        expect_json(self.post(&path).json(rows).send().await?).await
    }

    /// `PUT /_dmsync/tenants/{tid}/exchangeConnectors/{id}/source`: where a connector reads its
    /// Exchange organization (`{"kind":"file","path"}` or `{"kind":"http","url"}`).
    pub async fn set_exchange_connector_source(
        &self,
        tenant_id: &str,
        connector_id: &str,
        source: &Value,
    ) -> Result<()> {
        let path = format!("{}/_dmsync/tenants/{tenant_id}/exchangeConnectors/{connector_id}/source", self.base_url);
        expect_no_content(self.http.put(path).bearer_auth(&self.admin_token).json(source).send().await?).await
    }

    /// `GET /_dmsync/requests`: the journalled requests that match, oldest first.
    pub async fn list_requests(&self, filter: &RequestFilter) -> Result<Vec<JournalEntry>> {
        #[derive(Deserialize)]
        struct Listing {
            value: Vec<JournalEntry>,
        }
        let url = format!("{}/_dmsync/requests", self.base_url);
        let response = self.http.get(url).bearer_auth(&self.admin_token).query(filter).send().await?;
        expect_json::<Listing>(response).await.map(|l| l.value)
    }

    /// `POST /_dmsync/requests/count`: how many journalled requests match.
    pub async fn count_requests(&self, filter: &RequestFilter) -> Result<u64> {
        let v: Value = expect_json(self.post("/_dmsync/requests/count").json(filter).send().await?).await?;
        v["count"].as_u64().ok_or_else(|| ClientError::Decode(v.to_string()))
    }

    /// `DELETE /_dmsync/requests`: empties the journal.
    pub async fn clear_requests(&self) -> Result<()> {
        let url = format!("{}/_dmsync/requests", self.base_url);
        expect_no_content(self.http.delete(url).bearer_auth(&self.admin_token).send().await?).await
    }

    /// Moves the server's clock forward.
    pub async fn advance_clock(&self, seconds: f64) -> Result<()> {
        let body = serde_json::json!({ "seconds": seconds });
        expect_json::<Value>(self.post("/_dmsync/clock/advance").json(&body).send().await?).await.map(|_| ())
    }

    /// POSTs a JSON body to an admin path (`/_dmsync/…`) and returns the JSON answer.
    pub async fn post_json(&self, path: &str, body: &Value) -> Result<Value> {
        expect_json(self.post(path).json(body).send().await?).await
    }

    /// `POST /_dmsync/reset`: empties one tenant, or every tenant with `None`.
    pub async fn reset(&self, tenant_id: Option<&str>) -> Result<()> {
        let body = match tenant_id {
            Some(tenant_id) => serde_json::json!({ "tenantId": tenant_id }),
            None => serde_json::json!({}),
        };
        expect_no_content(self.post("/_dmsync/reset").json(&body).send().await?).await
    }

    /// `POST /_dmsync/snapshots`: the snapshot as the server describes it (`name`,
    /// `createdDateTime`).
    pub async fn create_snapshot(&self, name: &str) -> Result<Value> {
        let body = serde_json::json!({ "name": name });
        expect_json(self.post("/_dmsync/snapshots").json(&body).send().await?).await
    }

    /// `GET /_dmsync/snapshots`: the snapshots' descriptions.
    pub async fn snapshots(&self) -> Result<Vec<Value>> {
        let url = format!("{}/_dmsync/snapshots", self.base_url);
        let list: Value = expect_json(self.http.get(url).bearer_auth(&self.admin_token).send().await?).await?;
        Ok(list["value"].as_array().cloned().unwrap_or_default())
    }

    /// `DELETE /_dmsync/snapshots/{name}`.
    pub async fn delete_snapshot(&self, name: &str) -> Result<()> {
        let url = format!("{}/_dmsync/snapshots/{}", self.base_url, path_segment(name));
        expect_no_content(self.http.delete(url).bearer_auth(&self.admin_token).send().await?).await
    }

    /// `POST /_dmsync/snapshots/{name}/restore`.
    pub async fn restore_snapshot(&self, name: &str) -> Result<()> {
        let path = format!("/_dmsync/snapshots/{}/restore", path_segment(name));
        expect_no_content(self.post(&path).send().await?).await
    }

    /// `GET /_dmsync/throttling`: the mode and limits in force.
    pub async fn throttling(&self) -> Result<Value> {
        let url = format!("{}/_dmsync/throttling", self.base_url);
        expect_json(self.http.get(url).bearer_auth(&self.admin_token).send().await?).await
    }

    /// `PUT /_dmsync/throttling` with `change` (`{"mode": …}` or `{"limits": …}`); answers the
    /// mode and limits now in force.
    pub async fn set_throttling(&self, change: &Value) -> Result<Value> {
        let url = format!("{}/_dmsync/throttling", self.base_url);
        expect_json(self.http.put(url).bearer_auth(&self.admin_token).json(change).send().await?).await
    }
}

/// A name as one path segment: every byte but letters, digits, `-` and `_` percent-encoded, so
/// that no name (`..`, `a/b`) is read as a path of its own before the server sees it.
fn path_segment(name: &str) -> String {
    name.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_stay_one_path_segment() {
        assert_eq!(path_segment("before-import_2"), "before-import_2");
        assert_eq!(path_segment("../faults"), "%2E%2E%2Ffaults");
    }

    #[test]
    fn retry_after_takes_seconds_fractions_and_http_dates() {
        let now = OffsetDateTime::parse("Mon, 30 Nov 2026 20:00:00 GMT", &Rfc2822).unwrap();
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("2.128", now), Some(Duration::from_millis(2128)));
        assert_eq!(parse_retry_after("Mon, 30 Nov 2026 20:01:30 GMT", now), Some(Duration::from_secs(90)));
        assert_eq!(parse_retry_after("Mon, 30 Nov 2026 19:00:00 GMT", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("-1", now), None);
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn credentials_never_print_their_secrets() {
        let app = Credentials::ClientSecret { client_id: "app".into(), client_secret: "s3cret".into() };
        let user = Credentials::Password { client_id: "app".into(), username: "u".into(), password: "pa55".into() };
        assert!(!format!("{app:?}").contains("s3cret"));
        assert!(!format!("{user:?}").contains("pa55"));
    }

    #[test]
    fn intune_messages_lose_their_support_trailer() {
        let intune = IntuneErrorMessage {
            version: 3,
            message: "Windows Autopilot devices were synced less than 10 minutes ago - Operation ID (for customer support): 0 - Activity ID: 1 - Url: x".into(),
            custom_api_error_phrase: String::new(),
            retry_after: None,
            error_source_service: String::new(),
            http_headers: "{}".into(),
        };
        let error = ClientError::Graph {
            status: 429,
            error: MainError {
                code: "TooManyRequests".into(),
                message: intune.to_message_string(),
                details: vec![],
                inner_error: None,
            },
            retry_after: None,
            request_id: Some("r".into()),
        };
        assert_eq!(error.readable_message(), "Windows Autopilot devices were synced less than 10 minutes ago");
        assert_eq!(error.request_id(), Some("r"));
    }
}
