//! HTTPS (`serve --tls`): the local CA at /_dmsync/ca.pem as a client's only trusted root, over
//! HTTP/1.1 and HTTP/2 negotiated by ALPN; absolute URLs under https and `--public-url`; plain
//! HTTP, unknown names and untrusting clients on the TLS port; an operator's own certificate;
//! the CA kept across restarts; and `dmsync ca`.

use std::process::Command;
use std::time::Duration;

use dmsync_server::config::{Config, PublicUrl, TlsCertificate};
use reqwest::{Method, StatusCode, Version};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::helpers::*;
use crate::process::RealServer;

async fn tls_app() -> TestApp {
    spawn_app_with(|c| {
        c.tls = Some(TlsCertificate::LocalCa { names: vec!["dmsync.test".into()] });
        c.sync_duration = time::Duration::ZERO;
    })
    .await
}

fn port(app: &TestApp) -> u16 {
    app.base_url.rsplit(':').next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn https_speaks_http2_and_http1_to_a_client_that_trusts_only_the_local_ca() {
    let app = tls_app().await;
    assert!(app.base_url.starts_with("https://127.0.0.1:"), "{}", app.base_url);
    let ca = app.state.certificate_authority().ca_pem().to_owned();

    // /_dmsync/ca.pem is public and is the CA the client trusts.
    let r = app.raw(Method::GET, "/_dmsync/ca.pem", None).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "application/x-pem-file");
    assert_eq!(r.text().await.unwrap(), ca);
    assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"));

    let token = app.user_token().await;
    let settings = "/beta/deviceManagement/windowsAutopilotSettings";
    // ALPN offers h2 first, and reqwest with its http2 feature takes it.
    let r = app.raw(Method::GET, settings, Some(&token)).send().await.unwrap();
    assert_eq!((r.status(), r.version()), (StatusCode::OK, Version::HTTP_2));
    let http1 = trusting(&ca).http1_only().build().unwrap();
    let r = http1.get(format!("{}{settings}", app.base_url)).bearer_auth(&token).send().await.unwrap();
    assert_eq!((r.status(), r.version()), (StatusCode::OK, Version::HTTP_11));

    // Every name the leaf carries: loopback names and --tls-name.
    for host in ["localhost", "dmsync.test"] {
        let client = trusting(&ca).resolve(host, ([127, 0, 0, 1], port(&app)).into()).build().unwrap();
        let r = client.get(format!("https://{host}:{}/healthz", port(&app))).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{host}");
    }
    app.stop().await;
}

#[tokio::test]
async fn absolute_urls_are_https_on_a_tls_listener() {
    let app = tls_app().await;
    let rows: Vec<_> = ["TLS-1", "TLS-2", "TLS-3"].iter().map(|s| registration(s)).collect();
    app.admin.add_registrations(&app.tenant(), &rows).await.unwrap();
    let client = app.user_client().await;
    client.sync_windows_autopilot_settings().await.unwrap();
    app.wait_for_sync_status(&client, "completed", Duration::from_secs(10)).await;

    let token = app.user_token().await;
    let set = "/beta/deviceManagement/windowsAutopilotDeviceIdentities";
    for http1 in [false, true] {
        let mut builder = trusting(app.state.certificate_authority().ca_pem());
        if http1 {
            builder = builder.http1_only();
        }
        let http = builder.build().unwrap();
        let page: Value = http
            .get(format!("{}{set}?$top=2", app.base_url))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let next = page["@odata.nextLink"].as_str().expect("a second page");
        assert!(next.starts_with(&format!("{}{set}?", app.base_url)), "http1 {http1}: {next}");
        let second = http.get(next).bearer_auth(&token).send().await.unwrap();
        assert_eq!(second.status(), StatusCode::OK);
    }
    // The client's paging follows them.
    assert_eq!(
        client.all_windows_autopilot_device_identities(dmsync_graph::ApiVersion::Beta, "?$top=1").await.unwrap().len(),
        3
    );

    let discovery = app.get_json(&format!("/{}/v2.0/.well-known/openid-configuration", app.tenant()), None).await;
    assert_eq!(discovery["issuer"], format!("{}/{}/v2.0", app.base_url, app.tenant()));
    app.stop().await;
}

