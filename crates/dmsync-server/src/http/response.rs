//! Successful Graph responses.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use dmsync_graph::writer::{self, Select, WriteError};
use serde::Serialize;

use crate::error::ApiError;

/// The content type real Graph sends with JSON entities and collections.
pub const ODATA_JSON: &str =
    "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8";

/// Every Graph entity and collection dmsync answers: a document already written to bytes by
/// `dmsync_graph::writer`, sent with Graph's OData content type.
pub struct ODataBody {
    status: StatusCode,
    bytes: Bytes,
}

impl ODataBody {
    /// 200 with a document written by a `PageWriter` or `writer::entity_document`.
    pub fn ok(bytes: impl Into<Bytes>) -> ODataBody {
        ODataBody { status: StatusCode::OK, bytes: bytes.into() }
    }

    /// The document's bytes, shared, for the page cache.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// One entity: `@odata.context`, then its properties that `$select` keeps and `extra`
    /// ones (already JSON).
    pub fn entity<T: Serialize>(
        status: StatusCode,
        context: &str,
        entity: &T,
        select: Select<'_>,
        extra: &[(&str, &str)],
    ) -> Result<ODataBody, ApiError> {
        Ok(ODataBody { status, bytes: writer::entity_document(context, entity, select, extra)?.into() })
    }
}

impl IntoResponse for ODataBody {
    fn into_response(self) -> Response {
        let mut response = (self.status, self.bytes).into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(ODATA_JSON));
        response
    }
}

impl From<WriteError> for ApiError {
    fn from(error: WriteError) -> ApiError {
        ApiError::Internal(format!("response serialisation: {error}"))
    }
}
