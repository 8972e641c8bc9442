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
//! - `null_here` (optional): properties dmsync answers `null` (or `[]`, for a collection) where
//!   the example shows a value, because it has no data for them (same section); they must be
//!   present.
//! - `sent_instead` (optional): properties of the example's body whose placeholder values dmsync
//!   refuses as Intune does (a role scope tag that does not exist, a device name template with
//!   spaces), each with the value sent in its place (same section); the rest of the body is sent
//!   as the docs show it.
//! - `served_status` (optional): the status dmsync answers where it departs from the documented
//!   one on purpose (docs/GRAPH-COMPAT.md, same section).
//!
//! Each family of examples has a test of its own below.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

const FIXTURE: &str = include_str!("docs_examples.json");

/// Every permission the examples' operations ask for, in one delegated token.
const PERMISSIONS: &[&str] =
    &[RW, "DeviceManagementRBAC.ReadWrite.All", "Device.Read.All", "Directory.AccessAsUser.All", "Group.ReadWrite.All"];

/// The ids an example's placeholders stand for, created in its tenant before it runs.
struct Seeded {
    autopilot_device: String,
    imported_device: String,
    connector: String,
    entra_device: String,
    /// A second device's Entra object, not a member of `group`, for the examples that add one.
    spare_entra_device: String,
    role_scope_tag: String,
    /// A deployment profile without assignments, of the type the example's page documents.
    profile: String,
    /// The assignment of a second profile to `group` (a profile with assignments cannot be
    /// deleted, so the profile the examples address has none).
    assignment: String,
    /// An assigned security group with `entra_device` as its member.
    group: String,
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

async fn entra_devices(app: &TestApp, token: &str) -> Vec<String> {
    let (_, devices) = send(app, token, Method::GET, "/v1.0/devices", None).await;
    let ids = devices["value"].as_array().expect("a page of devices").iter();
    ids.map(|d| d["id"].as_str().expect("an id").to_owned()).collect()
}

/// A deployment profile with every setting the examples show, so that none is `null`: an
/// `activeDirectory` profile for that type's pages (which show its extra property), an `azureAD`
/// one for the others.
fn profile_body(doc: &str, name: &str) -> Value {
    let odata_type = if doc.contains("-activedirectorywindowsautopilotdeploymentprofile-") {
        "#microsoft.graph.activeDirectoryWindowsAutopilotDeploymentProfile"
    } else {
        "#microsoft.graph.azureADWindowsAutopilotDeploymentProfile"
    };
    json!({
        "@odata.type": odata_type,
        "displayName": name,
        "description": "Replayed",
        "deviceNameTemplate": "REPLAY-%RAND:5%",
        "managementServiceAppId": "Replay",
        "enrollmentStatusScreenSettings": {
            "hideInstallationProgress": true,
            "allowDeviceUseBeforeProfileAndAppInstallComplete": true,
            "blockDeviceSetupRetryByUser": true,
            "allowLogCollectionOnInstallFailure": true,
            "customErrorMessage": "Replay",
            "installProgressTimeoutInMinutes": 15,
            "allowDeviceUseOnInstallFailure": true
        }
    })
}

/// One of each resource the examples address, so that every collection has an item and every
/// placeholder an id.
async fn seed(app: &TestApp, token: &str, doc: &str) -> Seeded {
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
    let entra_device = entra_devices(app, token).await.pop().expect("the seeded device's Entra object");
    created_id(
        app,
        token,
        "/beta/deviceManagement/windowsAutopilotDeviceIdentities",
        json!({ "serialNumber": "REPLAY-SPARE", "groupTag": "Replay" }),
    )
    .await;
    let spare_entra_device = entra_devices(app, token)
        .await
        .into_iter()
        .find(|id| *id != entra_device)
        .expect("the second device's Entra object");
    let group = created_id(
        app,
        token,
        "/v1.0/groups",
        json!({
            "displayName": "Replay",
            "description": "Replayed",
            "mailEnabled": false,
            "mailNickname": "replay",
            "securityEnabled": true,
            "groupTypes": []
        }),
    )
    .await;
    let member = json!({ "@odata.id": format!("https://graph.microsoft.com/v1.0/directoryObjects/{entra_device}") });
    let (status, answer) =
        send(app, token, Method::POST, &format!("/v1.0/groups/{group}/members/$ref"), Some(&member)).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "seeding the group's member: {answer}");
    let profiles = "/beta/deviceManagement/windowsAutopilotDeploymentProfiles";
    let profile = created_id(app, token, profiles, profile_body(doc, "Replay")).await;
    let assigned = created_id(app, token, profiles, profile_body(doc, "Replay assigned")).await;
    let assignment = created_id(
        app,
        token,
        &format!("{profiles}/{assigned}/assignments"),
        json!({ "target": { "@odata.type": "#microsoft.graph.groupAssignmentTarget", "groupId": group } }),
    )
    .await;
    Seeded {
        autopilot_device,
        imported_device,
        connector,
        entra_device,
        spare_entra_device,
        role_scope_tag,
        profile,
        assignment,
        group,
    }
}