#[tokio::test]
async fn public_url_names_absolute_urls_unless_a_proxy_forwards_its_own() {
    let app = spawn_app_with(|c| c.public_url = Some(PublicUrl::parse("https://dmsync.example:8443").unwrap())).await;
    let tenant = app.tenant();
    let discovery = app.get_json(&format!("/{tenant}/v2.0/.well-known/openid-configuration"), None).await;
    assert_eq!(discovery["issuer"], format!("https://dmsync.example:8443/{tenant}/v2.0"));
    assert!(discovery["token_endpoint"].as_str().unwrap().starts_with("https://dmsync.example:8443/"));

    // Intune's error message quotes the request URL under the same origin.
    let token = app.user_token().await;
    let path = "/beta/deviceManagement/windowsAutopilotDeviceIdentities/00000000-0000-0000-0000-000000000001";
    let r = app.raw(Method::GET, path, Some(&token)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let body: Value = r.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains(&format!("Url: https://dmsync.example:8443{path}")), "{message}");

    // A reverse proxy that says where it was reached wins.
    let r = app
        .raw(Method::GET, &format!("/{tenant}/v2.0/.well-known/openid-configuration"), None)
        .header("X-Forwarded-Host", "graph.example")
        .header("X-Forwarded-Proto", "https")
        .send()
        .await
        .unwrap();
    let forwarded: Value = r.json().await.unwrap();
    assert_eq!(forwarded["issuer"], format!("https://graph.example/{tenant}/v2.0"));
    app.stop().await;
}

#[tokio::test]
async fn plain_http_untrusting_clients_and_unknown_names_fail_alone() {
    let app = tls_app().await;
    let plain_url = app.base_url.replace("https://", "http://");

    // Plain HTTP on the TLS port: a plain 400 that says to use https, then the close.
    let r = reqwest::Client::new().get(format!("{plain_url}/healthz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "BadRequest");
    assert!(body["error"]["message"].as_str().unwrap().contains("https://"), "{body}");
    // On the wire: the answer, then the server closes (reading to the end returns).
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port(&app))).await.unwrap();
        stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").await.unwrap();
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await.unwrap().unwrap();
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    }

    // A client that does not trust the CA refuses the handshake itself.
    let untrusting = reqwest::Client::builder().build().unwrap();
    let refused = untrusting.get(format!("{}/healthz", app.base_url)).send().await.unwrap_err();
    assert!(refused.is_connect(), "{refused:?}");

    // A name the leaf does not carry: the default leaf, which the client refuses for that name.
    let other = trusting(app.state.certificate_authority().ca_pem())
        .resolve("unknown.example", ([127, 0, 0, 1], port(&app)).into())
        .build()
        .unwrap();
    let refused = other.get(format!("https://unknown.example:{}/healthz", port(&app))).send().await.unwrap_err();
    assert!(refused.is_connect(), "{refused:?}");

    // Garbage that is neither TLS nor HTTP is dropped.
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port(&app))).await.unwrap();
        stream.write_all(&[0u8; 64]).await.unwrap();
        let mut buf = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut buf)).await;
        assert!(read.is_ok(), "the server closes the connection");
    }

    // The server kept serving through all of it.
    let r = app.raw(Method::GET, "/healthz", None).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    app.stop().await;
}

fn write(dir: &std::path::Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn an_operator_certificate_is_presented_and_a_mismatched_key_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let other_key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap().self_signed(&key).unwrap();
    let cert_file = write(dir.path(), "cert.pem", &cert.pem());
    let key_file = write(dir.path(), "key.pem", &key.serialize_pem());
    let other_file = write(dir.path(), "other.pem", &other_key.serialize_pem());

    let db = TestDb::fresh().await;
    let mut config = test_config(&db.url());
    config.tls = Some(TlsCertificate::Operator { cert: cert_file.clone(), key: other_file });
    let refused = dmsync_server::Application::build(config, CancellationToken::new()).await.err().expect("refused");
    assert!(format!("{refused:#}").contains("do not go together"), "{refused:#}");

    let app = spawn_app_with(|c| c.tls = Some(TlsCertificate::Operator { cert: cert_file, key: key_file })).await;
    let own = reqwest::Certificate::from_pem(cert.pem().as_bytes()).unwrap();
    let client =
        reqwest::Client::builder().tls_certs_only([own]).resolve("localhost", ([127, 0, 0, 1], port(&app)).into());
    let r = client.build().unwrap().get(format!("https://localhost:{}/healthz", port(&app))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // The local CA is still served, though this listener does not use it.
    let r = app.raw(Method::GET, "/_dmsync/ca.pem", None).send().await;
    assert!(r.is_err(), "the test client trusts only the local CA, which this listener does not present");
    app.stop().await;
}

#[tokio::test]
async fn a_restart_keeps_the_ca() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("ca.db").display());
    let mut pems = Vec::new();
    for _ in 0..2 {
        let config = Config { tls: Some(TlsCertificate::LocalCa { names: Vec::new() }), ..test_config(&url) };
        let shutdown = CancellationToken::new();
        let app = dmsync_server::Application::build(config, shutdown.clone()).await.unwrap();
        let base = app.url();
        let ca = app.state().certificate_authority().ca_pem().to_owned();
        let server = tokio::spawn(app.run_until_stopped());
        let served = trusting(&ca).build().unwrap().get(format!("{base}/_dmsync/ca.pem")).send().await.unwrap();
        assert_eq!(served.text().await.unwrap(), ca);
        shutdown.cancel();
        server.await.unwrap().unwrap();
        pems.push(ca);
    }
    assert_eq!(pems[0], pems[1]);
}

