//! The OpenAPI documents at `/_dmsync/openapi.json`: public, one per version, and describing
//! what the server really answers.

use reqwest::{Method, StatusCode};

use crate::helpers::*;

#[tokio::test]
async fn serves_an_openapi_document_per_version_without_a_token() {
    let app = spawn_app().await;
    for (version, other) in [("v1.0", "beta"), ("beta", "v1.0")] {
        let doc = app.get_json(&format!("/_dmsync/openapi.json?version={version}"), None).await;
        assert_eq!(doc["openapi"], "3.0.3");
        let paths = doc["paths"].as_object().expect("paths");
        assert!(paths.contains_key(&format!("/{version}/deviceManagement/windowsAutopilotDeviceIdentities")));
        assert!(paths.keys().all(|p| p.starts_with(&format!("/{version}/"))), "no {other} path in {version}");
        assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    }
    let beta = app.get_json("/_dmsync/openapi.json?version=beta", None).await;
    assert!(
        beta["paths"]["/beta/deviceManagement/windowsAutopilotSettings/sync"]["post"]["responses"]["429"].is_object()
    );

    // A document describes what is served: a list's answer has the declared properties.
    let token = app.user_token().await;
    let page = app.get_json("/v1.0/deviceManagement/exchangeConnectors?$count=true", Some(&token)).await;
    let declared = &doc_page_properties(&app, "v1.0", "/v1.0/deviceManagement/exchangeConnectors").await;
    for key in page.as_object().unwrap().keys() {
        assert!(declared.contains(key), "{key} is not declared");
    }

    let r = app.raw(Method::GET, "/_dmsync/openapi.json", None).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "BadRequest");
    app.stop().await;
}

async fn doc_page_properties(app: &TestApp, version: &str, path: &str) -> Vec<String> {
    let doc = app.get_json(&format!("/_dmsync/openapi.json?version={version}"), None).await;
    let schema = &doc["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"];
    schema["properties"].as_object().expect("a page schema").keys().cloned().collect()
}
