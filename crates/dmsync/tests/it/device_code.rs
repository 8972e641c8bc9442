//! The device code flow (issue 18): the devicecode endpoint, polling as Entra answers it
//! (pending, slow_down, declined, expired, redeemed once, unknown), approval through the admin
//! API, and the verification page signing a user in through plain form posts.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dmsync_server::bootstrap::{DEV_CLIENT_ID, DEV_TENANT_DOMAIN, DEV_USER_OBJECT_ID, DEV_USER_PASSWORD, DEV_USER_UPN};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

/// The scopes MSAL adds to every user sign-in.
const MSAL_SCOPES: &str = "DeviceManagementServiceConfig.ReadWrite.All openid profile offline_access";
const GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

fn aadsts(body: &Value) -> &str {
    let description = body["error_description"].as_str().unwrap();
    &description[..description.find(':').unwrap()]
}

async fn post_form(app: &TestApp, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
    app.raw(Method::POST, path, None).form(form).send().await.unwrap()
}

async fn start(app: &TestApp, tenant: &str, client: &str) -> Value {
    let r =
        post_form(app, &format!("/{tenant}/oauth2/v2.0/devicecode"), &[("client_id", client), ("scope", MSAL_SCOPES)])
            .await;
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

async fn poll(app: &TestApp, tenant: &str, client: &str, device_code: &str) -> (StatusCode, Value) {
    let form = [("grant_type", GRANT), ("client_id", client), ("device_code", device_code), ("client_info", "1")];
    let r = post_form(app, &format!("/{tenant}/oauth2/v2.0/token"), &form).await;
    (r.status(), r.json().await.unwrap())
}

fn error(outcome: &(StatusCode, Value)) -> (StatusCode, &str, &str) {
    (outcome.0, outcome.1["error"].as_str().unwrap_or("(none)"), aadsts(&outcome.1))
}

async fn admin_post(app: &TestApp, path: &str, body: Value) -> StatusCode {
    app.raw(Method::POST, path, Some("dmsync-dev-admin")).json(&body).send().await.unwrap().status()
}

fn code_of(flow: &Value) -> (String, String) {
    (flow["device_code"].as_str().unwrap().to_owned(), flow["user_code"].as_str().unwrap().to_owned())
}

/// Pending until approved, slow_down for a poll sooner than the interval, then the user's
/// tokens (id token, refresh token, client_info) once; a second redemption is refused.
#[tokio::test]
async fn an_approved_device_code_gives_the_users_tokens_once() {
    let app = spawn_app().await;
    let tenant = app.tenant();
    let client = DEV_CLIENT_ID.to_string();
    let doc = app.get_json(&format!("/{DEV_TENANT_DOMAIN}/v2.0/.well-known/openid-configuration"), None).await;
    assert_eq!(doc["device_authorization_endpoint"], format!("{}/{tenant}/oauth2/v2.0/devicecode", app.base_url));

    let flow = start(&app, DEV_TENANT_DOMAIN, &client).await;
    let (device_code, user_code) = code_of(&flow);
    let uri = format!("{}/{tenant}/oauth2/deviceauth", app.base_url);
    assert_eq!(
        (&flow["expires_in"], &flow["interval"], &flow["verification_uri"]),
        (&json!(900), &json!(5), &json!(uri))
    );
    assert_eq!(
        flow["message"],
        format!("To sign in, use a web browser to open the page {uri} and enter the code {user_code} to authenticate.")
    );
    assert!(user_code.len() == 9 && user_code.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()));

    let pending = poll(&app, &tenant, &client, &device_code).await;
    assert_eq!(error(&pending), (StatusCode::BAD_REQUEST, "authorization_pending", "AADSTS70016"), "{}", pending.1);
    let too_soon = poll(&app, DEV_TENANT_DOMAIN, &client, &device_code).await;
    assert_eq!(error(&too_soon).1, "slow_down", "{}", too_soon.1);

    let approve = format!("/_dmsync/device-codes/{}/approve", user_code.to_lowercase());
    assert_eq!(admin_post(&app, &approve, json!({ "userPrincipalName": DEV_USER_UPN })).await, StatusCode::NO_CONTENT);
    assert_eq!(
        admin_post(&app, &approve, json!({ "userPrincipalName": DEV_USER_UPN })).await,
        StatusCode::NOT_FOUND,
        "decided once"
    );
    let still_too_soon = poll(&app, &tenant, &client, &device_code).await;
    assert_eq!(error(&still_too_soon).1, "slow_down", "approval does not skip the interval");
    app.admin.advance_clock(5.0).await.unwrap();
    let (status, tokens) = poll(&app, &tenant, &client, &device_code).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let access = claims(tokens["access_token"].as_str().unwrap());
    assert_eq!((&access["upn"], &access["tid"]), (&json!(DEV_USER_UPN), &json!(tenant)));
    assert_eq!(access["scp"], "DeviceManagementServiceConfig.ReadWrite.All");
    let id = claims(tokens["id_token"].as_str().unwrap());
    assert_eq!((&id["oid"], &id["aud"]), (&json!(DEV_USER_OBJECT_ID), &json!(client)));
    assert!(tokens["client_info"].is_string());
    let settings = app.raw(
        Method::GET,
        "/beta/deviceManagement/windowsAutopilotSettings",
        Some(tokens["access_token"].as_str().unwrap()),
    );
    assert_eq!(settings.send().await.unwrap().status(), StatusCode::OK);

    // The refresh token works as any other.
    let refresh = [
        ("grant_type", "refresh_token"),
        ("client_id", client.as_str()),
        ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
        ("scope", MSAL_SCOPES),
    ];
    assert_eq!(post_form(&app, &format!("/{tenant}/oauth2/v2.0/token"), &refresh).await.status(), StatusCode::OK);

    app.admin.advance_clock(5.0).await.unwrap();
    let again = poll(&app, &tenant, &client, &device_code).await;
    assert_eq!(error(&again), (StatusCode::BAD_REQUEST, "invalid_grant", "AADSTS54005"), "{}", again.1);
    app.stop().await;
}

