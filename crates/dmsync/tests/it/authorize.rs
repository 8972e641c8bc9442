//! The authorization code flow with PKCE (issue 18), driven as a browser drives it but with plain
//! HTTP: the sign-in page, its form posted back with the user's password, the redirect (or the
//! auto-posting form) to a loopback redirect URI, and the code redeemed at the token endpoint;
//! then the attack set, each refused with Entra's error and nothing issued.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dmsync_server::bootstrap::{DEV_CLIENT_ID, DEV_USER_OBJECT_ID, DEV_USER_PASSWORD, DEV_USER_UPN};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::helpers::*;

const REDIRECT: &str = "http://localhost:8400/callback";
const SCOPES: &str =
    "https://graph.microsoft.com/DeviceManagementServiceConfig.ReadWrite.All openid profile offline_access";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn claims(token: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token.split('.').nth(1).unwrap()).unwrap()).unwrap()
}

/// A client that shows redirects instead of following them, as a test of where they go needs.
fn browser() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// The parameters msal-node sends to `authorize`, for the development client.
fn authorize_params() -> Vec<(&'static str, String)> {
    vec![
        ("client_id", DEV_CLIENT_ID.to_string()),
        ("response_type", "code".into()),
        ("redirect_uri", REDIRECT.into()),
        ("scope", SCOPES.into()),
        ("state", "state-<&\"'>-1".into()),
        ("nonce", "nonce-42".into()),
        ("code_challenge", challenge(VERIFIER)),
        ("code_challenge_method", "S256".into()),
        ("login_hint", DEV_USER_UPN.into()),
        ("client_info", "1".into()),
    ]
}

