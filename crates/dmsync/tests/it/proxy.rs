//! The hostname-preserving proxy (`--proxy-listen`): a client that keeps Microsoft's host names
//! and sets only a proxy and a CA reaches dmsync's Graph routes and identity provider; other
//! hosts and ports are refused, and the server keeps serving after each refusal.

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::*;

const GRAPH: &str = "https://graph.microsoft.com/beta/deviceManagement";

async fn proxy_app(pass_through: bool) -> TestApp {
    spawn_app_with(|c| {
        c.proxy_listen = Some("127.0.0.1:0".parse().unwrap());
        c.proxy_pass_through = pass_through;
    })
    .await
}

/// A client that sends HTTPS through the proxy and trusts the proxy's CA, as `HTTPS_PROXY` and
/// a CA bundle make a real tool do.
fn through_proxy(app: &TestApp) -> reqwest::ClientBuilder {
    let proxy = format!("http://{}", app.proxy_address.expect("the proxy listens"));
    let ca = reqwest::Certificate::from_pem(app.proxy_ca_pem.as_deref().expect("a CA").as_bytes()).unwrap();
    reqwest::Client::builder().proxy(reqwest::Proxy::https(proxy).unwrap()).tls_certs_only([ca])
}

async fn token_through(client: &reqwest::Client, app: &TestApp) -> String {
    let r = client
        .post(format!("https://login.microsoftonline.com/{}/oauth2/v2.0/token", app.tenant()))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &dmsync_server::bootstrap::DEV_CLIENT_ID.to_string()),
            ("client_secret", dmsync_server::bootstrap::DEV_CLIENT_SECRET),
            ("scope", "https://graph.microsoft.com/.default"),
        ])
        .send()
        .await
        .expect("the token endpoint answers through the proxy");
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    body["access_token"].as_str().expect("a token").to_owned()
}

/// Sends one request to the proxy over plain TCP and returns the status line and the body.
async fn ask_proxy(app: &TestApp, request: &str) -> (String, String) {
    let mut stream = tokio::net::TcpStream::connect(app.proxy_address.unwrap()).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(stream.read_u8().await.expect("a whole head"));
    }
    let head = String::from_utf8(head).unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()))
        .unwrap_or(0);
    let mut body = vec![0; length];
    stream.read_exact(&mut body).await.unwrap();
    (head.lines().next().unwrap().to_owned(), String::from_utf8(body).unwrap())
}

