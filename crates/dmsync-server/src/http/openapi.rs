//! The OpenAPI 3 document of the Graph API dmsync serves, one per version, served without a
//! token at `/_dmsync/openapi.json?version=v1.0` (or `beta`), like a discovery document.
//!
//! It is made from the route table, whose every method carries an [`OperationDoc`], and from
//! the JSON Schemas that schemars derives from the wire types: a route cannot be served without
//! being described, and a property cannot change on the wire without changing here.

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use dmsync_graph::{ApiVersion, GraphErrorBody};
use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde_json::{Map, Value, json};

use crate::error::ApiError;
use crate::http::routing::RouteTable;
use crate::state::AppState;

/// Where the document is served; `?version=v1.0` or `?version=beta` chooses which.
pub const PATH: &str = "/_dmsync/openapi.json";

/// Makes the schema of a body or an entity, registering the components it refers to. It gets
/// the version because an entity can have properties in beta only.
pub type SchemaFn = fn(&mut SchemaGenerator, ApiVersion) -> Schema;

/// The [`SchemaFn`] of a wire type, the same in both versions.
pub fn schema<T: JsonSchema>(generator: &mut SchemaGenerator, _: ApiVersion) -> Schema {
    generator.subschema_for::<T>()
}

/// What an operation reads from the request body.
#[derive(Debug, Clone, Copy)]
pub enum RequestBody {
    /// Nothing: the handler never reads the body.
    None,
    /// An action without parameters ([`crate::http::body::NoBody`]): no body, or any object.
    Empty,
    /// A required JSON body.
    Json(SchemaFn),
}

/// What an operation answers when it succeeds.
#[derive(Debug, Clone, Copy)]
pub enum Answer {
    /// 204 without a body.
    NoContent,
    /// 200 with one entity and its `@odata.context`.
    Entity(SchemaFn),
    /// 201 with the entity created.
    Created(SchemaFn),
    /// 200 with the entity created: what Intune answers for some creates whose page documents
    /// 201 (docs/GRAPH-COMPAT.md names them).
    CreatedOk(SchemaFn),
    /// 200 with a collection page (`@odata.context`, `value`, and maybe `@odata.count` and
    /// `@odata.nextLink`) of the given item.
    Page(SchemaFn),
    /// 200 with a number as `text/plain` (`/$count`).
    Count,
    /// 200 with a JSON document of its own shape, without `@odata.context` (`$batch`).
    Document(SchemaFn),
}

/// What the OpenAPI document says of one operation. Every operation may also answer 400, 401
/// and 403; one whose path has a key, 404; one that reads a body, 413.
#[derive(Debug, Clone, Copy)]
pub struct OperationDoc {
    /// Graph's name of the operation, as its documentation spells it (`listExchangeConnectors`).
    pub id: &'static str,
    /// The query options the handler honours: the very list it gives to
    /// [`crate::http::query::ODataQuery::refuse_unsupported`].
    pub query: &'static [&'static str],
    pub body: RequestBody,
    pub answer: Answer,
    /// The statuses it can answer besides the ones every operation can.
    pub errors: &'static [StatusCode],
}

impl OperationDoc {
    pub fn new(id: &'static str, answer: Answer) -> Self {
        OperationDoc { id, query: &[], body: RequestBody::None, answer, errors: &[] }
    }

    pub fn query(self, query: &'static [&'static str]) -> Self {
        OperationDoc { query, ..self }
    }

    pub fn body(self, body: SchemaFn) -> Self {
        OperationDoc { body: RequestBody::Json(body), ..self }
    }

    pub fn empty_body(self) -> Self {
        OperationDoc { body: RequestBody::Empty, ..self }
    }

    pub fn errors(self, errors: &'static [StatusCode]) -> Self {
        OperationDoc { errors, ..self }
    }
}

const ERROR_REF: &str = "#/components/responses/";