/// Declined, expired, unknown, another client's or another authority's code: each refused as
/// Entra refuses it, and nothing issued; the admin API answers 404 and 400 for what it cannot
/// approve.
#[tokio::test]
async fn declined_expired_and_unknown_device_codes_are_refused() {
    let app = spawn_app().await;
    let tenant = app.tenant();
    let client = DEV_CLIENT_ID.to_string();

    let (declined, user_code) = code_of(&start(&app, &tenant, &client).await);
    assert_eq!(
        admin_post(&app, &format!("/_dmsync/device-codes/{user_code}/decline"), Value::Null).await,
        StatusCode::NO_CONTENT
    );
    let answer = poll(&app, &tenant, &client, &declined).await;
    assert_eq!(error(&answer), (StatusCode::BAD_REQUEST, "authorization_declined", "AADSTS65004"), "{}", answer.1);

    let (code, user_code) = code_of(&start(&app, "organizations", &client).await);
    let approve = format!("/_dmsync/device-codes/{user_code}/approve");
    let nobody = json!({ "userPrincipalName": "nobody@contoso.onmicrosoft.com" });
    assert_eq!(admin_post(&app, &approve, nobody).await, StatusCode::BAD_REQUEST);
    let elsewhere = json!({ "userPrincipalName": "admin@elsewhere.example" });
    assert_eq!(admin_post(&app, &approve, elsewhere).await, StatusCode::BAD_REQUEST);
    let unknown = json!({ "userPrincipalName": DEV_USER_UPN });
    assert_eq!(
        admin_post(&app, "/_dmsync/device-codes/ABCDEFGHJ/approve", unknown.clone()).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(admin_post(&app, "/_dmsync/device-codes/not-a-code/approve", unknown).await, StatusCode::NOT_FOUND);
    let other_client = uuid::Uuid::new_v4().to_string();
    for (segment, client_id) in [("organizations", other_client.as_str()), (tenant.as_str(), client.as_str())] {
        let answer = poll(&app, segment, client_id, &code).await;
        assert_eq!(error(&answer).1, "bad_verification_code", "{segment} {client_id}: {}", answer.1);
    }
    let answer = poll(&app, "organizations", &client, "no-such-code").await;
    assert_eq!(error(&answer), (StatusCode::BAD_REQUEST, "bad_verification_code", "AADSTS70018"));
    let answer = poll(&app, "organizations", &client, &"x".repeat(10_000)).await;
    assert_eq!(error(&answer).1, "bad_verification_code");

    app.admin.advance_clock(900.0).await.unwrap();
    let answer = poll(&app, "common", &client, &code).await;
    assert_eq!(error(&answer), (StatusCode::BAD_REQUEST, "expired_token", "AADSTS70020"), "{}", answer.1);
    let late = json!({ "userPrincipalName": DEV_USER_UPN });
    assert_eq!(admin_post(&app, &approve, late).await, StatusCode::NOT_FOUND, "an expired code is not approved");

    // The devicecode endpoint's own refusals.
    let r = post_form(&app, &format!("/{tenant}/oauth2/v2.0/devicecode"), &[("client_id", &client)]).await;
    assert_eq!(aadsts(&r.json().await.unwrap()), "AADSTS900144", "scope is required");
    let r = post_form(&app, "/nowhere.example/oauth2/v2.0/devicecode", &[("client_id", &client), ("scope", "openid")])
        .await;
    assert_eq!(aadsts(&r.json().await.unwrap()), "AADSTS90002");
    let r =
        post_form(&app, "/organizations/oauth2/v2.0/devicecode", &[("client_id", "app"), ("scope", "openid")]).await;
    assert_eq!(aadsts(&r.json().await.unwrap()), "AADSTS700016");
    let many: Vec<(String, String)> = (0..100).map(|i| (format!("f{i}"), "x".into())).collect();
    let many: Vec<(&str, &str)> = many.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let r = post_form(&app, "/organizations/oauth2/v2.0/devicecode", &many).await;
    assert_eq!(aadsts(&r.json().await.unwrap()), "AADSTS90100");
    app.stop().await;
}

async fn submit_page(app: &TestApp, path: &str, code: String, password: &str, action: &str) -> (StatusCode, String) {
    let form = [("user_code", code.as_str()), ("username", DEV_USER_UPN), ("password", password), ("action", action)];
    let r = post_form(app, path, &form).await;
    (r.status(), r.text().await.unwrap())
}

/// The verification page: a form with a strict Content-Security-Policy, a wrong password
/// refused (the code stays pending), the right one approving the code for the user of the
/// domain's tenant, Cancel declining another, and an unknown code refused.
#[tokio::test]
async fn the_verification_page_signs_the_user_in_or_cancels() {
    let app = spawn_app().await;
    let client = DEV_CLIENT_ID.to_string();
    let flow = start(&app, "organizations", &client).await;
    let (device_code, user_code) = code_of(&flow);
    let page_path = flow["verification_uri"].as_str().unwrap().strip_prefix(&app.base_url).unwrap().to_owned();
    assert_eq!(page_path, "/organizations/oauth2/deviceauth");

    let r = app.raw(Method::GET, &format!("{page_path}?user_code=%22%3E%3Cscript%3E"), None).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(r.headers()["content-security-policy"].to_str().unwrap().starts_with("default-src 'none'"));
    let html = r.text().await.unwrap();
    assert!(html.contains("<form method=\"post\"") && !html.contains("<script"), "{html}");

    let sign_in = |password: &'static str, action: &'static str, code: String| {
        submit_page(&app, &page_path, code, password, action)
    };
    let (status, html) = sign_in("wrong", "approve", user_code.clone()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(html.contains("incorrect") && html.contains(DEV_USER_UPN) && !html.contains("wrong"), "{html}");
    assert_eq!(error(&poll(&app, "organizations", &client, &device_code).await).1, "authorization_pending");

    let (status, html) = sign_in(DEV_USER_PASSWORD, "approve", user_code.to_lowercase()).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("signed in"), "{html}");
    app.admin.advance_clock(5.0).await.unwrap();
    let (status, tokens) = poll(&app, "organizations", &client, &device_code).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(claims(tokens["id_token"].as_str().unwrap())["tid"], app.tenant());

    let (status, _) = sign_in(DEV_USER_PASSWORD, "approve", user_code.clone()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a code is used once");

    let (cancelled, other_code) = code_of(&start(&app, "organizations", &client).await);
    let (status, html) = sign_in("", "cancel", other_code).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    let answer = poll(&app, "organizations", &client, &cancelled).await;
    assert_eq!(error(&answer).1, "authorization_declined");
    let (status, _) = sign_in(DEV_USER_PASSWORD, "approve", "ZZZZZZZZZ".into()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    app.stop().await;
}

type StderrLines = tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStderr>>;

/// `dmsync token --device-code` started with the development connection, the user code it
/// printed on standard error, and the rest of standard error, which must stay open (a closed
/// pipe would fail the CLI's next message).
async fn cli_waiting_for_a_sign_in(cli: &crate::cli::Cli) -> (tokio::process::Child, String, StderrLines) {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let mut command = cli.command(&["token", "--device-code", "--output", "json"]);
    command.env_remove("DMSYNC_USERNAME").env_remove("DMSYNC_PASSWORD");
    let mut child = command.spawn().unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let line = tokio::time::timeout(std::time::Duration::from_secs(30), stderr.next_line())
        .await
        .expect("the message within 30 s")
        .unwrap()
        .expect("a line on stderr");
    assert!(line.starts_with("To sign in, use a web browser to open the page "), "{line}");
    let user_code = line.split("enter the code ").nth(1).unwrap().split(' ').next().unwrap().to_owned();
    (child, user_code, stderr)
}

/// The exit code, standard output and the rest of standard error.
async fn cli_finished(child: tokio::process::Child, mut stderr: StderrLines) -> (i32, String, String) {
    let rest = async {
        let mut text = String::new();
        while let Some(line) = stderr.next_line().await.unwrap() {
            text.push_str(&line);
            text.push('\n');
        }
        text
    };
    let (output, rest) = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        tokio::join!(child.wait_with_output(), rest)
    })
    .await
    .expect("the CLI finished within 60 s");
    let output = output.unwrap();
    (output.status.code().unwrap(), String::from_utf8(output.stdout).unwrap(), rest)
}

/// `dmsync token --device-code` prints Entra's message on standard error, waits while the
/// test approves the code through the admin API, and prints the user's token; a declined code
/// exits 3, as any refused sign-in does.
#[tokio::test]
async fn the_cli_waits_for_the_device_code_sign_in() {
    let app = spawn_app().await;
    let cli = crate::cli::Cli::new(&app);
    let (child, user_code, stderr) = cli_waiting_for_a_sign_in(&cli).await;
    let approve = format!("/_dmsync/device-codes/{user_code}/approve");
    assert_eq!(admin_post(&app, &approve, json!({ "userPrincipalName": DEV_USER_UPN })).await, StatusCode::NO_CONTENT);
    let (code, stdout, stderr) = cli_finished(child, stderr).await;
    assert_eq!(code, 0, "{stdout}{stderr}");
    let printed: Value = serde_json::from_str(&stdout).unwrap();
    let token = printed["accessToken"].as_str().unwrap();
    assert_eq!(claims(token)["upn"], DEV_USER_UPN);
    assert!(printed["expiresOn"].is_i64());
    app.get_json("/beta/deviceManagement/windowsAutopilotSettings", Some(token)).await;

    let (child, user_code, stderr) = cli_waiting_for_a_sign_in(&cli).await;
    let decline = format!("/_dmsync/device-codes/{user_code}/decline");
    assert_eq!(admin_post(&app, &decline, Value::Null).await, StatusCode::NO_CONTENT);
    let (code, stdout, stderr) = cli_finished(child, stderr).await;
    assert_eq!((code, stdout.as_str()), (3, ""), "{stderr}");
    assert!(stderr.contains("authorization_declined"), "{stderr}");
    app.stop().await;
}