fn with(
    mut params: Vec<(&'static str, String)>,
    name: &'static str,
    value: Option<&str>,
) -> Vec<(&'static str, String)> {
    params.retain(|(n, _)| *n != name);
    if let Some(value) = value {
        params.push((name, value.to_owned()));
    }
    params
}

async fn get_page(app: &TestApp, tenant: &str, params: &[(&'static str, String)]) -> reqwest::Response {
    let url = format!("{}/{tenant}/oauth2/v2.0/authorize", app.base_url);
    browser().get(url).query(params).send().await.unwrap()
}

/// The hidden fields of the page's form, unescaped.
fn hidden_fields(html: &str) -> Vec<(String, String)> {
    let unescape = |s: &str| {
        s.replace("&quot;", "\"").replace("&#39;", "'").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    };
    html.split("<input type=\"hidden\" ")
        .skip(1)
        .map(|rest| {
            let name = rest.split("name=\"").nth(1).unwrap().split('"').next().unwrap();
            let value = rest.split("value=\"").nth(1).unwrap().split('"').next().unwrap();
            (unescape(name), unescape(value))
        })
        .collect()
}

async fn post_form(app: &TestApp, tenant: &str, fields: &[(String, String)]) -> reqwest::Response {
    let url = format!("{}/{tenant}/oauth2/v2.0/authorize", app.base_url);
    browser().post(url).form(fields).send().await.unwrap()
}

/// Shows the page for `params`, then posts its form with this user name and password.
async fn sign_in(app: &TestApp, tenant: &str, params: &[(&'static str, String)], password: &str) -> reqwest::Response {
    let page = get_page(app, tenant, params).await;
    assert_eq!(page.status(), StatusCode::OK);
    let mut fields = hidden_fields(&page.text().await.unwrap());
    fields.push(("login".into(), DEV_USER_UPN.into()));
    fields.push(("passwd".into(), password.into()));
    post_form(app, tenant, &fields).await
}

/// The query of a redirect's `Location`, which must go to `REDIRECT`.
fn redirected_to(response: &reqwest::Response) -> std::collections::HashMap<String, String> {
    assert_eq!(response.status(), StatusCode::FOUND);
    let location = response.headers()["location"].to_str().unwrap();
    let query = location.strip_prefix(&format!("{REDIRECT}?")).unwrap_or_else(|| panic!("{location}"));
    form_urlencoded::parse(query.as_bytes()).into_owned().collect()
}

/// A code for the development user through the page, for the default parameters.
async fn code(app: &TestApp) -> String {
    let answer = sign_in(app, "organizations", &authorize_params(), DEV_USER_PASSWORD).await;
    redirected_to(&answer)["code"].clone()
}

async fn redeem(app: &TestApp, form: &[(&str, &str)]) -> (StatusCode, Value) {
    let url = format!("{}/organizations/oauth2/v2.0/token", app.base_url);
    let r = browser().post(url).form(form).send().await.unwrap();
    (r.status(), r.json().await.unwrap())
}

fn redemption<'a>(code: &'a str, client: &'a str) -> Vec<(&'static str, &'a str)> {
    vec![
        ("grant_type", "authorization_code"),
        ("client_id", client),
        ("code", code),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
        ("scope", SCOPES),
        ("client_info", "1"),
    ]
}

fn aadsts(text: &str) -> &str {
    let start = text.find("AADSTS").unwrap_or_else(|| panic!("no AADSTS code in {text}"));
    let end = text[start..].find(':').unwrap();
    &text[start..start + end]
}

/// The page for a good request: Entra's page headers, the user name prefilled from `login_hint`,
/// a wrong password shown again with AADSTS50126, a right one redirected with the code and the
/// state; the code redeemed once for an access token that works on Graph, an id token with the
/// nonce, `client_info` and a refresh token.
#[tokio::test]
async fn a_user_signs_in_on_the_page_and_the_code_is_redeemed_once() {
    let app = spawn_app().await;
    let client = DEV_CLIENT_ID.to_string();
    let page = get_page(&app, "organizations", &authorize_params()).await;
    assert_eq!(page.status(), StatusCode::OK);
    let headers = page.headers().clone();
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert_eq!(headers["x-frame-options"], "DENY");
    let csp = headers["content-security-policy"].to_str().unwrap();
    for directive in [
        "default-src 'none'",
        "script-src 'none'",
        "frame-ancestors 'none'",
        "form-action 'self' http://localhost:8400",
    ] {
        assert!(csp.contains(directive), "{csp}");
    }
    let html = page.text().await.unwrap();
    assert!(html.contains(&format!("value=\"{DEV_USER_UPN}\"")), "login_hint prefills the user name");
    assert!(!html.contains("<&\"'>"), "the state is escaped");
    let fields = hidden_fields(&html);
    assert!(fields.contains(&("state".into(), "state-<&\"'>-1".into())));
    assert!(fields.iter().any(|(name, _)| name == "flowToken"));

    let wrong = sign_in(&app, "organizations", &authorize_params(), "not-the-password").await;
    assert_eq!(wrong.status(), StatusCode::OK, "the page again");
    assert!(wrong.headers().get("location").is_none());
    assert_eq!(aadsts(&wrong.text().await.unwrap()), "AADSTS50126");

    let answer = sign_in(&app, "organizations", &authorize_params(), DEV_USER_PASSWORD).await;
    let query = redirected_to(&answer);
    assert_eq!(query["state"], "state-<&\"'>-1");
    let code = &query["code"];
    let info: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&query["client_info"]).unwrap()).unwrap();
    assert_eq!(info["uid"], DEV_USER_OBJECT_ID.to_string());

    let (status, tokens) = redeem(&app, &redemption(code, &client)).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(tokens["scope"], "https://graph.microsoft.com/DeviceManagementServiceConfig.ReadWrite.All");
    let id = claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(
        (&id["nonce"], &id["aud"], &id["oid"]),
        (&json!("nonce-42"), &json!(client), &json!(DEV_USER_OBJECT_ID))
    );
    assert!(tokens["client_info"].is_string() && tokens["refresh_token"].is_string());
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(claims(access)["scp"], "DeviceManagementServiceConfig.ReadWrite.All");
    let settings = app.raw(Method::GET, "/beta/deviceManagement/windowsAutopilotSettings", Some(access));
    assert_eq!(settings.send().await.unwrap().status(), StatusCode::OK);

    let (status, again) = redeem(&app, &redemption(code, &client)).await;
    assert_eq!(
        (status, aadsts(again["error_description"].as_str().unwrap())),
        (StatusCode::BAD_REQUEST, "AADSTS54005")
    );
    assert_eq!(again["error"], "invalid_grant");
    app.stop().await;
}

/// `response_mode=form_post` answers with a page that posts the code and the state to the
/// redirect URI itself, with the one script the page's policy allows; refusals after the
/// redirect URI is checked (`prompt=none`) go the same way.
#[tokio::test]
async fn form_post_answers_with_a_page_that_posts_to_the_redirect_uri() {
    let app = spawn_app().await;
    let tenant = app.tenant();
    let params = with(authorize_params(), "response_mode", Some("form_post"));
    let answer = sign_in(&app, &tenant, &params, DEV_USER_PASSWORD).await;
    assert_eq!(answer.status(), StatusCode::OK);
    let csp = answer.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("form-action http://localhost:8400") && csp.contains("script-src 'sha256-"), "{csp}");
    let html = answer.text().await.unwrap();
    assert!(html.contains(&format!("<form method=\"post\" action=\"{REDIRECT}\">")), "{html}");
    let fields: std::collections::HashMap<_, _> = hidden_fields(&html).into_iter().collect();
    assert_eq!(fields["state"], "state-<&\"'>-1");
    let (status, tokens) = redeem(&app, &redemption(&fields["code"], &DEV_CLIENT_ID.to_string())).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    // The request journal keeps none of the flow's secrets: not the password posted to the
    // sign-in page, the code in the form_post page and its redemption, nor the tokens.
    let (_, journal) = admin(&app, Method::GET, "/_dmsync/requests", Value::Null).await;
    let journal = journal.to_string();
    assert!(journal.contains("[REDACTED]"), "{journal}");
    let token = |name: &str| tokens[name].as_str().unwrap_or_else(|| panic!("{name}: {tokens}")).to_owned();
    for secret in [DEV_USER_PASSWORD.to_owned(), fields["code"].clone(), token("access_token"), token("refresh_token")]
    {
        assert!(!journal.contains(&secret), "{secret} is in the journal: {journal}");
    }

    let silent = get_page(&app, &tenant, &with(params, "prompt", Some("none"))).await;
    let html = silent.text().await.unwrap();
    let fields: std::collections::HashMap<_, _> = hidden_fields(&html).into_iter().collect();
    assert_eq!(fields["error"], "login_required");
    assert_eq!(aadsts(&fields["error_description"]), "AADSTS50058");
    assert!(!fields.contains_key("code"));
    app.stop().await;
}

/// The attack set: a redirect URI that is neither loopback nor registered and an unknown app are
/// answered on the page and never redirected to; `plain` and a missing challenge go back as
/// errors; a POST without the page's flow token, or with changed parameters, is refused; a code
/// redeemed without or with the wrong verifier, at another redirect URI, by another client,
/// twice, too late, or after the password changed issues nothing.
#[tokio::test]
async fn the_attack_set_is_refused_and_nothing_is_issued() {
    let app = spawn_app().await;
    let client = DEV_CLIENT_ID.to_string();

    for (params, code) in [
        (with(authorize_params(), "redirect_uri", Some("https://evil.example/callback")), "AADSTS50011"),
        (with(authorize_params(), "redirect_uri", Some("http://localhost@evil.example/")), "AADSTS50011"),
        (with(authorize_params(), "redirect_uri", None), "AADSTS900144"),
        (with(authorize_params(), "client_id", Some("not-a-guid")), "AADSTS700016"),
    ] {
        let page = get_page(&app, &app.tenant(), &params).await;
        assert_eq!(page.status(), StatusCode::BAD_REQUEST);
        assert!(page.headers().get("location").is_none(), "never redirected");
        assert_eq!(aadsts(&page.text().await.unwrap()), code);
    }
    // A client id that is no app of the tenant is a first-party public client (as Microsoft's
    // own tools are): loopback redirect URIs only. A registered app may also use its own.
    let first_party = with(authorize_params(), "client_id", Some("14d82eec-204b-4c2f-b7e8-296a70dab67e"));
    assert_eq!(get_page(&app, &app.tenant(), &first_party).await.status(), StatusCode::OK);
    let apps = format!("/_dmsync/tenants/{}/applications", app.tenant());
    let body = json!({ "displayName": "Web", "redirectUris": ["https://app.contoso.com/auth"] });
    let (status, created) = admin(&app, reqwest::Method::POST, &apps, body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let web = with(authorize_params(), "client_id", created["appId"].as_str());
    for (redirect_uri, status) in [
        ("https://app.contoso.com/auth", StatusCode::OK),
        ("https://app.contoso.com/other", StatusCode::BAD_REQUEST),
        ("http://localhost:1234/", StatusCode::OK),
    ] {
        let params = with(web.clone(), "redirect_uri", Some(redirect_uri));
        assert_eq!(get_page(&app, &app.tenant(), &params).await.status(), status, "{redirect_uri}");
    }
    for (params, error, code) in [
        (with(authorize_params(), "code_challenge_method", Some("plain")), "invalid_request", "AADSTS9002325"),
        (with(authorize_params(), "code_challenge_method", None), "invalid_request", "AADSTS9002325"),
        (with(authorize_params(), "code_challenge", None), "invalid_request", "AADSTS9002325"),
        (with(authorize_params(), "response_type", Some("token")), "unsupported_response_type", "AADSTS700054"),
        (with(authorize_params(), "prompt", Some("none")), "login_required", "AADSTS50058"),
    ] {
        let query = redirected_to(&get_page(&app, "organizations", &params).await);
        assert_eq!((query["error"].as_str(), aadsts(&query["error_description"])), (error, code));
        assert_eq!(query["state"], "state-<&\"'>-1");
        assert!(!query.contains_key("code"));
    }

    // A forged POST: no flow token, another request's token, or the page's token with the
    // redirect URI or the challenge changed.
    let page = get_page(&app, "organizations", &authorize_params()).await;
    let fields = hidden_fields(&page.text().await.unwrap());
    let credentials =
        [("login".to_owned(), DEV_USER_UPN.to_owned()), ("passwd".to_owned(), DEV_USER_PASSWORD.to_owned())];
    let without_token: Vec<_> =
        fields.iter().filter(|(n, _)| n != "flowToken").cloned().chain(credentials.clone()).collect();
    let changed = |name: &str, value: &str| -> Vec<(String, String)> {
        fields
            .iter()
            .map(|(n, v)| if n == name { (n.clone(), value.to_owned()) } else { (n.clone(), v.clone()) })
            .chain(credentials.clone())
            .collect()
    };
    for forged in [
        without_token,
        changed("flowToken", "eyJhbGciOiJub25lIn0.e30."),
        changed("redirect_uri", "http://localhost:9999/stolen"),
        changed("code_challenge", &challenge("attacker-verifier-attacker-verifier-attacker")),
        changed("scope", "https://graph.microsoft.com/.default openid offline_access"),
    ] {
        let r = post_form(&app, "organizations", &forged).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert!(r.headers().get("location").is_none());
        assert_eq!(aadsts(&r.text().await.unwrap()), "AADSTS90100");
    }
    let r = post_form(&app, &app.tenant(), &changed("state", "state-<&\"'>-1")).await;
    assert_eq!(aadsts(&r.text().await.unwrap()), "AADSTS90100", "a token for another tenant segment");
    // A post to another redirect URI is refused on the page before the flow token is read.
    let r = post_form(&app, "organizations", &changed("redirect_uri", "https://evil.example/callback")).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.headers().get("location").is_none());
    assert_eq!(aadsts(&r.text().await.unwrap()), "AADSTS50011");

    // Redemptions that fail, each with a fresh code, which the failure uses up.
    let refused = |form: Vec<(&'static str, String)>, code: &'static str| {
        let app = &app;
        async move {
            let form: Vec<(&str, &str)> = form.iter().map(|(n, v)| (*n, v.as_str())).collect();
            let (status, body) = redeem(app, &form).await;
            assert_eq!((status, aadsts(body["error_description"].as_str().unwrap())), (StatusCode::BAD_REQUEST, code));
            assert!(body.get("access_token").is_none());
        }
    };
    let owned = |form: Vec<(&'static str, &str)>| -> Vec<(&'static str, String)> {
        form.into_iter().map(|(n, v)| (n, v.to_owned())).collect()
    };
    let c = code(&app).await;
    refused(
        owned(redemption(&c, &client)).into_iter().filter(|(n, _)| *n != "code_verifier").collect(),
        "AADSTS501481",
    )
    .await;
    let c = code(&app).await;
    refused(with(owned(redemption(&c, &client)), "code_verifier", Some(&"w".repeat(43))), "AADSTS501481").await;
    let c = code(&app).await;
    refused(with(owned(redemption(&c, &client)), "code_verifier", Some(&challenge(VERIFIER))), "AADSTS501481").await;
    let c = code(&app).await;
    refused(with(owned(redemption(&c, &client)), "redirect_uri", Some("http://localhost:8400/other")), "AADSTS500112")
        .await;
    let c = code(&app).await;
    let other_client = uuid::Uuid::new_v4().to_string();
    refused(owned(redemption(&c, &other_client)), "AADSTS70000").await;
    refused(owned(redemption("never-issued", &client)), "AADSTS9002313").await;

    // Ten minutes on the Clock, and a code has expired.
    let c = code(&app).await;
    app.admin.advance_clock(601.0).await.unwrap();
    refused(owned(redemption(&c, &client)), "AADSTS70008").await;

    // A password changed after the sign-in revokes the code.
    let c = code(&app).await;
    let users = format!("/_dmsync/tenants/{}/users/{DEV_USER_OBJECT_ID}", app.tenant());
    let changed_password =
        app.raw(Method::PATCH, &users, Some("dmsync-dev-admin")).json(&json!({ "password": "new-password" }));
    assert_eq!(changed_password.send().await.unwrap().status(), StatusCode::NO_CONTENT);
    refused(owned(redemption(&c, &client)), "AADSTS50173").await;
    app.stop().await;
}

/// Through the proxy, as `Connect-MgGraph -Scopes` and a browser set to the proxy reach it: the
/// page on `login.microsoftonline.com`, its form posted back there, the code redirected to the
/// loopback address and redeemed at the same host.
#[tokio::test]
async fn the_flow_works_on_login_microsoftonline_com_through_the_proxy() {
    let app = spawn_app_with(|c| c.proxy_listen = Some("127.0.0.1:0".parse().unwrap())).await;
    let proxy = format!("http://{}", app.proxy_address.expect("the proxy listens"));
    let ca = reqwest::Certificate::from_pem(app.proxy_ca_pem.as_deref().expect("a CA").as_bytes()).unwrap();
    let browser = reqwest::Client::builder()
        .proxy(reqwest::Proxy::https(proxy).unwrap())
        .tls_certs_only([ca])
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let authorize = "https://login.microsoftonline.com/organizations/oauth2/v2.0/authorize";
    let page = browser.get(authorize).query(&authorize_params()).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let mut fields = hidden_fields(&page.text().await.unwrap());
    fields.push(("login".into(), DEV_USER_UPN.into()));
    fields.push(("passwd".into(), DEV_USER_PASSWORD.into()));
    let answer = browser.post(authorize).form(&fields).send().await.unwrap();
    let code = redirected_to(&answer)["code"].clone();
    let token = "https://login.microsoftonline.com/organizations/oauth2/v2.0/token";
    let r = browser.post(token).form(&redemption(&code, &DEV_CLIENT_ID.to_string())).send().await.unwrap();
    let status = r.status();
    let tokens: Value = r.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let id = claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(id["iss"], format!("https://login.microsoftonline.com/{}/v2.0", app.tenant()));
    app.stop().await;
}
