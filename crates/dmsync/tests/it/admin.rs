//! The admin API needs its token and validates what it is given.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn admin_routes_need_the_admin_token() {
    let app = spawn_app().await;
    for token in [None, Some("wrong"), Some(app.user_token().await.as_str().to_owned().as_str())] {
        let r =
            app.raw(Method::POST, "/_dmsync/clock/advance", token).json(&json!({"seconds": 1})).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{token:?}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "InvalidAuthenticationToken");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_configured_admin_token_replaces_the_development_one() {
    let app = spawn_app_with(|c| c.admin_token = Some("s3cret-admin".into())).await;
    let post = |t: &'static str| app.raw(Method::POST, "/_dmsync/clock/advance", Some(t)).json(&json!({"seconds": 1}));
    assert_eq!(post("dmsync-dev-admin").send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    assert_eq!(post("s3cret-admin").send().await.unwrap().status(), StatusCode::OK);
    app.stop().await;
}

#[tokio::test]
async fn tenants_are_created_once_and_tokens_need_a_known_tenant() {
    let app = spawn_app().await;
    let id = "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb";
    app.admin.create_tenant(id, "northwind.onmicrosoft.com").await.unwrap();
    let again = app.admin.create_tenant(id, "northwind.onmicrosoft.com").await.unwrap_err();
    assert_eq!(again.status(), Some(409));
    let unknown = app
        .admin
        .mint_token("cccccccc-cccc-4ccc-8ccc-cccccccccccc", "application", &[RW], "work", None)
        .await
        .unwrap_err();
    assert_eq!(unknown.status(), Some(404));
    // The new tenant's domain works at the token endpoint, and its token reaches Graph.
    let token = app.admin.mint_token(id, "application", &[READ], "work", None).await.unwrap();
    let r = app.raw(Method::GET, "/beta/deviceManagement/windowsAutopilotSettings", Some(&token)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = app
        .raw(Method::POST, "/_dmsync/tenants", Some("dmsync-dev-admin"))
        .json(&json!({"tenantId": "not-a-guid", "domain": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    app.stop().await;
}

#[tokio::test]
async fn the_clock_only_moves_forward_and_survives_a_restart() {
    let app = spawn_app().await;
    let read = |app: &TestApp| {
        let r = app.raw(Method::GET, "/_dmsync/clock", Some("dmsync-dev-admin"));
        async move { r.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    app.admin.advance_clock(3600.0).await.unwrap();
    let clock = read(&app).await;
    assert!(clock["offsetSeconds"].as_f64().unwrap() >= 3600.0);
    let r = app
        .raw(Method::POST, "/_dmsync/clock/advance", Some("dmsync-dev-admin"))
        .json(&json!({"seconds": -5}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // The offset is kept in the database.
    let offset = app.state.store().clock_offset().await.unwrap();
    assert!(offset >= time::Duration::hours(1));
    app.stop().await;
}

#[tokio::test]
async fn admin_errors_say_what_is_missing() {
    let app = spawn_app().await;
    let admin = Some("dmsync-dev-admin");
    let r = app.raw(Method::GET, "/_dmsync/nope", admin).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let body: Value = r.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("No such admin route"));
    let r = app
        .raw(Method::POST, "/_dmsync/tenants/cccccccc-cccc-4ccc-8ccc-cccccccccccc/autopilot/registrations", admin)
        .json(&json!([]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let body: Value = r.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("does not exist"), "{body}");
    app.stop().await;
}
