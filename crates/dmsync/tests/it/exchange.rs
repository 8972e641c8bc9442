//! Exchange connectors over HTTP: CRUD and its errors, full against delta syncs from a file
//! and from an HTTP source, the status transitions, a source going down or turning bad half-way,
//! a source large enough to stream in several batches, schedules driven by clock advances, and
//! the discovered devices in managedDevices.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::Query;
use axum::routing::get;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

const MANAGED: &str = "DeviceManagementManagedDevices.Read.All";

fn csv(devices: &[(&str, &str, &str)]) -> String {
    let mut text = String::from(
        "#TYPE Microsoft.Exchange.Data.Directory.SystemConfiguration.MobileDevice\n\
         \"DeviceId\",\"DeviceType\",\"DeviceModel\",\"DeviceOS\",\"FriendlyName\",\"UserDisplayName\",\"UserPrincipalName\",\"DeviceAccessState\",\"DeviceAccessStateReason\",\"FirstSyncTime\",\"WhenChanged\"\n",
    );
    for (id, state, changed) in devices {
        text.push_str(&format!(
            "\"{id}\",\"iPhone\",\"iPhone15,2\",\"iOS 17.1.2 21B101\",\"\",\"Kim\",\"kim@contoso.com\",\"{state}\",\"Global\",\"11/20/2026 9:15:00 AM\",\"{changed}\"\n"
        ));
    }
    text
}

struct Exchange {
    app: TestApp,
    token: String,
    reader: String,
    dir: tempfile::TempDir,
}

impl Exchange {
    async fn new(configure: impl FnOnce(&mut dmsync_server::Config)) -> Exchange {
        let app = spawn_app_with(configure).await;
        // A week's lifetime: the schedule test moves the Clock a day ahead.
        let week = Some(7 * 86400);
        let token = app.admin.mint_token(&app.tenant(), "delegated", &[RW], "work", week).await.unwrap();
        let reader = app.admin.mint_token(&app.tenant(), "delegated", &[MANAGED], "work", week).await.unwrap();
        Exchange { app, token, reader, dir: tempfile::tempdir().unwrap() }
    }

