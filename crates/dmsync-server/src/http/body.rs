//! Request bodies, read so that every failure is a Graph error: an oversized body is 413,
//! malformed or over-deep JSON is 400, and an action that takes no body accepts every form of "nothing" the
//! real clients send.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use dmsync_graph::bounded::{self, JsonError, MAX_JSON_DEPTH};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

async fn read_bytes<S: Send + Sync>(request: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(request, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge
        } else {
            ApiError::BadRequest("The request body could not be read.".into())
        }
    })
}

impl From<JsonError> for ApiError {
    fn from(error: JsonError) -> ApiError {
        match error {
            JsonError::TooDeep => ApiError::BadRequest(format!(
                "The request body nests objects and arrays more than {MAX_JSON_DEPTH} levels deep."
            )),
            JsonError::Syntax => ApiError::MalformedJson,
            JsonError::Data(e) => {
                ApiError::BadRequest(format!("The request body is not valid for this operation: {e}"))
            }
        }
    }
}

fn is_blank(bytes: &[u8]) -> bool {
    bytes.iter().all(|b| b.is_ascii_whitespace())
}

/// A required JSON body.
pub struct GraphJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for GraphJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read_bytes(request, state).await?;
        if is_blank(&bytes) {
            return Err(ApiError::BadRequest("The request body is empty; a JSON object is required.".into()));
        }
        bounded::from_slice(&bytes).map(GraphJson).map_err(ApiError::from)
    }
}

/// The body of an action that takes none. Accepted: no body and no headers, `Content-Length: 0`,
/// `Content-Type: application/json` with an empty body, and any JSON object (CIPP sends `{}`).
pub struct NoBody;

impl<S: Send + Sync> FromRequest<S> for NoBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read_bytes(request, state).await?;
        if is_blank(&bytes) {
            return Ok(NoBody);
        }
        match bounded::from_slice::<serde_json::Value>(&bytes) {
            Ok(serde_json::Value::Object(_)) => Ok(NoBody),
            Ok(_) => Err(ApiError::BadRequest("This action takes no parameters; send no body or {}.".into())),
            Err(e) => Err(e.into()),
        }
    }
}
