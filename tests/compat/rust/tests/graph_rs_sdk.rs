//! The real graph-rs-sdk 3.0.1 against a real dmsync: the recipe of docs/CLIENTS.md (the
//! `client` function below, which the doc quotes), then the Autopilot sync's 204, 409 and 429,
//! Exchange connector CRUD and sync, imported identities, device identities with `$filter`,
//! `$select`, `$top` and the SDK's nextLink paging, and updateDeviceProperties.
//!
//! graph-rs-sdk does not turn HTTP errors into Rust errors: `send()` returns the response, and
//! the tests read its status and Graph's error body as a caller would. It does not retry unless
//! asked; `wait_for_retry_after_headers(true)` retries on an integer Retry-After with no limit,
//! which the last test shows against `--sync-retry-after`.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const TENANT: &str = "11111111-1111-4111-8111-111111111111";
const ADMIN_TOKEN: &str = "dmsync-dev-admin";

// recipe: rust-graph-rs-sdk
use graph_rs_sdk::http::Url;
use graph_rs_sdk::{GraphClient, GraphClientConfiguration};

/// A graph-rs-sdk client whose requests go to dmsync. `https_only(false)` and
/// `use_test_endpoint` exist only with the crate's `test-util` feature; the version is part of
/// the endpoint, because `client.v1()` and `client.beta()` would reset it to Graph's.
fn client(dmsync_url: &str, version: &str, token: &str) -> GraphClient {
    let config = GraphClientConfiguration::new().access_token(token).https_only(false);
    let mut client = GraphClient::from(config);
    client.use_test_endpoint(&Url::parse(&format!("{dmsync_url}/{version}")).expect("a URL"));
    client
}
// end recipe: rust-graph-rs-sdk

/// One `dmsync serve` on port 0 with its own SQLite database, killed on drop.
struct Dmsync {
    child: Child,
    base: String,
    http: reqwest::Client,
    _dir: TempDir,
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Dmsync {
    async fn start(args: &[&str]) -> Dmsync {
        let bin = std::env::var("DMSYNC_BIN").expect("DMSYNC_BIN: run the suite through scripts/rust-compat.sh");
        let dir = std::env::temp_dir().join(format!("dmsync-rs-{}-{}", std::process::id(), uniq()));
        std::fs::create_dir_all(&dir).unwrap();
        let db = format!("sqlite://{}", dir.join("dmsync.db").display());
        let mut command = Command::new(bin);
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--db", &db])
            .args(args)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        // Only the command line configures the server here.
        for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("DMSYNC_")) {
            command.env_remove(key);
        }
        let mut child = command.spawn().expect("start dmsync");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("dmsync printed no banner within 20 s")
            .unwrap()
            .expect("dmsync closed stdout");
        let base = first
            .strip_prefix("dmsync listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {first}"))
            .trim()
            .to_owned();
        // Keep reading stdout so that the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Dmsync { child, base, http: reqwest::Client::new(), _dir: TempDir(dir) }
    }

    async fn token(&self) -> String {
        let form = [
            ("grant_type", "password"),
            ("client_id", "22222222-2222-4222-8222-222222222222"),
            ("username", "admin@contoso.onmicrosoft.com"),
            ("password", "dmsync-dev-password"),
            ("scope", "https://graph.microsoft.com/.default"),
        ];
        let r = self.http.post(format!("{}/{TENANT}/oauth2/v2.0/token", self.base)).form(&form).send().await.unwrap();
        assert_eq!(r.status(), 200);
        r.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_owned()
    }

    async fn admin(&self, method: reqwest::Method, path: &str, body: Value) -> reqwest::Response {
        self.http.request(method, format!("{}{path}", self.base)).bearer_auth(ADMIN_TOKEN).json(&body).send().await.unwrap()
    }

    async fn register(&self, serials: &[&str]) {
        let rows: Vec<Value> = serials
            .iter()
            .enumerate()
            .map(|(n, s)| json!({"serialNumber": s, "hardwareHash": hash(&format!("{s}/{n}")), "manufacturer": "Contoso", "model": "Laptop 7"}))
            .collect();
        let r = self.admin(reqwest::Method::POST, &format!("/_dmsync/tenants/{TENANT}/autopilot/registrations"), json!(rows)).await;
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }

    async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

fn uniq() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
}

/// A base64 stand-in for a hardware hash, unique per label.
fn hash(label: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut state: u64 = 1469598103934665603;
    (0..64)
        .map(|i| {
            for b in label.bytes().chain([i as u8]) {
                state = (state ^ b as u64).wrapping_mul(1099511628211);
            }
            ALPHABET[(state >> 58) as usize] as char
        })
        .collect()
}

