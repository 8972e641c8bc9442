//! The console's stylesheet and script, compiled into the binary. Their paths carry a hash of
//! their content, so a browser may keep them for a year and still never runs a stale script
//! after an upgrade.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::{BASE, layout, secure};

const STYLESHEET: &str = include_str!("assets/console.css");
const SCRIPT: &str = include_str!("assets/console.js");

struct Asset {
    name: String,
    body: &'static str,
    content_type: &'static str,
}

fn asset(stem: &str, extension: &str, body: &'static str, content_type: &'static str) -> Asset {
    let hash = Sha256::digest(body.as_bytes());
    let short: String = hash.iter().take(6).map(|b| format!("{b:02x}")).collect();
    Asset { name: format!("{stem}.{short}.{extension}"), body, content_type }
}

static ASSETS: LazyLock<[Asset; 2]> = LazyLock::new(|| {
    [
        asset("console", "css", STYLESHEET, "text/css; charset=utf-8"),
        asset("console", "js", SCRIPT, "text/javascript; charset=utf-8"),
    ]
});

pub fn stylesheet_path() -> String {
    format!("{BASE}/assets/{}", ASSETS[0].name)
}

pub fn script_path() -> String {
    format!("{BASE}/assets/{}", ASSETS[1].name)
}

/// `GET /_dmsync/console/assets/{name}`: needs no session, as the sign-in page uses them.
pub async fn serve_asset(Path(name): Path<String>) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.name == name) else {
        return layout::not_found();
    };
    let mut response = (StatusCode::OK, asset.body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable"));
    secure(response)
}
