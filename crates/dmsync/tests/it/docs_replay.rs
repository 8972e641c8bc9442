//! The Graph documentation's own examples, replayed: for each example in `docs_examples.json`
//! (its method, path and request body as the docs page shows them, the documented status, and
//! the names and JSON types of the properties its response shows), a fresh server gets the
//! resources the example needs, the example's path with its placeholders replaced by their ids,
//! and its body; the answer must have the documented status and every property of the example,
//! with the same JSON type.
//!
//! Fixture format, one object per example in `examples`:
//! - `doc`, `commit`: the page in microsoftgraph/microsoft-graph-docs-contrib the facts come from.
//! - `method`, `path` (placeholders such as `{windowsAutopilotDeviceIdentityId}` as the docs
//!   write them), `body` (optional, sent as it is), `status`.
//! - `response` (optional): the example's body with each value replaced by its JSON type
//!   (`"string"`, `"number"`, `"boolean"`, or `"null"`, which any value matches), objects and
//!   arrays kept (an array's one element is the shape of every item), `@odata.*` annotations
//!   left out. A single entity the docs wrap in `{"value": {…}}` is checked unwrapped, as Graph
//!   answers it.
//! - `unserved` (optional): properties of the example dmsync does not serve, with the reason in
//!   docs/GRAPH-COMPAT.md ("Documentation examples that do not replay"); they must be absent.
//! - `null_here` (optional): properties dmsync answers `null` where the example shows a value,
//!   because it has no data for them (same section); they must be present.
//! - `served_status` (optional): the status dmsync answers where it departs from the documented
//!   one on purpose (docs/GRAPH-COMPAT.md, same section).
//!
//! Examples of further resources (groups, deployment profiles) join the fixture as those resources
//! land, each family with a test of its own below.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

const FIXTURE: &str = include_str!("docs_examples.json");

/// Every permission the examples' operations ask for, in one delegated token.
const PERMISSIONS: &[&str] =
    &[RW, "DeviceManagementRBAC.ReadWrite.All", "Device.Read.All", "Directory.AccessAsUser.All"];

/// The ids an example's placeholders stand for, created in its tenant before it runs.
struct Seeded {
    autopilot_device: String,
    imported_device: String,
    connector: String,
    entra_device: String,
    role_scope_tag: String,
}

async fn send(app: &TestApp, token: &str, method: Method, path: &str, body: Option<&Value>) -> (StatusCode, Value) {
    let mut request = app.raw(method, path, Some(token));
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.expect("request sent");
    let status = response.status();
    let text = response.text().await.expect("a body");
    (status, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) })
}

async fn created_id(app: &TestApp, token: &str, path: &str, body: Value) -> String {
    let (status, created) = send(app, token, Method::POST, path, Some(&body)).await;
    assert!(status.is_success(), "seeding {path}: {status} {created}");
    created["id"].as_str().expect("an id").to_owned()
}

/// One of each resource the examples address, so that every collection has an item and every
/// placeholder an id.
async fn seed(app: &TestApp, token: &str) -> Seeded {
    let autopilot_device = created_id(
        app,
        token,
        "/beta/deviceManagement/windowsAutopilotDeviceIdentities",
        json!({ "serialNumber": "REPLAY-SEED", "groupTag": "Replay" }),
    )
    .await;
    let imported_device = created_id(
        app,
        token,
        "/beta/deviceManagement/importedWindowsAutopilotDeviceIdentities",
        json!({ "serialNumber": "REPLAY-IMPORT", "hardwareIdentifier": hardware_hash("REPLAY-IMPORT") }),
    )
    .await;
    let connector = created_id(
        app,
        token,
        "/beta/deviceManagement/exchangeConnectors",
        json!({ "serverName": "ex01.contoso.com", "exchangeConnectorType": "onPremises" }),
    )
    .await;
    let role_scope_tag =
        created_id(app, token, "/beta/deviceManagement/roleScopeTags", json!({ "displayName": "Replay" })).await;
    let (_, devices) = send(app, token, Method::GET, "/v1.0/devices", None).await;
    let entra_device = devices["value"][0]["id"].as_str().expect("the seeded device's Entra object").to_owned();
    Seeded { autopilot_device, imported_device, connector, entra_device, role_scope_tag }
}

fn fill(path: &str, seeded: &Seeded) -> String {
    path.replace("{windowsAutopilotDeviceIdentityId}", &seeded.autopilot_device)
        .replace("{importedWindowsAutopilotDeviceIdentityId}", &seeded.imported_device)
        .replace("{deviceManagementExchangeConnectorId}", &seeded.connector)
        .replace("{roleScopeTagId}", &seeded.role_scope_tag)
        .replace("{id}", &seeded.entra_device)
}

/// What an example's fixture entry excuses: properties not served, and properties served null.
struct Excused<'a> {
    unserved: Vec<&'a str>,
    null_here: Vec<&'a str>,
}

impl<'a> Excused<'a> {
    fn of(example: &'a Value) -> Excused<'a> {
        let names = |key: &str| -> Vec<&'a str> {
            example[key].as_array().map(|u| u.iter().filter_map(Value::as_str).collect()).unwrap_or_default()
        };
        Excused { unserved: names("unserved"), null_here: names("null_here") }
    }
}

