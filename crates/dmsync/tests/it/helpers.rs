use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::time::Duration;

use dmsync_client::{AdminClient, GraphClient};
use dmsync_server::bootstrap::{DEV_CLIENT_ID, DEV_CLIENT_SECRET, DEV_TENANT_ID, DEV_USER_PASSWORD, DEV_USER_UPN};
use dmsync_server::config::{Config, DEV_ADMIN_TOKEN};
use dmsync_server::state::AppState;
use dmsync_store::testdb::TestDatabase;
use tokio_util::sync::CancellationToken;

pub const RW: &str = "DeviceManagementServiceConfig.ReadWrite.All";
pub const READ: &str = "DeviceManagementServiceConfig.Read.All";

pub struct TestApp {
    pub base_url: String,
    pub graph: GraphClient,
    pub admin: AdminClient,
    pub state: AppState,
    pub http: reqwest::Client,
    pub shutdown: CancellationToken,
    pub server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    /// The forward proxy's address and the CA its clients must trust, with `proxy_listen` set.
    pub proxy_address: Option<std::net::SocketAddr>,
    pub proxy_ca_pem: Option<String>,
    _db: TestDb,
}

impl TestApp {
    pub fn tenant(&self) -> String {
        DEV_TENANT_ID.to_string()
    }

    /// A delegated token for the seeded admin user, from the token endpoint.
    pub async fn user_token(&self) -> String {
        self.graph
            .token_password(&self.base_url, &self.tenant(), &DEV_CLIENT_ID.to_string(), DEV_USER_UPN, DEV_USER_PASSWORD)
            .await
            .expect("password grant")
            .access_token
    }

    /// An application token for the seeded app, from the token endpoint.
    pub async fn app_token(&self) -> String {
        self.graph
            .token_client_credentials(&self.base_url, &self.tenant(), &DEV_CLIENT_ID.to_string(), DEV_CLIENT_SECRET)
            .await
            .expect("client credentials grant")
            .access_token
    }

    pub async fn user_client(&self) -> GraphClient {
        self.graph.with_token(self.user_token().await)
    }

    /// A raw request to a path, with an optional bearer token.
    pub fn raw(&self, method: reqwest::Method, path: &str, token: Option<&str>) -> reqwest::RequestBuilder {
        let builder = self.http.request(method, format!("{}{path}", self.base_url));
        match token {
            Some(t) => builder.bearer_auth(t),
            None => builder,
        }
    }

    /// GETs a path and returns its JSON body, asserting a 200.
    pub async fn get_json(&self, path: &str, token: Option<&str>) -> serde_json::Value {
        let r = self.raw(reqwest::Method::GET, path, token).send().await.expect("request sent");
        assert_eq!(r.status(), reqwest::StatusCode::OK, "GET {path}");
        r.json().await.expect("a JSON body")
    }

