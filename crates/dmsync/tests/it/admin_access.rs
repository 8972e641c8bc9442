//! Who may reach the admin API: no empty credential (issue 14, item 1) and no name but the ones
//! it answers to (item 6, DNS rebinding); and every HTTP/1.1 request must name its host.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use dmsync_server::bootstrap::DEV_CLIENT_ID;
use dmsync_server::config::ExternalIssuer;

use crate::helpers::*;

const DEV_ADMIN: &str = "dmsync-dev-admin";

/// Runs `dmsync serve` with `args` and `env`, and returns its exit status, stdout and stderr if
/// it exits within a few seconds; a server that starts serving instead is killed and reported.
fn serve_expecting_refusal(args: &[&str], env: &[(&str, &str)]) -> (std::process::ExitStatus, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("dmsync.db").display());
    let mut child = Command::new(env!("CARGO_BIN_EXE_dmsync"))
        .args(["serve", "--db", &db])
        .args(args)
        .env_remove("DMSYNC_ADMIN_TOKEN")
        .envs(env.iter().copied())
        .env("DMSYNC_LOG", "warn,sqlx=error")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("dmsync starts");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("dmsync {args:?} {env:?} started serving instead of refusing the configuration");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let read = |r: &mut dyn std::io::Read| {
        let mut s = String::new();
        r.read_to_string(&mut s).unwrap();
        s
    };
    let stdout = read(child.stdout.as_mut().unwrap());
    let stderr = read(child.stderr.as_mut().unwrap());
    (status, stdout, stderr)
}

/// Arguments and environment of one `dmsync serve`.
type StartCase = (&'static [&'static str], &'static [(&'static str, &'static str)]);

#[test]
fn a_duration_that_means_nothing_is_refused_at_start_naming_the_flag() {
    let cases: [(StartCase, &str); 3] = [
        ((&["--listen", "127.0.0.1:0", "--job-lease", "0s"], &[]), "--job-lease"),
        ((&["--listen", "127.0.0.1:0"], &[("DMSYNC_EXCHANGE_DELTA_INTERVAL", "0")]), "--exchange-delta-interval"),
        ((&["--listen", "127.0.0.1:0", "--idle-timeout", "0s"], &[]), "--idle-timeout"),
    ];
    for ((args, env), flag) in cases {
        let (status, stdout, stderr) = serve_expecting_refusal(args, env);
        assert!(!status.success(), "{args:?} {env:?}");
        assert!(!stdout.contains("dmsync listening"), "{args:?} {env:?} listened: {stdout}");
        assert!(stderr.contains(flag), "{args:?} {env:?}: {stderr}");
    }
}

#[test]
fn an_empty_or_blank_admin_token_is_refused_at_start() {
    let cases: [StartCase; 5] = [
        (&["--listen", "0.0.0.0:0", "--admin-token", ""], &[]),
        (&["--listen", "127.0.0.1:0", "--admin-token", "  "], &[]),
        (&["--listen", "0.0.0.0:0"], &[("DMSYNC_ADMIN_TOKEN", "")]),
        (&["--listen", "127.0.0.1:0"], &[("DMSYNC_ADMIN_TOKEN", " \t")]),
        (
            &["--listen", "127.0.0.1:0", "--external-jwks-url", "http://127.0.0.1:9/keys", "--external-audiences", ""],
            &[],
        ),
    ];
    for (args, env) in cases {
        let (status, stdout, stderr) = serve_expecting_refusal(args, env);
        assert!(!status.success(), "{args:?} {env:?}");
        assert!(!stdout.contains("dmsync listening"), "{args:?} {env:?} listened: {stdout}");
        assert!(stderr.contains("invalid configuration"), "{args:?} {env:?}: {stderr}");
        let names_the_setting = stderr.contains("--admin-token") || stderr.contains("--external-audiences");
        assert!(names_the_setting, "{args:?} {env:?}: {stderr}");
    }
}

