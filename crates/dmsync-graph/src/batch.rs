//! JSON batching (`POST /{version}/$batch`): the request and response bodies.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The most requests one batch may carry, as Graph documents it.
pub const MAX_BATCH_REQUESTS: usize = 20;

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct BatchRequest {
    pub requests: Vec<BatchRequestItem>,
}

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct BatchRequestItem {
    /// A string in Graph's documentation; IntuneCD sends numbers (`"id": 1`), which Graph
    /// accepts, so a number is taken as its decimal string.
    #[serde(deserialize_with = "string_or_integer")]
    pub id: String,
    pub method: String,
    /// Relative to the version: `/deviceManagement/...` or `deviceManagement/...`.
    pub url: String,
    /// Absent or `null` (the Python SDK writes `null`) for none.
    #[serde(default)]
    pub headers: Option<BTreeMap<String, BatchHeaderValue>>,
    /// A JSON value, or, for a body that is not JSON, its bytes in base64.
    #[serde(default)]
    pub body: Option<serde_json::Value>,
    /// The Python SDK (msgraph-core) writes it as `depends_on`.
    #[serde(default, alias = "depends_on")]
    pub depends_on: Option<Vec<String>>,
}

fn string_or_integer<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        Text(String),
        Integer(i64),
    }
    Ok(match Id::deserialize(deserializer)? {
        Id::Text(text) => text,
        Id::Integer(number) => number.to_string(),
    })
}

/// A header's value as clients write it: a string, or (some SDKs) a list of strings.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(untagged)]
pub enum BatchHeaderValue {
    One(String),
    Many(Vec<String>),
}

impl BatchHeaderValue {
    /// The value as one header line; a list is joined as HTTP joins repeated fields.
    pub fn joined(&self) -> String {
        match self {
            BatchHeaderValue::One(v) => v.clone(),
            BatchHeaderValue::Many(vs) => vs.join(", "),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct BatchResponse {
    pub responses: Vec<BatchResponseItem>,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct BatchResponseItem {
    pub id: String,
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    /// The answer's JSON, or, when it is not JSON, its bytes in base64; absent when it has none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<serde_json::Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_id_may_be_a_number() {
        let batch: BatchRequest = serde_json::from_str(
            r#"{"requests":[{"id":1,"method":"GET","url":"/a"},{"id":"b","method":"GET","url":"/b"}]}"#,
        )
        .unwrap();
        let ids: Vec<&str> = batch.requests.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["1", "b"]);
        assert!(
            serde_json::from_str::<BatchRequest>(r#"{"requests":[{"id":1.5,"method":"GET","url":"/a"}]}"#).is_err()
        );
    }
}
