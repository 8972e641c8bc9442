//! OData envelopes: `@odata.context`, collections with an absolute `@odata.nextLink`.

use serde::Serialize;
use serde_json::{Map, Value};

/// Graph's public root, used in `@odata.context` whatever host served the request: real Graph
/// clients only read the fragment after `$metadata#`, and scripts compare the whole string.
pub const GRAPH_ROOT: &str = "https://graph.microsoft.com";

/// `https://graph.microsoft.com/{version}/$metadata#{path}`.
pub fn context_url(version: crate::ApiVersion, fragment: &str) -> String {
    format!("{GRAPH_ROOT}/{}/$metadata#{fragment}", version.segment())
}

/// A single entity: `@odata.context` followed by the entity's own properties.
pub fn entity_document(context: String, entity: Map<String, Value>) -> Value {
    let mut doc = entity;
    doc.insert("@odata.context".to_owned(), Value::String(context));
    Value::Object(doc)
}

/// A page of a collection.
#[derive(Debug, Serialize)]
pub struct CollectionPage {
    #[serde(rename = "@odata.context")]
    pub context: String,
    #[serde(rename = "@odata.count", skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    #[serde(rename = "@odata.nextLink", skip_serializing_if = "Option::is_none")]
    pub next_link: Option<String>,
    pub value: Vec<Value>,
}

/// Keeps only the `$select`ed properties of an entity. `id` is kept as Graph does.
pub fn select_properties(entity: Map<String, Value>, select: Option<&[String]>) -> Map<String, Value> {
    match select {
        None => entity,
        Some(names) if names.iter().any(|n| n == "*") => entity,
        Some(names) => {
            entity.into_iter().filter(|(k, _)| k == "id" || names.iter().any(|n| n.eq_ignore_ascii_case(k))).collect()
        }
    }
}

/// Serialises a wire struct into a property map. serde_json's map keeps keys sorted, which is
/// the alphabetical order real Intune responses use.
pub fn to_properties<T: Serialize>(entity: &T) -> Map<String, Value> {
    match serde_json::to_value(entity).expect("wire types always serialise") {
        Value::Object(map) => map,
        other => panic!("wire entity serialised to a non-object: {other}"),
    }
}
