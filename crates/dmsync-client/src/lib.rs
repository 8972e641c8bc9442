//! A typed HTTP client for dmsync and for Microsoft Graph. The CLI, the integration tests and
//! the benchmarks all use it, so what they exercise is what users get.

use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use dmsync_graph::autopilot::{WindowsAutopilotDeviceIdentity, WindowsAutopilotSettings};
use dmsync_graph::{ApiVersion, GraphErrorBody, MainError};

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
    if let Ok(v) = serde_json::from_str::<Value>(&text) {
        if let (Some(error), Some(description)) = (v["error"].as_str(), v["error_description"].as_str()) {
            return ClientError::Identity { status, error: error.into(), description: description.into() };
        }
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

/// A Graph client: dmsync, or real Graph at `https://graph.microsoft.com`.
#[derive(Clone)]
pub struct GraphClient {
    http: reqwest::Client,
    base_url: String,
    token: Option<String>,
}

impl GraphClient {
    /// `base_url` is the root, without the version: `http://127.0.0.1:8080`.
    pub fn new(base_url: impl Into<String>) -> GraphClient {
        GraphClient { http: reqwest::Client::new(), base_url: base_url.into().trim_end_matches('/').to_owned(), token: None }
    }

    pub fn with_token(&self, token: impl Into<String>) -> GraphClient {
        GraphClient { token: Some(token.into()), ..self.clone() }
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
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
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_secret", client_secret),
            ("scope", "https://graph.microsoft.com/.default"),
        ];
        let url = format!("{}/{tenant}/oauth2/v2.0/token", authority.trim_end_matches('/'));
        expect_json(self.http.post(url).form(&form).send().await?).await
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
        let form = [
            ("grant_type", "password"),
            ("client_id", client_id),
            ("username", username),
            ("password", password),
            ("scope", "https://graph.microsoft.com/.default"),
        ];
        let url = format!("{}/{tenant}/oauth2/v2.0/token", authority.trim_end_matches('/'));
        expect_json(self.http.post(url).form(&form).send().await?).await
    }

    pub async fn get_windows_autopilot_settings(&self) -> Result<WindowsAutopilotSettings> {
        expect_json(self.request(Method::GET, "beta/deviceManagement/windowsAutopilotSettings").send().await?).await
    }

    pub async fn sync_windows_autopilot_settings(&self) -> Result<()> {
        expect_no_content(self.request(Method::POST, "beta/deviceManagement/windowsAutopilotSettings/sync").send().await?)
            .await
    }

    /// The first page (`next` = None) or the page behind a nextLink.
    pub async fn list_windows_autopilot_device_identities(
        &self,
        version: ApiVersion,
        query: &str,
        next: Option<&str>,
    ) -> Result<Page<WindowsAutopilotDeviceIdentity>> {
        let url = match next {
            Some(link) => link.to_owned(),
            None => format!("{}/deviceManagement/windowsAutopilotDeviceIdentities{query}", version.segment()),
        };
        expect_json(self.request(Method::GET, &url).send().await?).await
    }

    /// Every device, following nextLinks to the end.
    pub async fn all_windows_autopilot_device_identities(
        &self,
        version: ApiVersion,
        query: &str,
    ) -> Result<Vec<WindowsAutopilotDeviceIdentity>> {
        let mut all = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let page = self.list_windows_autopilot_device_identities(version, query, next.as_deref()).await?;
            all.extend(page.value);
            match page.next_link {
                Some(link) => next = Some(link),
                None => return Ok(all),
            }
        }
    }

    pub async fn get_windows_autopilot_device_identity(
        &self,
        version: ApiVersion,
        id: &str,
    ) -> Result<WindowsAutopilotDeviceIdentity> {
        let path = format!("{}/deviceManagement/windowsAutopilotDeviceIdentities/{id}", version.segment());
        expect_json(self.request(Method::GET, &path).send().await?).await
    }
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

    /// Moves the server's clock forward.
    pub async fn advance_clock(&self, seconds: f64) -> Result<()> {
        let body = serde_json::json!({ "seconds": seconds });
        expect_json::<Value>(self.post("/_dmsync/clock/advance").json(&body).send().await?).await.map(|_| ())
    }
}
