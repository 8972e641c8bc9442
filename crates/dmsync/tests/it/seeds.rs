//! Seeds: `serve --seed FILE`, `dmsync seed FILE` and `dmsync seed --intunecd DIR`.

use std::path::Path;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::cli::Cli;
use crate::helpers::*;
use crate::process::{RealServer, dev_user_token};

const FABRIKAM: &str = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa";

fn seed_file() -> Value {
    json!({
        "tenants": [
            {
                "registrations": [
                    { "serialNumber": "SEED-1", "hardwareHash": hardware_hash("SEED-1"), "groupTag": "Sales" },
                ],
                "autopilotDevices": [{ "serialNumber": "SEED-DIRECT-1", "groupTag": "Sales" }],
                "roleScopeTags": [{ "displayName": "Berlin", "description": "Lab" }],
                "groups": [{
                    "displayName": "Sales devices", "mailEnabled": false, "mailNickname": "sales",
                    "securityEnabled": true,
                }],
                "deploymentProfiles": [{
                    "@odata.type": "#microsoft.graph.azureADWindowsAutopilotDeploymentProfile",
                    "displayName": "Sales profile",
                    "assignments": [{ "target": {
                        "@odata.type": "#microsoft.graph.groupAssignmentTarget", "groupName": "Sales devices",
                    }}],
                }],
            },
            {
                "tenantId": FABRIKAM,
                "domain": "fabrikam.onmicrosoft.com",
                "users": [{ "userPrincipalName": "ann@fabrikam.onmicrosoft.com", "password": "ann-pass" }],
                "applications": [{ "displayName": "Fabrikam tool", "roles": [RW] }],
            },
        ]
    })
}

async fn serials(base: &str, token: &str) -> Vec<String> {
    let url = format!("{base}/beta/deviceManagement/windowsAutopilotDeviceIdentities");
    let page: Value = reqwest::Client::new().get(url).bearer_auth(token).send().await.unwrap().json().await.unwrap();
    let mut serials: Vec<String> =
        page["value"].as_array().unwrap().iter().map(|d| d["serialNumber"].as_str().unwrap().to_owned()).collect();
    serials.sort();
    serials
}

async fn get(base: &str, token: &str, path: &str) -> Value {
    reqwest::Client::new().get(format!("{base}{path}")).bearer_auth(token).send().await.unwrap().json().await.unwrap()
}

/// What `seed_file` makes in the development tenant, checked over Graph.
async fn assert_seeded(base: &str, token: &str) {
    assert_eq!(serials(base, token).await, ["SEED-1", "SEED-DIRECT-1"]);
    let tags = get(base, token, "/beta/deviceManagement/roleScopeTags").await;
    assert_eq!(tags["value"][1]["displayName"], "Berlin", "{tags}");
    let groups = get(base, token, "/v1.0/groups").await;
    let group_id = groups["value"][0]["id"].as_str().unwrap().to_owned();
    let profiles =
        get(base, token, "/beta/deviceManagement/windowsAutopilotDeploymentProfiles?$expand=assignments").await;
    assert_eq!(profiles["value"][0]["displayName"], "Sales profile", "{profiles}");
    assert_eq!(profiles["value"][0]["assignments"][0]["target"]["groupId"], group_id.as_str(), "{profiles}");
}

#[tokio::test]
async fn serve_seed_applies_a_file_once_on_an_empty_database_before_the_banner() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("seed.json");
    std::fs::write(&file, seed_file().to_string()).unwrap();
    let db = format!("sqlite://{}", dir.path().join("d.db").display());
    let extra = ["--seed", file.to_str().unwrap(), "--sync-duration", "0s"];
    let server = RealServer::start(&db, &extra);
    let token = dev_user_token(&server.base_url).await;
    // The banner came after the seed: everything is there at once.
    assert_seeded(&server.base_url, &token).await;
    let ann = GraphClientFor::password(&server.base_url, FABRIKAM, "ann@fabrikam.onmicrosoft.com", "ann-pass").await;
    assert!(ann.is_ok(), "the seeded user signs in: {ann:?}");
    server.terminate(Duration::from_secs(20));

    // On a database that is not empty, the seed is not applied again.
    let server = RealServer::start(&db, &extra);
    assert_eq!(serials(&server.base_url, &token).await, ["SEED-1", "SEED-DIRECT-1"]);
    server.terminate(Duration::from_secs(20));
}

