//! Requests over the limits on a request's head: over our own ceilings they get Graph's error
//! body and the request ids; only what the HTTP stack cannot parse at all stays a bare status
//! (listed in docs/GRAPH-COMPAT.md).

use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::spawn_app;

async fn assert_graph_error(response: reqwest::Response, status: StatusCode, code: &str) {
    assert_eq!(response.status(), status);
    let request_id = response.headers().get("request-id").expect("a request-id header").to_str().unwrap().to_owned();
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: Value = response.json().await.expect("a JSON body");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert_eq!(body["error"]["innerError"]["request-id"], request_id.as_str(), "{body}");
}

#[tokio::test]
async fn long_uri_gets_a_graph_414() {
    let app = spawn_app().await;
    let token = app.user_token().await;
    let filter = "a".repeat(40 * 1024);
    let r = app
        .raw(
            reqwest::Method::GET,
            &format!("/beta/deviceManagement/windowsAutopilotDeviceIdentities?x={filter}"),
            Some(&token),
        )
        .send()
        .await
        .unwrap();
    assert_graph_error(r, StatusCode::URI_TOO_LONG, "RequestUriTooLong").await;
    app.stop().await;
}

#[tokio::test]
async fn too_many_headers_get_a_graph_431() {
    let app = spawn_app().await;
    let with_headers = |count: usize| {
        let mut request =
            app.raw(reqwest::Method::GET, "/beta/deviceManagement/windowsAutopilotDeviceIdentities", None);
        for i in 0..count {
            request = request.header(format!("x-extra-{i}"), "1");
        }
        request
    };
    // At our ceiling (with the few headers the client adds itself): accepted.
    let r = with_headers(50).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // Over our ceiling and under hyper's: Graph's body.
    assert_graph_error(
        with_headers(80).send().await.unwrap(),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "RequestHeaderFieldsTooLarge",
    )
    .await;
    // Over hyper's: its own bare 431, and the server goes on.
    let r = with_headers(200).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    let r = app.raw(reqwest::Method::GET, "/healthz", None).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    app.stop().await;
}

#[tokio::test]
async fn huge_authorization_header_gets_a_graph_431() {
    let app = spawn_app().await;
    let token = "a".repeat(600 * 1024);
    let r = app
        .raw(reqwest::Method::GET, "/beta/deviceManagement/windowsAutopilotDeviceIdentities", Some(&token))
        .send()
        .await
        .unwrap();
    assert_graph_error(r, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "RequestHeaderFieldsTooLarge").await;
    app.stop().await;
}

/// What the HTTP stack rejects before any of our code runs is still refused, with a bare
/// status (docs/GRAPH-COMPAT.md lists these).
#[tokio::test]
async fn unparseable_heads_are_refused_by_the_http_layer() {
    let app = spawn_app().await;
    let address = app.base_url.trim_start_matches("http://").to_owned();
    let over_the_uri_ceiling = format!("GET /healthz?{} HTTP/1.1\r\nHost: localhost\r\n\r\n", "a".repeat(70 * 1024));
    let cases = [
        (
            "a control character in a header value",
            "GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Bad: a\x01b\r\n\r\n".to_owned(),
            "400",
        ),
        (
            "two different Content-Lengths",
            "POST /healthz HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab".to_owned(),
            "400",
        ),
        ("a URI over the http crate's ceiling", over_the_uri_ceiling, "414"),
    ];
    for (what, request, status) in cases {
        let mut stream = TcpStream::connect(&address).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response).await;
        let response = String::from_utf8_lossy(&response);
        assert!(response.starts_with(&format!("HTTP/1.1 {status}")), "{what}: {response}");
    }
    app.stop().await;
}
