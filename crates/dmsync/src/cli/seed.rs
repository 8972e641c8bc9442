//! Seeds: a declarative file of tenants and what is in them (`dmsync seed FILE`, and
//! `serve --seed FILE` on an empty database), or an IntuneCD backup folder (`dmsync seed
//! --intunecd DIR`). A seed is applied through the admin API and Graph, as a script would, so
//! every value is checked by the same code that checks a client's, and nothing reaches the
//! database another way.

use std::collections::HashMap;
use std::path::Path;

use dmsync_client::{AdminClient, ClientError, GraphClient};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use dmsync_server::bootstrap::DEV_TENANT_ID;

/// The largest seed file read: a seed is written by hand or by a tool, and a bigger one is a
/// mistake (a million devices belong in registrations uploaded as CSV).
const MAX_SEED_BYTES: u64 = 64 * 1024 * 1024;
/// How long a seed waits for the Autopilot sync that turns its registrations into devices.
const SYNC_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

/// A seed file: `{"tenants": [...]}`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Seed {
    #[serde(default)]
    pub tenants: Vec<TenantSeed>,
}

/// One tenant and what to create in it. Every list holds the bodies the admin API or Graph
/// takes for that object, passed as they are.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TenantSeed {
    /// The tenant; the development tenant when absent. Created with `domain` unless it exists.
    #[serde(default)]
    pub tenant_id: Option<String>,
    #[serde(default)]
    pub domain: Option<String>,
    /// `POST /_dmsync/tenants/{tid}/users` bodies.
    #[serde(default)]
    pub users: Vec<Value>,
    /// `POST /_dmsync/tenants/{tid}/applications` bodies; their ids and secrets are reported.
    #[serde(default)]
    pub applications: Vec<Value>,
    /// Registrations as an OEM uploads them (`POST /_dmsync/tenants/{tid}/autopilot/registrations`),
    /// followed by an Autopilot sync that makes them devices.
    #[serde(default)]
    pub registrations: Vec<Value>,
    /// `POST /beta/deviceManagement/windowsAutopilotDeviceIdentities` bodies (devices without a
    /// hardware hash, as an IntuneCD backup has them).
    #[serde(default)]
    pub autopilot_devices: Vec<Value>,
    /// `POST /beta/deviceManagement/roleScopeTags` bodies.
    #[serde(default)]
    pub role_scope_tags: Vec<Value>,
    /// `POST /v1.0/groups` bodies.
    #[serde(default)]
    pub groups: Vec<Value>,
    /// `POST /beta/deviceManagement/windowsAutopilotDeploymentProfiles` bodies, each with an
    /// optional `assignments` list of assignment bodies; a target may name its group by
    /// `groupName` (with IntuneCD's `groupType` and `membershipRule`) instead of `groupId`, and
    /// a group of that name is found, or created.
    #[serde(default)]
    pub deployment_profiles: Vec<Value>,
}

/// What a seed created that the caller cannot know otherwise: each application's id and
/// secret.
#[derive(Debug, Default, serde::Serialize)]
pub struct SeedReport {
    pub applications: Vec<Value>,
}

/// Reads a seed file: YAML when its name ends in `.yaml` or `.yml`, JSON otherwise.
pub fn read_seed_file(path: &Path) -> Result<Seed, String> {
    let text = read_bounded(path)?;
    let yaml = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"));
    let seed = if yaml {
        serde_saphyr::from_str(&text).map_err(|e| e.to_string())
    } else {
        serde_json::from_str(&text).map_err(|e| e.to_string())
    };
    seed.map_err(|e| format!("{}: not a seed file: {e}", path.display()))
}