/// Compares an answer with a documented shape; every difference goes into `problems`.
fn compare(shape: &Value, actual: &Value, at: &str, excused: &Excused, problems: &mut Vec<String>) {
    match shape {
        Value::String(kind) => {
            let ok = match kind.as_str() {
                "string" => actual.is_string(),
                "number" => actual.is_number(),
                "boolean" => actual.is_boolean(),
                "null" => true,
                other => panic!("unknown type {other} in the fixture at {at}"),
            };
            if !ok {
                problems.push(format!("{at} is {actual}, documented as a {kind}"));
            }
        }
        Value::Object(properties) => {
            let Some(object) = actual.as_object() else {
                problems.push(format!("{at} is {actual}, documented as an object"));
                return;
            };
            for (name, inner) in properties {
                let here = format!("{at}.{name}");
                if excused.unserved.contains(&name.as_str()) {
                    if object.contains_key(name) {
                        problems.push(format!("{here} is served, but the fixture lists it as unserved"));
                    }
                    continue;
                }
                match object.get(name) {
                    Some(Value::Null) if excused.null_here.contains(&name.as_str()) => {}
                    Some(value) => compare(inner, value, &here, excused, problems),
                    None => problems.push(format!("{here} is missing")),
                }
            }
        }
        Value::Array(items) => {
            let Some(values) = actual.as_array() else {
                problems.push(format!("{at} is {actual}, documented as an array"));
                return;
            };
            if let Some(item) = items.first() {
                if values.is_empty() {
                    problems.push(format!("{at} is empty, so its items cannot be checked"));
                }
                for (i, value) in values.iter().enumerate() {
                    compare(item, value, &format!("{at}[{i}]"), excused, problems);
                }
            }
        }
        other => panic!("unexpected {other} in the fixture at {at}"),
    }
}

/// The docs wrap some single entities in `{"value": {…}}`; Graph answers the entity itself.
fn unwrapped(shape: &Value) -> &Value {
    match shape.as_object() {
        Some(o) if o.len() == 1 && o.get("value").is_some_and(Value::is_object) => &o["value"],
        _ => shape,
    }
}

/// Replays the fixture's examples whose page name contains `family`, each against a fresh
/// server, and reports every one that does not replay.
async fn replay(family: &str) {
    let fixture: Value = serde_json::from_str(FIXTURE).expect("the fixture is JSON");
    let examples: Vec<&Value> = fixture["examples"]
        .as_array()
        .expect("a list of examples")
        .iter()
        .filter(|e| e["doc"].as_str().is_some_and(|d| d.contains(family)))
        .collect();
    assert!(!examples.is_empty(), "no example of {family}");
    let mut failures = Vec::new();
    for example in &examples {
        let doc = example["doc"].as_str().expect("doc");
        let method: Method = example["method"].as_str().expect("method").parse().expect("a method");
        let documented = example["status"].as_u64().expect("status");
        let expected = example["served_status"].as_u64().unwrap_or(documented);
        let excused = Excused::of(example);

        let app = spawn_app().await;
        let token = app.admin.mint_token(&app.tenant(), "delegated", PERMISSIONS, "work", None).await.unwrap();
        let seeded = seed(&app, &token).await;
        let path = fill(example["path"].as_str().expect("path"), &seeded);
        let (status, body) = send(&app, &token, method.clone(), &path, example.get("body")).await;

        let mut problems = Vec::new();
        if u64::from(status.as_u16()) != expected {
            problems.push(format!("status {status}, expected {expected}: {body}"));
        } else if let Some(shape) = example.get("response") {
            compare(unwrapped(shape), &body, "body", &excused, &mut problems);
        }
        if !problems.is_empty() {
            failures.push(format!("{doc} ({method} {path}):\n  {}", problems.join("\n  ")));
        }
        app.stop().await;
    }
    assert!(
        failures.is_empty(),
        "{} of {} examples do not replay:\n{}",
        failures.len(),
        examples.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn the_device_identity_examples_replay() {
    replay("-windowsautopilotdeviceidentity-").await;
}

#[tokio::test]
async fn the_imported_device_identity_examples_replay() {
    replay("-importedwindowsautopilotdeviceidentity-").await;
}

#[tokio::test]
async fn the_autopilot_settings_examples_replay() {
    replay("-windowsautopilotsettings-").await;
}

#[tokio::test]
async fn the_exchange_connector_examples_replay() {
    replay("-devicemanagementexchangeconnector-").await;
}

#[tokio::test]
async fn the_entra_device_examples_replay() {
    replay("/api/device-").await;
}

#[tokio::test]
async fn the_role_scope_tag_examples_replay() {
    replay("-rbac-rolescopetag-").await;
}

/// Every example names its page and commit, and belongs to one of the families replayed above.
#[test]
fn the_fixture_names_a_page_and_a_commit_for_every_example() {
    let families = [
        "-windowsautopilotdeviceidentity-",
        "-importedwindowsautopilotdeviceidentity-",
        "-windowsautopilotsettings-",
        "-devicemanagementexchangeconnector-",
        "/api/device-",
        "-rbac-rolescopetag-",
    ];
    let fixture: Value = serde_json::from_str(FIXTURE).unwrap();
    for example in fixture["examples"].as_array().unwrap() {
        let doc = example["doc"].as_str().unwrap_or_default();
        assert_eq!(families.iter().filter(|f| doc.contains(*f)).count(), 1, "{example}");
        let commit = example["commit"].as_str().unwrap_or_default();
        assert!(commit.len() == 40 && commit.bytes().all(|b| b.is_ascii_hexdigit()), "{example}");
        assert!(example["doc"].as_str().is_some_and(|d| d.ends_with(".md") || d.contains(".md (")), "{example}");
    }
}