#[tokio::test]
async fn a_configuration_with_an_empty_secret_does_not_build() {
    let refused: [fn(&mut dmsync_server::Config); 4] = [
        |c| c.admin_token = Some(String::new()),
        |c| c.admin_token = Some(" ".into()),
        |c| c.external_issuer = Some(ExternalIssuer { jwks_url: String::new(), audiences: vec![] }),
        |c| {
            c.external_issuer = Some(ExternalIssuer {
                jwks_url: "http://127.0.0.1:9/k".into(),
                audiences: vec!["api://x".into(), String::new()],
            })
        },
    ];
    for configure in refused {
        let dir = tempfile::tempdir().unwrap();
        let mut config = test_config(&format!("sqlite://{}", dir.path().join("dmsync.db").display()));
        configure(&mut config);
        let built = dmsync_server::Application::build(config, tokio_util::sync::CancellationToken::new()).await;
        let error = built.err().expect("an empty secret is refused");
        assert!(error.to_string().contains("invalid configuration"), "{error:#}");
    }
}

#[test]
fn the_banner_says_when_the_admin_api_is_reachable_from_other_hosts() {
    let banner = |listen: &str| {
        let dir = tempfile::tempdir().unwrap();
        let db = format!("sqlite://{}", dir.path().join("dmsync.db").display());
        let mut child = Command::new(env!("CARGO_BIN_EXE_dmsync"))
            .args(["serve", "--db", &db, "--listen", listen, "--admin-token", "s3cret-admin"])
            .env("DMSYNC_LOG", "warn,sqlx=error")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("dmsync starts");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        let admin_line = loop {
            line.clear();
            assert!(stdout.read_line(&mut line).unwrap() > 0, "the banner ended without an admin API line");
            if line.contains("admin API:") {
                break line.trim().to_owned();
            }
        };
        let _ = child.kill();
        let _ = child.wait();
        admin_line
    };
    let everywhere = banner("0.0.0.0:0");
    assert!(everywhere.contains("reachable from other hosts"), "{everywhere}");
    let loopback = banner("127.0.0.1:0");
    assert!(!loopback.contains("reachable from other hosts"), "{loopback}");
}