fn read_bounded(path: &Path) -> Result<String, String> {
    let size = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?.len();
    if size > MAX_SEED_BYTES {
        return Err(format!("{}: larger than {} MiB", path.display(), MAX_SEED_BYTES / (1024 * 1024)));
    }
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// The properties of an Autopilot device in an IntuneCD backup that a direct create takes; the
/// rest (its state, ids and timestamps) is the service's to decide.
const DEVICE_PROPERTIES: &[&str] = &[
    "serialNumber",
    "groupTag",
    "purchaseOrderIdentifier",
    "productKey",
    "manufacturer",
    "model",
    "displayName",
    "userPrincipalName",
    "addressableUserName",
    "resourceName",
];

/// Properties of a profile in a backup that the service sets itself.
const PROFILE_READ_ONLY: &[&str] =
    &["id", "createdDateTime", "lastModifiedDateTime", "assignments", "assignedDevices", "@odata.context"];

/// Reads an IntuneCD backup folder (`IntuneCD-startbackup -o json`): its Autopilot devices,
/// Windows Autopilot deployment profiles with their assignments, and role scope tags, as a
/// seed of one tenant (`tenant`, or the development tenant).
pub fn read_intunecd(dir: &Path, tenant: Option<String>) -> Result<Seed, String> {
    if !dir.is_dir() {
        return Err(format!("{}: not a directory", dir.display()));
    }
    let mut seed = TenantSeed { tenant_id: tenant, ..TenantSeed::default() };
    for device in read_json_files(&dir.join("Autopilot Devices"))? {
        let Value::Object(device) = device else { continue };
        let body: Map<String, Value> =
            device.into_iter().filter(|(k, v)| DEVICE_PROPERTIES.contains(&k.as_str()) && !v.is_null()).collect();
        seed.autopilot_devices.push(Value::Object(body));
    }
    for tag in read_json_files(&dir.join("Scope Tags"))? {
        // The built-in Default tag exists in every tenant.
        if tag["isBuiltIn"] == json!(true) {
            continue;
        }
        seed.role_scope_tags.push(json!({ "displayName": tag["displayName"], "description": tag["description"] }));
    }
    for profile in read_json_files(&dir.join("Enrollment Profiles").join("Windows"))? {
        let Value::Object(mut profile) = profile else { continue };
        let assignments = profile.remove("assignments").unwrap_or(Value::Null);
        profile.retain(|k, _| !PROFILE_READ_ONLY.contains(&k.as_str()));
        profile.insert("assignments".into(), assignments);
        seed.deployment_profiles.push(Value::Object(profile));
    }
    Ok(Seed { tenants: vec![seed] })
}

/// Every `*.json` file of a directory, in name order; a missing directory is an empty list
/// (a backup that excluded that module).
fn read_json_files(dir: &Path) -> Result<Vec<Value>, String> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("{}: {e}", dir.display())),
    };
    let mut paths: Vec<_> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("json")))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| read_bounded(p).and_then(|t| serde_json::from_str(&t).map_err(|e| format!("{}: {e}", p.display()))))
        .collect()
}

/// Why a seed stopped: the step, and the server's answer.
fn failed(step: &str, e: ClientError) -> String {
    format!("{step}: {}", super::describe(&e))
}

/// Applies a seed through the admin API and Graph of the server at `base_url`.
pub async fn apply(admin: &AdminClient, graph: &GraphClient, seed: &Seed) -> Result<SeedReport, String> {
    let mut report = SeedReport::default();
    for tenant in &seed.tenants {
        apply_tenant(admin, graph, tenant, &mut report).await?;
    }
    Ok(report)
}