/// The real binary: `serve --tls` announces https, and `dmsync ca` prints the CA it presents,
/// from the database, while it runs and after it stopped.
#[tokio::test]
async fn dmsync_ca_prints_the_ca_that_serve_tls_presents() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("ca.db").display());
    let ca = || {
        let output = Command::new(env!("CARGO_BIN_EXE_dmsync")).args(["ca", "--db", &db]).output().unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap()
    };
    let printed = ca();
    assert!(printed.starts_with("-----BEGIN CERTIFICATE-----"), "{printed}");

    let server = RealServer::start(&db, &["--tls"]);
    assert!(server.base_url.starts_with("https://127.0.0.1:"), "{}", server.base_url);
    let client = trusting(&printed).build().unwrap();
    let served = client.get(format!("{}/_dmsync/ca.pem", server.base_url)).send().await.unwrap();
    assert_eq!(served.text().await.unwrap(), printed);
    assert_eq!(ca(), printed, "read while the server runs");
    // Stopped off the runtime's thread, so the client's HTTP/2 connection can answer the
    // server's graceful GOAWAY meanwhile.
    let stopped = tokio::task::spawn_blocking(move || server.terminate(Duration::from_secs(10))).await.unwrap();
    assert!(stopped.success(), "{stopped:?}");
    assert_eq!(ca(), printed, "and after it stopped");
}

/// Replicas starting together on one empty PostgreSQL database agree on one CA, so a client that
/// trusts it reaches every replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_starting_together_present_one_ca() {
    let Some(db) = postgres_database().await else { return };
    let url = db.url.clone();
    let shared = std::sync::Arc::new(db);
    let apps = futures::future::join_all((0..3).map(|_| {
        let config = Config { tls: Some(TlsCertificate::LocalCa { names: Vec::new() }), ..test_config(&url) };
        spawn_app_on(config, TestDb::Shared(shared.clone()))
    }))
    .await;
    let ca = apps[0].state.certificate_authority().ca_pem().to_owned();
    let client = trusting(&ca).build().unwrap();
    for app in &apps {
        assert_eq!(app.state.certificate_authority().ca_pem(), ca);
        let r = client.get(format!("{}/healthz", app.base_url)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
    futures::future::join_all(apps.into_iter().map(TestApp::stop)).await;
}

/// A client that opens a connection and sends nothing, or starts a TLS hello and stalls, is cut
/// after the head timeout; the server keeps serving.
#[tokio::test]
async fn a_stalled_handshake_is_cut_after_the_head_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app_with(|c| {
        c.tls = Some(TlsCertificate::LocalCa { names: Vec::new() });
        c.header_read_timeout = Duration::from_millis(300);
    })
    .await;
    for sent in [&b""[..], &[0x16, 0x03, 0x01][..]] {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port(&app))).await.unwrap();
        stream.write_all(sent).await.unwrap();
        let started = std::time::Instant::now();
        let mut buf = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut buf)).await.unwrap().ok();
        assert!(started.elapsed() < Duration::from_secs(5), "{sent:?} cut in {:?}", started.elapsed());
    }
    let r = app.raw(Method::GET, "/healthz", None).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    app.stop().await;
}

/// Over the connection cap, a TLS client still gets the 503 in Graph's shape, over TLS.
#[tokio::test]
async fn over_the_connection_cap_a_tls_client_gets_the_503() {
    let app = spawn_app_with(|c| {
        c.tls = Some(TlsCertificate::LocalCa { names: Vec::new() });
        c.max_connections = 1;
    })
    .await;
    let ca = app.state.certificate_authority().ca_pem().to_owned();
    let holder = trusting(&ca).build().unwrap();
    let r = holder.get(format!("{}/healthz", app.base_url)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // The holder's connection stays open in its pool, taking the one slot.
    let other = trusting(&ca).build().unwrap();
    let r = other.get(format!("{}/healthz", app.base_url)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "ServiceUnavailable");
    drop(holder);
    app.stop().await;
}