async fn json_of(response: reqwest::Response) -> Value {
    response.json().await.expect("a JSON body")
}

/// Graph's error body, as a graph-rs-sdk caller reads it: status, code, message, request id.
async fn expect_error(response: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status().as_u16(), status);
    let header = response.headers().get("request-id").expect("request-id header").to_str().unwrap().to_owned();
    let body = json_of(response).await;
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(!body["error"]["message"].as_str().unwrap().is_empty(), "{body}");
    assert_eq!(body["error"]["innerError"]["request-id"], header.as_str(), "{body}");
    body
}

async fn sync_and_wait(beta: &GraphClient) {
    use graph_rs_sdk::http::Method;
    let r = beta.custom(Method::POST, None).extend_path(&["deviceManagement", "windowsAutopilotSettings", "sync"]).send().await.unwrap();
    assert_eq!(r.status(), 204);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = beta.custom(Method::GET, None).extend_path(&["deviceManagement", "windowsAutopilotSettings"]).send().await.unwrap();
        if json_of(r).await["syncStatus"] == "completed" {
            return;
        }
        assert!(Instant::now() < deadline, "sync not completed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn autopilot_sync_is_204_then_409_then_429_through_a_custom_request() {
    use graph_rs_sdk::http::Method;
    let server = Dmsync::start(&["--sync-duration", "2s"]).await;
    let beta = client(&server.base, "beta", &server.token().await);
    let sync = || beta.custom(Method::POST, None).extend_path(&["deviceManagement", "windowsAutopilotSettings", "sync"]);
    // A body-less POST: graph-rs-sdk sends neither Content-Length nor Content-Type.
    assert_eq!(sync().send().await.unwrap().status(), 204);
    expect_error(sync().send().await.unwrap(), 409, "Conflict").await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = beta.custom(Method::GET, None).extend_path(&["deviceManagement", "windowsAutopilotSettings"]).send().await.unwrap();
        if json_of(r).await["syncStatus"] == "completed" {
            break;
        }
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = sync().send().await.unwrap();
    assert!(r.headers().get("retry-after").is_none(), "no Retry-After, as real Intune");
    expect_error(r, 429, "TooManyRequests").await;
    // A bad token is a 401 response, not a Rust error.
    let stranger = client(&server.base, "beta", "not-a-token");
    let r = stranger.custom(Method::GET, None).extend_path(&["deviceManagement", "windowsAutopilotSettings"]).send().await.unwrap();
    expect_error(r, 401, "InvalidAuthenticationToken").await;
    server.stop().await;
}

#[tokio::test]
async fn exchange_connectors_crud_and_both_sync_types_on_v1_0() {
    let server = Dmsync::start(&[]).await;
    let v1 = client(&server.base, "v1.0", &server.token().await);
    let dm = v1.device_management();
    let r = dm.create_exchange_connectors(&json!({"exchangeConnectorType": "onPremises", "serverName": "ex01"})).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let id = json_of(r).await["id"].as_str().unwrap().to_owned();
    let r = dm.update_exchange_connectors(&id, &json!({"serverName": "ex02"})).send().await.unwrap();
    assert_eq!(json_of(r).await["serverName"], "ex02");
    let list = json_of(dm.list_exchange_connectors().send().await.unwrap()).await;
    assert_eq!(list["value"][0]["id"], id.as_str());

    let examples = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../examples/exchange/mobile-devices.csv");
    let r = server
        .admin(reqwest::Method::PUT, &format!("/_dmsync/tenants/{TENANT}/exchangeConnectors/{id}/source"), json!({"kind": "file", "path": examples.canonicalize().unwrap()}))
        .await;
    assert_eq!(r.status(), 204);
    let mut previous = String::new();
    for sync_type in ["fullSync", "deltaSync"] {
        assert_eq!(dm.sync(&id, &json!({"syncType": sync_type})).send().await.unwrap().status(), 204);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let c = json_of(dm.get_exchange_connectors(&id).send().await.unwrap()).await;
            let last = c["lastSyncDateTime"].as_str().unwrap().to_owned();
            if c["status"] == "connected" && last > previous {
                previous = last;
                break;
            }
            assert!(Instant::now() < deadline, "{sync_type} never ended");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    expect_error(dm.sync("00000000-0000-4000-8000-000000000000", &json!({"syncType": "fullSync"})).send().await.unwrap(), 404, "ResourceNotFound").await;
    expect_error(dm.sync(&id, &json!({})).send().await.unwrap(), 400, "BadRequest").await;
    assert_eq!(dm.delete_exchange_connectors(&id).send().await.unwrap().status(), 204);
    expect_error(dm.get_exchange_connectors(&id).send().await.unwrap(), 404, "ResourceNotFound").await;
    server.stop().await;
}

#[tokio::test]
async fn imported_identities_and_device_identities_with_query_options_and_paging() {
    use graph_rs_sdk::ODataQuery;
    let server = Dmsync::start(&["--sync-duration", "0s", "--import-delay", "600s"]).await;
    let token = server.token().await;
    let serials: Vec<String> = (0..7).map(|n| format!("RS{n:03}")).collect();
    server.register(&serials.iter().map(String::as_str).collect::<Vec<_>>()).await;
    sync_and_wait(&client(&server.base, "beta", &token)).await;

    for version in ["v1.0", "beta"] {
        let graph = client(&server.base, version, &token);
        let dm = graph.device_management();
        // Imported identities: create, /import, list, get, delete.
        let r = dm
            .create_imported_windows_autopilot_device_identities(&json!({"serialNumber": format!("IMP-{version}"), "hardwareIdentifier": hash(version)}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let created = json_of(r).await;
        assert_eq!(created["state"]["deviceImportStatus"], "unknown");
        let id = created["id"].as_str().unwrap().to_owned();
        let body = json!({"importedWindowsAutopilotDeviceIdentities": [{"serialNumber": format!("BATCH-{version}"), "hardwareIdentifier": hash(&format!("b{version}")), "groupTag": "Sales"}]});
        let imported = json_of(dm.import(&body).send().await.unwrap()).await;
        assert_eq!(imported["value"].as_array().unwrap().len(), 1);
        // One identity per page; the tenant's imports are shared by both versions, so the beta
        // round also sees the batch of the v1.0 one.
        let pages = dm.list_imported_windows_autopilot_device_identities().top("1").paging().json::<Value>().await.unwrap();
        assert_eq!(pages.len(), if version == "v1.0" { 2 } else { 3 });
        assert!(pages.iter().all(|p| p.body().as_ref().unwrap()["value"].as_array().unwrap().len() == 1));
        assert_eq!(json_of(dm.get_imported_windows_autopilot_device_identities(&id).send().await.unwrap()).await["id"], id.as_str());
        assert_eq!(dm.delete_imported_windows_autopilot_device_identities(&id).send().await.unwrap().status(), 204);
        expect_error(dm.get_imported_windows_autopilot_device_identities(&id).send().await.unwrap(), 404, "ResourceNotFound").await;

        // Device identities. The generated list builder demands an id and ignores it.
        let devices = dm.windows_autopilot_device_identities("ignored");
        let found = json_of(devices.list_windows_autopilot_device_identities().filter(&["contains(serialNumber,'rs00')"]).select(&["id", "serialNumber"]).send().await.unwrap()).await;
        let mut got: Vec<&str> = found["value"].as_array().unwrap().iter().map(|d| d["serialNumber"].as_str().unwrap()).collect();
        got.sort();
        assert_eq!(got, ["RS000", "RS001", "RS002", "RS003", "RS004", "RS005", "RS006"]);
        assert!(found["value"][0].get("model").is_none(), "not selected");

        // The SDK's paging follows the absolute nextLinks: 3 + 3 + 1.
        let pages = devices.list_windows_autopilot_device_identities().top("3").paging().json::<Value>().await.unwrap();
        let sizes: Vec<usize> = pages.iter().map(|p| p.body().as_ref().unwrap()["value"].as_array().unwrap().len()).collect();
        assert_eq!(sizes, [3, 3, 1]);

        let first = found["value"][0]["id"].as_str().unwrap().to_owned();
        let item = dm.windows_autopilot_device_identities_id(&first);
        assert_eq!(item.update_device_properties(&json!({"displayName": format!("RS-{version}")})).send().await.unwrap().status(), 204);
        let device = json_of(item.get_windows_autopilot_device_identities().send().await.unwrap()).await;
        assert_eq!(device["displayName"], format!("RS-{version}").as_str());
    }
    server.stop().await;
}

#[tokio::test]
async fn wait_for_retry_after_headers_retries_the_cooldown_429_until_it_ends() {
    use graph_rs_sdk::http::Method;
    let server = Dmsync::start(&["--sync-duration", "0s", "--sync-retry-after", "--sync-cooldown", "6s"]).await;
    let token = server.token().await;
    sync_and_wait(&client(&server.base, "beta", &token)).await;
    // The documented switch: retry while the response carries an integer Retry-After.
    let config = GraphClientConfiguration::new().access_token(&token).https_only(false).wait_for_retry_after_headers(true);
    let mut retrying = GraphClient::from(config);
    retrying.use_test_endpoint(&Url::parse(&format!("{}/beta", server.base)).unwrap());
    let started = Instant::now();
    let r = retrying.custom(Method::POST, None).extend_path(&["deviceManagement", "windowsAutopilotSettings", "sync"]).send().await.unwrap();
    assert_eq!(r.status(), 204, "retried until the cooldown ended");
    assert!(started.elapsed() >= Duration::from_millis(900), "no Retry-After was waited for");
    let metrics = server.http.get(format!("{}/metrics", server.base)).send().await.unwrap().text().await.unwrap();
    let count = |status: &str| -> u64 {
        metrics
            .lines()
            .find(|l| l.starts_with("dmsync_http_requests_total{") && l.contains("route=\"/beta/deviceManagement/windowsAutopilotSettings/sync\"") && l.contains(&format!("status=\"{status}\"")))
            .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
            .unwrap_or(0)
    };
    assert_eq!((count("204"), count("429")), (2, 1), "one 429, one wait, one accepted retry");
    server.stop().await;
}

/// Documented throttling (issue 19) as graph-rs-sdk sees it: with a short window, a read over the
/// limit is Graph's 429 with Retry-After, and `wait_for_retry_after_headers` waits it out.
#[tokio::test]
async fn wait_for_retry_after_headers_retries_a_throttled_read_until_its_window_ends() {
    use graph_rs_sdk::http::Method;
    let server = Dmsync::start(&[]).await;
    let token = server.token().await;
    let limits = json!({ "limits": { "enrollment": { "appRequests": 2, "windowSeconds": 2 } } });
    assert_eq!(server.admin(reqwest::Method::PUT, "/_dmsync/throttling", limits).await.status(), 200);
    let config = GraphClientConfiguration::new().access_token(&token).https_only(false).wait_for_retry_after_headers(true);
    let mut retrying = GraphClient::from(config);
    retrying.use_test_endpoint(&Url::parse(&format!("{}/beta", server.base)).unwrap());
    let read = || retrying.custom(Method::GET, None).extend_path(&["deviceManagement", "windowsAutopilotSettings"]).send();
    assert_eq!(read().await.unwrap().status(), 200);
    assert_eq!(read().await.unwrap().status(), 200);
    let started = Instant::now();
    assert_eq!(read().await.unwrap().status(), 200, "retried until the window ended");
    assert!(started.elapsed() >= Duration::from_millis(900), "no Retry-After was waited for");
    let metrics = server.http.get(format!("{}/metrics", server.base)).send().await.unwrap().text().await.unwrap();
    let count = |status: &str| -> u64 {
        metrics
            .lines()
            .filter(|l| l.starts_with("dmsync_http_requests_total{") && l.contains("route=\"/beta/deviceManagement/windowsAutopilotSettings\"") && l.contains("method=\"GET\"") && l.contains(&format!("status=\"{status}\"")))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
            .sum()
    };
    assert_eq!(count("200"), 3, "two reads in the window and the retry after it");
    assert!(count("429") >= 1, "the third read was refused first");
    server.stop().await;
}

/// docs/CLIENTS.md quotes the recipe above, character for character.
#[test]
fn the_doc_quotes_the_recipe_this_suite_runs() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let source = std::fs::read_to_string(root.join("tests/graph_rs_sdk.rs")).unwrap();
    let lines: Vec<&str> = source.lines().collect();
    let start = lines.iter().position(|l| l.trim() == "// recipe: rust-graph-rs-sdk").expect("start marker");
    let end = lines.iter().position(|l| l.trim() == "// end recipe: rust-graph-rs-sdk").expect("end marker");
    let recipe = lines[start + 1..end].join("\n");
    let doc = std::fs::read_to_string(root.join("../../../docs/CLIENTS.md")).unwrap();
    let block = doc
        .split("<!-- recipe: rust-graph-rs-sdk -->\n```rust\n")
        .nth(1)
        .and_then(|rest| rest.split("\n```\n").next())
        .expect("docs/CLIENTS.md has the rust-graph-rs-sdk recipe block");
    assert_eq!(block, recipe);
}