async fn apply_tenant(
    admin: &AdminClient,
    graph: &GraphClient,
    seed: &TenantSeed,
    report: &mut SeedReport,
) -> Result<(), String> {
    let tenant = seed.tenant_id.clone().unwrap_or_else(|| DEV_TENANT_ID.to_string());
    // A GUID, so that it is one path segment of the admin API's routes and nothing else.
    tenant.parse::<dmsync_core::TenantId>().map_err(|_| format!("tenantId {tenant:?} is not a tenant id (a GUID)"))?;
    if let Some(domain) = &seed.domain {
        match admin.create_tenant(&tenant, domain).await {
            Ok(()) => {}
            Err(e) if e.status() == Some(409) => {}
            Err(e) => return Err(failed(&format!("creating tenant {tenant}"), e)),
        }
    }
    let permissions = dmsync_core::permissions::ALL_PERMISSIONS;
    let token = admin
        .mint_token(&tenant, "delegated", permissions, "work", None)
        .await
        .map_err(|e| failed(&format!("tenant {tenant}"), e))?;
    let graph = graph.with_token(token);
    for user in &seed.users {
        admin
            .post_json(&format!("/_dmsync/tenants/{tenant}/users"), user)
            .await
            .map_err(|e| failed(&format!("user {}", user["userPrincipalName"]), e))?;
    }
    for app in &seed.applications {
        let created = admin
            .post_json(&format!("/_dmsync/tenants/{tenant}/applications"), app)
            .await
            .map_err(|e| failed(&format!("application {}", app["displayName"]), e))?;
        report.applications.push(json!({
            "tenantId": tenant, "displayName": created["displayName"], "appId": created["appId"],
            "secretText": created["secretText"],
        }));
    }
    for tag in &seed.role_scope_tags {
        graph
            .post_json("beta/deviceManagement/roleScopeTags", tag)
            .await
            .map_err(|e| failed(&format!("role scope tag {}", tag["displayName"]), e))?;
    }
    let mut groups = GroupIds::default();
    for group in &seed.groups {
        groups.create(&graph, group).await?;
    }
    if !seed.registrations.is_empty() {
        register_and_sync(admin, &graph, &tenant, &seed.registrations).await?;
    }
    for device in &seed.autopilot_devices {
        graph
            .post_json("beta/deviceManagement/windowsAutopilotDeviceIdentities", device)
            .await
            .map_err(|e| failed(&format!("Autopilot device {}", device["serialNumber"]), e))?;
    }
    let mut tags = None;
    for profile in &seed.deployment_profiles {
        let mut body = profile.clone();
        tag_names_to_ids(&graph, &mut tags, &mut body).await?;
        let assignments = body.as_object_mut().and_then(|p| p.remove("assignments")).unwrap_or(Value::Null);
        let name = body["displayName"].clone();
        let created = graph
            .post_json("beta/deviceManagement/windowsAutopilotDeploymentProfiles", &body)
            .await
            .map_err(|e| failed(&format!("deployment profile {name}"), e))?;
        let id = created["id"].as_str().unwrap_or_default().to_owned();
        for assignment in assignments.as_array().into_iter().flatten() {
            let assignment = groups.resolve(&graph, assignment).await?;
            graph
                .post_json(
                    &format!("beta/deviceManagement/windowsAutopilotDeploymentProfiles/{id}/assignments"),
                    &assignment,
                )
                .await
                .map_err(|e| failed(&format!("an assignment of deployment profile {name}"), e))?;
        }
    }
    Ok(())
}