    /// Serves `source` on a port of its own and starts a server that allows its host:port.
    async fn with_source(source: axum::Router) -> (Exchange, String) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let host = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move { axum::serve(listener, source).await });
        let allowed = host.clone();
        (Exchange::new(move |c| c.exchange_source_allowed_hosts = vec![allowed]).await, host)
    }

    async fn create(&self, version: &str) -> Value {
        let r = self
            .app
            .raw(Method::POST, &format!("/{version}/deviceManagement/exchangeConnectors"), Some(&self.token))
            .json(&json!({
                "@odata.type": "#microsoft.graph.deviceManagementExchangeConnector",
                "status": "connected", "lastSyncDateTime": "2017-01-01T00:02:49.3205976-08:00",
                "primarySmtpAddress": "svc@contoso.com", "serverName": "ex01.contoso.com",
                "connectorServerName": "conn01", "exchangeConnectorType": "onPremises", "version": "19.1",
                "exchangeAlias": "", "exchangeOrganization": "Contoso",
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        r.json().await.unwrap()
    }

    /// A v1.0 connector whose source is a file of `devices`; returns its id.
    async fn with_file(&self, devices: &[(&str, &str, &str)]) -> String {
        let id = self.create("v1.0").await["id"].as_str().unwrap().to_owned();
        let path = self.write_file("devices.csv", &csv(devices));
        assert_eq!(self.set_source(&id, json!({"kind": "file", "path": path})).await, StatusCode::NO_CONTENT);
        id
    }

    async fn set_source(&self, id: &str, source: Value) -> StatusCode {
        self.app
            .raw(
                Method::PUT,
                &format!("/_dmsync/tenants/{}/exchangeConnectors/{id}/source", self.app.tenant()),
                Some("dmsync-dev-admin"),
            )
            .json(&source)
            .send()
            .await
            .unwrap()
            .status()
    }

    fn write_file(&self, name: &str, text: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }

    async fn sync(&self, id: &str, kind: &str) -> StatusCode {
        self.app
            .raw(Method::POST, &format!("/v1.0/deviceManagement/exchangeConnectors/{id}/sync"), Some(&self.token))
            .json(&json!({"syncType": kind}))
            .send()
            .await
            .unwrap()
            .status()
    }

    async fn connector(&self, id: &str) -> Value {
        self.app.get_json(&format!("/beta/deviceManagement/exchangeConnectors/{id}"), Some(&self.token)).await
    }

    /// Waits until no sync of the connector is running (a new sync request would start).
    async fn wait_until(&self, id: &str, status: &str, synced_after: &str) -> Value {
        // A deadline, not a timing: syncs of 20,000 devices run in a debug build on busy machines.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let c = self.connector(id).await;
            if c["status"] == status && c["lastSyncDateTime"].as_str().unwrap() > synced_after {
                return c;
            }
            assert!(tokio::time::Instant::now() < deadline, "connector never became {status}: {c}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until a sync failed: the connector is `disconnected`.
    async fn wait_until_disconnected(&self, id: &str) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let c = self.connector(id).await;
            if c["status"] == "disconnected" {
                return c;
            }
            assert!(tokio::time::Instant::now() < deadline, "the sync never failed: {c}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// How many devices managedDevices counts, with an optional `$filter`.
    async fn count(&self, filter: Option<&str>) -> i64 {
        let mut path = "/v1.0/deviceManagement/managedDevices?$count=true&$top=1".to_owned();
        if let Some(filter) = filter {
            path.push_str(&format!("&$filter={}", filter.replace(' ', "%20").replace('\'', "%27")));
        }
        self.app.get_json(&path, Some(&self.reader)).await["@odata.count"].as_i64().unwrap()
    }

    async fn devices(&self) -> Vec<Value> {
        let v =
            self.app.get_json("/v1.0/deviceManagement/managedDevices?$orderby=easDeviceId", Some(&self.reader)).await;
        v["value"].as_array().unwrap().clone()
    }
}

#[tokio::test]
async fn connector_crud_and_its_errors() {
    let x = Exchange::new(|_| {}).await;
    let created = x.create("v1.0").await;
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["status"], "connectionPending", "status belongs to the server");
    assert_eq!(created["lastSyncDateTime"], "0001-01-01T00:00:00Z");
    assert_eq!(created["exchangeConnectorType"], "onPremises");
    assert_eq!(
        created["@odata.context"],
        "https://graph.microsoft.com/v1.0/$metadata#deviceManagement/exchangeConnectors/$entity"
    );

    let r = x
        .app
        .raw(Method::PATCH, &format!("/beta/deviceManagement/exchangeConnectors/{id}"), Some(&x.token))
        .json(&json!({"serverName": "ex02.contoso.com", "exchangeConnectorType": "hosted"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let patched: Value = r.json().await.unwrap();
    assert_eq!(
        (patched["serverName"].as_str(), patched["exchangeConnectorType"].as_str()),
        (Some("ex02.contoso.com"), Some("hosted"))
    );
    assert_eq!(patched["version"], "19.1");

    let list = x
        .app
        .get_json(
            "/v1.0/deviceManagement/exchangeConnectors?$filter=serverName eq 'EX02.contoso.com'&$count=true",
            Some(&x.token),
        )
        .await;
    assert_eq!(list["@odata.count"], 1);

    for (body, needle) in [
        (json!({"exchangeConnectorType": "cloudy"}), "unknown variant"),
        (json!({"serverName": 5}), "invalid type"),
        (json!({"colour": "blue"}), "unknown field"),
    ] {
        let r = x
            .app
            .raw(Method::PATCH, &format!("/v1.0/deviceManagement/exchangeConnectors/{id}"), Some(&x.token))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{body}");
        assert!(r.text().await.unwrap().contains(needle), "{body}");
    }
    for body in [json!({}), json!({"syncType": "quickSync"}), json!({"syncType": null}), json!({"syncType": 1})] {
        let r = x
            .app
            .raw(Method::POST, &format!("/v1.0/deviceManagement/exchangeConnectors/{id}/sync"), Some(&x.token))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{body}");
    }
    let unknown = "00000000-0000-4000-8000-000000000000";
    assert_eq!(x.sync(unknown, "fullSync").await, StatusCode::NOT_FOUND);
    // Application tokens may not sync under the original profile, as for the Autopilot sync.
    let app_token = x.app.app_token().await;
    let r = x
        .app
        .raw(Method::POST, &format!("/v1.0/deviceManagement/exchangeConnectors/{id}/sync"), Some(&app_token))
        .json(&json!({"syncType": "fullSync"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // Another tenant sees nothing.
    x.app.admin.create_tenant("ffffffff-ffff-4fff-8fff-ffffffffffff", "other.onmicrosoft.com").await.unwrap();
    let other =
        x.app.admin.mint_token("ffffffff-ffff-4fff-8fff-ffffffffffff", "delegated", &[RW], "work", None).await.unwrap();
    let r = x
        .app
        .raw(Method::GET, &format!("/v1.0/deviceManagement/exchangeConnectors/{id}"), Some(&other))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    let r = x
        .app
        .raw(Method::DELETE, &format!("/v1.0/deviceManagement/exchangeConnectors/{id}"), Some(&x.token))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = x
        .app
        .raw(Method::GET, &format!("/v1.0/deviceManagement/exchangeConnectors/{id}"), Some(&x.token))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    x.app.stop().await;
}

#[tokio::test]
async fn full_and_delta_syncs_from_a_file_and_a_source_going_down() {
    let x = Exchange::new(|_| {}).await;
    let id = x.create("beta").await["id"].as_str().unwrap().to_owned();
    assert_eq!(x.sync(&id, "fullSync").await, StatusCode::NO_CONTENT, "no source yet: the sync runs and fails");
    let c = x.wait_until(&id, "disconnected", "").await;
    assert_eq!(c["lastSyncDateTime"], "0001-01-01T00:00:00Z", "a failed sync does not move lastSyncDateTime");

    let path = x.write_file(
        "devices.csv",
        &csv(&[
            ("A", "Allowed", "11/21/2026 8:00:00 AM"),
            ("B", "Allowed", "11/21/2026 8:00:00 AM"),
            ("C", "Quarantined", "11/21/2026 8:00:00 AM"),
        ]),
    );
    assert_eq!(x.set_source(&id, json!({"kind": "file", "path": path})).await, StatusCode::NO_CONTENT);
    assert_eq!(x.sync(&id, "fullSync").await, StatusCode::NO_CONTENT);
    let first = x.wait_until(&id, "connected", "0001").await;
    let devices = x.devices().await;
    assert_eq!(devices.len(), 3);
    let c = &devices[2];
    assert_eq!(
        (c["easDeviceId"].as_str(), c["managementAgent"].as_str(), c["easActivated"].as_bool()),
        (Some("C"), Some("eas"), Some(true))
    );
    assert_eq!(
        (c["exchangeAccessState"].as_str(), c["exchangeAccessStateReason"].as_str()),
        (Some("quarantined"), Some("exchangeGlobalRule"))
    );
    assert_eq!(
        (c["operatingSystem"].as_str(), c["osVersion"].as_str(), c["manufacturer"].as_str()),
        (Some("iOS"), Some("17.1.2"), Some("Apple"))
    );
    assert_eq!(
        (c["userPrincipalName"].as_str(), c["emailAddress"].as_str()),
        (Some("kim@contoso.com"), Some("kim@contoso.com"))
    );
    assert_eq!(c["exchangeLastSuccessfulSyncDateTime"], "2026-11-21T08:00:00.0000000Z");
    let one = x
        .app
        .get_json(&format!("/beta/deviceManagement/managedDevices/{}", c["id"].as_str().unwrap()), Some(&x.reader))
        .await;
    assert_eq!(one["deviceName"], "iPhone15,2");

    // B is gone from Exchange and A changed. A delta sees A's change but not B's deletion.
    let path = x.write_file(
        "devices.csv",
        &csv(&[("A", "Blocked", "11/22/2026 9:00:00 AM"), ("C", "Quarantined", "11/21/2026 8:00:00 AM")]),
    );
    let _ = path;
    assert_eq!(x.sync(&id, "deltaSync").await, StatusCode::NO_CONTENT);
    let second = x.wait_until(&id, "connected", first["lastSyncDateTime"].as_str().unwrap()).await;
    let devices = x.devices().await;
    assert_eq!(devices.len(), 3, "a delta does not see deletions");
    assert_eq!(devices[0]["exchangeAccessState"], "blocked");
    // A full sync removes B.
    assert_eq!(x.sync(&id, "fullSync").await, StatusCode::NO_CONTENT);
    let third = x.wait_until(&id, "connected", second["lastSyncDateTime"].as_str().unwrap()).await;
    let ids: Vec<String> = x.devices().await.iter().map(|d| d["easDeviceId"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids, ["A", "C"]);

    // The source goes away: the sync fails, the connector is disconnected, the devices stay.
    std::fs::remove_file(x.dir.path().join("devices.csv")).unwrap();
    x.app.admin.advance_clock(1.0).await.unwrap();
    assert_eq!(x.sync(&id, "deltaSync").await, StatusCode::NO_CONTENT);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while x.connector(&id).await["status"] != "disconnected" {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(x.connector(&id).await["lastSyncDateTime"], third["lastSyncDateTime"]);
    assert_eq!(x.devices().await.len(), 2);
    // managedDevices needs its own permission.
    let r = x.app.raw(Method::GET, "/v1.0/deviceManagement/managedDevices", Some(&x.token)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    x.app.stop().await;
}

/// The properties of `managedDevice` with their JSON types (`s` string, `t` timestamp, `b`
/// boolean, `n` number, `a` array, `o` object), as the Graph documentation's resource pages and
/// example responses (list in v1.0, get in beta) show them; the examples carry the same property
/// set as the resource pages.
const V1_DOCUMENTED: &[&str] = &[
    "id:s",
    "userId:s",
    "deviceName:s",
    "managedDeviceOwnerType:s",
    "deviceActionResults:a",
    "enrolledDateTime:t",
    "lastSyncDateTime:t",
    "operatingSystem:s",
    "complianceState:s",
    "jailBroken:s",
    "managementAgent:s",
    "osVersion:s",
    "easActivated:b",
    "easDeviceId:s",
    "easActivationDateTime:t",
    "azureADRegistered:b",
    "deviceEnrollmentType:s",
    "activationLockBypassCode:s",
    "emailAddress:s",
    "azureADDeviceId:s",
    "deviceRegistrationState:s",
    "deviceCategoryDisplayName:s",
    "isSupervised:b",
    "exchangeLastSuccessfulSyncDateTime:t",
    "exchangeAccessState:s",
    "exchangeAccessStateReason:s",
    "remoteAssistanceSessionUrl:s",
    "remoteAssistanceSessionErrorDetails:s",
    "isEncrypted:b",
    "userPrincipalName:s",
    "model:s",
    "manufacturer:s",
    "imei:s",
    "complianceGracePeriodExpirationDateTime:t",
    "serialNumber:s",
    "phoneNumber:s",
    "androidSecurityPatchLevel:s",
    "userDisplayName:s",
    "configurationManagerClientEnabledFeatures:o",
    "wiFiMacAddress:s",
    "deviceHealthAttestationState:o",
    "subscriberCarrier:s",
    "meid:s",
    "totalStorageSpaceInBytes:n",
    "freeStorageSpaceInBytes:n",
    "managedDeviceName:s",
    "partnerReportedThreatState:s",
    "requireUserEnrollmentApproval:b",
    "managementCertificateExpirationDate:t",
    "iccid:s",
    "udid:s",
    "notes:s",
    "ethernetMacAddress:s",
    "physicalMemoryInBytes:n",
];
/// What beta's `managedDevice` has besides v1.0's properties.
const BETA_ONLY_DOCUMENTED: &[&str] = &[
    "hardwareInformation:o",
    "ownerType:s",
    "managementState:s",
    "chassisType:s",
    "deviceType:s",
    "aadRegistered:b",
    "lostModeState:s",
    "azureActiveDirectoryDeviceId:s",
    "retireAfterDateTime:t",
    "usersLoggedOn:a",
    "preferMdmOverGroupPolicyAppliedDateTime:t",
    "autopilotEnrolled:b",
    "roleScopeTagIds:a",
    "windowsActiveMalwareCount:n",
    "windowsRemediatedMalwareCount:n",
    "configurationManagerClientHealthState:o",
    "configurationManagerClientInformation:o",
    "processorArchitecture:s",
    "specificationVersion:s",
    "joinType:s",
    "skuFamily:s",
    "skuNumber:n",
    "managementFeatures:s",
    "chromeOSDeviceInfo:a",
    "enrollmentProfileName:s",
    "bootstrapTokenEscrowed:b",
    "deviceFirmwareConfigurationInterfaceManaged:b",
];
/// The complex values' members, per version where they differ.
const FEATURES_V1: &[&str] = &[
    "inventory:b",
    "modernApps:b",
    "resourceAccess:b",
    "deviceConfiguration:b",
    "compliancePolicy:b",
    "windowsUpdateForBusiness:b",
];
const FEATURES_BETA_ONLY: &[&str] = &["endpointProtection:b", "officeApps:b"];
const HEALTH_ATTESTATION: &[&str] = &[
    "lastUpdateDateTime:s",
    "contentNamespaceUrl:s",
    "deviceHealthAttestationStatus:s",
    "contentVersion:s",
    "issuedDateTime:t",
    "attestationIdentityKey:s",
    "resetCount:n",
    "restartCount:n",
    "dataExcutionPolicy:s",
    "bitLockerStatus:s",
    "bootManagerVersion:s",
    "codeIntegrityCheckVersion:s",
    "secureBoot:s",
    "bootDebugging:s",
    "operatingSystemKernelDebugging:s",
    "codeIntegrity:s",
    "testSigning:s",
    "safeMode:s",
    "windowsPE:s",
    "earlyLaunchAntiMalwareDriverProtection:s",
    "virtualSecureMode:s",
    "pcrHashAlgorithm:s",
    "bootAppSecurityVersion:s",
    "bootManagerSecurityVersion:s",
    "tpmVersion:s",
    "pcr0:s",
    "secureBootConfigurationPolicyFingerPrint:s",
    "codeIntegrityPolicy:s",
    "bootRevisionListInfo:s",
    "operatingSystemRevListInfo:s",
    "healthStatusMismatchInfo:s",
    "healthAttestationSupportedStatus:s",
];
const HARDWARE_INFORMATION: &[&str] = &[
    "serialNumber:s",
    "totalStorageSpace:n",
    "freeStorageSpace:n",
    "imei:s",
    "meid:s",
    "manufacturer:s",
    "model:s",
    "phoneNumber:s",
    "subscriberCarrier:s",
    "cellularTechnology:s",
    "wifiMac:s",
    "operatingSystemLanguage:s",
    "isSupervised:b",
    "isEncrypted:b",
    "batterySerialNumber:s",
    "batteryHealthPercentage:n",
    "batteryChargeCycles:n",
    "isSharedDevice:b",
    "sharedDeviceCachedUsers:a",
    "tpmSpecificationVersion:s",
    "operatingSystemEdition:s",
    "deviceFullQualifiedDomainName:s",
    "deviceGuardVirtualizationBasedSecurityHardwareRequirementState:s",
    "deviceGuardVirtualizationBasedSecurityState:s",
    "deviceGuardLocalSystemAuthorityCredentialGuardState:s",
    "osBuildNumber:s",
    "operatingSystemProductType:n",
    "ipAddressV4:s",
    "subnetAddress:s",
    "esimIdentifier:s",
    "systemManagementBIOSVersion:s",
    "tpmManufacturer:s",
    "tpmVersion:s",
    "wiredIPv4Addresses:a",
    "batteryLevelPercentage:n",
    "residentUsersCount:n",
    "productName:s",
    "deviceLicensingStatus:s",
    "deviceLicensingLastErrorCode:n",
    "deviceLicensingLastErrorDescription:s",
];
const CLIENT_HEALTH: &[&str] = &["state:s", "errorCode:n", "lastSyncDateTime:t"];
const CLIENT_INFORMATION: &[&str] = &["clientIdentifier:s", "isBlocked:b", "clientVersion:s"];

/// The documented property names of a version's `managedDevice`.
fn documented_names(beta: bool) -> Vec<&'static str> {
    V1_DOCUMENTED
        .iter()
        .chain(if beta { BETA_ONLY_DOCUMENTED } else { &[] })
        .map(|p| p.split_once(':').unwrap().0)
        .collect()
}

/// Holds `object` to exactly the documented members, each of its JSON type.
fn assert_shape(what: &str, object: &Value, documented: &[&[&str]]) {
    let object = object.as_object().unwrap_or_else(|| panic!("{what} is not an object: {object}"));
    let mut expected = std::collections::BTreeMap::new();
    for (name, kind) in documented.iter().flat_map(|list| list.iter()).map(|p| p.split_once(':').unwrap()) {
        expected.insert(name, kind);
    }
    let names: std::collections::BTreeSet<&str> = object.keys().map(String::as_str).collect();
    let documented_names: std::collections::BTreeSet<&str> = expected.keys().copied().collect();
    assert_eq!(names, documented_names, "{what}: the property set differs from the documented one");
    for (name, kind) in expected {
        let value = &object[name];
        let ok = match kind {
            "s" => value.is_string(),
            "t" => value.as_str().is_some_and(|t| t.ends_with('Z') && t.len() >= 20 && &t[4..5] == "-"),
            "b" => value.is_boolean(),
            "n" => value.is_number(),
            "a" => value.is_array(),
            "o" => value.is_object(),
            _ => unreachable!(),
        };
        assert!(ok, "{what}.{name} is not of the documented type {kind}: {value}");
    }
}

/// Every documented property of each version, of the documented JSON type, in a list and a
/// get; `$select` takes each of them, and v1.0 refuses beta's.
#[tokio::test]
async fn a_managed_device_carries_every_documented_property_of_its_version() {
    let x = Exchange::new(|_| {}).await;
    let id = x.with_file(&[("A", "Allowed", "11/21/2026 8:00:00 AM")]).await;
    assert_eq!(x.sync(&id, "fullSync").await, StatusCode::NO_CONTENT);
    x.wait_until(&id, "connected", "0001").await;

    for (version, beta) in [("v1.0", false), ("beta", true)] {
        let page = x.app.get_json(&format!("/{version}/deviceManagement/managedDevices"), Some(&x.reader)).await;
        let listed = page["value"][0].clone();
        let device_id = listed["id"].as_str().unwrap().to_owned();
        let got =
            x.app.get_json(&format!("/{version}/deviceManagement/managedDevices/{device_id}"), Some(&x.reader)).await;
        for (how, mut device) in [("list", listed), ("get", got)] {
            let what = format!("{version} {how}");
            if let Some(object) = device.as_object_mut() {
                object.remove("@odata.context");
            }
            let mut top = vec![V1_DOCUMENTED];
            let mut features = vec![FEATURES_V1];
            if beta {
                top.push(BETA_ONLY_DOCUMENTED);
                features.push(FEATURES_BETA_ONLY);
            }
            assert_shape(&what, &device, &top);
            assert_shape(&what, &device["configurationManagerClientEnabledFeatures"], &features);
            assert_shape(&what, &device["deviceHealthAttestationState"], &[HEALTH_ATTESTATION]);
            if beta {
                assert_shape(&what, &device["hardwareInformation"], &[HARDWARE_INFORMATION]);
                assert_shape(&what, &device["configurationManagerClientHealthState"], &[CLIENT_HEALTH]);
                assert_shape(&what, &device["configurationManagerClientInformation"], &[CLIENT_INFORMATION]);
                assert_eq!(device["hardwareInformation"]["manufacturer"], "Apple");
                assert_eq!(
                    (device["deviceType"].as_str(), device["ownerType"].as_str()),
                    (Some("iPhone"), Some("unknown"))
                );
            }
            // Values dmsync has no data for are Graph's "unknown".
            assert_eq!(
                (
                    device["partnerReportedThreatState"].as_str(),
                    device["imei"].as_str(),
                    device["isEncrypted"].as_bool()
                ),
                (Some("unknown"), Some(""), Some(false))
            );
            assert_eq!(device["complianceGracePeriodExpirationDateTime"], "0001-01-01T00:00:00Z");
            assert_eq!(device["totalStorageSpaceInBytes"], 0);
        }

        // `$select` takes every property of the version, one at a time and all at once.
        let names = documented_names(beta);
        for name in &names {
            let one = x
                .app
                .get_json(
                    &format!("/{version}/deviceManagement/managedDevices/{device_id}?$select={name}"),
                    Some(&x.reader),
                )
                .await;
            assert!(one.get(*name).is_some(), "{version} $select={name}: {one}");
        }
        let all = x
            .app
            .get_json(
                &format!("/{version}/deviceManagement/managedDevices?$select={}", names.join(",")),
                Some(&x.reader),
            )
            .await;
        assert_eq!(all["value"][0].as_object().unwrap().len(), names.len());
    }
    // v1.0 has none of beta's properties, and each version's OpenAPI document lists its own.
    for (version, beta) in [("v1.0", false), ("beta", true)] {
        let doc = x.app.get_json(&format!("/_dmsync/openapi.json?version={version}"), None).await;
        let page = &doc["paths"][format!("/{version}/deviceManagement/managedDevices")]["get"]["responses"]["200"]["content"]
            ["application/json"]["schema"];
        let item = &page["properties"]["value"]["items"];
        let name = item["$ref"].as_str().expect("a reference").rsplit('/').next().unwrap();
        let schema = &doc["components"]["schemas"][name];
        let mut declared: Vec<&str> = schema["properties"].as_object().unwrap().keys().map(String::as_str).collect();
        let mut documented = documented_names(beta);
        declared.sort_unstable();
        documented.sort_unstable();
        assert_eq!(declared, documented, "{version}'s OpenAPI managedDevice");
    }
    let r = x
        .app
        .raw(Method::GET, "/v1.0/deviceManagement/managedDevices?$select=hardwareInformation", Some(&x.reader))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    x.app.stop().await;
}

/// An HTTP source: allow-listed hosts only, `?changedSince=` on deltas, and a slow source makes
/// a second sync request 409 while the first runs.
#[tokio::test]
async fn http_sources_are_allow_listed_and_get_changed_since() {
    let seen: Arc<Mutex<Vec<Option<String>>>> = Arc::default();
    let log = seen.clone();
    let source = axum::Router::new().route(
        "/devices",
        get(move |Query(q): Query<std::collections::HashMap<String, String>>| {
            let log = log.clone();
            async move {
                log.lock().unwrap().push(q.get("changedSince").cloned());
                tokio::time::sleep(Duration::from_millis(500)).await;
                axum::Json(json!([
                    {"DeviceId": "H1", "DeviceType": "Android", "DeviceModel": "Pixel 8", "DeviceOS": "Android 15",
                     "DeviceAccessState": "Allowed", "PrimarySmtpAddress": "lee@contoso.com", "WhenChanged": "2026-11-22T10:00:00Z"}
                ]))
            }
        }),
    );
    let (x, host) = Exchange::with_source(source).await;
    let id = x.create("v1.0").await["id"].as_str().unwrap().to_owned();
    let metadata = json!({"kind": "http", "url": "http://169.254.169.254/latest/meta-data"});
    assert_eq!(x.set_source(&id, metadata).await, StatusCode::BAD_REQUEST, "not on the allow-list");
    assert_eq!(x.set_source(&id, json!({"kind": "ftp", "url": "x"})).await, StatusCode::BAD_REQUEST);
    assert_eq!(
        x.set_source(&id, json!({"kind": "http", "url": format!("http://{host}/devices")})).await,
        StatusCode::NO_CONTENT
    );

    assert_eq!(x.sync(&id, "fullSync").await, StatusCode::NO_CONTENT);
    let r = x
        .app
        .raw(Method::POST, &format!("/v1.0/deviceManagement/exchangeConnectors/{id}/sync"), Some(&x.token))
        .json(&json!({"syncType": "deltaSync"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT, "one sync of a connector at a time");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "Conflict");
    let first = x.wait_until(&id, "connected", "0001").await;
    assert_eq!(x.sync(&id, "deltaSync").await, StatusCode::NO_CONTENT);
    x.wait_until(&id, "connected", first["lastSyncDateTime"].as_str().unwrap()).await;
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen, [None, Some("2026-11-22T10:00:00Z".to_owned())], "a delta asks for changes since the watermark");
    let devices = x.devices().await;
    assert_eq!(
        (devices[0]["manufacturer"].as_str(), devices[0]["emailAddress"].as_str()),
        (Some("Google"), Some("lee@contoso.com"))
    );
    x.app.stop().await;
}

#[tokio::test]
async fn schedules_run_delta_every_15_minutes_and_full_every_day() {
    let x = Exchange::new(|_| {}).await;
    let id = x.with_file(&[("S1", "Allowed", "11/21/2026 8:00:00 AM")]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(x.connector(&id).await["status"], "connectionPending", "nothing is due right after the source is set");

    x.app.admin.advance_clock(16.0 * 60.0).await.unwrap();
    let first = x.wait_until(&id, "connected", "0001").await;
    assert_eq!(x.devices().await.len(), 1);

    // The delta ran; a full one is due a day after the source was set. Between them, no sync
    // starts by itself, and a device removed from Exchange stays until the full sync.
    x.write_file("devices.csv", &csv(&[]));
    x.app.admin.advance_clock(16.0 * 60.0).await.unwrap();
    let second = x.wait_until(&id, "connected", first["lastSyncDateTime"].as_str().unwrap()).await;
    assert_eq!(x.devices().await.len(), 1, "scheduled deltas do not delete");
    x.app.admin.advance_clock(24.0 * 3600.0).await.unwrap();
    x.wait_until(&id, "connected", second["lastSyncDateTime"].as_str().unwrap()).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !x.devices().await.is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "the scheduled full sync never removed the device");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    x.app.stop().await;
}

/// One device of a JSON source, as ConvertTo-Json writes it.
fn json_device(id: &str, state: &str, changed: &str) -> String {
    json!({"DeviceId": id, "DeviceType": "iPhone", "DeviceModel": "iPhone15,2", "DeviceOS": "iOS 17.1.2 21B101",
           "DeviceAccessState": state, "UserPrincipalName": "kim@contoso.com", "WhenChanged": changed})
    .to_string()
}

/// A source that turns bad after several batches were read fails the sync, and the sync changes
/// no device (nothing it read shows, nothing is removed); the next good sync converges.
#[tokio::test]
async fn a_malformed_record_half_way_fails_the_sync_without_changing_devices() {
    let x = Exchange::new(|_| {}).await;
    let id = x.create("v1.0").await["id"].as_str().unwrap().to_owned();
    let old = [
        ("A", "Allowed", "2026-11-21T08:00:00Z"),
        ("B", "Allowed", "2026-11-21T08:00:00Z"),
        ("C", "Allowed", "2026-11-21T08:00:00Z"),
    ];
    let listed: Vec<String> = old.iter().map(|(d, s, c)| json_device(d, s, c)).collect();
    let good = x.write_file("good.json", &format!("[{}]", listed.join(",")));
    assert_eq!(x.set_source(&id, json!({"kind": "file", "path": good})).await, StatusCode::NO_CONTENT);
    assert_eq!(x.sync(&id, "fullSync").await, StatusCode::NO_CONTENT);
    let mut synced = x.wait_until(&id, "connected", "0001").await;

    // 12,000 records in which A is blocked, broken at the 8,001st: a JSON syntax error.
    let mut records = vec![json_device("A", "Blocked", "2026-11-22T08:00:00Z")];
    records.extend((1..12_000).map(|n| json_device(&format!("N{n:05}"), "Allowed", "2026-11-22T08:00:00Z")));
    records[8_000] = r#"{"DeviceId": "N08000" "DeviceType": "iPhone"}"#.to_owned();
    let path = x.write_file("devices.json", &format!("[{}]", records.join(",")));
    // The same organization as Export-Csv writes it, with a row that has no DeviceId.
    let rows: Vec<(String, &str, &str)> = (0..12_000)
        .map(|n| (if n == 8_000 { String::new() } else { format!("N{n:05}") }, "Allowed", "11/22/2026 8:00:00 AM"))
        .collect();
    let rows: Vec<(&str, &str, &str)> = rows.iter().map(|(d, s, c)| (d.as_str(), *s, *c)).collect();
    let csv_path = x.write_file("devices.csv", &csv(&rows));

    for (source, kind) in [(&path, "deltaSync"), (&csv_path, "fullSync"), (&path, "fullSync")] {
        assert_eq!(x.set_source(&id, json!({"kind": "file", "path": source})).await, StatusCode::NO_CONTENT);
        assert_eq!(x.sync(&id, kind).await, StatusCode::NO_CONTENT);
        let failed = x.wait_until_disconnected(&id).await;
        assert_eq!(
            failed["lastSyncDateTime"], synced["lastSyncDateTime"],
            "{source} {kind}: a failed sync does not move lastSyncDateTime"
        );
        let devices = x.devices().await;
        let seen: Vec<(&str, &str)> = devices
            .iter()
            .map(|d| (d["easDeviceId"].as_str().unwrap(), d["exchangeAccessState"].as_str().unwrap()))
            .collect();
        assert_eq!(seen, [("A", "allowed"), ("B", "allowed"), ("C", "allowed")], "{source} {kind}: no device changed");
        assert_eq!(x.count(None).await, 3);
        // A delta of the good source changes nothing and reconnects, so the next failure shows.
        assert_eq!(x.set_source(&id, json!({"kind": "file", "path": good})).await, StatusCode::NO_CONTENT);
        assert_eq!(x.sync(&id, "deltaSync").await, StatusCode::NO_CONTENT);
        synced = x.wait_until(&id, "connected", synced["lastSyncDateTime"].as_str().unwrap()).await;
    }

    // Fixed, the source syncs whole: what the failed attempts read does not linger.
    records[8_000] = json_device("N08000", "Allowed", "2026-11-22T08:00:00Z");
    std::fs::write(&path, format!("[{}]", records.join(","))).unwrap();
    assert_eq!(x.set_source(&id, json!({"kind": "file", "path": path})).await, StatusCode::NO_CONTENT);
    assert_eq!(x.sync(&id, "fullSync").await, StatusCode::NO_CONTENT);
    x.wait_until(&id, "connected", synced["lastSyncDateTime"].as_str().unwrap()).await;
    assert_eq!(x.count(None).await, 12_000);
    assert_eq!(x.count(Some("easDeviceId eq 'B'")).await, 0, "the full sync removed B");
    assert_eq!(x.devices().await[0]["exchangeAccessState"], "blocked");
    x.app.stop().await;
}

/// An HTTP source of 20,000 devices, read as a stream in several batches: full syncs converge
/// on each inventory exactly, and a delta asks for and applies the changes only.
#[tokio::test]
async fn a_large_http_source_syncs_in_batches() {
    const DEVICES: usize = 20_000;
    const SHIFT: usize = 1_000;
    let round = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let serving = round.clone();
    let source = axum::Router::new().route(
        "/devices",
        get(move |Query(q): Query<std::collections::HashMap<String, String>>| {
            let round = serving.load(std::sync::atomic::Ordering::SeqCst);
            async move {
                let first = round * SHIFT;
                let records: Vec<String> = if q.contains_key("changedSince") {
                    // The delta: one device changed and one new since the last full sync.
                    vec![
                        json_device(&format!("L{first:06}"), "Quarantined", "2026-11-25T08:00:00Z"),
                        json_device("NEW", "Allowed", "2026-11-25T08:00:00Z"),
                    ]
                } else {
                    (first..first + DEVICES)
                        .map(|n| json_device(&format!("L{n:06}"), "Allowed", &format!("2026-11-2{round}T08:00:00Z")))
                        .collect()
                };
                ([(axum::http::header::CONTENT_TYPE, "application/json")], format!("[{}]", records.join(",")))
            }
        }),
    );
    let (x, host) = Exchange::with_source(source).await;
    let id = x.create("v1.0").await["id"].as_str().unwrap().to_owned();
    assert_eq!(
        x.set_source(&id, json!({"kind": "http", "url": format!("http://{host}/devices")})).await,
        StatusCode::NO_CONTENT
    );
    let mut synced = "0001".to_owned();
    for r in 0..2 {
        round.store(r, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(x.sync(&id, "fullSync").await, StatusCode::NO_CONTENT);
        synced = x.wait_until(&id, "connected", &synced).await["lastSyncDateTime"].as_str().unwrap().to_owned();
        let first = r * SHIFT;
        assert_eq!(x.count(None).await, DEVICES as i64, "round {r}");
        for (n, want) in [(first, 1), (first + DEVICES - 1, 1), (first + DEVICES, 0)] {
            assert_eq!(x.count(Some(&format!("easDeviceId eq 'L{n:06}'"))).await, want, "round {r}: L{n:06}");
        }
        if first > 0 {
            assert_eq!(
                x.count(Some(&format!("easDeviceId eq 'L{:06}'", first - 1))).await,
                0,
                "removed by the full sync"
            );
        }
    }
    assert_eq!(x.sync(&id, "deltaSync").await, StatusCode::NO_CONTENT);
    x.wait_until(&id, "connected", &synced).await;
    assert_eq!(x.count(None).await, DEVICES as i64 + 1, "a delta adds and does not remove");
    assert_eq!(x.count(Some("exchangeAccessState eq 'quarantined'")).await, 1);
    x.app.stop().await;
}