#[tokio::test]
async fn serve_refuses_a_bad_seed_file_before_it_starts() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("seed.json");
    std::fs::write(&file, r#"{"tenants":[{"devices":[]}]}"#).unwrap();
    let db = format!("sqlite://{}", dir.path().join("d.db").display());
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_dmsync"))
        .args(["serve", "--listen", "127.0.0.1:0", "--db", &db, "--seed", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unknown field `devices`"), "{stderr}");
    assert!(!dir.path().join("d.db").exists(), "refused before the database was made");
}

#[tokio::test]
async fn dmsync_seed_applies_a_file_and_prints_the_application_secrets() {
    let app = spawn_app_with(|c| c.sync_duration = time::Duration::ZERO).await;
    let cli = Cli::new(&app);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("seed.json");
    std::fs::write(&file, seed_file().to_string()).unwrap();
    let seeded = cli.run(&["seed", file.to_str().unwrap(), "-o", "json"]).await;
    assert_eq!(seeded.code, 0, "{seeded:?}");
    let report = seeded.json();
    let secret = report["applications"][0]["secretText"].as_str().unwrap();
    let app_id = report["applications"][0]["appId"].as_str().unwrap();
    let token = app.user_token().await;
    assert_seeded(&app.base_url, &token).await;
    let (status, _) = token_request(
        &app,
        FABRIKAM,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", app_id),
            ("client_secret", secret),
            ("scope", "https://graph.microsoft.com/.default"),
        ],
    )
    .await;
    assert_eq!(status, reqwest::StatusCode::OK, "the seeded app signs in with the printed secret");

    // A second run stops at the first thing that exists, and says what.
    let again = cli.run(&["seed", file.to_str().unwrap()]).await;
    assert_ne!(again.code, 0, "{again:?}");
    assert!(again.stderr.contains("registrations") || again.stderr.contains("Berlin"), "{again:?}");
    app.stop().await;
}

/// An IntuneCD backup as `IntuneCD-startbackup -o json` writes one: devices without ids or
/// hashes, a profile with its assignment's group by name, and the scope tags.
fn write_intunecd_backup(dir: &Path) {
    let write = |path: &str, value: Value| {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, serde_json::to_string_pretty(&value).unwrap()).unwrap();
    };
    write(
        "Autopilot Devices/ICD-1.json",
        json!({
            "deploymentProfileAssignmentStatus": "assignedInSync", "enrollmentState": "enrolled",
            "groupTag": "Kiosk", "serialNumber": "ICD-1", "manufacturer": "Contoso", "model": "Laptop 7",
            "lastContactedDateTime": "2026-01-01T00:00:00Z", "managedDeviceId": "00000000-0000-0000-0000-000000000000",
        }),
    );
    write("Autopilot Devices/ICD-2.json", json!({ "serialNumber": "ICD-2", "groupTag": "" }));
    write("Scope Tags/Default.json", json!({ "displayName": "Default", "description": "", "isBuiltIn": true }));
    write("Scope Tags/Kiosks.json", json!({ "displayName": "Kiosks", "description": "K", "isBuiltIn": false }));
    write(
        "Enrollment Profiles/Windows/Kiosk profile.json",
        json!({
            "@odata.type": "#microsoft.graph.azureADWindowsAutopilotDeploymentProfile",
            "displayName": "Kiosk profile", "description": "", "deviceNameTemplate": "KIOSK-%RAND:4%",
            "roleScopeTagIds": ["Default", "Kiosks"],
            "createdDateTime": "2026-01-01T00:00:00Z", "lastModifiedDateTime": "2026-01-01T00:00:00Z",
            "assignments": [{ "target": {
                "@odata.type": "#microsoft.graph.groupAssignmentTarget", "groupName": "Kiosks",
                "groupType": "DynamicMembership",
                "membershipRule": "(device.devicePhysicalIds -any (_ -eq \"[OrderID]:Kiosk\"))",
            }}],
        }),
    );
    write("Readme.md", json!("not a module"));
}

#[tokio::test]
async fn an_intunecd_backup_is_loaded_with_its_groups_by_name() {
    let app = spawn_app().await;
    let cli = Cli::new(&app);
    let dir = tempfile::tempdir().unwrap();
    write_intunecd_backup(dir.path());
    let seeded = cli.run(&["seed", "--intunecd", dir.path().to_str().unwrap()]).await;
    assert_eq!(seeded.code, 0, "{seeded:?}");
    let token = app.user_token().await;
    assert_eq!(serials(&app.base_url, &token).await, ["ICD-1", "ICD-2"]);
    let tags = get(&app.base_url, &token, "/beta/deviceManagement/roleScopeTags").await;
    let names: Vec<&str> =
        tags["value"].as_array().unwrap().iter().map(|t| t["displayName"].as_str().unwrap()).collect();
    assert_eq!(names, ["Default", "Kiosks"]);
    let (_, groups) = send(&app, Method::GET, "/v1.0/groups", &token, None).await;
    assert_eq!(groups["value"][0]["displayName"], "Kiosks");
    assert_eq!(groups["value"][0]["groupTypes"], json!(["DynamicMembership"]), "{groups}");
    let profiles =
        get(&app.base_url, &token, "/beta/deviceManagement/windowsAutopilotDeploymentProfiles?$expand=assignments")
            .await;
    assert_eq!(profiles["value"][0]["deviceNameTemplate"], "KIOSK-%RAND:4%");
    assert_eq!(profiles["value"][0]["roleScopeTagIds"], json!(["0", "1"]), "IntuneCD's tag names become ids");
    assert_eq!(profiles["value"][0]["assignments"][0]["target"]["groupId"], groups["value"][0]["id"]);

    let missing = cli.run(&["seed", "--intunecd", dir.path().join("nothing").to_str().unwrap()]).await;
    assert_eq!(missing.code, 2, "{missing:?}");
    app.stop().await;
}

