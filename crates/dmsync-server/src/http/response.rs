//! Successful Graph responses.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// The content type real Graph sends with JSON entities and collections.
pub const ODATA_JSON: &str =
    "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8";

/// A JSON document with Graph's OData content type.
pub struct ODataJson<T>(pub StatusCode, pub T);

impl<T: Serialize> IntoResponse for ODataJson<T> {
    fn into_response(self) -> Response {
        match serde_json::to_vec(&self.1) {
            Ok(bytes) => {
                let mut response = (self.0, bytes).into_response();
                response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(ODATA_JSON));
                response
            }
            Err(e) => crate::error::ApiError::Internal(format!("response serialisation: {e}")).into_response(),
        }
    }
}

pub fn ok<T: Serialize>(body: T) -> ODataJson<T> {
    ODataJson(StatusCode::OK, body)
}

pub fn created<T: Serialize>(body: T) -> ODataJson<T> {
    ODataJson(StatusCode::CREATED, body)
}