#[tokio::test]
async fn microsoft_hosts_are_answered_by_dmsync_through_the_proxy() {
    let app = proxy_app(false).await;
    let client = through_proxy(&app).build().unwrap();
    let token = token_through(&client, &app).await;

    let r = client.get(format!("{GRAPH}/windowsAutopilotSettings")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.version(), reqwest::Version::HTTP_2, "ALPN offers h2 inside the tunnel");
    let settings: Value = r.json().await.unwrap();
    assert_eq!(settings["syncStatus"], "unknown", "{settings}");
    // The path msgraph-beta-sdk sends with its default base URL, with a delegated token (the
    // default permission profile gives applications no sync).
    let user = app.user_token().await;
    let r = client
        .post("https://graph.microsoft.com/beta//deviceManagement/windowsAutopilotSettings/sync")
        .bearer_auth(&user)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);

    // The discovery document names the host the client asked for.
    let r = client
        .get(format!("https://login.microsoftonline.com/{}/v2.0/.well-known/openid-configuration", app.tenant()))
        .send()
        .await
        .unwrap();
    let openid: Value = r.json().await.unwrap();
    let token_endpoint = openid["token_endpoint"].as_str().unwrap();
    assert_eq!(token_endpoint, format!("https://login.microsoftonline.com/{}/oauth2/v2.0/token", app.tenant()));
    // MSAL's instance discovery, as Entra answers it.
    let discovery: Value = client
        .get("https://login.microsoftonline.com/common/discovery/instance")
        .query(&[
            ("api-version", "1.1"),
            (
                "authorization_endpoint",
                &format!("https://login.microsoftonline.com/{}/oauth2/v2.0/authorize", app.tenant()),
            ),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        discovery["tenant_discovery_endpoint"],
        format!("https://login.microsoftonline.com/{}/v2.0/.well-known/openid-configuration", app.tenant())
    );
    assert_eq!(discovery["metadata"][0]["preferred_cache"], "login.windows.net", "{discovery}");

    // So does a nextLink.
    for serial in ["PROXY-1", "PROXY-2"] {
        let r = client
            .post(format!("{GRAPH}/importedWindowsAutopilotDeviceIdentities"))
            .bearer_auth(&user)
            .json(&json!({ "serialNumber": serial, "hardwareIdentifier": hardware_hash(serial) }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    let page: Value = client
        .get(format!("{GRAPH}/importedWindowsAutopilotDeviceIdentities?$top=1"))
        .bearer_auth(&user)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let next = page["@odata.nextLink"].as_str().expect("a second page");
    assert!(
        next.starts_with("https://graph.microsoft.com/beta/deviceManagement/importedWindowsAutopilotDeviceIdentities?"),
        "{next}"
    );
    let second: Value = client.get(next).bearer_auth(&user).send().await.unwrap().json().await.unwrap();
    assert_eq!(second["value"].as_array().map(Vec::len), Some(1), "{second}");
    app.stop().await;
}

#[tokio::test]
async fn other_hosts_ports_and_plain_http_are_refused_and_the_server_keeps_serving() {
    let app = proxy_app(false).await;
    let (status, reason) = ask_proxy(&app, "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n").await;
    assert_eq!(status, "HTTP/1.1 403 Forbidden");
    assert!(reason.contains("--proxy-pass-through") && !reason.trim_end().contains('\n'), "{reason}");
    let (status, reason) =
        ask_proxy(&app, "CONNECT graph.microsoft.com:80 HTTP/1.1\r\nHost: graph.microsoft.com:80\r\n\r\n").await;
    assert_eq!(status, "HTTP/1.1 403 Forbidden");
    assert!(reason.contains("only port 443"), "{reason}");
    let (status, reason) = ask_proxy(
        &app,
        "GET http://graph.microsoft.com/beta/deviceManagement/windowsAutopilotSettings HTTP/1.1\r\nHost: graph.microsoft.com\r\n\r\n",
    )
    .await;
    assert_eq!(status, "HTTP/1.1 403 Forbidden");
    assert!(reason.contains("https://"), "{reason}");
    let (status, _) = ask_proxy(&app, "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
    assert_eq!(status, "HTTP/1.1 400 Bad Request");

    let client = through_proxy(&app).build().unwrap();
    assert!(client.get("https://example.com/").send().await.is_err(), "no tunnel to another host");
    // A client that does not trust the CA fails its handshake, and nothing else does.
    let untrusting = reqwest::Client::builder()
        .proxy(reqwest::Proxy::https(format!("http://{}", app.proxy_address.unwrap())).unwrap())
        .build()
        .unwrap();
    let refused = untrusting.get(format!("{GRAPH}/windowsAutopilotSettings")).send().await;
    assert!(refused.is_err(), "an untrusted certificate is refused by the client");
    // Inside a tunnel to graph.microsoft.com, Host must name it: the admin API's loopback names
    // are not reachable that way.
    let http1 = through_proxy(&app).http1_only().build().unwrap();
    let r = http1.get("https://graph.microsoft.com/_dmsync/clock").header("host", "localhost").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body: Value = r.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("graph.microsoft.com"), "{body}");

    let token = token_through(&client, &app).await;
    let r = client.get(format!("{GRAPH}/windowsAutopilotSettings")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = app.raw(reqwest::Method::GET, "/healthz", None).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    app.stop().await;
}

/// Pass-through is tunnelled end to end in proxy.rs's unit tests, against a loopback listener
/// that stands in for a real host; here nothing listens on port 443, so the proxy says so.
#[tokio::test]
async fn pass_through_reports_a_target_it_cannot_reach() {
    let app = proxy_app(true).await;
    let (status, reason) = ask_proxy(&app, "CONNECT 127.0.0.1:443 HTTP/1.1\r\nHost: 127.0.0.1:443\r\n\r\n").await;
    assert_eq!(status, "HTTP/1.1 502 Bad Gateway", "{reason}");
    assert!(reason.contains("127.0.0.1:443"), "{reason}");
    let (status, _) = ask_proxy(&app, "CONNECT 127.0.0.1:8443 HTTP/1.1\r\nHost: 127.0.0.1:8443\r\n\r\n").await;
    assert_eq!(status, "HTTP/1.1 403 Forbidden", "other ports stay refused with pass-through");
    let client = through_proxy(&app).build().unwrap();
    let token = token_through(&client, &app).await;
    let r = client.get(format!("{GRAPH}/windowsAutopilotSettings")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    app.stop().await;
}

/// The real binary: the flag binds the proxy at start (a bad address fails there, naming it),
/// the banner prints its address, and SIGTERM drains it with the main listener.
#[tokio::test]
async fn the_binary_binds_announces_and_drains_the_proxy() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("dmsync.db").display());
    let refused = Command::new(env!("CARGO_BIN_EXE_dmsync"))
        .args(["serve", "--listen", "127.0.0.1:0", "--db", &db, "--proxy-listen", "192.0.2.1:8888"])
        .env("DMSYNC_LOG", "error")
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("listening for the proxy on 192.0.2.1:8888"), "{stderr}");

    let mut child = Command::new(env!("CARGO_BIN_EXE_dmsync"))
        .args(["serve", "--listen", "127.0.0.1:0", "--db", &db, "--proxy-listen", "127.0.0.1:0"])
        .env("DMSYNC_LOG", "warn,sqlx=error")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut proxy = None;
    for _ in 0..20 {
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        if let Some(rest) = line.strip_prefix("dmsync proxy listening on http://") {
            proxy = rest.split_whitespace().next().map(str::to_owned);
            break;
        }
    }
    let proxy = proxy.expect("the banner names the proxy's address");
    let mut stream = tokio::net::TcpStream::connect(&proxy).await.unwrap();
    stream.write_all(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n").await.unwrap();
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 403");
    drop(stream);
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(15), "dmsync did not stop");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status}");
}

/// A `CONNECT` head that never ends is cut at the head timeout, and one past the head bound is
/// refused; the proxy and the main listener keep serving.
#[tokio::test]
async fn a_slow_or_oversized_connect_head_is_cut_and_the_proxy_keeps_serving() {
    let app = spawn_app_with(|c| {
        c.proxy_listen = Some("127.0.0.1:0".parse().unwrap());
        c.header_read_timeout = std::time::Duration::from_millis(800);
    })
    .await;
    let address = app.proxy_address.unwrap();

    let mut slow = tokio::net::TcpStream::connect(address).await.unwrap();
    slow.write_all(b"CONNECT graph.microsoft.com:443 HTTP/1.1\r\nHost: gra").await.unwrap();
    let started = std::time::Instant::now();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(std::time::Duration::from_secs(10), slow.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the slow head was cut");
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "{:?}", started.elapsed());

    let mut big = tokio::net::TcpStream::connect(address).await.unwrap();
    let padding = format!("X-Pad: {}\r\n", "a".repeat(1024)).repeat(200);
    let head = format!("CONNECT graph.microsoft.com:443 HTTP/1.1\r\nHost: graph.microsoft.com:443\r\n{padding}\r\n");
    let _ = big.write_all(head.as_bytes()).await;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(std::time::Duration::from_secs(10), big.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the oversized head was answered or closed in time");
    let answer = String::from_utf8_lossy(&answer);
    assert!(!answer.starts_with("HTTP/1.1 200"), "an oversized head opens no tunnel: {answer}");

    let (status, _) = ask_proxy(&app, "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n").await;
    assert_eq!(status, "HTTP/1.1 403 Forbidden", "the proxy still answers");
    let r = app.raw(reqwest::Method::GET, "/healthz", None).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    app.stop().await;
}