#[tokio::test]
async fn an_empty_bearer_is_never_the_admin_token() {
    for configured in [None, Some("s3cret-admin")] {
        let app = spawn_app_with(|c| c.admin_token = configured.map(str::to_owned)).await;
        for authorization in ["Bearer", "Bearer ", "Bearer \t", "bearer  "] {
            let r = app
                .raw(Method::POST, "/_dmsync/clock/advance", None)
                .header("authorization", authorization)
                .json(&json!({"seconds": 1}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{configured:?} {authorization:?}");
        }
        app.stop().await;
    }
}

#[tokio::test]
async fn a_blank_client_secret_at_the_token_endpoint_counts_as_none() {
    use base64::Engine;
    let app = spawn_app().await;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{DEV_CLIENT_ID}:"));
    let r = app
        .raw(Method::POST, &format!("/{}/oauth2/v2.0/token", app.tenant()), None)
        .header("authorization", format!("Basic {basic}"))
        .form(&[("grant_type", "client_credentials"), ("scope", "https://graph.microsoft.com/.default")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");
    assert_eq!(body["error_codes"], json!([7000218]), "{body}");
    app.stop().await;
}

/// A Graph-shaped error body with request ids.
fn assert_graph_error(body: &Value, code: &str) {
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    assert!(body["error"]["innerError"]["request-id"].is_string(), "{body}");
}

#[tokio::test]
async fn a_rebound_host_is_refused_on_the_admin_api_only() {
    let app = spawn_app().await;
    for host in ["evil.example", "evil.example:8080", "localhost.evil.example"] {
        let r = app.raw(Method::GET, "/_dmsync/clock", Some(DEV_ADMIN)).header("host", host).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{host}");
        assert_graph_error(&r.json().await.unwrap(), "Forbidden");
    }
    // Refused before the token is looked at: a rebinding page learns nothing about it.
    let r = app.raw(Method::GET, "/_dmsync/clock", None).header("host", "evil.example").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // Graph answers to any name (clients address it as graph.microsoft.com through proxies).
    let token = app.user_token().await;
    let r = app
        .raw(Method::GET, "/beta/deviceManagement/windowsAutopilotSettings", Some(&token))
        .header("host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // Loopback names with any port are the admin API's own.
    let port = app.base_url.rsplit(':').next().unwrap().to_owned();
    for host in [format!("localhost:{port}"), format!("127.0.0.1:{port}"), format!("[::1]:{port}"), "localhost".into()]
    {
        let r = app.raw(Method::GET, "/_dmsync/clock", Some(DEV_ADMIN)).header("host", &host).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{host}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_foreign_origin_is_refused_on_the_admin_api() {
    let app = spawn_app().await;
    for origin in ["http://evil.example", "null"] {
        let r = app
            .raw(Method::POST, "/_dmsync/clock/advance", Some(DEV_ADMIN))
            .header("origin", origin)
            .json(&json!({"seconds": 1}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{origin}");
        let body: Value = r.json().await.unwrap();
        assert_graph_error(&body, "Forbidden");
        assert!(body["error"]["message"].as_str().unwrap().contains("Origin"), "{body}");
    }
    let r = app
        .raw(Method::GET, "/_dmsync/clock", Some(DEV_ADMIN))
        .header("origin", app.base_url.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    app.stop().await;
}

#[tokio::test]
async fn an_allowed_host_from_the_configuration_is_answered() {
    let app = spawn_app_with(|c| c.admin_allowed_hosts = vec!["dmsync.test".into(), "admin.test:9443".into()]).await;
    let clock = |host: &'static str, origin: Option<&'static str>| {
        let mut r = app.raw(Method::GET, "/_dmsync/clock", Some(DEV_ADMIN)).header("host", host);
        if let Some(origin) = origin {
            r = r.header("origin", origin);
        }
        async move { r.send().await.unwrap().status() }
    };
    assert_eq!(clock("dmsync.test", None).await, StatusCode::OK);
    assert_eq!(clock("DMSYNC.test:8080", Some("https://dmsync.test")).await, StatusCode::OK);
    assert_eq!(clock("admin.test:9443", None).await, StatusCode::OK);
    assert_eq!(clock("admin.test:9444", None).await, StatusCode::FORBIDDEN);
    assert_eq!(clock("other.test", None).await, StatusCode::FORBIDDEN);
    app.stop().await;
}

/// Sends `request` as is over a fresh connection and returns the status and the JSON body.
async fn raw_http(app: &TestApp, request: &str) -> (u16, String, Value) {
    let address = app.base_url.strip_prefix("http://").unwrap();
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response)).await.expect("an answer").unwrap();
    let response = String::from_utf8(response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no header end in {response:?}"));
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let body = serde_json::from_str(body).unwrap_or(Value::Null);
    (status, head.to_ascii_lowercase(), body)
}

#[tokio::test]
async fn an_http_1_1_request_without_host_is_a_graph_400_on_every_route() {
    let app = spawn_app().await;
    for path in ["/beta/deviceManagement/windowsAutopilotSettings", "/_dmsync/clock", "/metrics", "/nowhere"] {
        let (status, head, body) = raw_http(
            &app,
            &format!("GET {path} HTTP/1.1\r\nAuthorization: Bearer {DEV_ADMIN}\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert_eq!(status, 400, "{path}: {head}");
        assert_graph_error(&body, "BadRequest");
        assert!(head.contains("request-id:"), "{head}");
    }
    // Two Host headers are as bad as none.
    let (status, _, body) =
        raw_http(&app, "GET /metrics HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n").await;
    assert_eq!(status, 400);
    assert_graph_error(&body, "BadRequest");
    app.stop().await;
}

#[tokio::test]
async fn an_absolute_form_target_naming_another_host_is_refused() {
    let app = spawn_app().await;
    let address = app.base_url.strip_prefix("http://").unwrap().to_owned();
    let get = |target: String, host: String| {
        format!(
            "GET {target} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {DEV_ADMIN}\r\nConnection: close\r\n\r\n"
        )
    };
    // On any route, the target and Host must agree.
    let (status, _, body) = raw_http(&app, &get("http://evil.example/metrics".into(), address.clone())).await;
    assert_eq!(status, 400);
    assert_graph_error(&body, "BadRequest");
    let (status, _, _) = raw_http(&app, &get(format!("http://{address}/metrics"), address.clone())).await;
    assert_eq!(status, 200);
    // On the admin API, the name both give must be one it answers to.
    let (status, _, body) =
        raw_http(&app, &get("http://evil.example/_dmsync/clock".into(), "evil.example".into())).await;
    assert_eq!(status, 403);
    assert_graph_error(&body, "Forbidden");
    let (status, _, _) = raw_http(&app, &get(format!("http://{address}/_dmsync/clock"), address.clone())).await;
    assert_eq!(status, 200);
    app.stop().await;
}
