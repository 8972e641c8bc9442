//! `deviceManagement/assignmentFilters`: read only and empty, as IntuneCD reads it before it
//! writes an assignment.

use reqwest::{Method, StatusCode};

use crate::helpers::*;

const FILTERS: &str = "/beta/deviceManagement/assignmentFilters";

#[tokio::test]
async fn assignment_filters_are_an_empty_read_only_list() {
    let app = spawn_app().await;
    let token = app.app_token().await;
    let (status, page) =
        send(&app, Method::GET, &format!("{FILTERS}?$select=id,displayName&$count=true"), &token, None).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["value"], serde_json::json!([]));
    assert_eq!(page["@odata.count"], 0);
    assert_eq!(
        page["@odata.context"],
        "https://graph.microsoft.com/beta/$metadata#deviceManagement/assignmentFilters(id,displayName)"
    );
    let (status, body) = send(&app, Method::GET, &format!("{FILTERS}?$select=colour"), &token, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _) =
        send(&app, Method::GET, &format!("{FILTERS}/00000000-0000-0000-0000-000000000001"), &token, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = send(&app, Method::POST, FILTERS, &token, Some(serde_json::json!({"displayName": "x"}))).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let (status, _) = send(&app, Method::GET, "/v1.0/deviceManagement/assignmentFilters", &token, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "beta only, as in Graph");
    app.stop().await;
}