/// The OpenAPI document of one version.
pub fn document(table: &RouteTable, version: ApiVersion) -> Value {
    let mut generator = SchemaSettings::openapi3().into_generator();
    let error_schema = generator.subschema_for::<GraphErrorBody>();
    let mut paths = Map::new();
    // Components whose properties `$select` may leave out: every one but `id`.
    let mut selectable = Vec::new();
    let mut statuses = std::collections::BTreeSet::new();
    for (path, method, doc) in table.operations(version) {
        let mut parameters: Vec<Value> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
            .collect();
        parameters.extend(doc.query.iter().map(|option| query_parameter(option)));

        let mut responses = Map::new();
        let (status, success) = success(&mut generator, version, doc.answer);
        responses.insert(status.as_u16().to_string(), success);
        let mut errors = vec![StatusCode::BAD_REQUEST, StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN];
        if path.contains('{') {
            errors.push(StatusCode::NOT_FOUND);
        }
        if !matches!(doc.body, RequestBody::None) {
            errors.push(StatusCode::PAYLOAD_TOO_LARGE);
        }
        errors.extend_from_slice(doc.errors);
        errors.sort();
        errors.dedup();
        for status in errors {
            statuses.insert(status);
            responses.insert(status.as_u16().to_string(), json!({ "$ref": format!("{ERROR_REF}{}", status.as_u16()) }));
        }

        let links = links(table, version, path, doc.answer);
        if !links.is_empty() {
            responses[&status.as_u16().to_string()]["links"] = Value::Object(links);
        }
        let mut operation = json!({ "operationId": doc.id, "parameters": parameters, "responses": responses });
        match doc.body {
            RequestBody::None => {}
            RequestBody::Empty => {
                operation["requestBody"] = json!({
                    "required": false,
                    "description": "This action takes no parameters: send no body, or {}.",
                    "content": { "application/json": { "schema": { "type": "object" } } },
                });
            }
            RequestBody::Json(body) => {
                operation["requestBody"] = json!({
                    "required": true,
                    "content": { "application/json": { "schema": body(&mut generator, version) } },
                });
            }
        }
        if doc.query.contains(&"$select")
            && let Answer::Entity(entity) | Answer::Page(entity) = doc.answer
        {
            selectable.extend(component_name(&entity(&mut generator, version)));
        }
        let item = paths.entry(format!("/{}/{path}", version.segment())).or_insert_with(|| json!({}));
        item[method.as_str().to_ascii_lowercase()] = operation;
    }

    let mut schemas = generator.take_definitions(true);
    for name in selectable {
        if let Some(Value::Object(schema)) = schemas.get_mut(&name)
            && let Some(Value::Array(required)) = schema.get_mut("required")
        {
            required.retain(|r| r == "id");
        }
    }
    let responses: Map<String, Value> = statuses
        .into_iter()
        .map(|status| {
            let description = status.canonical_reason().unwrap_or("Error");
            let body = json!({
                "description": format!("{description}, with Graph's error body."),
                "content": { "application/json": { "schema": error_schema.clone() } },
            });
            (status.as_u16().to_string(), body)
        })
        .collect();
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": format!("dmsync: Microsoft Graph {}", version.segment()),
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The Microsoft Graph operations dmsync serves, made from its route table. \
                $select may leave out any property but id.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "responses": responses,
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT" } },
        },
        "security": [{ "bearer": [] }],
    })
}

/// Links from a list or a create to the operations on one of the items it answers with, so
/// that a client (and the fuzzer) can follow an id from one answer to the next request.
fn links(table: &RouteTable, version: ApiVersion, path: &str, answer: Answer) -> Map<String, Value> {
    let id = match answer {
        Answer::Page(_) => "$response.body#/value/0/id",
        Answer::Created(_) | Answer::CreatedOk(_) => "$response.body#/id",
        _ => return Map::new(),
    };
    let item_path = format!("{path}/{{id}}");
    table
        .operations(version)
        .filter(|(other, ..)| *other == item_path || other.starts_with(&format!("{item_path}/")))
        .map(|(_, _, doc)| (doc.id.to_owned(), json!({ "operationId": doc.id, "parameters": { "id": id } })))
        .collect()
}

fn query_parameter(option: &str) -> Value {
    let schema = match option {
        "$top" => json!({ "type": "integer", "minimum": 0, "maximum": u32::MAX }),
        "$count" => json!({ "type": "boolean" }),
        _ => json!({ "type": "string" }),
    };
    json!({ "name": option, "in": "query", "required": false, "schema": schema })
}

