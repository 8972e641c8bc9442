//! The journal's admin routes: `GET /_dmsync/requests` lists journalled requests,
//! `POST /_dmsync/requests/count` counts them (to verify "the sync was called exactly once"),
//! `DELETE /_dmsync/requests` clears the journal. The filters are the same for both reads; a bad
//! one is a 400, before anything is read.

use axum::extract::{RawQuery, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use serde::Deserialize;
use serde_json::json;

use crate::control::journal::{Entry, Filter, PathPattern, StatusFilter};
use crate::error::{ApiError, ApiResult};
use crate::http::body::GraphJson;
use crate::state::AppState;

/// The filters as the client wrote them: query parameters for the list, a JSON body for the count.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct RawFilter {
    method: Option<String>,
    path: Option<String>,
    tenant_id: Option<String>,
    status: Option<StatusText>,
    since: Option<String>,
}

/// A status, as a number (in a JSON body) or as text (`409`, `4xx`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum StatusText {
    Number(u64),
    Text(String),
}

const METHODS: &[Method] =
    &[Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE, Method::HEAD, Method::OPTIONS];

impl RawFilter {
    fn from_query(query: Option<&str>) -> ApiResult<RawFilter> {
        let mut raw = RawFilter::default();
        for (name, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            let value = Some(value.into_owned());
            match &*name {
                "method" => raw.method = value,
                "path" => raw.path = value,
                "tenantId" => raw.tenant_id = value,
                "status" => raw.status = value.map(StatusText::Text),
                "since" => raw.since = value,
                other => {
                    return Err(ApiError::BadRequest(format!(
                        "Unknown filter '{other}'; the filters are method, path, tenantId, status and since."
                    )));
                }
            }
        }
        Ok(raw)
    }

    fn parse(self) -> ApiResult<Filter> {
        let bad = |m: String| ApiError::BadRequest(m);
        let method = match self.method {
            None => None,
            Some(m) => Some(
                METHODS
                    .iter()
                    .find(|known| known.as_str().eq_ignore_ascii_case(m.trim()))
                    .cloned()
                    .ok_or_else(|| bad(format!("method '{m}' is not an HTTP method dmsync serves.")))?,
            ),
        };
        let path = match self.path {
            None => None,
            Some(p) => Some(PathPattern::parse(&p).ok_or_else(|| {
                bad("path is a path such as /beta/deviceManagement/windowsAutopilotSettings/sync, \
                     where * stands for any characters, and is not empty or over 2048 bytes."
                    .into())
            })?),
        };
        let tenant = match self.tenant_id {
            None => None,
            Some(t) => Some(t.trim().parse().map_err(|_| bad(format!("tenantId '{t}' is not a GUID.")))?),
        };
        let status = match self.status {
            None => None,
            Some(s) => {
                let text = match s {
                    StatusText::Number(n) => n.to_string(),
                    StatusText::Text(t) => t,
                };
                Some(StatusFilter::parse(&text).ok_or_else(|| {
                    bad(format!("status '{text}' is not an HTTP status (such as 409) or a class (such as 4xx)."))
                })?)
            }
        };
        let since = match self.since {
            None => None,
            Some(s) => {
                Some(time::OffsetDateTime::parse(s.trim(), &time::format_description::well_known::Rfc3339).map_err(
                    |_| bad(format!("since '{s}' is not an RFC 3339 date and time such as 2026-12-03T10:00:00Z.")),
                )?)
            }
        };
        Ok(Filter { method, path, tenant, status, since })
    }
}

/// `GET /_dmsync/requests?method=&path=&tenantId=&status=&since=`: the matching entries, oldest
/// first.
pub(super) async fn list_requests(State(state): State<AppState>, RawQuery(query): RawQuery) -> ApiResult<Response> {
    let filter = RawFilter::from_query(query.as_deref())?.parse()?;
    let entries = state.journal().select(&filter);
    let value: Vec<&Entry> = entries.iter().map(|e| &**e).collect();
    Ok(Json(json!({ "value": value })).into_response())
}

/// `POST /_dmsync/requests/count` with the filters as a JSON object (`{}` counts every entry).
pub(super) async fn count_requests(
    State(state): State<AppState>,
    GraphJson(raw): GraphJson<RawFilter>,
) -> ApiResult<Response> {
    let filter = raw.parse()?;
    Ok(Json(json!({ "count": state.journal().count(&filter) })).into_response())
}

/// `DELETE /_dmsync/requests`: empties the journal.
pub(super) async fn clear_requests(State(state): State<AppState>) -> StatusCode {
    state.journal().clear();
    StatusCode::NO_CONTENT
}