/// The id the group pages' examples use in place of a placeholder (their `sampleKeys`).
const SAMPLE_GROUP_ID: &str = "02bd9fd6-8f93-4758-87c3-1fb73740a315";

/// The example's path with its placeholders replaced. The group pages write `{id}` for the group
/// (`/groups/{id}`), the device pages for the device.
fn fill(path: &str, seeded: &Seeded) -> String {
    path.replace("groups/{id}", &format!("groups/{}", seeded.group))
        .replace("{group-id}", &seeded.group)
        .replace(SAMPLE_GROUP_ID, &seeded.group)
        .replace("{directory-object-id}", &seeded.entra_device)
        .replace("{windowsAutopilotDeploymentProfileId}", &seeded.profile)
        .replace("{windowsAutopilotDeploymentProfileAssignmentId}", &seeded.assignment)
        .replace("{windowsAutopilotDeviceIdentityId}", &seeded.autopilot_device)
        .replace("{importedWindowsAutopilotDeviceIdentityId}", &seeded.imported_device)
        .replace("{deviceManagementExchangeConnectorId}", &seeded.connector)
        .replace("{roleScopeTagId}", &seeded.role_scope_tag)
        .replace("{id}", &seeded.entra_device)
}

/// The body as sent: the values `sent_instead` lists replace the docs' ones, and the object the
/// `directoryObjects/{id}` references name (the docs' or `sent_instead`'s) is the device not yet
/// a member.
fn fill_body(example: &Value, seeded: &Seeded) -> Option<Value> {
    let mut body = example.get("body")?.clone();
    if let (Some(object), Some(instead)) = (body.as_object_mut(), example["sent_instead"].as_object()) {
        for (name, value) in instead {
            object.insert(name.clone(), value.clone());
        }
    }
    let text =
        body.to_string().replace("directoryObjects/{id}", &format!("directoryObjects/{}", seeded.spare_entra_device));
    Some(serde_json::from_str(&text).expect("a body"))
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
                    Some(Value::Array(items)) if items.is_empty() && excused.null_here.contains(&name.as_str()) => {}
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
        let seeded = seed(&app, &token, doc).await;
        let path = fill(example["path"].as_str().expect("path"), &seeded);
        let sent = fill_body(example, &seeded);
        let (status, body) = send(&app, &token, method.clone(), &path, sent.as_ref()).await;

        let mut problems = Vec::new();
        if u64::from(status.as_u16()) != expected {
            problems.push(format!("status {status}, expected {expected}: {body}"));
        } else if let Some(shape) = example.get("response").filter(|_| status.is_success()) {
            // A refusal dmsync answers on purpose (`served_status`) has an error body, not the
            // example's.
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

/// The pages of `windowsAutopilotDeploymentProfile` and of its two derived types.
#[tokio::test]
async fn the_deployment_profile_examples_replay() {
    replay("windowsautopilotdeploymentprofile-").await;
}

#[tokio::test]
async fn the_deployment_profile_assignment_examples_replay() {
    replay("-windowsautopilotdeploymentprofileassignment-").await;
}

#[tokio::test]
async fn the_group_examples_replay() {
    replay("/api/group-").await;
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
        "windowsautopilotdeploymentprofile-",
        "-windowsautopilotdeploymentprofileassignment-",
        "/api/group-",
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