/// The name of the component a `$ref` schema points to.
fn component_name(schema: &Schema) -> Option<String> {
    let reference = schema.get("$ref")?.as_str()?;
    Some(reference.rsplit('/').next()?.to_owned())
}

fn success(generator: &mut SchemaGenerator, version: ApiVersion, answer: Answer) -> (StatusCode, Value) {
    let context = json!({ "@odata.context": { "type": "string" } });
    let json_content = |schema: Value| json!({ "application/json": { "schema": schema } });
    match answer {
        Answer::NoContent => (StatusCode::NO_CONTENT, json!({ "description": "Done." })),
        Answer::Count => (
            StatusCode::OK,
            json!({ "description": "The number of items.", "content": { "text/plain": { "schema": { "type": "string" } } } }),
        ),
        Answer::Entity(entity) | Answer::Created(entity) | Answer::CreatedOk(entity) => {
            let entity = entity(generator, version);
            let schema = json!({ "allOf": [entity, { "type": "object", "properties": context, "required": ["@odata.context"] }] });
            let status = if matches!(answer, Answer::Created(_)) { StatusCode::CREATED } else { StatusCode::OK };
            (status, json!({ "description": "The entity.", "content": json_content(schema) }))
        }
        Answer::Document(document) => {
            let schema = document(generator, version);
            (StatusCode::OK, json!({ "description": "The answer.", "content": json_content(json!(schema)) }))
        }
        Answer::Page(item) => {
            let item = item(generator, version);
            let schema = json!({
                "type": "object",
                "properties": {
                    "@odata.context": { "type": "string" },
                    "@odata.count": { "type": "integer", "minimum": 0 },
                    "@odata.nextLink": { "type": "string" },
                    "value": { "type": "array", "items": item },
                },
                "required": ["@odata.context", "value"],
            });
            (StatusCode::OK, json!({ "description": "A page of the collection.", "content": json_content(schema) }))
        }
    }
}