/// A password grant for a user of any tenant, through the development client id.
struct GraphClientFor;

impl GraphClientFor {
    async fn password(base: &str, tenant: &str, user: &str, password: &str) -> Result<String, String> {
        dmsync_client::GraphClient::new(base)
            .token_password(base, tenant, &dmsync_server::bootstrap::DEV_CLIENT_ID.to_string(), user, password)
            .await
            .map(|t| t.access_token)
            .map_err(|e| e.to_string())
    }
}

#[tokio::test]
async fn a_yaml_seed_is_read_and_an_alias_bomb_is_refused() {
    let app = spawn_app().await;
    let cli = Cli::new(&app);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("seed.yaml");
    std::fs::write(
        &file,
        "tenants:\n  - roleScopeTags:\n      - displayName: Berlin\n        description: Lab\n    groups:\n      - displayName: Lab devices\n        mailEnabled: false\n        mailNickname: lab\n        securityEnabled: true\n",
    )
    .unwrap();
    let seeded = cli.run(&["seed", file.to_str().unwrap()]).await;
    assert_eq!(seeded.code, 0, "{seeded:?}");
    let token = app.user_token().await;
    let (_, groups) = send(&app, Method::GET, "/v1.0/groups", &token, None).await;
    assert_eq!(groups["value"][0]["displayName"], "Lab devices");

    // Each level repeats the one before ten times: a billion strings from a few lines, inside a
    // user's body, which is read as any JSON value.
    let mut bomb = String::from(
        "tenants:\n  - users:\n      - a: &a [\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\"]\n",
    );
    let mut previous = "a";
    for level in ["b", "c", "d", "e", "f", "g", "h", "i", "j"] {
        let refs = vec![format!("*{previous}"); 10].join(",");
        bomb.push_str(&format!("        {level}: &{level} [{refs}]\n"));
        previous = level;
    }
    let file = dir.path().join("bomb.yml");
    std::fs::write(&file, bomb).unwrap();
    let refused = tokio::time::timeout(Duration::from_secs(30), cli.run(&["seed", file.to_str().unwrap()])).await;
    let refused = refused.expect("refused at once, not expanded");
    assert_eq!(refused.code, 2, "{refused:?}");
    assert!(refused.stderr.contains("budget"), "refused by the parser's budget: {refused:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_seed_that_fails_half_way_leaves_the_database_empty_for_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("d.db").display());
    let file = dir.path().join("seed.json");
    // The scope tag is created, then the user is refused: not in the tenant's domain.
    let broken = json!({ "tenants": [{
        "roleScopeTags": [{ "displayName": "Berlin" }],
        "users": [{ "userPrincipalName": "ann@elsewhere.example", "password": "p" }],
    }]});
    std::fs::write(&file, broken.to_string()).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_dmsync"))
        .args(["serve", "--listen", "127.0.0.1:0", "--db", &db, "--seed", file.to_str().unwrap()])
        .env("DMSYNC_LOG", "error")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--seed: user"), "{stderr}");
    assert!(!String::from_utf8_lossy(&output.stdout).contains("dmsync listening"), "no banner for a failed seed");

    // Fixed, the seed is applied on the next start: the first left nothing behind.
    let fixed = json!({ "tenants": [{ "roleScopeTags": [{ "displayName": "Berlin" }] }] });
    std::fs::write(&file, fixed.to_string()).unwrap();
    let server = RealServer::start(&db, &["--seed", file.to_str().unwrap()]);
    let token = dev_user_token(&server.base_url).await;
    let tags = get(&server.base_url, &token, "/beta/deviceManagement/roleScopeTags").await;
    let names: Vec<&str> =
        tags["value"].as_array().unwrap().iter().map(|t| t["displayName"].as_str().unwrap()).collect();
    assert_eq!(names, ["Default", "Berlin"]);
    server.terminate(Duration::from_secs(20));
}