async fn register_and_sync(
    admin: &AdminClient,
    graph: &GraphClient,
    tenant: &str,
    registrations: &[Value],
) -> Result<(), String> {
    admin
        .post_json(&format!("/_dmsync/tenants/{tenant}/autopilot/registrations"), &Value::Array(registrations.to_vec()))
        .await
        .map_err(|e| failed("registrations", e))?;
    // A sync makes the registrations devices.
    if let Err(e) = graph.sync_windows_autopilot_settings().await {
        return Err(match e.status() {
            Some(409 | 429) => format!(
                "registrations: tenant {tenant} is syncing or synced less than the cooldown ago, and a seed's \
                 registrations need a sync of their own (seed an empty tenant, or advance the clock first)"
            ),
            _ => failed("the Autopilot sync", e),
        });
    }
    let deadline = std::time::Instant::now() + SYNC_WAIT;
    loop {
        let settings = graph.get_windows_autopilot_settings().await.map_err(|e| failed("the Autopilot sync", e))?;
        let status = serde_json::to_value(&settings).unwrap_or_default()["syncStatus"].clone();
        if status == "completed" {
            return Ok(());
        }
        if status == "failed" || std::time::Instant::now() > deadline {
            return Err(format!("the Autopilot sync of tenant {tenant} did not complete ({status})"));
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Replaces role scope tag names in a body's `roleScopeTagIds` (IntuneCD writes names, as
/// `Default`) with the tenant's ids for them; ids stay as they are. The tenant's tags are read
/// once, into `tags`, after the seed's own were created.
async fn tag_names_to_ids(
    graph: &GraphClient,
    tags: &mut Option<HashMap<String, String>>,
    body: &mut Value,
) -> Result<(), String> {
    let Some(Value::Array(ids)) = body.get_mut("roleScopeTagIds") else { return Ok(()) };
    for id in ids.iter_mut() {
        let Value::String(name) = id else { continue };
        if name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if tags.is_none() {
            let all: Vec<Value> = graph
                .list_all("beta/deviceManagement/roleScopeTags")
                .await
                .map_err(|e| failed("reading the role scope tags", e))?;
            let by_name = all
                .iter()
                .filter_map(|t| Some((t["displayName"].as_str()?.to_owned(), t["id"].as_str()?.to_owned())))
                .collect();
            *tags = Some(by_name);
        }
        let known = tags.as_ref().and_then(|tags| tags.get(name.as_str()));
        let tag_id = known.ok_or_else(|| format!("no role scope tag is named {name:?}"))?.clone();
        *id = Value::String(tag_id);
    }
    Ok(())
}

/// The groups a seed made or found, by display name.
#[derive(Default)]
struct GroupIds(HashMap<String, String>);

impl GroupIds {
    async fn create(&mut self, graph: &GraphClient, group: &Value) -> Result<String, String> {
        let name = group["displayName"].as_str().unwrap_or_default().to_owned();
        let created = graph.post_json("v1.0/groups", group).await.map_err(|e| failed(&format!("group {name:?}"), e))?;
        let id = created["id"].as_str().unwrap_or_default().to_owned();
        self.0.insert(name, id.clone());
        Ok(id)
    }

    /// An assignment body with its target's `groupName` replaced by the group's id: one the
    /// seed made, one the tenant has, or else a new group (dynamic with IntuneCD's
    /// `membershipRule` when its `groupType` says so, assigned otherwise).
    async fn resolve(&mut self, graph: &GraphClient, assignment: &Value) -> Result<Value, String> {
        let mut assignment = assignment.clone();
        let Some(target) = assignment.get_mut("target").and_then(Value::as_object_mut) else {
            return Ok(assignment);
        };
        let Some(Value::String(name)) = target.remove("groupName") else { return Ok(assignment) };
        let kind = target.remove("groupType");
        let rule = target.remove("membershipRule");
        let id = match self.0.get(&name) {
            Some(id) => id.clone(),
            None => match existing_group(graph, &name).await? {
                Some(id) => id,
                None => {
                    let nickname: String = name.chars().filter(char::is_ascii_alphanumeric).take(64).collect();
                    let mut group = json!({
                        "displayName": name, "mailEnabled": false, "securityEnabled": true,
                        "mailNickname": if nickname.is_empty() { "group".to_owned() } else { nickname },
                    });
                    if kind == Some(json!("DynamicMembership"))
                        && let Some(Value::String(rule)) = &rule
                    {
                        group["groupTypes"] = json!(["DynamicMembership"]);
                        group["membershipRule"] = json!(rule);
                        group["membershipRuleProcessingState"] = json!("On");
                    }
                    self.create(graph, &group).await?
                }
            },
        };
        self.0.insert(name, id.clone());
        target.insert("groupId".into(), Value::String(id));
        Ok(assignment)
    }
}

async fn existing_group(graph: &GraphClient, name: &str) -> Result<Option<String>, String> {
    let filter = format!("displayName eq '{}'", name.replace('\'', "''"));
    let page: Value = graph
        .get_json_with_query("v1.0/groups", &[("$filter", &filter)])
        .await
        .map_err(|e| failed(&format!("looking up group {name:?}"), e))?;
    Ok(page["value"][0]["id"].as_str().map(str::to_owned))
}