/// `GET /_dmsync/openapi.json?version=…`, public. Both documents are made once, at start.
pub fn router(table: &RouteTable) -> Router<AppState> {
    let render = |version| Bytes::from(serde_json::to_vec(&document(table, version)).expect("a JSON value serialises"));
    let (v1, beta) = (render(ApiVersion::V1), render(ApiVersion::Beta));
    Router::new().route(
        PATH,
        get(move |uri: Uri| async move {
            let version = uri
                .query()
                .and_then(|q| form_urlencoded::parse(q.as_bytes()).find(|(name, _)| name == "version"))
                .and_then(|(_, value)| ApiVersion::from_segment(&value));
            let body = match version {
                Some(ApiVersion::V1) => v1.clone(),
                Some(ApiVersion::Beta) => beta.clone(),
                None => {
                    return ApiError::BadRequest(format!(
                        "Choose a version: {PATH}?version=v1.0 or {PATH}?version=beta."
                    ))
                    .into_response();
                }
            };
            let mut response: Response = body.into_response();
            response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            response
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// Every method of every route in the table is in the document of its versions, and the
    /// documents describe nothing else.
    #[test]
    fn documents_exactly_the_route_table() {
        let (_, table) = RouteTable::build(crate::resources::graph_routes());
        for version in [ApiVersion::V1, ApiVersion::Beta] {
            let served: BTreeSet<(String, String)> = table
                .operations(version)
                .map(|(path, method, _)| {
                    (format!("/{}/{path}", version.segment()), method.as_str().to_ascii_lowercase())
                })
                .collect();
            let doc = document(&table, version);
            let documented: BTreeSet<(String, String)> = doc["paths"]
                .as_object()
                .unwrap()
                .iter()
                .flat_map(|(path, item)| item.as_object().unwrap().keys().map(move |m| (path.clone(), m.clone())))
                .collect();
            assert_eq!(served, documented, "{version:?}");
            assert!(!served.is_empty());
        }
    }

    /// The table knows every path the router serves: each route's versions, with its methods.
    #[test]
    fn table_holds_every_route_and_method() {
        let routes = crate::resources::graph_routes();
        let expected: BTreeSet<(&str, String, String)> = routes
            .iter()
            .flat_map(|r| {
                r.versions.iter().flat_map(move |v| {
                    r.endpoints.iter().map(move |e| (v.segment(), r.path.to_owned(), e.method.to_string()))
                })
            })
            .collect();
        let (_, table) = RouteTable::build(routes);
        let held: BTreeSet<(&str, String, String)> = [ApiVersion::V1, ApiVersion::Beta]
            .into_iter()
            .flat_map(|v| table.operations(v).map(move |(p, m, _)| (v.segment(), p.to_owned(), m.to_string())))
            .collect();
        assert_eq!(expected, held);
    }

    #[test]
    fn declares_inner_error_and_strings_as_strings() {
        let (_, table) = RouteTable::build(crate::resources::graph_routes());
        let doc = document(&table, ApiVersion::Beta);
        let schemas = &doc["components"]["schemas"];
        let inner = &schemas["InnerError"];
        for name in ["date", "request-id", "client-request-id"] {
            assert_eq!(inner["properties"][name]["type"], "string", "{name}");
        }
        // Never null on the wire, so not nullable; the $ref sits in an allOf beside its description.
        let inner_error = &schemas["MainError"]["properties"]["innerError"];
        assert_eq!(inner_error["allOf"][0]["$ref"], "#/components/schemas/InnerError", "{inner_error}");
        assert!(inner_error.get("nullable").is_none() && inner_error.get("anyOf").is_none(), "{inner_error}");
        let device = &schemas["WindowsAutopilotDeviceIdentity"]["properties"];
        assert_eq!(device["serialNumber"]["type"], "string");
        assert_eq!(device["deviceFriendlyName"]["type"], "string", "beta has the beta-only properties");
        // No entity declares its properties as open objects.
        for (name, schema) in schemas.as_object().unwrap() {
            assert!(schema.get("additionalProperties").is_none_or(|a| a == false), "{name}: {schema}");
        }
        let v1 = document(&table, ApiVersion::V1);
        let v1_device = &v1["components"]["schemas"]["WindowsAutopilotDeviceIdentity"]["properties"];
        assert!(v1_device.get("deviceFriendlyName").is_none(), "v1.0 has no beta-only properties");
        assert!(v1["paths"].get("/v1.0/deviceManagement/windowsAutopilotSettings").is_none());
        assert!(doc["paths"].get("/beta/deviceManagement/windowsAutopilotSettings").is_some());
    }

    #[test]
    fn every_operation_answers_graph_errors_and_takes_a_bearer_token() {
        let (_, table) = RouteTable::build(crate::resources::graph_routes());
        let doc = document(&table, ApiVersion::Beta);
        assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                for status in ["400", "401", "403"] {
                    assert!(operation["responses"].get(status).is_some(), "{method} {path} {status}");
                }
                assert_eq!(path.contains('{'), operation["responses"].get("404").is_some(), "{method} {path}");
            }
        }
        let list = &doc["paths"]["/beta/deviceManagement/exchangeConnectors"];
        let link = &list["get"]["responses"]["200"]["links"]["syncExchangeConnector"];
        assert_eq!(link["parameters"]["id"], "$response.body#/value/0/id");
        assert_eq!(
            list["post"]["responses"]["201"]["links"]["getExchangeConnector"]["parameters"]["id"],
            "$response.body#/id"
        );
        let error = &doc["components"]["responses"]["401"]["content"]["application/json"]["schema"]["$ref"];
        assert_eq!(error, "#/components/schemas/GraphErrorBody");
    }

    /// A create that Intune answers 200 is documented so, and still links to its item.
    #[test]
    fn a_create_answered_200_links_to_its_item() {
        let (_, table) = RouteTable::build(crate::resources::graph_routes());
        let doc = document(&table, ApiVersion::Beta);
        let create = &doc["paths"]["/beta/deviceManagement/roleScopeTags"]["post"]["responses"];
        assert!(create.get("201").is_none(), "{create}");
        assert_eq!(create["200"]["links"]["deleteRoleScopeTag"]["parameters"]["id"], "$response.body#/id");
        let v1 = document(&table, ApiVersion::V1);
        assert!(v1["paths"].get("/v1.0/deviceManagement/roleScopeTags").is_none(), "beta only, as in Graph");
    }
}