    /// Polls the settings until `syncStatus` is `want`, for at most `limit`.
    pub async fn wait_for_sync_status(&self, client: &GraphClient, want: &str, limit: Duration) -> serde_json::Value {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let settings = client.get_windows_autopilot_settings().await.expect("get settings");
            let v = serde_json::to_value(&settings).unwrap();
            if v["syncStatus"] == want {
                return v;
            }
            assert!(tokio::time::Instant::now() < deadline, "syncStatus never became {want}: {v}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn stop(mut self) {
        self.shutdown_server().await;
    }

    /// Stops the server and starts a new one on the same database and configuration, as an
    /// operator's restart does.
    pub async fn restart(mut self) -> TestApp {
        self.shutdown_server().await;
        let config = self.state.config().clone();
        spawn_app_on(config, self._db).await
    }

    async fn shutdown_server(&mut self) {
        self.shutdown.cancel();
        if let Some(server) = self.server.take() {
            server.await.expect("server task").expect("server stopped cleanly");
        }
    }
}

/// A quick sync by default, so that tests see `completed` without waiting.
pub fn test_config(db: &str) -> Config {
    Config { sync_duration: time::Duration::milliseconds(300), ..Config::for_tests(db) }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Which backend the suite runs on: `DMSYNC_TEST_BACKEND=postgres` for PostgreSQL (the test
/// command runs the suite once per backend), SQLite otherwise.
pub fn backend_is_postgres() -> bool {
    std::env::var("DMSYNC_TEST_BACKEND").is_ok_and(|b| b == "postgres")
}

/// A fresh, empty database of the suite's backend; dropping it removes it.
pub enum TestDb {
    Sqlite(tempfile::TempDir),
    Postgres(TestDatabase),
    /// A PostgreSQL database that several replicas share; the last one dropped removes it.
    Shared(std::sync::Arc<TestDatabase>),
}

impl TestDb {
    /// On PostgreSQL, a database of its own (`dmsync_t_<uuid>` on `DMSYNC_TEST_POSTGRES_URL`);
    /// the suite was asked to run on PostgreSQL, so an unreachable server fails the test.
    pub async fn fresh() -> TestDb {
        if backend_is_postgres() {
            TestDb::Postgres(
                postgres_database().await.expect("DMSYNC_TEST_BACKEND=postgres needs a reachable PostgreSQL"),
            )
        } else {
            TestDb::Sqlite(tempfile::tempdir().expect("temp dir"))
        }
    }

    /// The `--db` URL.
    pub fn url(&self) -> String {
        match self {
            TestDb::Sqlite(dir) => format!("sqlite://{}", dir.path().join("dmsync.db").display()),
            TestDb::Postgres(db) => db.url.clone(),
            TestDb::Shared(db) => db.url.clone(),
        }
    }
}

/// A fresh PostgreSQL database for any test (the multi-replica tests, a crash harness), whatever
/// the suite's backend: `None` after a loud notice when PostgreSQL is unreachable outside CI; a
/// panic in CI. Dropping it drops the database.
pub async fn postgres_database() -> Option<TestDatabase> {
    TestDatabase::create().await
}

pub async fn spawn_app_with(configure: impl FnOnce(&mut Config)) -> TestApp {
    let db = TestDb::fresh().await;
    let mut config = test_config(&db.url());
    configure(&mut config);
    spawn_app_on(config, db).await
}

/// Starts the server with this configuration, keeping `db` alive as long as the app.
pub async fn spawn_app_on(config: Config, db: TestDb) -> TestApp {
    let shutdown = CancellationToken::new();
    let app = dmsync_server::Application::build(config, shutdown.clone()).await.expect("server builds");
    let base_url = app.url();
    let state = app.state().clone();
    // Over HTTPS (`--tls`), the clients trust the server's local CA and nothing else.
    let http = if base_url.starts_with("https://") {
        trusting(state.certificate_authority().ca_pem()).build().expect("a client")
    } else {
        reqwest::Client::new()
    };
    let proxy_address = app.proxy_address();
    let proxy_ca_pem = app.proxy_ca_pem().map(str::to_owned);
    let server = tokio::spawn(app.run_until_stopped());
    TestApp {
        graph: GraphClient::new(&base_url).with_http(http.clone()),
        admin: AdminClient::new(&base_url, DEV_ADMIN_TOKEN).with_http(http.clone()),
        base_url,
        state,
        http,
        shutdown,
        server: Some(server),
        proxy_address,
        proxy_ca_pem,
        _db: db,
    }
}

/// A client builder whose only trusted root is the CA in `ca_pem`.
pub fn trusting(ca_pem: &str) -> reqwest::ClientBuilder {
    let ca = reqwest::Certificate::from_pem(ca_pem.as_bytes()).expect("a PEM certificate");
    reqwest::Client::builder().tls_certs_only([ca])
}

/// A base64 hardware hash that is unique per `seed`.
pub fn hardware_hash(seed: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("hardware-hash-of-{seed}-0123456789abcdef"))
}

pub fn registration(serial: &str) -> dmsync_client::Registration {
    dmsync_client::Registration {
        serial_number: serial.into(),
        hardware_hash: hardware_hash(serial),
        manufacturer: "Contoso".into(),
        model: "Laptop 7".into(),
        ..Default::default()
    }
}

/// Sends a request with a bearer token and an optional JSON body, and returns the status and the
/// body (`null` when there is none).
pub async fn send(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<serde_json::Value>,
) -> (reqwest::StatusCode, serde_json::Value) {
    send_with(app, method, path, token, false, body).await
}

/// Sends a request with the token (and `ConsistencyLevel: eventual` when asked), and returns the
/// status and the JSON body (`null` when there is none).
pub async fn send_with(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: &str,
    eventual: bool,
    body: Option<serde_json::Value>,
) -> (reqwest::StatusCode, serde_json::Value) {
    let mut request = app.raw(method, path, Some(token));
    if eventual {
        request = request.header("ConsistencyLevel", "eventual");
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let r = request.send().await.unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    (status, if text.is_empty() { serde_json::Value::Null } else { serde_json::from_str(&text).unwrap() })
}

/// Intune's message document inside an error's `error.message`: its `Message`.
pub fn intune_message(body: &serde_json::Value) -> String {
    let inner: serde_json::Value = serde_json::from_str(body["error"]["message"].as_str().unwrap()).unwrap();
    inner["Message"].as_str().unwrap().to_owned()
}

/// A server whose syncs complete at once, with the registrations of these serials synced: each
/// has its Autopilot device and its Entra device object.
pub async fn synced_app_with(serials: &[&str], configure: impl FnOnce(&mut Config)) -> TestApp {
    let app = spawn_app_with(|c| {
        c.sync_duration = time::Duration::ZERO;
        configure(c);
    })
    .await;
    let rows: Vec<_> = serials.iter().map(|s| registration(s)).collect();
    app.admin.add_registrations(&app.tenant(), &rows).await.unwrap();
    let client = app.user_client().await;
    client.sync_windows_autopilot_settings().await.unwrap();
    app.wait_for_sync_status(&client, "completed", Duration::from_secs(10)).await;
    app
}

/// [`synced_app_with`] with the test configuration as it is.
pub async fn synced_app(serials: &[&str]) -> TestApp {
    synced_app_with(serials, |_| {}).await
}

/// The claims of a JWT, unverified.
pub fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// Posts a form to the tenant's token endpoint, and returns the status and the JSON body.
pub async fn token_request(app: &TestApp, tenant: &str, form: &[(&str, &str)]) -> (StatusCode, Value) {
    // Every value here is a name, a GUID, a JWT or words: only the spaces need encoding.
    let body: Vec<String> = form.iter().map(|(name, value)| format!("{name}={}", value.replace(' ', "+"))).collect();
    let body = body.join("&");
    let r = app
        .raw(Method::POST, &format!("/{tenant}/oauth2/v2.0/token"), None)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    (r.status(), r.json().await.unwrap())
}

/// The `AADSTS…` code at the start of an Entra error's description.
pub fn aadsts(body: &Value) -> &str {
    let description = body["error_description"].as_str().unwrap();
    &description[..description.find(':').unwrap()]
}

/// Calls the admin API with the development admin token.
pub async fn admin(app: &TestApp, method: Method, path: &str, body: Value) -> (StatusCode, Value) {
    let r = app.raw(method, path, Some("dmsync-dev-admin")).json(&body).send().await.unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    (status, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() })
}
