//! One conformance suite for every storage backend. Each test takes a fresh, migrated store;
//! `backend_tests!` instantiates the whole suite per backend (SQLite in memory, SQLite on disk,
//! and PostgreSQL, where each test gets a database of its own), so a backend is one more line,
//! not a copy of the tests.

use dmsync_core::autopilot::{
    DeviceField, DeviceQuery, NewRegistration, RegistrationProblem, SyncDecision, SyncOutcome, SyncStatus,
};
use dmsync_core::deployment_profiles::{
    AssignmentTarget, MAX_PROFILES_PER_TENANT, ProfileContent, ProfileField, ProfileKind, ProfileQuery, ProfileRefusal,
    ProfileSettings,
};
use dmsync_core::entra::{EntraDevice, EntraDeviceField, EntraDeviceQuery};
use dmsync_core::groups::{
    DYNAMIC_MEMBERSHIP, EvaluationStats, Group, GroupField, GroupQuery, MemberChange, ProcessingState,
};
use dmsync_core::identity::Tenant;
use dmsync_core::jobs::JobState;
use dmsync_core::jobs::{JobPayload, NewJob};
use dmsync_core::query::{Cursor as DeviceCursor, ListQuery, SortDirection};
use dmsync_core::scope_tags::{RoleScopeTag, RoleScopeTagChanges, RoleScopeTagField, RoleScopeTagRefusal};
use dmsync_core::store::Topology;
use dmsync_core::{
    AutopilotDeviceId, Backend, ConnectorId, DeploymentProfileId, EntraDeviceId, GroupId, RoleScopeTagId, StoreError,
    TenantId,
};
use dmsync_store::testdb::TestDatabase;
use time::{Duration, OffsetDateTime};
use uuid::uuid;

const A: TenantId = TenantId::from_uuid(uuid!("aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"));
const B: TenantId = TenantId::from_uuid(uuid!("bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb"));
const LEASE: Duration = Duration::seconds(30);
const COOLDOWN: Duration = Duration::minutes(10);

#[derive(serde::Serialize, serde::Deserialize)]
struct AutopilotSync {}
impl JobPayload for AutopilotSync {
    const KIND: &'static str = "autopilotSync";
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ImportAutopilotDevices {}
impl JobPayload for ImportAutopilotDevices {
    const KIND: &'static str = "importAutopilotDevices";
}

#[derive(serde::Serialize, serde::Deserialize)]
struct DeregisterAutopilotDevice {}
impl JobPayload for DeregisterAutopilotDevice {
    const KIND: &'static str = "deregisterAutopilotDevice";
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExchangeConnectorSync {
    connector_id: ConnectorId,
    sync_type: String,
}
impl JobPayload for ExchangeConnectorSync {
    const KIND: &'static str = "exchangeConnectorSync";
}

fn sync_job() -> NewJob {
    NewJob::new(&AutopilotSync {})
}

fn import_job() -> NewJob {
    NewJob::new(&ImportAutopilotDevices {})
}

fn deletion_job() -> NewJob {
    NewJob::new(&DeregisterAutopilotDevice {})
}

#[derive(serde::Serialize, serde::Deserialize)]
struct AssignDeploymentProfiles {}
impl JobPayload for AssignDeploymentProfiles {
    const KIND: &'static str = "assignDeploymentProfiles";
}

fn assignment_job() -> NewJob {
    NewJob::new(&AssignDeploymentProfiles {})
}

fn connector_job(connector_id: ConnectorId, sync_type: dmsync_core::exchange::SyncType) -> NewJob {
    NewJob::new(&ExchangeConnectorSync { connector_id, sync_type: sync_type.as_str().to_owned() })
}

async fn with_tenants(store: &dyn Backend) {
    store
        .create_tenant(&Tenant { id: A, domain: "a.onmicrosoft.com".into() }, OffsetDateTime::now_utc())
        .await
        .unwrap();
    store
        .create_tenant(&Tenant { id: B, domain: "b.onmicrosoft.com".into() }, OffsetDateTime::now_utc())
        .await
        .unwrap();
}

fn reg(serial: &str, hash: &str) -> NewRegistration {
    NewRegistration {
        serial_number: serial.into(),
        hardware_hash: hash.as_bytes().to_vec(),
        manufacturer: "Contoso".into(),
        model: "M1".into(),
        group_tag: String::new(),
        purchase_order_identifier: String::new(),
        product_key: String::new(),
    }
}

async fn tenants_are_unique_by_id_and_domain(store: &dyn Backend) {
    with_tenants(store).await;
    let dup =
        store.create_tenant(&Tenant { id: A, domain: "other.onmicrosoft.com".into() }, OffsetDateTime::now_utc()).await;
    assert!(matches!(dup, Err(StoreError::AlreadyExists(_))));
    assert_eq!(store.tenant_by_domain("A.ONMICROSOFT.COM").await.unwrap().unwrap().id, A, "domains ignore case");
    assert_eq!(store.tenant_count().await.unwrap(), 2);
    let listed = store.list_tenants(10).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed.windows(2).all(|w| w[0].domain <= w[1].domain), "by domain");
    assert_eq!(store.list_tenants(1).await.unwrap().len(), 1);
}

/// The store never reads the wall clock: a tenant's creation time is the `now` it was given,
/// which after a clock advance is far from the wall clock.
async fn tenant_created_time_comes_from_the_clock(store: &dyn Backend) {
    let advanced =
        OffsetDateTime::from_unix_timestamp(OffsetDateTime::now_utc().unix_timestamp()).unwrap() + Duration::days(400);
    store.create_tenant(&Tenant { id: A, domain: "a.onmicrosoft.com".into() }, advanced).await.unwrap();
    assert_eq!(store.tenant_created_at(A).await.unwrap(), Some(advanced));
    assert_eq!(store.tenant_created_at(B).await.unwrap(), None, "no such tenant");
}

/// An authorization code is redeemed once: of many concurrent redemptions exactly one wins,
/// later ones see it already redeemed with its data, an unknown hash is unknown, and expired
/// codes are removed when a new one is stored.
async fn authorization_codes_are_redeemed_once(store: &dyn Backend) {
    use dmsync_core::identity::{AuthorizationCode, CodeRedemption};
    with_tenants(store).await;
    let now = OffsetDateTime::from_unix_timestamp(OffsetDateTime::now_utc().unix_timestamp()).unwrap();
    let code = |hash: &str, issued: OffsetDateTime| AuthorizationCode {
        code_hash: hash.into(),
        tenant_id: A,
        client_id: uuid::Uuid::new_v4(),
        user_object_id: uuid::Uuid::new_v4(),
        user_principal_name: "someone@a.onmicrosoft.com".into(),
        password_fingerprint: "fp".into(),
        scopes: vec!["Group.Read.All".into()],
        requested_scope: "Group.Read.All openid".into(),
        redirect_uri: "http://localhost:8400/".into(),
        code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
        nonce: Some("n-0S6_WzA2Mj".into()),
        issued_at: issued,
        expires_at: issued + Duration::minutes(10),
    };
    let first = code("hash-1", now);
    store.insert_authorization_code(&first, now).await.unwrap();
    let without_nonce = AuthorizationCode { nonce: None, ..code("hash-2", now) };
    store.insert_authorization_code(&without_nonce, now).await.unwrap();

    let redemptions = futures::future::join_all((0..8).map(|_| store.redeem_authorization_code("hash-1", now))).await;
    let won: Vec<_> = redemptions.iter().filter(|r| matches!(r, Ok(CodeRedemption::Redeemed(_)))).collect();
    assert_eq!(won.len(), 1, "{redemptions:?}");
    assert_eq!(won[0].as_ref().unwrap(), &CodeRedemption::Redeemed(first.clone()));
    assert!(
        redemptions.iter().all(|r| matches!(r, Ok(CodeRedemption::Redeemed(_) | CodeRedemption::AlreadyRedeemed(_))))
    );
    assert_eq!(store.redeem_authorization_code("hash-1", now).await.unwrap(), CodeRedemption::AlreadyRedeemed(first));
    assert_eq!(store.redeem_authorization_code("no-such-hash", now).await.unwrap(), CodeRedemption::Unknown);

    // Stored eleven minutes later, a new code sweeps the expired ones away.
    let later = now + Duration::minutes(11);
    store.insert_authorization_code(&code("hash-3", later), later).await.unwrap();
    assert_eq!(store.redeem_authorization_code("hash-2", later).await.unwrap(), CodeRedemption::Unknown);
    assert!(matches!(store.redeem_authorization_code("hash-3", later).await.unwrap(), CodeRedemption::Redeemed(_)));
}

/// A user's password can be replaced and the user removed, in its own tenant only; the UPN is
/// found whatever its case.
/// A user of `tenant` with a fresh object id, the password hash `hash-1` and one scope.
fn test_user(tenant: TenantId, upn: &str) -> dmsync_core::identity::User {
    dmsync_core::identity::User {
        tenant_id: tenant,
        object_id: uuid::Uuid::new_v4(),
        user_principal_name: upn.into(),
        display_name: "Someone".into(),
        password_hash: "hash-1".into(),
        scopes: vec!["Group.ReadWrite.All".into()],
    }
}

async fn users_change_password_and_are_removed(store: &dyn Backend) {
    with_tenants(store).await;
    let user = test_user;
    let (alice, other) = (user(A, "alice@a.onmicrosoft.com"), user(B, "alice@b.onmicrosoft.com"));
    store.create_user(&alice).await.unwrap();
    store.create_user(&other).await.unwrap();
    assert_eq!(store.user_by_upn(A, "ALICE@a.onmicrosoft.com").await.unwrap().unwrap().scopes, alice.scopes);
    assert!(store.set_user_password(A, alice.object_id, "hash-2").await.unwrap());
    assert!(!store.set_user_password(B, alice.object_id, "hash-3").await.unwrap(), "not B's user");
    assert_eq!(store.user_by_upn(A, &alice.user_principal_name).await.unwrap().unwrap().password_hash, "hash-2");
    assert!(!store.delete_user(B, alice.object_id).await.unwrap());
    assert!(store.delete_user(A, alice.object_id).await.unwrap());
    assert!(!store.delete_user(A, alice.object_id).await.unwrap(), "removed once");
    assert!(store.user_by_upn(A, &alice.user_principal_name).await.unwrap().is_none());
    assert_eq!(store.user_by_upn(B, &other.user_principal_name).await.unwrap().unwrap().password_hash, "hash-1");
}

/// An app keeps its delegated permissions (none given is not the same as an empty list), its
/// redirect URIs and its certificates; a secret can be replaced; deleting the app takes its
/// certificates; and each client assertion id is accepted once until it expires.
async fn apps_keep_credentials_and_assertions_are_used_once(store: &dyn Backend) {
    use dmsync_core::identity::{AppCertificate, AppRegistration};
    with_tenants(store).await;
    let t0 = OffsetDateTime::from_unix_timestamp(OffsetDateTime::now_utc().unix_timestamp()).unwrap();
    let app = |name: &str, delegated: Option<Vec<String>>| AppRegistration {
        tenant_id: A,
        client_id: uuid::Uuid::new_v4(),
        object_id: uuid::Uuid::new_v4(),
        display_name: name.into(),
        secret_hash: "secret-1".into(),
        roles: vec!["Group.Read.All".into()],
        delegated_permissions: delegated,
        redirect_uris: vec!["http://localhost".into(), "https://app.example/cb".into()],
    };
    let (first, second) = (app("b app", None), app("a app", Some(vec![])));
    store.create_app(&first).await.unwrap();
    store.create_app(&second).await.unwrap();
    let read = store.app(A, first.client_id).await.unwrap().unwrap();
    assert_eq!((read.delegated_permissions, read.redirect_uris), (None, first.redirect_uris.clone()));
    assert_eq!(store.app(A, second.client_id).await.unwrap().unwrap().delegated_permissions, Some(vec![]));
    let names: Vec<String> = store.list_apps(A).await.unwrap().into_iter().map(|a| a.display_name).collect();
    assert_eq!(names, ["a app", "b app"]);
    assert!(store.list_apps(B).await.unwrap().is_empty());
    assert!(store.set_app_secret(A, first.client_id, "secret-2").await.unwrap());
    assert!(!store.set_app_secret(B, first.client_id, "secret-3").await.unwrap(), "not B's app");
    assert_eq!(store.app(A, first.client_id).await.unwrap().unwrap().secret_hash, "secret-2");

    let cert = AppCertificate {
        thumbprint_sha1: "AB".repeat(20),
        thumbprint_sha256: "CD".repeat(32),
        certificate_pem: "-----BEGIN CERTIFICATE-----".into(),
        not_before: t0,
        not_after: t0 + Duration::days(365),
    };
    store.add_app_certificate(A, first.client_id, &cert, t0).await.unwrap();
    assert!(matches!(
        store.add_app_certificate(A, first.client_id, &cert, t0).await,
        Err(StoreError::AlreadyExists(_))
    ));
    assert!(matches!(store.add_app_certificate(B, first.client_id, &cert, t0).await, Err(StoreError::NotFound)));
    assert_eq!(store.app_certificates(A, first.client_id).await.unwrap(), vec![cert.clone()]);
    assert!(store.app_certificates(A, second.client_id).await.unwrap().is_empty());

    let expiry = t0 + Duration::minutes(15);
    assert!(store.consume_assertion(A, first.client_id, "jti-1", expiry, t0).await.unwrap());
    assert!(!store.consume_assertion(A, first.client_id, "jti-1", expiry, t0).await.unwrap(), "a replay");
    assert!(store.consume_assertion(A, second.client_id, "jti-1", expiry, t0).await.unwrap(), "another app's");
    let later = expiry + Duration::seconds(1);
    assert!(
        store.consume_assertion(A, first.client_id, "jti-1", later + Duration::minutes(15), later).await.unwrap(),
        "forgotten once expired"
    );

    assert!(!store.delete_app_certificate(A, second.client_id, &cert.thumbprint_sha1).await.unwrap());
    assert!(store.delete_app_certificate(A, first.client_id, &cert.thumbprint_sha1).await.unwrap());
    store.add_app_certificate(A, first.client_id, &cert, t0).await.unwrap();
    assert!(store.delete_app(A, first.client_id).await.unwrap());
    assert!(!store.delete_app(A, first.client_id).await.unwrap(), "deleted once");
    assert!(store.app(A, first.client_id).await.unwrap().is_none());
    assert!(store.app_certificates(A, first.client_id).await.unwrap().is_empty(), "its certificates went with it");
    store.create_app(&AppRegistration { client_id: first.client_id, ..first.clone() }).await.unwrap();
    store.add_app_certificate(A, first.client_id, &cert, t0).await.unwrap();
}

async fn sync_decision_is_409_then_429_then_started(store: &dyn Backend) {
    with_tenants(store).await;
    // Whole seconds: stored timestamps keep 100 ns ticks, so a finer time would round.
    let t0 = OffsetDateTime::from_unix_timestamp(OffsetDateTime::now_utc().unix_timestamp()).unwrap();
    let settings = store.autopilot_settings(A).await.unwrap();
    assert_eq!(settings.sync_status, SyncStatus::Unknown);
    assert_eq!(settings.last_sync, None);
    let SyncDecision::Started { job_id } = store.trigger_autopilot_sync(A, t0, COOLDOWN, &sync_job()).await.unwrap()
    else {
        panic!("first sync starts")
    };
    assert_eq!(
        store.trigger_autopilot_sync(A, t0, COOLDOWN, &sync_job()).await.unwrap(),
        SyncDecision::AlreadyInProgress
    );
    // Tenant B is unaffected.
    assert!(matches!(
        store.trigger_autopilot_sync(B, t0, COOLDOWN, &sync_job()).await.unwrap(),
        SyncDecision::Started { .. }
    ));

    let job = store.claim_job("w", t0, t0, LEASE).await.unwrap().unwrap();
    let job = if job.id == job_id { job } else { store.claim_job("w", t0, t0, LEASE).await.unwrap().unwrap() };
    assert_eq!(job.id, job_id);
    let done = t0 + Duration::seconds(2);
    assert!(store.finish_autopilot_sync(&job.lease(), A, SyncOutcome::Completed, None, done).await.unwrap());
    let settings = store.autopilot_settings(A).await.unwrap();
    assert_eq!(settings.sync_status, SyncStatus::Completed);
    assert_eq!(settings.last_sync.map(|t| t.unix_timestamp()), Some(done.unix_timestamp()));
    assert_eq!(store.job(job_id).await.unwrap().unwrap().state, JobState::Succeeded);

    match store.trigger_autopilot_sync(A, t0 + Duration::seconds(60), COOLDOWN, &sync_job()).await.unwrap() {
        SyncDecision::CoolingDown { remaining } => assert_eq!(remaining.whole_seconds(), 540),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        store.trigger_autopilot_sync(A, t0 + COOLDOWN, COOLDOWN, &sync_job()).await.unwrap(),
        SyncDecision::Started { .. }
    ));
}

async fn jobs_are_leased_fenced_and_released(store: &dyn Backend) {
    with_tenants(store).await;
    let t0 = OffsetDateTime::now_utc();
    store.trigger_autopilot_sync(A, t0, COOLDOWN, &sync_job()).await.unwrap();
    let first = store.claim_job("w1", t0, t0, LEASE).await.unwrap().unwrap();
    assert_eq!((first.attempt, first.state), (1, JobState::Running));
    assert!(store.claim_job("w2", t0, t0, LEASE).await.unwrap().is_none(), "a leased job is not claimable");
    // Leases run on wall-clock time: advancing the Clock does not make a live worker look dead.
    assert!(store.claim_job("w2", t0 + Duration::hours(1), t0, LEASE).await.unwrap().is_none());
    assert!(store.heartbeat_job(&first.lease(), t0 + LEASE).await.unwrap());

    // The lease runs out; another worker takes the job with a new attempt.
    let later = t0 + LEASE + Duration::seconds(1);
    let second = store.claim_job("w2", later, later, LEASE).await.unwrap().unwrap();
    assert_eq!((second.id, second.attempt), (first.id, 2));
    // The first worker is fenced out of everything.
    assert!(!store.heartbeat_job(&first.lease(), later + LEASE).await.unwrap());
    assert!(!store.finish_autopilot_sync(&first.lease(), A, SyncOutcome::Completed, None, later).await.unwrap());
    assert_eq!(store.autopilot_settings(A).await.unwrap().sync_status, SyncStatus::InProgress);

    // A release gives the job back without spending the attempt.
    store.release_job(&second.lease()).await.unwrap();
    let third = store.claim_job("w3", later, later, LEASE).await.unwrap().unwrap();
    assert_eq!(third.attempt, 2);
    // A failed attempt is requeued for later; a final failure stays failed.
    assert!(store.fail_job(&third.lease(), "boom", Some(later + Duration::seconds(10))).await.unwrap());
    assert!(store.claim_job("w3", later, later, LEASE).await.unwrap().is_none(), "not due yet");
    let fourth = store
        .claim_job("w3", later + Duration::seconds(10), later + Duration::seconds(10), LEASE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(fourth.last_error.as_deref(), Some("boom"));
    assert!(
        store.finish_autopilot_sync(&fourth.lease(), A, SyncOutcome::Failed, Some("gave up"), later).await.unwrap()
    );
    let settings = store.autopilot_settings(A).await.unwrap();
    assert_eq!(settings.sync_status, SyncStatus::Failed);
    assert_eq!(settings.last_sync, None, "a failed sync does not move lastSyncDateTime");
}

async fn running_jobs_are_requeued_at_start(store: &dyn Backend) {
    with_tenants(store).await;
    let t0 = OffsetDateTime::now_utc();
    store.trigger_autopilot_sync(A, t0, COOLDOWN, &sync_job()).await.unwrap();
    store.claim_job("dead-process", t0, t0, Duration::hours(1)).await.unwrap().unwrap();
    assert_eq!(store.requeue_running_jobs().await.unwrap(), 1);
    let job = store.claim_job("new-process", t0, t0, LEASE).await.unwrap().unwrap();
    assert_eq!(job.attempt, 2);
}

async fn registrations_are_all_or_nothing_and_hashes_global(store: &dyn Backend) {
    with_tenants(store).await;
    let now = OffsetDateTime::now_utc();
    let s = store.put_registrations(A, &[reg("S1", "h1"), reg("S2", "h2")], now).await.unwrap().unwrap();
    assert_eq!((s.created, s.updated, s.unchanged), (2, 0, 0));
    // Same hash in another tenant: refused, and the good row beside it is not written either.
    let refused = store.put_registrations(B, &[reg("B1", "hb"), reg("S1", "h1")], now).await.unwrap().unwrap_err();
    assert_eq!(refused.len(), 1);
    assert_eq!((refused[0].line, refused[0].reason.clone()), (2, RegistrationProblem::HashRegisteredToOtherTenant));
    let s = store.put_registrations(B, &[reg("B1", "hb")], now).await.unwrap().unwrap();
    assert_eq!(s.created, 1, "B1 was not half-written by the refused request");
    // Duplicates within one request, and a hash under another serial in the same tenant.
    let refused = store.put_registrations(A, &[reg("S3", "h3"), reg("S3", "h4")], now).await.unwrap().unwrap_err();
    assert!(refused.iter().all(|r| r.reason == RegistrationProblem::DuplicateInRequest));
    let refused = store.put_registrations(A, &[reg("S9", "h2")], now).await.unwrap().unwrap_err();
    assert_eq!(refused[0].reason, RegistrationProblem::HashRegisteredToOtherSerial);
    // Re-sending changes only what changed.
    let mut changed = reg("S2", "h2");
    changed.model = "M2".into();
    let s = store.put_registrations(A, &[reg("S1", "h1"), changed], now).await.unwrap().unwrap();
    assert_eq!((s.created, s.updated, s.unchanged), (0, 1, 1));
}

async fn reconcile_is_set_based_idempotent_and_tenant_scoped(store: &dyn Backend) {
    with_tenants(store).await;
    let now = OffsetDateTime::now_utc();
    store.put_registrations(A, &[reg("S1", "h1"), reg("S2", "h2")], now).await.unwrap().unwrap();
    store.put_registrations(B, &[reg("B1", "hb")], now).await.unwrap().unwrap();
    let stats = store.reconcile_autopilot_devices(A, now).await.unwrap();
    assert_eq!((stats.created, stats.updated, stats.deleted), (2, 0, 0));
    let again = store.reconcile_autopilot_devices(A, now).await.unwrap();
    assert_eq!((again.created, again.updated, again.deleted), (0, 0, 0), "a rerun converges");

    let mut changed = reg("S2", "h2");
    changed.group_tag = "Sales".into();
    store.put_registrations(A, &[changed], now).await.unwrap().unwrap();
    let stats = store.reconcile_autopilot_devices(A, now).await.unwrap();
    assert_eq!((stats.created, stats.updated, stats.deleted), (0, 1, 0));

    // A deregistered device goes at the next sync, and its hash is free again.
    assert!(store.delete_registration(A, "S1").await.unwrap());
    assert!(!store.delete_registration(A, "S1").await.unwrap());
    assert!(!store.delete_registration(B, "S2").await.unwrap(), "another tenant's serial is not found");
    let stats = store.reconcile_autopilot_devices(A, now).await.unwrap();
    assert_eq!((stats.created, stats.updated, stats.deleted), (0, 0, 1));
    store.put_registrations(A, &[reg("S1", "h1")], now).await.unwrap().unwrap();
    store.reconcile_autopilot_devices(A, now).await.unwrap();

    let page = store.list_autopilot_devices(A, &DeviceQuery::first(1)).await.unwrap();
    assert_eq!(page.len(), 1);
    let after = DeviceCursor { sort_value: None, id: page[0].id.into() };
    let rest =
        store.list_autopilot_devices(A, &DeviceQuery { after: Some(after), ..DeviceQuery::first(10) }).await.unwrap();
    assert_eq!(rest.len(), 1);
    assert!(rest[0].id > page[0].id, "keyset order");
    assert!(store.list_autopilot_devices(B, &DeviceQuery::first(10)).await.unwrap().is_empty(), "B was not synced");
    // Another tenant's id is not found.
    assert!(store.autopilot_device(B, page[0].id).await.unwrap().is_none());
    let d = store.autopilot_device(A, page[0].id).await.unwrap().unwrap();
    assert_eq!(d.tenant_id, A);
}

async fn device_queries_filter_order_and_count(store: &dyn Backend) {
    with_tenants(store).await;
    let now = OffsetDateTime::now_utc();
    let mut rows = Vec::new();
    for (serial, tag) in [("PF-001", "Sales"), ("PF-002", "sales"), ("XY_100", "HR"), ("PF%3", ""), ("ab-9", "Sales")] {
        let mut r = reg(serial, &format!("hash-{serial}"));
        r.group_tag = tag.into();
        rows.push(r);
    }
    store.put_registrations(A, &rows, now).await.unwrap().unwrap();
    store.reconcile_autopilot_devices(A, now).await.unwrap();
    let parse = |f: &str| {
        dmsync_core::filter::parse_filter(f, |name| match name.to_ascii_lowercase().as_str() {
            "serialnumber" => Some(DeviceField::SerialNumber),
            "grouptag" => Some(DeviceField::GroupTag),
            _ => None,
        })
        .unwrap()
    };
    let serials = |devices: Vec<dmsync_core::autopilot::AutopilotDevice>| {
        let mut s: Vec<String> = devices.into_iter().map(|d| d.serial_number).collect();
        s.sort();
        s
    };
    let list = |f: &str| {
        let q = DeviceQuery { filter: Some(parse(f)), ..DeviceQuery::first(100) };
        async move { serials(store.list_autopilot_devices(A, &q).await.unwrap()) }
    };
    assert_eq!(list("groupTag eq 'SALES'").await, ["PF-001", "PF-002", "ab-9"], "eq ignores case");
    assert_eq!(list("startswith(serialNumber,'pf')").await, ["PF%3", "PF-001", "PF-002"]);
    assert_eq!(list("contains(serialNumber,'%')").await, ["PF%3"], "wildcards in values are literal");
    assert_eq!(list("contains(serialNumber,'_')").await, ["XY_100"]);
    assert_eq!(list("endswith(serialNumber,'-9') or groupTag eq 'HR'").await, ["XY_100", "ab-9"]);
    assert_eq!(list("groupTag eq null").await, ["PF%3"]);
    assert_eq!(list("not (groupTag eq 'sales') and groupTag ne null").await, ["XY_100"]);
    let filter = parse("groupTag eq 'sales'");
    assert_eq!(store.count_autopilot_devices(A, Some(&filter)).await.unwrap(), 3);
    assert_eq!(store.count_autopilot_devices(A, None).await.unwrap(), 5);
    assert_eq!(store.count_autopilot_devices(B, None).await.unwrap(), 0);

    // Ordered keyset paging visits every device once, in order, in both directions.
    for direction in [SortDirection::Ascending, SortDirection::Descending] {
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let q =
                DeviceQuery { order_by: Some((DeviceField::SerialNumber, direction)), after, ..DeviceQuery::first(2) };
            let page = store.list_autopilot_devices(A, &q).await.unwrap();
            if page.is_empty() {
                break;
            }
            let last = page.last().unwrap();
            after = Some(DeviceCursor { sort_value: Some(last.serial_number.clone()), id: last.id.into() });
            seen.extend(page.into_iter().map(|d| d.serial_number));
        }
        let mut expected = seen.clone();
        expected.sort();
        if direction == SortDirection::Descending {
            expected.reverse();
        }
        assert_eq!(seen, expected);
        assert_eq!(seen.len(), 5);
    }
}

/// Graph ignores case for all of Unicode, not only ASCII; both backends must agree, in `eq` and
/// in the string functions, while ordering stays bytewise on both.
async fn device_filters_ignore_case_for_all_of_unicode(store: &dyn Backend) {
    with_tenants(store).await;
    let now = OffsetDateTime::now_utc();
    let rows: Vec<NewRegistration> =
        ["ÜNI-1", "üni-2", "ΣΑΣ-3", "Uni-4"].iter().map(|serial| reg(serial, &format!("hash-{serial}"))).collect();
    store.put_registrations(A, &rows, now).await.unwrap().unwrap();
    store.reconcile_autopilot_devices(A, now).await.unwrap();
    let list = |f: &str, order: Option<SortDirection>| {
        let filter = dmsync_core::filter::parse_filter(f, |name| {
            (name.eq_ignore_ascii_case("serialNumber")).then_some(DeviceField::SerialNumber)
        })
        .unwrap();
        let order_by = order.map(|direction| (DeviceField::SerialNumber, direction));
        let q = DeviceQuery { filter: Some(filter), order_by, ..DeviceQuery::first(100) };
        async move {
            let devices = store.list_autopilot_devices(A, &q).await.unwrap();
            let mut serials: Vec<String> = devices.into_iter().map(|d| d.serial_number).collect();
            if order.is_none() {
                serials.sort();
            }
            serials
        }
    };
    assert_eq!(list("serialNumber eq 'üni-1'", None).await, ["ÜNI-1"]);
    assert_eq!(list("serialNumber eq 'ÜNI-2'", None).await, ["üni-2"]);
    assert_eq!(list("serialNumber eq 'σας-3'", None).await, Vec::<String>::new(), "final sigma is its own letter");
    assert_eq!(list("serialNumber eq 'σασ-3'", None).await, ["ΣΑΣ-3"]);
    assert_eq!(list("serialNumber ne 'üni-1'", None).await, ["Uni-4", "üni-2", "ΣΑΣ-3"]);
    assert_eq!(list("startswith(serialNumber,'üNI')", None).await, ["ÜNI-1", "üni-2"]);
    assert_eq!(list("contains(serialNumber,'ασ')", None).await, ["ΣΑΣ-3"]);
    assert_eq!(list("endswith(serialNumber,'ÜNI-2')", None).await, ["üni-2"]);
    assert_eq!(list("startswith(serialNumber,'')", None).await.len(), 4);
    assert_eq!(
        list("startswith(serialNumber,'u') or startswith(serialNumber,'ü')", Some(SortDirection::Ascending)).await,
        ["Uni-4", "ÜNI-1", "üni-2"],
        "ordering is bytewise on both backends"
    );
    let count = |f: &str| {
        let filter = dmsync_core::filter::parse_filter(f, |_| Some(DeviceField::SerialNumber)).unwrap();
        async move { store.count_autopilot_devices(A, Some(&filter)).await.unwrap() }
    };
    assert_eq!(count("serialNumber eq 'ÜnI-1'").await, 1);
}

fn new_import(serial: &str, hash: &str) -> dmsync_core::autopilot::NewImportedDevice {
    dmsync_core::autopilot::NewImportedDevice {
        serial_number: serial.into(),
        group_tag: "Tag".into(),
        product_key: String::new(),
        hardware_hash: hash.as_bytes().to_vec(),
        assigned_user_principal_name: "user@a.onmicrosoft.com".into(),
    }
}

async fn a_forced_import_error_stands_in_for_the_checks(store: &dyn Backend) {
    use dmsync_core::autopilot::{ForcedImportError, ImportStatus};
    with_tenants(store).await;
    let t0 = OffsetDateTime::from_unix_timestamp(OffsetDateTime::now_utc().unix_timestamp()).unwrap();
    let rows = [new_import("FORCED", "hash-forced"), new_import("FINE", "hash-fine")];
    let created = store.create_imports(A, "imp-1", &rows, t0, t0, &import_job()).await.unwrap();
    let job = store.claim_job("w", t0, t0, LEASE).await.unwrap().unwrap();
    let forced = [
        ForcedImportError { serial_number: "FORCED".into(), code: 808 },
        ForcedImportError { serial_number: "ABSENT".into(), code: 806 },
    ];
    let stats = store.process_imports(&job.lease(), A, t0, false, &assignment_job(), &forced).await.unwrap().unwrap();
    assert_eq!((stats.completed, stats.failed, stats.forced), (1, 1, vec!["FORCED".to_owned()]));
    let forced = store.imported_device(A, created[0].id).await.unwrap().unwrap();
    assert_eq!(
        (forced.status, forced.error_code, forced.error_name.as_deref()),
        (ImportStatus::Error, 808, Some("ZtdDeviceAssignedToOtherTenant"))
    );
    assert_eq!(store.imported_device(A, created[1].id).await.unwrap().unwrap().status, ImportStatus::Complete);
}

async fn imports_register_devices_or_fail_with_dds_errors(store: &dyn Backend) {
    use dmsync_core::autopilot::ImportStatus;
    with_tenants(store).await;
    let t0 = OffsetDateTime::from_unix_timestamp(OffsetDateTime::now_utc().unix_timestamp()).unwrap();
    store.put_registrations(B, &[reg("B-1", "hash-of-b")], t0).await.unwrap().unwrap();
    store.put_registrations(A, &[reg("A-OLD", "hash-old")], t0).await.unwrap().unwrap();
    let rows = [
        new_import("NEW-1", "hash-new-1"),
        new_import("SHORT", "abc"),
        new_import("OTHER", "hash-of-b"),
        new_import("AGAIN", "hash-old"),
        new_import("A-OLD", "hash-fresh"),
        new_import("TWIN-1", "hash-twin"),
        new_import("TWIN-2", "hash-twin"),
    ];
    let later = t0 + Duration::seconds(10);
    let created = store.create_imports(A, "imp-1", &rows, t0, later, &import_job()).await.unwrap();
    assert!(created.iter().all(|d| d.status == ImportStatus::Unknown && d.device_registration_id.is_none()));
    assert!(store.claim_job("w", t0, t0, LEASE).await.unwrap().is_none(), "not before the import delay");
    let job = store.claim_job("w", later, later, LEASE).await.unwrap().unwrap();
    let stats = store.process_imports(&job.lease(), A, later, true, &assignment_job(), &[]).await.unwrap().unwrap();
    assert_eq!((stats.completed, stats.failed), (2, 5));
    assert_eq!(
        store.process_imports(&job.lease(), A, later, true, &assignment_job(), &[]).await.unwrap(),
        None,
        "fenced: done once"
    );

    let by_serial = |serial: &str| created.iter().find(|d| d.serial_number == serial).unwrap().id;
    let status = |serial: &'static str| {
        let id = by_serial(serial);
        async move { store.imported_device(A, id).await.unwrap().unwrap() }
    };
    let new = status("NEW-1").await;
    assert_eq!(new.status, ImportStatus::Complete);
    let device_id = new.device_registration_id.expect("registration id");
    let device = store.autopilot_device(A, device_id).await.unwrap().expect("device readable once complete");
    assert_eq!((device.serial_number.as_str(), device.group_tag.as_str()), ("NEW-1", "Tag"));
    assert_eq!(device.user_principal_name, "user@a.onmicrosoft.com");
    for (serial, code, name) in [
        ("SHORT", 807, "ZtdDeviceBadHardwareHash"),
        ("OTHER", 808, "ZtdDeviceAssignedToOtherTenant"),
        ("AGAIN", 806, "ZtdDeviceAlreadyAssigned"),
        ("A-OLD", 806, "ZtdDeviceAlreadyAssigned"),
    ] {
        let d = status(serial).await;
        assert_eq!(
            (d.status, d.error_code, d.error_name.as_deref()),
            (ImportStatus::Error, code, Some(name)),
            "{serial}"
        );
    }
    // Of two imports with one hash, exactly one wins.
    let twins = [status("TWIN-1").await.status, status("TWIN-2").await.status];
    assert_eq!(twins.iter().filter(|s| **s == ImportStatus::Complete).count(), 1, "{twins:?}");
    // The completed import restarted the sync cooldown.
    assert!(matches!(
        store.trigger_autopilot_sync(A, later + Duration::seconds(1), COOLDOWN, &sync_job()).await.unwrap(),
        SyncDecision::CoolingDown { .. }
    ));
    // A sync keeps the imported device: it has its registration.
    let stats = store.reconcile_autopilot_devices(A, later).await.unwrap();
    assert_eq!(stats.deleted, 0);
    assert!(store.delete_imported_device(A, new.id).await.unwrap());
    assert!(store.autopilot_device(A, device_id).await.unwrap().is_some(), "deleting the import keeps the device");
    assert_eq!(store.count_imported_devices(A, None).await.unwrap(), 6);
    assert_eq!(store.count_imported_devices(B, None).await.unwrap(), 0);
}

async fn device_deletion_is_requested_once_then_deregisters(store: &dyn Backend) {
    use dmsync_core::autopilot::{DeletionRequest, DevicePropertiesUpdate};
    with_tenants(store).await;
    let t0 = OffsetDateTime::now_utc();
    store.put_registrations(A, &[reg("D-1", "h-d1"), reg("D-2", "h-d2")], t0).await.unwrap().unwrap();
    store.reconcile_autopilot_devices(A, t0).await.unwrap();
    let ids = store.device_ids_by_serial(A, &["D-1".into(), "D-2".into(), "NOPE".into()]).await.unwrap();
    assert_eq!(ids.len(), 2);
    let d1 = ids.iter().find(|(s, _)| s == "D-1").unwrap().1;
    assert!(store.device_ids_by_serial(B, &["D-1".into()]).await.unwrap().is_empty());

    // Intune-side properties; the group tag survives the next sync.
    let update = DevicePropertiesUpdate {
        display_name: Some("PC-01".into()),
        group_tag: Some("Sales".into()),
        resource_name: Some("Room 1".into()),
        ..Default::default()
    };
    assert!(store.update_autopilot_device(A, d1, &update, t0).await.unwrap());
    assert!(!store.update_autopilot_device(B, d1, &update, t0).await.unwrap(), "other tenant");
    store.reconcile_autopilot_devices(A, t0).await.unwrap();
    let device = store.autopilot_device(A, d1).await.unwrap().unwrap();
    assert_eq!((device.display_name.as_str(), device.group_tag.as_str()), ("PC-01", "Sales"));
    assert_eq!(device.resource_name, "Room 1");
    // What an update leaves out, it leaves as it was.
    let untouched = DevicePropertiesUpdate { display_name: Some("PC-02".into()), ..Default::default() };
    assert!(store.update_autopilot_device(A, d1, &untouched, t0).await.unwrap());
    assert_eq!(store.autopilot_device(A, d1).await.unwrap().unwrap().resource_name, "Room 1");

    let later = t0 + Duration::seconds(10);
    assert_eq!(
        store.request_device_deletion(A, d1, t0, later, &deletion_job()).await.unwrap(),
        DeletionRequest::Accepted { device_id: d1 }
    );
    assert_eq!(
        store.request_device_deletion(A, d1, t0, later, &deletion_job()).await.unwrap(),
        DeletionRequest::AlreadyInProgress { device_id: d1 }
    );
    assert_eq!(
        store.request_device_deletion(B, d1, t0, later, &deletion_job()).await.unwrap(),
        DeletionRequest::NotFound
    );
    assert!(store.autopilot_device(A, d1).await.unwrap().unwrap().deletion_requested_at.is_some());
    let job = store.claim_job("w", later, later, LEASE).await.unwrap().unwrap();
    assert!(store.deregister_device(&job.lease(), A, d1, later).await.unwrap());
    assert!(store.autopilot_device(A, d1).await.unwrap().is_none());
    // The registration went too: a sync does not bring the device back.
    let stats = store.reconcile_autopilot_devices(A, later).await.unwrap();
    assert_eq!((stats.created, stats.deleted), (0, 0));
    assert_eq!(store.count_autopilot_devices(A, None).await.unwrap(), 1);
}

fn connector(tenant: TenantId) -> dmsync_core::exchange::ExchangeConnector {
    use dmsync_core::exchange::*;
    ExchangeConnector {
        tenant_id: tenant,
        id: ConnectorId::new(),
        last_sync: None,
        status: ConnectorStatus::ConnectionPending,
        primary_smtp_address: "svc@contoso.com".into(),
        server_name: "ex01".into(),
        connector_server_name: "conn01".into(),
        connector_type: ConnectorType::OnPremises,
        version: "1.0".into(),
        exchange_alias: String::new(),
        exchange_organization: "Contoso".into(),
        source: None,
        watermark: None,
        last_full_sync_start: None,
        last_delta_sync_start: None,
    }
}

fn mobile(id: &str, changed: OffsetDateTime) -> dmsync_core::exchange::MobileDeviceRecord {
    dmsync_core::exchange::MobileDeviceRecord {
        device_id: id.into(),
        device_type: "iPhone".into(),
        device_model: "iPhone15,2".into(),
        device_os: "iOS 17.1".into(),
        friendly_name: String::new(),
        user_display_name: "Kim".into(),
        user_principal_name: "kim@contoso.com".into(),
        email_address: "kim@contoso.com".into(),
        access_state: dmsync_core::exchange::ExchangeAccessState::Allowed,
        access_state_reason: "Global".into(),
        first_sync: None,
        last_success_sync: None,
        when_changed: Some(changed),
    }
}

async fn exchange_connectors_sync_full_and_delta(store: &dyn Backend) {
    use dmsync_core::exchange::*;
    with_tenants(store).await;
    let t0 = OffsetDateTime::from_unix_timestamp(OffsetDateTime::now_utc().unix_timestamp()).unwrap();
    let c = connector(A);
    store.create_connector(&c, OffsetDateTime::now_utc()).await.unwrap();
    assert!(store.connector(B, c.id).await.unwrap().is_none(), "tenant-scoped");
    let changes = ConnectorChanges {
        server_name: Some("ex02".into()),
        connector_type: Some(ConnectorType::Hosted),
        ..Default::default()
    };
    let updated = store.update_connector(A, c.id, &changes).await.unwrap().unwrap();
    assert_eq!(
        (updated.server_name.as_str(), updated.connector_type, updated.version.as_str()),
        ("ex02", ConnectorType::Hosted, "1.0")
    );
    assert!(store.update_connector(B, c.id, &changes).await.unwrap().is_none());

    // One sync at a time per connector.
    let ConnectorSyncDecision::Started { .. } = store
        .trigger_connector_sync(A, c.id, SyncType::FullSync, t0, &connector_job(c.id, SyncType::FullSync))
        .await
        .unwrap()
    else {
        panic!("starts")
    };
    assert_eq!(
        store
            .trigger_connector_sync(A, c.id, SyncType::DeltaSync, t0, &connector_job(c.id, SyncType::DeltaSync))
            .await
            .unwrap(),
        ConnectorSyncDecision::AlreadyRunning
    );
    assert_eq!(
        store
            .trigger_connector_sync(B, c.id, SyncType::DeltaSync, t0, &connector_job(c.id, SyncType::DeltaSync))
            .await
            .unwrap(),
        ConnectorSyncDecision::NotFound
    );
    let job = store.claim_job("w", t0, t0, LEASE).await.unwrap().unwrap();
    let records = [mobile("D1", t0), mobile("D2", t0), mobile("D3", t0 + Duration::seconds(5))];
    assert!(store.stage_connector_records(&job.lease(), A, c.id, &records).await.unwrap());
    assert_eq!(
        store.count_managed_devices(A, None).await.unwrap(),
        0,
        "staged records stay invisible until the sync completes"
    );
    let stats = store.complete_connector_sync(&job.lease(), A, c.id, true, t0).await.unwrap().unwrap();
    assert_eq!((stats.read, stats.upserted, stats.removed), (3, 3, 0));
    let after = store.connector(A, c.id).await.unwrap().unwrap();
    assert_eq!(after.status, ConnectorStatus::Connected);
    assert_eq!(after.last_sync, Some(t0));
    assert_eq!(after.watermark, Some(t0 + Duration::seconds(5)));
    assert_eq!(store.count_managed_devices(A, None).await.unwrap(), 3);
    assert_eq!(store.count_managed_devices(B, None).await.unwrap(), 0);

    // A delta upserts what changed and sees no deletions.
    store
        .trigger_connector_sync(A, c.id, SyncType::DeltaSync, t0, &connector_job(c.id, SyncType::DeltaSync))
        .await
        .unwrap();
    let job = store.claim_job("w", t0, t0, LEASE).await.unwrap().unwrap();
    let mut changed = mobile("D1", t0 + Duration::seconds(9));
    changed.access_state = ExchangeAccessState::Blocked;
    assert!(store.stage_connector_records(&job.lease(), A, c.id, &[changed, mobile("D4", t0)]).await.unwrap());
    let stats = store.complete_connector_sync(&job.lease(), A, c.id, false, t0).await.unwrap().unwrap();
    assert_eq!((stats.upserted, stats.removed), (2, 0));
    assert_eq!(store.count_managed_devices(A, None).await.unwrap(), 4);
    let page = store.list_managed_devices(A, &ListQuery::first(10)).await.unwrap();
    assert_eq!(
        page.iter().find(|d| d.record.device_id == "D1").unwrap().record.access_state,
        ExchangeAccessState::Blocked
    );

    // A full sync removes what it did not read.
    store
        .trigger_connector_sync(A, c.id, SyncType::FullSync, t0, &connector_job(c.id, SyncType::FullSync))
        .await
        .unwrap();
    let job = store.claim_job("w", t0, t0, LEASE).await.unwrap().unwrap();
    assert!(store.stage_connector_records(&job.lease(), A, c.id, &[mobile("D1", t0), mobile("D2", t0)]).await.unwrap());
    let stats =
        store.complete_connector_sync(&job.lease(), A, c.id, true, t0 + Duration::seconds(1)).await.unwrap().unwrap();
    assert_eq!(stats.removed, 2);
    assert_eq!(store.count_managed_devices(A, None).await.unwrap(), 2);

    // A failing source disconnects the connector and keeps its devices.
    store
        .trigger_connector_sync(A, c.id, SyncType::DeltaSync, t0, &connector_job(c.id, SyncType::DeltaSync))
        .await
        .unwrap();
    let job = store.claim_job("w", t0, t0, LEASE).await.unwrap().unwrap();
    assert!(store.fail_connector_sync(&job.lease(), A, c.id, "unreachable", t0).await.unwrap());
    assert_eq!(store.connector(A, c.id).await.unwrap().unwrap().status, ConnectorStatus::Disconnected);
    assert_eq!(store.count_managed_devices(A, None).await.unwrap(), 2);
    assert!(
        matches!(
            store
                .trigger_connector_sync(A, c.id, SyncType::DeltaSync, t0, &connector_job(c.id, SyncType::DeltaSync))
                .await
                .unwrap(),
            ConnectorSyncDecision::Started { .. }
        ),
        "not stuck"
    );

    assert!(store.delete_connector(A, c.id).await.unwrap());
    assert_eq!(store.count_managed_devices(A, None).await.unwrap(), 0, "its devices go with it");
}

/// A sync stages its records in batches; only the attempt that completes is applied, whole, and
/// what a failed or dead attempt staged never shows.
async fn exchange_syncs_apply_only_the_completing_attempt(store: &dyn Backend) {
    use dmsync_core::exchange::*;
    with_tenants(store).await;
    let t0 = OffsetDateTime::from_unix_timestamp(OffsetDateTime::now_utc().unix_timestamp()).unwrap();
    let c = connector(A);
    store.create_connector(&c, OffsetDateTime::now_utc()).await.unwrap();
    store
        .trigger_connector_sync(A, c.id, SyncType::FullSync, t0, &connector_job(c.id, SyncType::FullSync))
        .await
        .unwrap();
    let job = store.claim_job("w1", t0, t0, LEASE).await.unwrap().unwrap();
    assert!(store.stage_connector_records(&job.lease(), A, c.id, &[mobile("D1", t0), mobile("D2", t0)]).await.unwrap());
    store.complete_connector_sync(&job.lease(), A, c.id, true, t0).await.unwrap().unwrap();
    let access = |devices: &[EasDevice], id: &str| {
        devices.iter().find(|d| d.record.device_id == id).map(|d| d.record.access_state)
    };

    // The first attempt of the next full sync stages two batches, then its worker dies.
    store
        .trigger_connector_sync(A, c.id, SyncType::FullSync, t0, &connector_job(c.id, SyncType::FullSync))
        .await
        .unwrap();
    let dead = store.claim_job("w1", t0, t0, LEASE).await.unwrap().unwrap();
    let mut blocked = mobile("D1", t0);
    blocked.access_state = ExchangeAccessState::Blocked;
    assert!(store.stage_connector_records(&dead.lease(), A, c.id, &[blocked, mobile("D3", t0)]).await.unwrap());
    assert!(store.stage_connector_records(&dead.lease(), A, c.id, &[mobile("D4", t0)]).await.unwrap());
    let devices = store.list_managed_devices(A, &ListQuery::first(10)).await.unwrap();
    assert_eq!(
        (devices.len(), access(&devices, "D1")),
        (2, Some(ExchangeAccessState::Allowed)),
        "nothing staged shows"
    );

    // Its lease runs out; the retry reads the source again, with a device listed in two batches.
    let later = t0 + LEASE + Duration::seconds(1);
    let retry = store.claim_job("w2", later, later, LEASE).await.unwrap().unwrap();
    assert_eq!((retry.id, retry.attempt), (dead.id, 2));
    assert!(!store.stage_connector_records(&dead.lease(), A, c.id, &[mobile("D6", t0)]).await.unwrap(), "fenced");
    let mut quarantined = mobile("D1", t0 + Duration::seconds(7));
    quarantined.access_state = ExchangeAccessState::Quarantined;
    let mut blocked = mobile("D1", t0);
    blocked.access_state = ExchangeAccessState::Blocked;
    assert!(store.stage_connector_records(&retry.lease(), A, c.id, &[blocked, mobile("D5", t0)]).await.unwrap());
    assert!(store.stage_connector_records(&retry.lease(), A, c.id, &[quarantined]).await.unwrap());
    assert!(store.complete_connector_sync(&dead.lease(), A, c.id, true, later).await.unwrap().is_none(), "fenced");
    let stats = store.complete_connector_sync(&retry.lease(), A, c.id, true, later).await.unwrap().unwrap();
    assert_eq!((stats.read, stats.upserted, stats.removed), (2, 2, 1));
    let devices = store.list_managed_devices(A, &ListQuery::first(10)).await.unwrap();
    let mut ids: Vec<&str> = devices.iter().map(|d| d.record.device_id.as_str()).collect();
    ids.sort();
    assert_eq!(ids, ["D1", "D5"], "the dead attempt's D3 and D4 are not applied; D2 is removed");
    assert_eq!(access(&devices, "D1"), Some(ExchangeAccessState::Quarantined), "a later batch's record wins");
    assert_eq!(store.connector(A, c.id).await.unwrap().unwrap().watermark, Some(t0 + Duration::seconds(7)));

    // A sync that fails after staging changes no device, and leaves nothing for the next one.
    store
        .trigger_connector_sync(A, c.id, SyncType::FullSync, later, &connector_job(c.id, SyncType::FullSync))
        .await
        .unwrap();
    let failing = store.claim_job("w2", later, later, LEASE).await.unwrap().unwrap();
    assert!(store.stage_connector_records(&failing.lease(), A, c.id, &[mobile("D9", t0)]).await.unwrap());
    assert!(store.fail_connector_sync(&failing.lease(), A, c.id, "a record has no DeviceId", later).await.unwrap());
    let after = store.connector(A, c.id).await.unwrap().unwrap();
    assert_eq!((after.status, after.last_sync), (ConnectorStatus::Disconnected, Some(later)));
    assert_eq!(store.count_managed_devices(A, None).await.unwrap(), 2);
    store
        .trigger_connector_sync(A, c.id, SyncType::DeltaSync, later, &connector_job(c.id, SyncType::DeltaSync))
        .await
        .unwrap();
    let delta = store.claim_job("w2", later, later, LEASE).await.unwrap().unwrap();
    let stats = store.complete_connector_sync(&delta.lease(), A, c.id, false, later).await.unwrap().unwrap();
    assert_eq!((stats.upserted, stats.removed), (0, 0));
    assert_eq!(store.count_managed_devices(A, None).await.unwrap(), 2);

    // A released attempt's number is used again: beginning to stage empties what it staged.
    store
        .trigger_connector_sync(A, c.id, SyncType::FullSync, later, &connector_job(c.id, SyncType::FullSync))
        .await
        .unwrap();
    let released = store.claim_job("w2", later, later, LEASE).await.unwrap().unwrap();
    assert!(store.begin_connector_staging(&released.lease(), A, c.id).await.unwrap());
    assert!(store.stage_connector_records(&released.lease(), A, c.id, &[mobile("D7", t0)]).await.unwrap());
    store.release_job(&released.lease()).await.unwrap();
    let again = store.claim_job("w3", later, later, LEASE).await.unwrap().unwrap();
    assert_eq!(again.attempt, released.attempt);
    assert!(!store.begin_connector_staging(&released.lease(), A, c.id).await.unwrap(), "fenced");
    assert!(store.begin_connector_staging(&again.lease(), A, c.id).await.unwrap());
    assert!(store.stage_connector_records(&again.lease(), A, c.id, &[mobile("D1", t0)]).await.unwrap());
    let stats = store.complete_connector_sync(&again.lease(), A, c.id, true, later).await.unwrap().unwrap();
    assert_eq!((stats.upserted, stats.removed), (1, 1));
    let devices = store.list_managed_devices(A, &ListQuery::first(10)).await.unwrap();
    assert_eq!(
        devices.iter().map(|d| d.record.device_id.as_str()).collect::<Vec<_>>(),
        ["D1"],
        "D7 was never read by the attempt that completed"
    );
}

async fn exchange_schedules_start_each_due_sync_once(store: &dyn Backend) {
    use dmsync_core::exchange::*;
    with_tenants(store).await;
    let c = connector(A);
    store.create_connector(&c, OffsetDateTime::now_utc()).await.unwrap();
    let delta = Duration::minutes(15);
    let full = Duration::hours(24);
    let now = OffsetDateTime::now_utc();
    assert_eq!(
        store.schedule_connector_syncs(now + Duration::days(3), delta, full, &connector_job).await.unwrap(),
        0,
        "no source, no schedule"
    );
    store.set_connector_source(A, c.id, &ConnectorSource::File { path: "/dev/null".into() }, now).await.unwrap();
    assert_eq!(
        store.schedule_connector_syncs(now + Duration::minutes(5), delta, full, &connector_job).await.unwrap(),
        0,
        "not due yet"
    );
    let at = now + Duration::minutes(16);
    assert_eq!(store.schedule_connector_syncs(at, delta, full, &connector_job).await.unwrap(), 1);
    assert_eq!(
        store.schedule_connector_syncs(at, delta, full, &connector_job).await.unwrap(),
        0,
        "once, while it runs"
    );
    let job = store.claim_job("w", at, at, LEASE).await.unwrap().unwrap();
    assert_eq!(job.payload["syncType"], "deltaSync");
    store.complete_connector_sync(&job.lease(), A, c.id, false, at).await.unwrap().unwrap();
    assert_eq!(
        store.schedule_connector_syncs(at + Duration::minutes(10), delta, full, &connector_job).await.unwrap(),
        0
    );
    let day = now + Duration::hours(25);
    assert_eq!(store.schedule_connector_syncs(day, delta, full, &connector_job).await.unwrap(), 1);
    let job = store.claim_job("w", day, day, LEASE).await.unwrap().unwrap();
    assert_eq!(job.payload["syncType"], "fullSync");
}

async fn clock_offset_only_grows(store: &dyn Backend) {
    assert_eq!(store.clock_offset().await.unwrap(), Duration::ZERO);
    store.save_clock_offset(Duration::seconds(600)).await.unwrap();
    store.save_clock_offset(Duration::seconds(60)).await.unwrap();
    assert_eq!(store.clock_offset().await.unwrap(), Duration::seconds(600));
}

/// A signing key with the id `kid-1`.
fn test_signing_key() -> dmsync_core::identity::SigningKey {
    dmsync_core::identity::SigningKey {
        kid: "kid-1".into(),
        private_pem: "pem".into(),
        n: "n".into(),
        e: "AQAB".into(),
        created_at: OffsetDateTime::now_utc(),
    }
}

async fn signing_keys_round_trip(store: &dyn Backend) {
    let key = test_signing_key();
    store.insert_signing_key(&key).await.unwrap();
    let keys = store.signing_keys().await.unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!((keys[0].kid.as_str(), keys[0].e.as_str()), ("kid-1", "AQAB"));
}

/// Concurrent sync requests: exactly one starts, on any backend (on PostgreSQL each request
/// runs on its own connection, so they really race).
async fn concurrent_sync_requests_start_once(store: &dyn Backend) {
    with_tenants(store).await;
    let now = OffsetDateTime::now_utc();
    let job = sync_job();
    let decisions =
        futures::future::join_all((0..40).map(|_| store.trigger_autopilot_sync(A, now, COOLDOWN, &job))).await;
    let started = decisions.iter().filter(|d| matches!(d, Ok(SyncDecision::Started { .. }))).count();
    let refused = decisions.iter().filter(|d| matches!(d, Ok(SyncDecision::AlreadyInProgress))).count();
    assert_eq!((started, refused), (1, 39), "{decisions:?}");
}

/// Replicas that start together on an empty database keep exactly one signing key.
async fn first_signing_key_is_inserted_once(store: &dyn Backend) {
    let keys: Vec<_> = (0..8)
        .map(|i| dmsync_core::identity::SigningKey {
            kid: format!("kid-{i}"),
            private_pem: "pem".into(),
            n: "n".into(),
            e: "AQAB".into(),
            created_at: OffsetDateTime::now_utc(),
        })
        .collect();
    let inserted = futures::future::join_all(keys.iter().map(|k| store.insert_first_signing_key(k))).await;
    assert_eq!(inserted.iter().filter(|r| matches!(r, Ok(true))).count(), 1, "{inserted:?}");
    assert_eq!(store.signing_keys().await.unwrap().len(), 1);
}

fn certificate_authority(n: usize) -> dmsync_core::certificate::StoredCertificateAuthority {
    dmsync_core::certificate::StoredCertificateAuthority {
        certificate_pem: format!("certificate {n}"),
        private_key_pem: format!("key {n}"),
        created_at: OffsetDateTime::UNIX_EPOCH + Duration::days(n as i64),
    }
}

/// Replicas that start together on an empty database agree on one certificate authority: each
/// insert returns the one stored, and every one of them returns the same.
async fn first_certificate_authority_wins(store: &dyn Backend) {
    assert_eq!(store.certificate_authority().await.unwrap(), None);
    let candidates: Vec<_> = (0..8).map(certificate_authority).collect();
    let stored = futures::future::join_all(candidates.iter().map(|ca| store.insert_certificate_authority(ca))).await;
    let stored: Vec<_> = stored.into_iter().map(Result::unwrap).collect();
    assert!(candidates.contains(&stored[0]));
    assert!(stored.iter().all(|ca| *ca == stored[0]), "{stored:?}");
    assert_eq!(store.certificate_authority().await.unwrap().as_ref(), Some(&stored[0]));
    // A later start's insert changes nothing.
    assert_eq!(store.insert_certificate_authority(&certificate_authority(99)).await.unwrap(), stored[0]);
}

/// Registration writes racing with reconciliations: whatever interleaving, a last
/// reconciliation sees every committed change, so no device is lost or left over. This is the
/// change sequence's ordering guarantee; on PostgreSQL it needs the counter row lock.
async fn reconcile_sees_every_change_under_concurrent_writes(store: &dyn Backend) {
    with_tenants(store).await;
    let now = OffsetDateTime::now_utc();
    let writers = futures::future::join_all((0..8).map(|w| async move {
        for batch in 0..5 {
            let rows: Vec<_> =
                (0..20).map(|i| reg(&format!("W{w}-{batch}-{i}"), &format!("hash-{w}-{batch}-{i}"))).collect();
            store.put_registrations(A, &rows, now).await.unwrap().unwrap();
            if batch % 2 == 1 {
                assert!(store.delete_registration(A, &format!("W{w}-{batch}-0")).await.unwrap());
            }
        }
    }));
    let reconciler = async {
        for _ in 0..10 {
            store.reconcile_autopilot_devices(A, now).await.unwrap();
        }
    };
    futures::join!(writers, reconciler);
    store.reconcile_autopilot_devices(A, now).await.unwrap();
    // 8 writers x 5 batches x 20 rows, less one deletion in each of batches 1 and 3.
    assert_eq!(store.count_autopilot_devices(A, None).await.unwrap(), 8 * 5 * 20 - 8 * 2);
}

/// A reconciliation in several chunks reports progress, stops at a chunk boundary when asked,
/// and converges when run again. The store given has a reconcile chunk of three rows.
async fn reconcile_in_chunks_stops_and_resumes(store: &dyn Backend) {
    with_tenants(store).await;
    let now = OffsetDateTime::now_utc();
    let rows: Vec<_> = (0..10).map(|i| reg(&format!("C-{i}"), &format!("hash-{i}"))).collect();
    store.put_registrations(A, &rows, now).await.unwrap().unwrap();
    let calls = std::sync::atomic::AtomicUsize::new(0);
    let stopped = store
        .reconcile_autopilot_devices_with_progress(A, now, &|_, _| {
            calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 1
        })
        .await
        .unwrap();
    assert!(stopped.is_none(), "stopped at the second chunk boundary");
    assert_eq!(store.count_autopilot_devices(A, None).await.unwrap(), 6, "two chunks of three were written");
    let reports = std::sync::Mutex::new(Vec::new());
    let stats = store
        .reconcile_autopilot_devices_with_progress(A, now, &|s, rows| {
            reports.lock().unwrap().push((s.created, rows));
            true
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!((stats.created, stats.updated, stats.deleted), (4, 0, 0), "the rerun converges");
    assert_eq!(store.count_autopilot_devices(A, None).await.unwrap(), 10);
    assert!(reports.lock().unwrap().len() >= 4, "{:?}", reports.lock().unwrap());
    // Deletions run in chunks too.
    for i in 0..7 {
        assert!(store.delete_registration(A, &format!("C-{i}")).await.unwrap());
    }
    let stats = store.reconcile_autopilot_devices(A, now).await.unwrap();
    assert_eq!(stats.deleted, 7);
    assert_eq!(store.count_autopilot_devices(A, None).await.unwrap(), 3);
}

async fn last_error_survives_a_later_success(store: &dyn Backend) {
    use dmsync_core::exchange::*;
    with_tenants(store).await;
    let t0 = OffsetDateTime::now_utc();
    let retry = t0 + Duration::seconds(10);
    // An Autopilot sync that failed once, then succeeded.
    store.trigger_autopilot_sync(A, t0, COOLDOWN, &sync_job()).await.unwrap();
    let job = store.claim_job("w", t0, t0, LEASE).await.unwrap().unwrap();
    assert!(store.fail_job(&job.lease(), "flaky once", Some(retry)).await.unwrap());
    let job = store.claim_job("w", retry, retry, LEASE).await.unwrap().unwrap();
    assert!(store.finish_autopilot_sync(&job.lease(), A, SyncOutcome::Completed, None, retry).await.unwrap());
    let done = store.job(job.id).await.unwrap().unwrap();
    assert_eq!((done.state, done.last_error.as_deref()), (JobState::Succeeded, Some("flaky once")));

    // A connector sync that failed once, then succeeded.
    let c = connector(A);
    store.create_connector(&c, t0).await.unwrap();
    store
        .trigger_connector_sync(A, c.id, SyncType::FullSync, t0, &connector_job(c.id, SyncType::FullSync))
        .await
        .unwrap();
    let job = store.claim_job("w", retry, retry, LEASE).await.unwrap().unwrap();
    assert!(store.fail_job(&job.lease(), "source unreachable once", Some(retry)).await.unwrap());
    let job = store.claim_job("w", retry, retry, LEASE).await.unwrap().unwrap();
    assert!(store.begin_connector_staging(&job.lease(), A, c.id).await.unwrap());
    store.complete_connector_sync(&job.lease(), A, c.id, true, retry).await.unwrap().unwrap();
    let done = store.job(job.id).await.unwrap().unwrap();
    assert_eq!((done.state, done.last_error.as_deref()), (JobState::Succeeded, Some("source unreachable once")));
}

async fn connector_source_time_comes_from_the_clock(store: &dyn Backend) {
    use dmsync_core::exchange::*;
    with_tenants(store).await;
    // A Clock far behind the wall clock: the schedule follows the time the source was set on
    // it, not the wall-clock time of the write.
    let set_at = OffsetDateTime::from_unix_timestamp(1_000_000_000).unwrap();
    let c = connector(A);
    store.create_connector(&c, set_at).await.unwrap();
    store.set_connector_source(A, c.id, &ConnectorSource::File { path: "/dev/null".into() }, set_at).await.unwrap();
    let (delta, full) = (Duration::minutes(15), Duration::hours(24));
    assert_eq!(
        store.schedule_connector_syncs(set_at + Duration::minutes(5), delta, full, &connector_job).await.unwrap(),
        0
    );
    assert_eq!(
        store.schedule_connector_syncs(set_at + Duration::minutes(16), delta, full, &connector_job).await.unwrap(),
        1
    );
}

async fn enqueuing_wakes_a_waiting_worker(store: &dyn Backend) {
    with_tenants(store).await;
    let t0 = OffsetDateTime::now_utc();
    store.trigger_autopilot_sync(A, t0, COOLDOWN, &sync_job()).await.unwrap();
    // Signalled before anyone waited: the wake-up is kept for the next wait.
    let woken = tokio::time::timeout(std::time::Duration::from_secs(5), store.wait_for_enqueued_job()).await;
    assert!(woken.is_ok(), "a job enqueued before the wait wakes it");
}

/// A page that reads only some fields reads them exactly as a whole page does, in the same
/// order, and leaves the rest empty.
async fn a_page_reads_only_the_fields_it_is_asked_for(store: &dyn Backend) {
    with_tenants(store).await;
    let now = OffsetDateTime::now_utc();
    let rows: Vec<_> = ["SEL-2", "SEL-1", "SEL-3"].iter().map(|s| reg(s, &format!("hash-{s}"))).collect();
    store.put_registrations(A, &rows, now).await.unwrap().unwrap();
    store.reconcile_autopilot_devices(A, now).await.unwrap();
    let order = Some((DeviceField::SerialNumber, SortDirection::Descending));
    let whole = DeviceQuery { order_by: order, ..DeviceQuery::first(10) };
    let only = DeviceQuery { only: Some(vec![DeviceField::Id, DeviceField::GroupTag]), ..whole.clone() };
    let all = store.list_autopilot_devices(A, &whole).await.unwrap();
    let some = store.list_autopilot_devices(A, &only).await.unwrap();
    let ids = |d: &[dmsync_core::autopilot::AutopilotDevice]| d.iter().map(|d| d.id).collect::<Vec<_>>();
    assert_eq!(ids(&some), ids(&all), "same devices, same order");
    for (s, a) in some.iter().zip(&all) {
        assert_eq!((s.tenant_id, &s.group_tag), (a.tenant_id, &a.group_tag));
        assert_eq!(s.serial_number, a.serial_number, "the ordering field is read for the next page's cursor");
        assert_eq!(s.manufacturer, "", "a field not asked for is left empty");
        assert!(!a.manufacturer.is_empty());
    }
}

/// The generation a single-node store reports moves after each committed write and only then,
/// so that what the server keeps in memory from a read can be dropped when anything changed.
async fn committed_writes_move_the_write_generation(store: &dyn Backend) {
    let Some(before) = store.write_generation() else {
        assert_eq!(store.topology(), Topology::Shared, "only a shared store has no generation");
        return;
    };
    assert_eq!(store.topology(), Topology::SingleNode);
    with_tenants(store).await;
    // The first read of a tenant's settings creates them.
    store.autopilot_settings(A).await.unwrap();
    let written = store.write_generation().unwrap();
    assert!(written > before, "creating tenants moved it");
    store.tenant(A).await.unwrap();
    store.autopilot_settings(A).await.unwrap();
    store.list_autopilot_devices(A, &DeviceQuery::first(10)).await.unwrap();
    assert_eq!(store.write_generation(), Some(written), "reads leave it");
    let t0 = OffsetDateTime::now_utc();
    store.trigger_autopilot_sync(A, t0, COOLDOWN, &sync_job()).await.unwrap();
    assert!(store.write_generation().unwrap() > written, "a committed transaction moved it");
}

fn tag_ids(tags: &[RoleScopeTag]) -> Vec<u32> {
    tags.iter().map(|t| t.id.number()).collect()
}

fn rename(name: &str) -> RoleScopeTagChanges {
    RoleScopeTagChanges { display_name: Some(name.into()), description: None }
}

/// Every tenant has the Default tag, 0; custom tags are numbered per tenant and a number is
/// never given twice; names are unique per tenant ignoring case; Default takes no change.
async fn role_scope_tags_are_numbered_and_keep_default(store: &dyn Backend) {
    with_tenants(store).await;
    let all = ListQuery::first(10);
    let defaults = store.list_role_scope_tags(A, &all).await.unwrap();
    assert_eq!(tag_ids(&defaults), [0]);
    assert_eq!((defaults[0].display_name.as_str(), defaults[0].is_built_in()), ("Default", true));

    let sales = store.create_role_scope_tag(A, "Sales", "Sales devices").await.unwrap().unwrap();
    let berlin = store.create_role_scope_tag(A, "Berlin", "").await.unwrap().unwrap();
    assert_eq!((sales.id.number(), berlin.id.number(), sales.is_built_in()), (1, 2, false));
    let duplicate = store.create_role_scope_tag(A, "SALES", "").await.unwrap();
    assert_eq!(duplicate, Err(RoleScopeTagRefusal::DuplicateName));
    assert_eq!(store.create_role_scope_tag(A, "default", "").await.unwrap(), Err(RoleScopeTagRefusal::DuplicateName));
    // Numbers and names are per tenant.
    let other = store.create_role_scope_tag(B, "Sales", "").await.unwrap().unwrap();
    assert_eq!(other.id.number(), 1);

    assert_eq!(
        store.update_role_scope_tag(A, sales.id, &rename("berlin")).await.unwrap(),
        Err(RoleScopeTagRefusal::DuplicateName)
    );
    let renamed = store.update_role_scope_tag(A, sales.id, &rename("Sales EU")).await.unwrap().unwrap();
    assert_eq!((renamed.display_name.as_str(), renamed.description.as_str()), ("Sales EU", "Sales devices"));
    // A tag may change the case of its own name.
    store.update_role_scope_tag(A, berlin.id, &rename("BERLIN")).await.unwrap().unwrap();
    let default = RoleScopeTagId::DEFAULT;
    let unchanged = RoleScopeTagChanges { display_name: Some("Default".into()), description: Some(String::new()) };
    assert_eq!(store.update_role_scope_tag(A, default, &unchanged).await.unwrap().unwrap().display_name, "Default");
    assert_eq!(
        store.update_role_scope_tag(A, default, &rename("Everything")).await.unwrap(),
        Err(RoleScopeTagRefusal::BuiltIn)
    );
    let described = RoleScopeTagChanges { display_name: None, description: Some("x".into()) };
    assert_eq!(store.update_role_scope_tag(A, default, &described).await.unwrap(), Err(RoleScopeTagRefusal::BuiltIn));
    let missing = RoleScopeTagId::new(99);
    assert_eq!(
        store.update_role_scope_tag(A, missing, &rename("x")).await.unwrap(),
        Err(RoleScopeTagRefusal::NotFound)
    );

    assert_eq!(store.delete_role_scope_tag(A, default).await.unwrap(), Err(RoleScopeTagRefusal::BuiltIn));
    store.delete_role_scope_tag(A, berlin.id).await.unwrap().unwrap();
    assert_eq!(store.delete_role_scope_tag(A, berlin.id).await.unwrap(), Err(RoleScopeTagRefusal::NotFound));
    let paris = store.create_role_scope_tag(A, "Berlin", "").await.unwrap().unwrap();
    assert_eq!(paris.id.number(), 3, "a deleted tag's number is not given again");

    assert_eq!(store.role_scope_tag(A, sales.id).await.unwrap().unwrap().display_name, "Sales EU");
    assert_eq!(store.role_scope_tag(B, sales.id).await.unwrap().unwrap().display_name, "Sales");
    assert_eq!(store.role_scope_tag(B, paris.id).await.unwrap(), None, "another tenant's tag");
    assert_eq!(tag_ids(&store.list_role_scope_tags(A, &all).await.unwrap()), [0, 1, 3]);
    assert_eq!(tag_ids(&store.list_role_scope_tags(B, &all).await.unwrap()), [0, 1]);
}

/// Scope tag lists filter on the name and the id as strings, order, count and page by the
/// numeric id (so 10 comes after 9).
async fn role_scope_tag_queries_filter_order_and_page(store: &dyn Backend) {
    with_tenants(store).await;
    for i in 1..=11 {
        store.create_role_scope_tag(A, &format!("Region {i:02}"), "").await.unwrap().unwrap();
    }
    let parse = |text: &str| {
        dmsync_core::filter::parse_filter(text, |name| match name {
            "id" => Some(RoleScopeTagField::Id),
            "displayName" => Some(RoleScopeTagField::DisplayName),
            _ => None,
        })
        .unwrap()
    };
    let by = |filter: &str| ListQuery { filter: Some(parse(filter)), ..ListQuery::first(20) };
    assert_eq!(tag_ids(&store.list_role_scope_tags(A, &by("displayName eq 'region 03'")).await.unwrap()), [3]);
    assert_eq!(tag_ids(&store.list_role_scope_tags(A, &by("id eq '10'")).await.unwrap()), [10]);
    assert_eq!(
        tag_ids(&store.list_role_scope_tags(A, &by("startswith(displayName, 'REGION 1')")).await.unwrap()),
        [10, 11]
    );
    let filter = parse("startswith(displayName, 'Region')");
    assert_eq!(store.count_role_scope_tags(A, Some(&filter)).await.unwrap(), 11);
    assert_eq!(store.count_role_scope_tags(A, None).await.unwrap(), 12);

    // Pages of five by id: 0..=4, 5..=9, 10..=11.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page =
            store.list_role_scope_tags(A, &ListQuery { after: after.clone(), ..ListQuery::first(5) }).await.unwrap();
        let Some(last) = page.last() else { break };
        after = Some(DeviceCursor { sort_value: None, id: last.id.into() });
        seen.extend(tag_ids(&page));
    }
    assert_eq!(seen, (0..=11).collect::<Vec<_>>());
    let descending = ListQuery {
        order_by: Some((RoleScopeTagField::DisplayName, SortDirection::Descending)),
        ..ListQuery::first(2)
    };
    let first = store.list_role_scope_tags(A, &descending).await.unwrap();
    assert_eq!(tag_ids(&first), [11, 10]);
    let cursor = DeviceCursor { sort_value: Some(first[1].display_name.clone()), id: first[1].id.into() };
    let second = store.list_role_scope_tags(A, &ListQuery { after: Some(cursor), ..descending }).await.unwrap();
    assert_eq!(tag_ids(&second), [9, 8]);
}

/// Concurrent creates in one tenant (on PostgreSQL each on its own connection): one tag per
/// name, every id given once.
async fn concurrent_role_scope_tag_creates_keep_names_and_ids_unique(store: &dyn Backend) {
    with_tenants(store).await;
    let names: Vec<String> = (0..24).map(|i| if i % 2 == 0 { "Race".to_owned() } else { format!("Tag {i}") }).collect();
    let created = futures::future::join_all(names.iter().map(|name| store.create_role_scope_tag(A, name, ""))).await;
    let created: Vec<_> = created.into_iter().map(Result::unwrap).collect();
    let races = created.iter().filter(|c| matches!(c, Ok(tag) if tag.display_name == "Race")).count();
    let refused = created.iter().filter(|c| **c == Err(RoleScopeTagRefusal::DuplicateName)).count();
    assert_eq!((races, refused), (1, 11), "{created:?}");
    let mut ids: Vec<u32> = created.iter().filter_map(|c| c.as_ref().ok()).map(|t| t.id.number()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 13, "{ids:?}");
    assert_eq!(tag_ids(&store.list_role_scope_tags(A, &ListQuery::first(100)).await.unwrap()).len(), 14);
}

/// The `[HWID]` a hardware hash gets: `h:` and the first 52 bits of its SHA-256 digest, on
/// every backend alike.
fn expected_hardware_id(hash: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(hash.as_bytes());
    format!("h:{}", u64::from_be_bytes(digest[..8].try_into().unwrap()) >> 12)
}

fn entra_filter(text: &str) -> dmsync_core::filter::Filter<EntraDeviceField> {
    dmsync_core::filter::parse_filter(text, |name| match name {
        "deviceId" => Some(EntraDeviceField::DeviceId),
        "displayName" => Some(EntraDeviceField::DisplayName),
        "operatingSystem" => Some(EntraDeviceField::OperatingSystem),
        _ => None,
    })
    .unwrap()
}

async fn entra_device_by_device_id(store: &dyn Backend, tenant: TenantId, device_id: uuid::Uuid) -> Vec<EntraDevice> {
    let query =
        ListQuery { filter: Some(entra_filter(&format!("deviceId eq '{device_id}'"))), ..EntraDeviceQuery::first(10) };
    store.list_entra_devices(tenant, &query).await.unwrap()
}

/// A sync creates every new device's Entra object with it, keeps `[OrderId]` and
/// `[PurchaseOrderId]` in step with later registrations, and never creates a second one.
async fn a_sync_creates_entra_devices_with_the_devices(store: &dyn Backend) {
    with_tenants(store).await;
    let t0 = OffsetDateTime::from_unix_timestamp(OffsetDateTime::now_utc().unix_timestamp()).unwrap();
    let mut s1 = reg("E-1", "hash-e1");
    s1.purchase_order_identifier = "PO-7".into();
    store.put_registrations(A, &[s1, reg("E-2", "hash-e2")], t0).await.unwrap().unwrap();
    store.put_registrations(B, &[reg("E-B", "hash-eb")], t0).await.unwrap().unwrap();
    store.reconcile_autopilot_devices(A, t0).await.unwrap();
    assert_eq!(store.count_entra_devices(A, None).await.unwrap(), 2);
    assert_eq!(store.count_entra_devices(B, None).await.unwrap(), 0, "B was not synced");

    let id = store.device_ids_by_serial(A, &["E-1".into()]).await.unwrap()[0].1;
    let device = store.autopilot_device(A, id).await.unwrap().unwrap();
    let device_id = device.azure_ad_device_id.expect("the device has its Entra deviceId");
    let found = entra_device_by_device_id(store, A, device_id).await;
    assert_eq!(found.len(), 1);
    let entra = &found[0];
    assert_eq!(store.entra_device(A, entra.id).await.unwrap().as_ref(), Some(entra));
    assert_eq!(store.entra_device(B, entra.id).await.unwrap(), None, "another tenant's object is not found");
    assert_ne!(entra.id.as_uuid(), device_id, "the object id is not the deviceId");
    assert_eq!(
        (entra.display_name.as_str(), entra.operating_system.as_str(), entra.trust_type.as_str()),
        ("E-1", "Windows", "AzureAd")
    );
    assert!(entra.account_enabled);
    assert_eq!(entra.created_at, t0);
    assert_eq!(
        entra.physical_ids(),
        [
            format!("[ZTDID]:{id}"),
            "[PurchaseOrderId]:PO-7".to_owned(),
            format!("[HWID]:{}", expected_hardware_id("hash-e1"))
        ]
    );

    // A new group tag in the deployment service reaches [OrderId] at the next sync.
    let mut tagged = reg("E-1", "hash-e1");
    tagged.group_tag = "Sales".into();
    store.put_registrations(A, &[tagged], t0).await.unwrap().unwrap();
    store.reconcile_autopilot_devices(A, t0 + Duration::seconds(1)).await.unwrap();
    let entra = store.entra_device(A, entra.id).await.unwrap().unwrap();
    assert_eq!((entra.order_id.as_str(), entra.purchase_order_id.as_str()), ("Sales", ""));
    assert_eq!(entra.physical_ids()[1], "[OrderId]:Sales");
    assert_eq!(store.count_entra_devices(A, None).await.unwrap(), 2, "an update creates no second object");
    let device = store.autopilot_device(A, id).await.unwrap().unwrap();
    assert_eq!(device.azure_ad_device_id, Some(device_id), "the deviceId does not change");

    // Filters on the listed properties, ignoring case.
    let count = |text: &str| {
        let filter = entra_filter(text);
        async move { store.count_entra_devices(A, Some(&filter)).await.unwrap() }
    };
    assert_eq!(count("displayName eq 'e-2'").await, 1);
    assert_eq!(count("operatingSystem eq 'windows'").await, 2);
    assert_eq!(count(&format!("deviceId eq '{}'", device_id.to_string().to_uppercase())).await, 1);
    let page = store.list_entra_devices(A, &EntraDeviceQuery::first(1)).await.unwrap();
    let after = DeviceCursor { sort_value: None, id: page[0].id.into() };
    let rest = store
        .list_entra_devices(A, &EntraDeviceQuery { after: Some(after), ..EntraDeviceQuery::first(10) })
        .await
        .unwrap();
    assert_eq!(rest.len(), 1);
    assert!(rest[0].id > page[0].id, "keyset order");
}

/// The object outlives the Autopilot identity and the identity outlives the object, as in
/// Intune; a group tag set through Intune reaches `[OrderId]` at once.
async fn entra_devices_outlive_their_autopilot_devices(store: &dyn Backend) {
    use dmsync_core::autopilot::DevicePropertiesUpdate;
    with_tenants(store).await;
    let t0 = OffsetDateTime::now_utc();
    store.put_registrations(A, &[reg("F-1", "hash-f1"), reg("F-2", "hash-f2")], t0).await.unwrap().unwrap();
    store.reconcile_autopilot_devices(A, t0).await.unwrap();
    let ids = store.device_ids_by_serial(A, &["F-1".into(), "F-2".into()]).await.unwrap();
    let f1 = ids.iter().find(|(s, _)| s == "F-1").unwrap().1;
    let f2 = ids.iter().find(|(s, _)| s == "F-2").unwrap().1;
    let object_of = |id| async move {
        let device_id = store.autopilot_device(A, id).await.unwrap().unwrap().azure_ad_device_id.unwrap();
        entra_device_by_device_id(store, A, device_id).await.pop().unwrap()
    };

    let update = DevicePropertiesUpdate { group_tag: Some("Kiosk".into()), ..Default::default() };
    assert!(store.update_autopilot_device(A, f1, &update, t0).await.unwrap());
    assert_eq!(object_of(f1).await.order_id, "Kiosk", "in the update's transaction");
    let update = DevicePropertiesUpdate { display_name: Some("PC-1".into()), ..Default::default() };
    assert!(store.update_autopilot_device(A, f1, &update, t0).await.unwrap());
    assert_eq!(object_of(f1).await.order_id, "Kiosk", "only a group tag changes [OrderId]");

    // Deleting the object leaves the identity, and a sync does not bring the object back.
    let f2_object = object_of(f2).await;
    assert!(!store.delete_entra_device(B, f2_object.id).await.unwrap(), "another tenant's object");
    assert!(store.delete_entra_device(A, f2_object.id).await.unwrap());
    assert!(!store.delete_entra_device(A, f2_object.id).await.unwrap(), "deleted once");
    assert!(store.autopilot_device(A, f2).await.unwrap().is_some());
    store.reconcile_autopilot_devices(A, t0).await.unwrap();
    assert_eq!(store.count_entra_devices(A, None).await.unwrap(), 1);

    // Deregistering the identity leaves its object.
    let f1_object = object_of(f1).await;
    let later = t0 + Duration::seconds(10);
    store.request_device_deletion(A, f1, t0, later, &deletion_job()).await.unwrap();
    let job = store.claim_job("w", later, later, LEASE).await.unwrap().unwrap();
    assert!(store.deregister_device(&job.lease(), A, f1, later).await.unwrap());
    store.reconcile_autopilot_devices(A, later).await.unwrap();
    assert!(store.autopilot_device(A, f1).await.unwrap().is_none());
    assert_eq!(store.entra_device(A, f1_object.id).await.unwrap(), Some(f1_object));
}

/// An import creates the device's Entra object in the transaction that completes it.
async fn an_import_creates_the_entra_device(store: &dyn Backend) {
    use dmsync_core::autopilot::ImportStatus;
    with_tenants(store).await;
    let t0 = OffsetDateTime::from_unix_timestamp(OffsetDateTime::now_utc().unix_timestamp()).unwrap();
    let created = store.create_imports(A, "imp", &[new_import("G-1", "hash-g1")], t0, t0, &import_job()).await.unwrap();
    assert_eq!(store.count_entra_devices(A, None).await.unwrap(), 0, "nothing before the import is processed");
    let job = store.claim_job("w", t0, t0, LEASE).await.unwrap().unwrap();
    store.process_imports(&job.lease(), A, t0, false, &assignment_job(), &[]).await.unwrap().unwrap();
    let import = store.imported_device(A, created[0].id).await.unwrap().unwrap();
    assert_eq!(import.status, ImportStatus::Complete);
    let id = import.device_registration_id.unwrap();
    let device_id = store.autopilot_device(A, id).await.unwrap().unwrap().azure_ad_device_id.unwrap();
    let found = entra_device_by_device_id(store, A, device_id).await;
    assert_eq!(found.len(), 1);
    assert_eq!(
        found[0].physical_ids(),
        [format!("[ZTDID]:{id}"), "[OrderId]:Tag".to_owned(), format!("[HWID]:{}", expected_hardware_id("hash-g1"))]
    );
    assert_eq!(found[0].display_name, "G-1");
    // The sync that follows finds the device already there and creates nothing more.
    store.reconcile_autopilot_devices(A, t0 + Duration::seconds(1)).await.unwrap();
    assert_eq!(store.count_entra_devices(A, None).await.unwrap(), 1);
}

/// A device created directly (`POST windowsAutopilotDeviceIdentities`) is registered with its
/// Entra object in one transaction, has no `[HWID]` (no hash came with it), survives the next
/// sync as it was, and holds its serial number against a second create and an import.
async fn a_direct_create_registers_the_device_with_its_entra_device(store: &dyn Backend) {
    use dmsync_core::autopilot::{DeviceCreationRefusal, ImportStatus, NewAutopilotDevice};
    with_tenants(store).await;
    let t0 = OffsetDateTime::from_unix_timestamp(OffsetDateTime::now_utc().unix_timestamp()).unwrap();
    let new = NewAutopilotDevice {
        serial_number: "D-1".into(),
        manufacturer: "Contoso".into(),
        model: "M1".into(),
        group_tag: "Tag".into(),
        purchase_order_identifier: "PO-1".into(),
        display_name: "PC-01".into(),
        user_principal_name: "kim@contoso.com".into(),
        ..Default::default()
    };
    let created = store.create_autopilot_device(A, &new, t0).await.unwrap().unwrap();
    assert_eq!(
        (created.serial_number.as_str(), created.group_tag.as_str(), created.display_name.as_str()),
        ("D-1", "Tag", "PC-01")
    );
    assert_eq!((created.user_principal_name.as_str(), created.created_at), ("kim@contoso.com", t0));
    assert_eq!(store.autopilot_device(A, created.id).await.unwrap().as_ref(), Some(&created));
    let found = entra_device_by_device_id(store, A, created.azure_ad_device_id.unwrap()).await;
    assert_eq!(found.len(), 1);
    assert_eq!(
        found[0].physical_ids(),
        [format!("[ZTDID]:{}", created.id), "[OrderId]:Tag".to_owned(), "[PurchaseOrderId]:PO-1".to_owned()]
    );
    assert_eq!(found[0].display_name, "D-1");

    let again = NewAutopilotDevice { serial_number: "D-1".into(), ..Default::default() };
    assert_eq!(
        store.create_autopilot_device(A, &again, t0).await.unwrap(),
        Err(DeviceCreationRefusal::SerialNumberRegistered)
    );
    assert!(store.create_autopilot_device(B, &again, t0).await.unwrap().is_ok(), "serial numbers are per tenant");
    assert_eq!(store.count_autopilot_devices(A, None).await.unwrap(), 1);
    assert_eq!(store.count_entra_devices(A, None).await.unwrap(), 1);

    // The next sync finds the device as it is: nothing created, nothing lost.
    store.reconcile_autopilot_devices(A, t0 + Duration::seconds(1)).await.unwrap();
    assert_eq!(store.autopilot_device(A, created.id).await.unwrap().as_ref(), Some(&created));
    assert_eq!(store.count_entra_devices(A, None).await.unwrap(), 1);

    // An import of the same serial number is Intune's 806.
    let imported =
        store.create_imports(A, "imp", &[new_import("D-1", "hash-d1")], t0, t0, &import_job()).await.unwrap();
    let job = store.claim_job("w", t0, t0, LEASE).await.unwrap().unwrap();
    store.process_imports(&job.lease(), A, t0, false, &assignment_job(), &[]).await.unwrap().unwrap();
    let import = store.imported_device(A, imported[0].id).await.unwrap().unwrap();
    assert_eq!((import.status, import.error_code), (ImportStatus::Error, 806));
}

fn profile_content(name: &str) -> ProfileContent {
    ProfileContent { kind: ProfileKind::AzureAd, display_name: name.into(), settings: ProfileSettings::default() }
}

/// Profiles: create, read, page, update and delete, scoped to the tenant, with the limit of
/// 350 per tenant.
async fn deployment_profiles_are_kept_per_tenant_up_to_the_limit(store: &dyn Backend) {
    with_tenants(store).await;
    let t0 = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
    let mut content = profile_content("Sales");
    content.settings.device_name_template = "SALES-%SERIAL%".into();
    content.settings.role_scope_tag_ids = vec![RoleScopeTagId::DEFAULT, RoleScopeTagId::new(3)];
    let sales = store.create_deployment_profile(A, &content, t0).await.unwrap().unwrap();
    assert_eq!((sales.created_at, sales.updated_at), (t0, t0));
    assert_eq!(store.deployment_profile(A, sales.id).await.unwrap().as_ref(), Some(&sales), "settings round-trip");
    assert_eq!(store.deployment_profile(B, sales.id).await.unwrap(), None, "another tenant's profile");

    let mut hybrid = profile_content("Hybrid");
    hybrid.kind = ProfileKind::ActiveDirectory;
    hybrid.settings.hybrid_azure_ad_join_skip_connectivity_check = true;
    let hybrid = store.create_deployment_profile(A, &hybrid, t0).await.unwrap().unwrap();
    assert_eq!(store.count_deployment_profiles(A, None).await.unwrap(), 2);
    assert_eq!(store.count_deployment_profiles(B, None).await.unwrap(), 0);

    let first = store.list_deployment_profiles(A, &ProfileQuery::first(1)).await.unwrap();
    let after = DeviceCursor { sort_value: None, id: first[0].id.into() };
    let rest = store.list_deployment_profiles(A, &ProfileQuery { after: Some(after), ..ProfileQuery::first(10) }).await;
    let rest = rest.unwrap();
    assert_eq!(rest.len(), 1);
    assert!(rest[0].id > first[0].id, "keyset order");
    let filter = dmsync_core::filter::parse_filter("displayName eq 'hybrid'", |name| {
        name.eq_ignore_ascii_case("displayName").then_some(ProfileField::DisplayName)
    })
    .unwrap();
    let by_name = ProfileQuery { filter: Some(filter), ..ProfileQuery::first(10) };
    assert_eq!(store.list_deployment_profiles(A, &by_name).await.unwrap(), vec![hybrid.clone()]);
    let mut both =
        store.deployment_profiles_by_ids(A, &[sales.id, hybrid.id, DeploymentProfileId::new()]).await.unwrap();
    both.sort_by_key(|p| p.display_name.clone());
    assert_eq!(both, vec![hybrid.clone(), sales.clone()]);
    assert!(store.deployment_profiles_by_ids(B, &[sales.id]).await.unwrap().is_empty());

    let mut changed = content.clone();
    changed.display_name = "Sales EMEA".into();
    changed.settings.preprovisioning_allowed = true;
    let t1 = t0 + Duration::minutes(5);
    let updated = store.update_deployment_profile(A, sales.id, &changed, t1).await.unwrap().unwrap();
    assert_eq!((updated.display_name.as_str(), updated.created_at, updated.updated_at), ("Sales EMEA", t0, t1));
    assert!(updated.settings.preprovisioning_allowed);
    let refused = store.update_deployment_profile(B, sales.id, &changed, t1).await.unwrap();
    assert_eq!(refused, Err(ProfileRefusal::NotFound));

    for n in 2..MAX_PROFILES_PER_TENANT {
        store.create_deployment_profile(A, &profile_content(&format!("P{n}")), t0).await.unwrap().unwrap();
    }
    let over = store.create_deployment_profile(A, &profile_content("One too many"), t0).await.unwrap();
    assert_eq!(over, Err(ProfileRefusal::TooManyProfiles));
    store.create_deployment_profile(B, &profile_content("B's first"), t0).await.unwrap().expect("B has its own limit");

    assert_eq!(store.delete_deployment_profile(A, hybrid.id).await.unwrap(), Ok(()));
    assert_eq!(store.delete_deployment_profile(A, hybrid.id).await.unwrap(), Err(ProfileRefusal::NotFound));
    store.create_deployment_profile(A, &profile_content("Room again"), t0).await.unwrap().unwrap();
}

/// Assignments: the id clients parse, one All Devices profile per tenant, no profile delete
/// while assigned, and the device reads' empty state.
async fn profile_assignments_keep_the_tenant_rules(store: &dyn Backend) {
    with_tenants(store).await;
    let t0 = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
    let first = store.create_deployment_profile(A, &profile_content("First"), t0).await.unwrap().unwrap();
    let second = store.create_deployment_profile(A, &profile_content("Second"), t0).await.unwrap().unwrap();
    let group = GroupId::new();

    let assigned = store.create_profile_assignment(A, first.id, AssignmentTarget::Group(group), t0).await.unwrap();
    let assigned = assigned.unwrap();
    assert_eq!(assigned.id, format!("{}_{}_0", first.id, group));
    let again = store.create_profile_assignment(A, first.id, AssignmentTarget::Group(group), t0).await.unwrap();
    assert_eq!(again, Err(ProfileRefusal::DuplicateAssignment));
    let excluded = AssignmentTarget::ExclusionGroup(GroupId::new());
    store.create_profile_assignment(A, second.id, excluded, t0).await.unwrap().unwrap();
    let all = store.create_profile_assignment(A, first.id, AssignmentTarget::AllDevices, t0).await.unwrap().unwrap();
    let taken = store.create_profile_assignment(A, second.id, AssignmentTarget::AllDevices, t0).await.unwrap();
    assert_eq!(taken, Err(ProfileRefusal::AllDevicesTaken("First".into())));
    let missing = store.create_profile_assignment(B, first.id, AssignmentTarget::Group(group), t0).await.unwrap();
    assert_eq!(missing, Err(ProfileRefusal::NotFound), "another tenant's profile");

    let listed = store.list_profile_assignments(A, &[first.id]).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed.contains(&assigned) && listed.contains(&all));
    assert_eq!(store.list_profile_assignments(A, &[first.id, second.id]).await.unwrap().len(), 3);
    assert!(store.list_profile_assignments(B, &[first.id]).await.unwrap().is_empty());
    assert_eq!(store.profile_assignment(A, first.id, &assigned.id).await.unwrap(), Some(assigned.clone()));
    assert_eq!(store.profile_assignment(A, second.id, &assigned.id).await.unwrap(), None);

    assert_eq!(store.delete_deployment_profile(A, first.id).await.unwrap(), Err(ProfileRefusal::HasAssignments));
    assert_eq!(store.delete_profile_assignment(A, first.id, &all.id).await.unwrap(), Ok(()));
    assert_eq!(store.delete_profile_assignment(A, first.id, &all.id).await.unwrap(), Err(ProfileRefusal::NotFound));
    store
        .create_profile_assignment(A, second.id, AssignmentTarget::AllDevices, t0)
        .await
        .unwrap()
        .expect("All Devices is free");
    assert_eq!(store.delete_profile_assignment(A, first.id, &assigned.id).await.unwrap(), Ok(()));
    assert_eq!(store.delete_deployment_profile(A, first.id).await.unwrap(), Ok(()));

    // Until the assignment engine runs, no device has a profile.
    store.put_registrations(A, &[reg("P-1", "hash-p1")], t0).await.unwrap().unwrap();
    store.reconcile_autopilot_devices(A, t0).await.unwrap();
    let device = store.device_ids_by_serial(A, &["P-1".into()]).await.unwrap()[0].1;
    let links = store.device_profiles(A, &[device, AutopilotDeviceId::new()]).await.unwrap();
    assert!(links.is_empty(), "a device under no profile, like one that does not exist, is left out: {links:?}");
    assert!(store.device_profiles(B, &[device]).await.unwrap().is_empty());
    let devices = store.list_profile_assigned_devices(A, second.id, &DeviceQuery::first(10)).await.unwrap();
    assert!(devices.is_empty());
}

#[derive(serde::Serialize, serde::Deserialize)]
struct EvaluateGroupMembership {}
impl JobPayload for EvaluateGroupMembership {
    const KIND: &'static str = "evaluateGroupMembership";
}

fn evaluation_job() -> NewJob {
    NewJob::new(&EvaluateGroupMembership {})
}

fn new_group(tenant: TenantId, name: &str, rule: Option<&str>) -> Group {
    let mut group = Group {
        tenant_id: tenant,
        id: GroupId::new(),
        display_name: name.into(),
        description: None,
        mail_nickname: name.to_lowercase().replace(' ', "-"),
        mail_enabled: false,
        security_enabled: true,
        group_types: rule.map(|_| vec![DYNAMIC_MEMBERSHIP.to_owned()]).unwrap_or_default(),
        membership_rule: rule.map(str::to_owned),
        processing_state: None,
        created_at: OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap(),
    };
    group.validate().unwrap();
    group
}

async fn create_group(store: &dyn Backend, group: &Group, now: OffsetDateTime) {
    assert_eq!(store.create_group(group, &[], now, now, &evaluation_job()).await.unwrap(), MemberChange::Done);
}

/// Claims the queued evaluation and runs it.
async fn evaluate(store: &dyn Backend, tenant: TenantId, now: OffsetDateTime) -> EvaluationStats {
    let job = store.claim_job("w", now, now, LEASE).await.unwrap().expect("an evaluation is queued");
    assert_eq!((job.kind.as_str(), job.tenant_id), ("evaluateGroupMembership", tenant));
    store.evaluate_group_membership(&job.lease(), tenant, now).await.unwrap().expect("the lease holds")
}

async fn member_names(store: &dyn Backend, tenant: TenantId, group: GroupId) -> Vec<String> {
    let members = store.list_group_members(tenant, group, &EntraDeviceQuery::first(10_000)).await.unwrap().unwrap();
    let mut names: Vec<String> = members.into_iter().map(|d| d.display_name).collect();
    names.sort();
    names
}

/// Registers the devices (serial, group tag) in the tenant and syncs them, which creates their
/// Entra objects; returns the Autopilot device ids by serial.
async fn entra_devices(
    store: &dyn Backend,
    tenant: TenantId,
    devices: &[(&str, &str)],
    now: OffsetDateTime,
) -> Vec<(String, dmsync_core::AutopilotDeviceId)> {
    let rows: Vec<NewRegistration> = devices
        .iter()
        .map(|(serial, tag)| NewRegistration { group_tag: (*tag).into(), ..reg(serial, &format!("hash-{serial}")) })
        .collect();
    store.put_registrations(tenant, &rows, now).await.unwrap().unwrap();
    store.reconcile_autopilot_devices(tenant, now).await.unwrap();
    let serials: Vec<String> = devices.iter().map(|(s, _)| (*s).to_owned()).collect();
    store.device_ids_by_serial(tenant, &serials).await.unwrap()
}

fn group_filter(text: &str) -> dmsync_core::filter::Filter<GroupField> {
    dmsync_core::filter::parse_filter(text, |name| match name.to_ascii_lowercase().as_str() {
        "id" => Some(GroupField::Id),
        "displayname" => Some(GroupField::DisplayName),
        "mailnickname" => Some(GroupField::MailNickname),
        _ => None,
    })
    .unwrap()
}

/// Groups are created, found by `$filter` ignoring case, replaced and deleted, per tenant.
async fn groups_are_created_filtered_replaced_and_deleted(store: &dyn Backend) {
    with_tenants(store).await;
    let t0 = OffsetDateTime::now_utc();
    let autopilot = new_group(A, "Autopilot Devices", None);
    let sales = new_group(A, "Sales Kiosks", Some(r#"device.devicePhysicalIds -any (_ -eq "[OrderId]:Sales")"#));
    let other = new_group(B, "Autopilot Devices", None);
    for group in [&autopilot, &sales, &other] {
        create_group(store, group, t0).await;
    }
    assert_eq!(store.group(A, autopilot.id).await.unwrap().as_ref(), Some(&autopilot));
    assert_eq!(store.group(A, other.id).await.unwrap(), None, "another tenant's group is not found");
    let stored = store.group(A, sales.id).await.unwrap().unwrap();
    assert_eq!(
        (stored.processing_state, stored.group_types.clone()),
        (Some(ProcessingState::On), sales.group_types.clone())
    );
    let count = |text: &str| {
        let filter = group_filter(text);
        async move { store.count_groups(A, Some(&filter)).await.unwrap() }
    };
    assert_eq!(count("displayName eq 'AUTOPILOT devices'").await, 1);
    assert_eq!(count("mailNickname eq 'sales-kiosks'").await, 1);
    assert_eq!(count(&format!("id eq '{}'", sales.id)).await, 1);
    assert_eq!(store.count_groups(A, None).await.unwrap(), 2);
    let page = store.list_groups(A, &GroupQuery::first(1)).await.unwrap();
    let after = DeviceCursor { sort_value: None, id: page[0].id.into() };
    let rest = store.list_groups(A, &GroupQuery { after: Some(after), ..GroupQuery::first(10) }).await.unwrap();
    assert_eq!(rest.len(), 1);
    assert!(rest[0].id > page[0].id, "keyset order");

    let mut renamed = autopilot.clone();
    renamed.display_name = "Autopilot".into();
    renamed.description = Some("All of them".into());
    assert_eq!(store.replace_group(&renamed, &[], t0, t0, None).await.unwrap(), MemberChange::Done);
    assert_eq!(store.group(A, autopilot.id).await.unwrap(), Some(renamed));
    let mut missing = other.clone();
    missing.tenant_id = A;
    let replaced = store.replace_group(&missing, &[], t0, t0, None).await.unwrap();
    assert_eq!(replaced, MemberChange::GroupNotFound, "B's group is not A's to replace");

    let ids = entra_devices(store, A, &[("G-1", "")], t0).await;
    let object = store.list_entra_devices(A, &EntraDeviceQuery::first(1)).await.unwrap().remove(0);
    assert_eq!(ids.len(), 1);
    assert_eq!(store.add_group_members(A, autopilot.id, &[object.id], t0).await.unwrap(), MemberChange::Done);
    assert!(store.delete_group(A, autopilot.id).await.unwrap());
    assert!(!store.delete_group(A, autopilot.id).await.unwrap(), "deleted once");
    assert!(!store.delete_group(A, other.id).await.unwrap(), "another tenant's group");
    assert_eq!(store.list_group_members(A, autopilot.id, &EntraDeviceQuery::first(10)).await.unwrap(), None);
    // Its member rows went with it: the same id again starts empty.
    create_group(store, &autopilot, t0).await;
    assert!(member_names(store, A, autopilot.id).await.is_empty());
}

/// Members written with the group (`members@odata.bind` on a create or an update) and several
/// at once are all added or none: an unknown device, one named twice or one already there
/// leaves the group (or its absence) as it was.
async fn bound_members_are_added_all_or_nothing(store: &dyn Backend) {
    with_tenants(store).await;
    let t0 = OffsetDateTime::now_utc();
    entra_devices(store, A, &[("N-1", ""), ("N-2", ""), ("N-3", "")], t0).await;
    entra_devices(store, B, &[("N-B", "")], t0).await;
    let mut objects = store.list_entra_devices(A, &EntraDeviceQuery::first(10)).await.unwrap();
    objects.sort_by(|a, b| a.display_name.cmp(&b.display_name));
    let (n1, n2, n3) = (objects[0].id, objects[1].id, objects[2].id);
    let b_object = store.list_entra_devices(B, &EntraDeviceQuery::first(10)).await.unwrap().remove(0).id;
    let job = evaluation_job();

    let refused = new_group(A, "Refused", None);
    let change = store.create_group(&refused, &[n1, b_object], t0, t0, &job).await.unwrap();
    assert_eq!(change, MemberChange::MemberNotFound(b_object));
    assert_eq!(store.group(A, refused.id).await.unwrap(), None, "no group without its members");
    let twice = store.create_group(&refused, &[n1, n1], t0, t0, &job).await.unwrap();
    assert_eq!(twice, MemberChange::AlreadyMember);
    assert_eq!(store.group(A, refused.id).await.unwrap(), None);
    let dynamic = new_group(A, "Dynamic", Some(r#"device.displayName -eq "x""#));
    assert_eq!(store.create_group(&dynamic, &[n1], t0, t0, &job).await.unwrap(), MemberChange::DynamicGroup);
    assert_eq!(store.group(A, dynamic.id).await.unwrap(), None);

    let group = new_group(A, "Bound", None);
    assert_eq!(store.create_group(&group, &[n1, n2], t0, t0, &job).await.unwrap(), MemberChange::Done);
    assert_eq!(member_names(store, A, group.id).await, ["N-1", "N-2"]);
    let renamed = Group { display_name: "Renamed".into(), ..group.clone() };
    let change = store.replace_group(&renamed, &[n3, n1], t0, t0, None).await.unwrap();
    assert_eq!(change, MemberChange::AlreadyMember);
    assert_eq!(store.group(A, group.id).await.unwrap().unwrap().display_name, "Bound", "the update is undone too");
    assert_eq!(member_names(store, A, group.id).await, ["N-1", "N-2"]);
    assert_eq!(
        store.add_group_members(A, group.id, &[n3, b_object], t0).await.unwrap(),
        MemberChange::MemberNotFound(b_object)
    );
    assert_eq!(member_names(store, A, group.id).await, ["N-1", "N-2"]);
    assert_eq!(store.replace_group(&renamed, &[n3], t0, t0, None).await.unwrap(), MemberChange::Done);
    assert_eq!(store.group(A, group.id).await.unwrap().unwrap().display_name, "Renamed");
    assert_eq!(member_names(store, A, group.id).await, ["N-1", "N-2", "N-3"]);
}

/// An assigned group's members are added once and removed once; a dynamic group's are its
/// rule's; a deleted device leaves its groups.
async fn assigned_members_are_added_once_and_removed(store: &dyn Backend) {
    with_tenants(store).await;
    let t0 = OffsetDateTime::now_utc();
    let group = new_group(A, "Autopilot Devices", None);
    let dynamic = new_group(A, "Dynamic", Some(r#"device.displayName -eq "x""#));
    create_group(store, &group, t0).await;
    create_group(store, &dynamic, t0).await;
    entra_devices(store, A, &[("M-1", ""), ("M-2", "")], t0).await;
    entra_devices(store, B, &[("M-B", "")], t0).await;
    let objects = store.list_entra_devices(A, &EntraDeviceQuery::first(10)).await.unwrap();
    let b_object = store.list_entra_devices(B, &EntraDeviceQuery::first(10)).await.unwrap().remove(0);
    let (m1, m2) = (objects[0].id, objects[1].id);

    assert_eq!(store.add_group_members(A, group.id, &[m1], t0).await.unwrap(), MemberChange::Done);
    assert_eq!(store.add_group_members(A, group.id, &[m1], t0).await.unwrap(), MemberChange::AlreadyMember);
    assert_eq!(store.add_group_members(A, group.id, &[m2], t0).await.unwrap(), MemberChange::Done);
    assert_eq!(
        store.add_group_members(A, group.id, &[b_object.id], t0).await.unwrap(),
        MemberChange::MemberNotFound(b_object.id)
    );
    assert_eq!(store.add_group_members(A, GroupId::new(), &[m1], t0).await.unwrap(), MemberChange::GroupNotFound);
    assert_eq!(store.add_group_members(B, group.id, &[b_object.id], t0).await.unwrap(), MemberChange::GroupNotFound);
    assert_eq!(store.add_group_members(A, dynamic.id, &[m1], t0).await.unwrap(), MemberChange::DynamicGroup);
    assert_eq!(member_names(store, A, group.id).await.len(), 2);
    let first = store.list_group_members(A, group.id, &EntraDeviceQuery::first(1)).await.unwrap().unwrap();
    assert_eq!(first.len(), 1);

    assert_eq!(store.remove_group_member(A, dynamic.id, m1).await.unwrap(), MemberChange::DynamicGroup);
    assert_eq!(store.remove_group_member(A, group.id, m1).await.unwrap(), MemberChange::Done);
    assert_eq!(store.remove_group_member(A, group.id, m1).await.unwrap(), MemberChange::MemberNotFound(m1));
    assert!(store.delete_entra_device(A, m2).await.unwrap());
    assert!(member_names(store, A, group.id).await.is_empty(), "a deleted device leaves its groups");
}

/// A device's groups (`memberOf`) are the assigned and the dynamic groups it is a member of,
/// keyset-paged by group id; a device of no group has none, and an unknown device (or another
/// tenant's) has no list at all.
async fn a_device_lists_the_groups_it_is_a_member_of(store: &dyn Backend) {
    with_tenants(store).await;
    let t0 = OffsetDateTime::now_utc();
    let assigned = new_group(A, "Assigned", None);
    let dynamic = new_group(A, "Dynamic", Some(r#"device.displayName -eq "O-1""#));
    let other = new_group(A, "Other", None);
    for group in [&assigned, &dynamic, &other] {
        create_group(store, group, t0).await;
    }
    entra_devices(store, A, &[("O-1", ""), ("O-2", "")], t0).await;
    let mut objects = store.list_entra_devices(A, &EntraDeviceQuery::first(10)).await.unwrap();
    objects.sort_by(|a, b| a.display_name.cmp(&b.display_name));
    let (o1, o2) = (objects[0].id, objects[1].id);
    assert_eq!(store.add_group_members(A, assigned.id, &[o1], t0).await.unwrap(), MemberChange::Done);
    evaluate(store, A, t0).await;

    let groups = store.list_device_groups(A, o1, &GroupQuery::first(10)).await.unwrap().unwrap();
    let mut names: Vec<&str> = groups.iter().map(|g| g.display_name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["Assigned", "Dynamic"]);
    assert!(groups[0].id < groups[1].id, "keyset order");
    assert_eq!(store.list_device_groups(A, o2, &GroupQuery::first(10)).await.unwrap(), Some(vec![]));

    let first = store.list_device_groups(A, o1, &GroupQuery::first(1)).await.unwrap().unwrap();
    assert_eq!(first.len(), 1);
    let after = DeviceCursor { sort_value: None, id: first[0].id.into() };
    let query = GroupQuery { after: Some(after), ..GroupQuery::first(10) };
    let rest = store.list_device_groups(A, o1, &query).await.unwrap().unwrap();
    assert_eq!(rest.iter().map(|g| g.id).collect::<Vec<_>>(), [groups[1].id]);

    assert_eq!(store.list_device_groups(A, EntraDeviceId::new(), &GroupQuery::first(10)).await.unwrap(), None);
    assert_eq!(store.list_device_groups(B, o1, &GroupQuery::first(10)).await.unwrap(), None, "A's device");
    assert!(store.delete_entra_device(A, o1).await.unwrap());
    assert_eq!(store.list_device_groups(A, o1, &GroupQuery::first(10)).await.unwrap(), None, "deleted");
}

/// The rules Autopilot admins write select the devices Entra would, ignoring case, with -not,
/// parentheses and -any; an evaluation follows group tag changes, and leaves paused groups be.
async fn dynamic_rules_select_devices_as_entra_does(store: &dyn Backend) {
    use dmsync_core::autopilot::DevicePropertiesUpdate;
    with_tenants(store).await;
    let t0 = OffsetDateTime::now_utc();
    let ids =
        entra_devices(store, A, &[("D-1", "Sales"), ("D-2", "sales-emea"), ("D-3", "Kiosk"), ("D-4", "")], t0).await;
    entra_devices(store, B, &[("D-B", "Sales")], t0).await;
    let all = ["D-1", "D-2", "D-3", "D-4"];
    let cases: Vec<(&str, Vec<&str>)> = vec![
        (r#"(device.devicePhysicalIds -any (_ -eq "[OrderID]:sales"))"#, vec!["D-1"]),
        (r#"device.devicePhysicalIds -any (_ -startsWith "[ZTDId]")"#, all.to_vec()),
        (r#"(device.devicePhysicalIDs -any (_ -contains "[ZTDID]"))"#, all.to_vec()),
        (r#"device.devicePhysicalIds -any (_ -startsWith "[orderid]:SALES")"#, vec!["D-1", "D-2"]),
        (r#"-not (device.devicePhysicalIds -any (_ -startsWith "[OrderId]:Sales"))"#, vec!["D-3", "D-4"]),
        (
            r#"(device.devicePhysicalIds -any (_ -eq "[OrderId]:Kiosk")) -or device.displayName -eq "d-4""#,
            vec!["D-3", "D-4"],
        ),
        (
            r#"device.deviceOSType -eq "windows" -and (device.accountEnabled -eq true -and device.displayName -notStartsWith "D-1")"#,
            vec!["D-2", "D-3", "D-4"],
        ),
        (r#"device.accountEnabled -eq false"#, vec![]),
        (r#"device.devicePhysicalIds -any (_ -ne "[OrderId]:Sales")"#, all.to_vec()),
        (r#"device.devicePhysicalIds -any (_ -startsWith "[PurchaseOrderId]")"#, vec![]),
        (
            r#"device.devicePhysicalIds -any (_ -startsWith "[HWID]:h:") -and device.displayName -endsWith "3""#,
            vec!["D-3"],
        ),
        (r#"device.displayName -contains "%" -or device.displayName -contains "_""#, vec![]),
    ];
    let mut groups = Vec::new();
    for (i, (rule, _)) in cases.iter().enumerate() {
        let group = new_group(A, &format!("Rule {i}"), Some(rule));
        create_group(store, &group, t0).await;
        groups.push(group);
    }
    assert!(
        !store.request_group_evaluation(A, t0, t0, &evaluation_job()).await.unwrap(),
        "one evaluation is queued already: the creates coalesced"
    );
    assert!(!store.request_group_evaluation(B, t0, t0, &evaluation_job()).await.unwrap(), "B has no dynamic group");
    let stats = evaluate(store, A, t0).await;
    assert_eq!(stats.groups, cases.len() as u64);
    for ((rule, expected), group) in cases.iter().zip(&groups) {
        assert_eq!(member_names(store, A, group.id).await, *expected, "{rule}");
    }
    assert!(store.claim_job("w", t0, t0, LEASE).await.unwrap().is_none(), "evaluated once");

    // A group tag change moves [OrderId]; the next evaluation follows it. A paused group keeps
    // its members.
    let mut paused = groups[3].clone();
    paused.processing_state = Some(ProcessingState::Paused);
    assert_eq!(store.replace_group(&paused, &[], t0, t0, Some(&evaluation_job())).await.unwrap(), MemberChange::Done);
    assert!(store.claim_job("w", t0, t0, LEASE).await.unwrap().is_none(), "pausing asks for nothing");
    let d4 = ids.iter().find(|(s, _)| s == "D-4").unwrap().1;
    let update = DevicePropertiesUpdate { group_tag: Some("SALES".into()), ..Default::default() };
    assert!(store.update_autopilot_device(A, d4, &update, t0).await.unwrap());
    assert!(store.request_group_evaluation(A, t0, t0, &evaluation_job()).await.unwrap());
    let stats = evaluate(store, A, t0).await;
    assert_eq!(stats.groups, cases.len() as u64 - 1, "the paused group is not evaluated");
    assert!(stats.added > 0 && stats.removed > 0);
    assert_eq!(member_names(store, A, groups[0].id).await, ["D-1", "D-4"]);
    assert_eq!(member_names(store, A, groups[3].id).await, ["D-1", "D-2"], "paused");
    assert_eq!(member_names(store, A, groups[4].id).await, ["D-3"]);

    // A rerun changes nothing; a lost lease writes nothing.
    assert!(store.request_group_evaluation(A, t0, t0, &evaluation_job()).await.unwrap());
    assert!(!evaluate(store, A, t0).await.changed());
    assert!(store.request_group_evaluation(A, t0, t0, &evaluation_job()).await.unwrap());
    let job = store.claim_job("w", t0, t0, LEASE).await.unwrap().unwrap();
    let mut stale = job.lease();
    stale.attempt += 1;
    assert_eq!(store.evaluate_group_membership(&stale, A, t0).await.unwrap(), None);
}

/// A rule that selects a quarter of a few thousand devices: evaluated with two statements per
/// group, and the members page by keyset.
async fn a_dynamic_group_evaluates_a_large_set(store: &dyn Backend) {
    with_tenants(store).await;
    let t0 = OffsetDateTime::now_utc();
    let serials: Vec<String> = (0..2_000).map(|i| format!("L-{i:05}")).collect();
    let devices: Vec<(&str, &str)> =
        serials.iter().enumerate().map(|(i, s)| (s.as_str(), if i % 4 == 0 { "Big" } else { "Small" })).collect();
    entra_devices(store, A, &devices, t0).await;
    let group = new_group(A, "Big", Some(r#"(device.devicePhysicalIds -any (_ -eq "[OrderId]:big"))"#));
    create_group(store, &group, t0).await;
    let stats = evaluate(store, A, t0).await;
    assert_eq!((stats.added, stats.removed), (500, 0));
    let mut seen = 0;
    let mut query = EntraDeviceQuery::first(101);
    loop {
        let page = store.list_group_members(A, group.id, &query).await.unwrap().unwrap();
        seen += page.len().min(100);
        if page.len() <= 100 {
            break;
        }
        query.after = Some(DeviceCursor { sort_value: None, id: page[99].id.into() });
    }
    assert_eq!(seen, 500);
}

async fn throttle_buckets_take_all_or_none_and_refill_by_window(store: &dyn Backend) {
    use dmsync_core::store::ThrottleBucket;
    let bucket = |key: &str, capacity: u32| ThrottleBucket { key: key.into(), capacity };
    let now = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
    let window = Duration::seconds(20);
    if store.topology() == Topology::SingleNode {
        // One process owns a SQLite database: its server keeps the buckets in memory.
        assert!(store.take_throttle_tokens(&[bucket("t", 1)], window, now).await.is_err());
        return;
    }
    let both = [bucket("t", 3), bucket("t/app", 2)];
    for _ in 0..2 {
        assert_eq!(store.take_throttle_tokens(&both, window, now).await.unwrap(), None);
    }
    let wait = store.take_throttle_tokens(&both, window, now + Duration::seconds(5)).await.unwrap();
    assert_eq!(wait, Some(Duration::seconds(15)));
    // The refusal took nothing from the tenant's bucket, which has one token left.
    assert_eq!(store.take_throttle_tokens(&both[..1], window, now).await.unwrap(), None);
    assert!(store.take_throttle_tokens(&both[..1], window, now).await.unwrap().is_some());
    // A new window starts full; a lowered capacity caps what is left of the window under way
    // (two tokens left here, capped at one).
    assert_eq!(store.take_throttle_tokens(&both, window, now + window).await.unwrap(), None);
    let lowered = [bucket("t", 1)];
    assert_eq!(store.take_throttle_tokens(&lowered, window, now + window).await.unwrap(), None);
    assert!(store.take_throttle_tokens(&lowered, window, now + window).await.unwrap().is_some());

    // Concurrent takes on one bucket: exactly its capacity pass.
    let shared = [bucket("busy", 10), bucket("busy/app", 40)];
    let outcomes = futures::future::join_all((0..40).map(|_| store.take_throttle_tokens(&shared, window, now))).await;
    let passed = outcomes.into_iter().filter(|o| matches!(o, Ok(None))).count();
    assert_eq!(passed, 10);
}

macro_rules! backend_tests {
    ($backend:ident, $open:expr, [$($test:ident),* $(,)?]) => {
        mod $backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    // None: the backend is unavailable outside CI (a loud notice was printed).
                    let Some((store, _guard)) = $open.await else { return };
                    super::$test(store.as_ref()).await;
                }
            )*
        }
    };
}

type Opened<G> = Option<(std::sync::Arc<dyn Backend>, G)>;

async fn sqlite_memory() -> Opened<()> {
    Some((dmsync_store::connect("sqlite::memory:").await.unwrap(), ()))
}

async fn sqlite_file() -> Opened<tempfile::TempDir> {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("conformance.db").display());
    Some((dmsync_store::connect(&url).await.unwrap(), dir))
}

async fn postgres() -> Opened<TestDatabase> {
    let db = TestDatabase::create().await?;
    Some((dmsync_store::connect(&db.url).await.unwrap(), db))
}

async fn sqlite_chunked() -> Opened<()> {
    let mut store = dmsync_store::SqlStore::open("sqlite::memory:").await.unwrap();
    store.set_reconcile_chunk(3);
    Some((std::sync::Arc::new(store), ()))
}

async fn postgres_chunked() -> Opened<TestDatabase> {
    let db = TestDatabase::create().await?;
    let mut store = dmsync_store::SqlStore::open(&db.url).await.unwrap();
    store.set_reconcile_chunk(3);
    Some((std::sync::Arc::new(store), db))
}

/// A device code is found by its user code while it is pending and live, is decided once,
/// records a poll only once per interval (two polls together: one is too soon), is redeemed
/// once, and is pruned an hour after it expired when the next code is stored.
async fn device_codes_are_decided_polled_and_redeemed_once(store: &dyn Backend) {
    use dmsync_core::device_codes::{
        ApprovedUser, DEVICE_CODE_LIFETIME, DeviceCode, DeviceCodeDecision, DeviceCodeState, EXPIRED_CODES_KEPT_FOR,
        POLL_INTERVAL,
    };
    with_tenants(store).await;
    let now = OffsetDateTime::from_unix_timestamp(OffsetDateTime::now_utc().unix_timestamp()).unwrap();
    let code = |hash: &str, user: &str, tenant| {
        DeviceCode::new(hash.into(), user.into(), tenant, "client".into(), "openid offline_access".into(), now)
    };
    store.insert_device_code(&code("h1", "AAAAAAAAA", Some(A)), now).await.unwrap();
    store.insert_device_code(&code("h2", "BBBBBBBBB", None), now).await.unwrap();
    let duplicate = store.insert_device_code(&code("h3", "AAAAAAAAA", None), now).await;
    assert!(matches!(duplicate, Err(StoreError::AlreadyExists(_))), "user codes are unique");
    let found = store.pending_device_code("AAAAAAAAA", now).await.unwrap().unwrap();
    assert_eq!(found, code("h1", "AAAAAAAAA", Some(A)));
    assert_eq!(store.pending_device_code("BBBBBBBBB", now).await.unwrap().unwrap().tenant_id, None);
    assert!(store.pending_device_code("AAAAAAAAA", now + DEVICE_CODE_LIFETIME).await.unwrap().is_none(), "expired");

    let first = store.poll_device_code("h1", now, POLL_INTERVAL).await.unwrap().unwrap();
    assert!(!first.too_soon);
    assert_eq!(first.code.last_polled_at, None, "the row as it was before the poll");
    let again = store.poll_device_code("h1", now + Duration::seconds(4), POLL_INTERVAL).await.unwrap().unwrap();
    assert!(again.too_soon);
    assert_eq!(again.code.last_polled_at, Some(now));
    let later = now + POLL_INTERVAL;
    let (x, y) = tokio::join!(
        store.poll_device_code("h1", later, POLL_INTERVAL),
        store.poll_device_code("h1", later, POLL_INTERVAL)
    );
    let too_soon = [x.unwrap().unwrap().too_soon, y.unwrap().unwrap().too_soon];
    assert_eq!(too_soon.iter().filter(|t| **t).count(), 1, "one of two polls together is recorded: {too_soon:?}");
    assert!(store.poll_device_code("nope", now, POLL_INTERVAL).await.unwrap().is_none());

    let user = ApprovedUser {
        tenant_id: A,
        object_id: uuid::Uuid::new_v4(),
        user_principal_name: "alice@a.onmicrosoft.com".into(),
    };
    let approve = DeviceCodeDecision::Approve(user.clone());
    assert!(!store.redeem_device_code("h1").await.unwrap(), "not approved yet");
    assert!(
        !store.decide_device_code("AAAAAAAAA", approve.clone(), now + DEVICE_CODE_LIFETIME).await.unwrap(),
        "expired"
    );
    assert!(store.decide_device_code("AAAAAAAAA", approve, now).await.unwrap());
    assert!(!store.decide_device_code("AAAAAAAAA", DeviceCodeDecision::Decline, now).await.unwrap(), "decided once");
    assert!(store.pending_device_code("AAAAAAAAA", now).await.unwrap().is_none(), "no longer pending");
    let polled = store.poll_device_code("h1", now + Duration::minutes(1), POLL_INTERVAL).await.unwrap().unwrap();
    assert_eq!(polled.code.state, DeviceCodeState::Approved(user));
    let (x, y) = tokio::join!(store.redeem_device_code("h1"), store.redeem_device_code("h1"));
    assert!(x.unwrap() ^ y.unwrap(), "redeemed once");
    let polled = store.poll_device_code("h1", now + Duration::minutes(2), POLL_INTERVAL).await.unwrap().unwrap();
    assert_eq!(polled.code.state, DeviceCodeState::Redeemed);

    assert!(store.decide_device_code("BBBBBBBBB", DeviceCodeDecision::Decline, now).await.unwrap());
    let polled = store.poll_device_code("h2", now, POLL_INTERVAL).await.unwrap().unwrap();
    assert_eq!(polled.code.state, DeviceCodeState::Declined);

    // Expired codes stay to be told they expired, then go when a code is stored after that.
    let late = now + DEVICE_CODE_LIFETIME + EXPIRED_CODES_KEPT_FOR;
    let mut fresh = code("h4", "AAAAAAAAA", Some(B));
    fresh.created_at = late;
    fresh.expires_at = late + DEVICE_CODE_LIFETIME;
    store.insert_device_code(&fresh, late).await.unwrap();
    assert!(store.poll_device_code("h1", late, POLL_INTERVAL).await.unwrap().is_none(), "pruned");
    assert!(store.poll_device_code("h2", late, POLL_INTERVAL).await.unwrap().is_none(), "pruned");
    assert_eq!(store.pending_device_code("AAAAAAAAA", late).await.unwrap().unwrap().tenant_id, Some(B));
}

/// A tenant reset empties that tenant (keeping it, with its `Default` tag); a full reset
/// removes every tenant; neither touches the keys or the Clock. A snapshot brings back exactly
/// what it was taken of, tenants included, and its name is unique.
async fn resets_and_snapshots_keep_keys_and_clock(store: &dyn Backend) {
    use dmsync_core::snapshots::{ResetScope, SnapshotName};
    with_tenants(store).await;
    store.create_user(&test_user(A, "a@a.onmicrosoft.com")).await.unwrap();
    store.create_user(&test_user(B, "b@b.onmicrosoft.com")).await.unwrap();
    let key = test_signing_key();
    store.insert_signing_key(&key).await.unwrap();
    store.save_clock_offset(Duration::seconds(60)).await.unwrap();
    let now = OffsetDateTime::now_utc();
    let name = SnapshotName::parse("two-users").unwrap();
    let taken = store.create_snapshot(&name, now).await.unwrap();
    assert!(matches!(store.create_snapshot(&name, now).await, Err(StoreError::AlreadyExists(_))));

    let client = uuid::Uuid::new_v4();
    let expires = now + Duration::minutes(10);
    assert!(store.consume_assertion(A, client, "jti-1", expires, now).await.unwrap());

    store.reset(ResetScope::Tenant(A)).await.unwrap();
    assert!(
        !store.consume_assertion(A, client, "jti-1", expires, now).await.unwrap(),
        "a used assertion stays used, so a reset cannot make its replay succeed"
    );
    assert!(store.user_by_upn(A, "a@a.onmicrosoft.com").await.unwrap().is_none());
    assert!(store.user_by_upn(B, "b@b.onmicrosoft.com").await.unwrap().is_some(), "B is untouched");
    assert!(store.tenant(A).await.unwrap().is_some(), "A stays");
    assert_eq!(tag_ids(&store.list_role_scope_tags(A, &ListQuery::first(10)).await.unwrap()), [0], "Default only");

    store.reset(ResetScope::All).await.unwrap();
    assert_eq!(store.tenant_count().await.unwrap(), 0);
    assert!(
        matches!(store.reset(ResetScope::Tenant(A)).await, Err(StoreError::NotFound)),
        "a tenant gone meanwhile is not reset, nor given a default tag again"
    );
    assert_eq!(store.signing_keys().await.unwrap().len(), 1, "the keys are kept");
    assert_eq!(store.clock_offset().await.unwrap(), Duration::seconds(60), "so is the Clock");

    store.save_clock_offset(Duration::seconds(120)).await.unwrap();
    store.restore_snapshot(&name).await.unwrap();
    assert_eq!(store.tenant_count().await.unwrap(), 2);
    assert!(store.user_by_upn(A, "a@a.onmicrosoft.com").await.unwrap().is_some());
    assert!(store.user_by_upn(B, "b@b.onmicrosoft.com").await.unwrap().is_some());
    assert_eq!(store.clock_offset().await.unwrap(), Duration::seconds(120), "a restore never moves time back");
    assert_eq!(store.signing_keys().await.unwrap().len(), 1);

    let listed = store.snapshots().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!((&listed[0].name, listed[0].created.unix_timestamp()), (&taken.name, now.unix_timestamp()));
    store.delete_snapshot(&name).await.unwrap();
    assert!(matches!(store.delete_snapshot(&name).await, Err(StoreError::NotFound)));
    assert!(matches!(store.restore_snapshot(&name).await, Err(StoreError::NotFound)));
    assert!(store.snapshots().await.unwrap().is_empty());
}

/// B's rows a reset of A must leave exactly as they were.
async fn tenant_rows(store: &dyn Backend, tenant: TenantId) -> impl PartialEq + std::fmt::Debug {
    let devices = store.list_autopilot_devices(tenant, &DeviceQuery::first(100)).await.unwrap();
    let entra = store.list_entra_devices(tenant, &EntraDeviceQuery::first(100)).await.unwrap();
    let tags = tag_ids(&store.list_role_scope_tags(tenant, &ListQuery::first(10)).await.unwrap());
    let users = [
        store.user_by_upn(tenant, "u1@x.onmicrosoft.com").await.unwrap().map(|u| u.object_id),
        store.user_by_upn(tenant, "u2@x.onmicrosoft.com").await.unwrap().map(|u| u.object_id),
    ];
    (devices, entra, tags, users)
}

/// A tenant reset deletes that tenant's rows and no other's, whichever way a table is emptied
/// (on SQLite: whole when only the tenant has rows in it, the others' rows set aside and put
/// back when they are fewer, row by row when they are not), and keeps rows of no tenant (a
/// device code not yet tied to one). Foreign keys are enforced again after it.
async fn a_tenant_reset_keeps_every_other_tenants_rows(store: &dyn Backend) {
    use dmsync_core::device_codes::DeviceCode;
    use dmsync_core::snapshots::ResetScope;
    with_tenants(store).await;
    let now = OffsetDateTime::from_unix_timestamp(OffsetDateTime::now_utc().unix_timestamp()).unwrap();
    let (a_serials, b_serials) = (["RA-1", "RA-2", "RA-3", "RA-4", "RA-5"], ["RB-1", "RB-2"]);
    let regs = |serials: &[&str]| serials.iter().map(|s| reg(s, &format!("hash-{s}"))).collect::<Vec<_>>();
    // A has more devices than B, so B's are set aside and put back.
    store.put_registrations(A, &regs(&a_serials), now).await.unwrap().unwrap();
    store.put_registrations(B, &regs(&b_serials), now).await.unwrap().unwrap();
    store.reconcile_autopilot_devices(A, now).await.unwrap();
    store.reconcile_autopilot_devices(B, now).await.unwrap();
    // A has fewer users than B, so A's are deleted row by row.
    store.create_user(&test_user(A, "u1@x.onmicrosoft.com")).await.unwrap();
    store.create_user(&test_user(B, "u1@x.onmicrosoft.com")).await.unwrap();
    store.create_user(&test_user(B, "u2@x.onmicrosoft.com")).await.unwrap();
    // Only A has a deployment profile, so that table is emptied whole.
    let content =
        ProfileContent { kind: ProfileKind::AzureAd, display_name: "P".into(), settings: ProfileSettings::default() };
    store.create_deployment_profile(A, &content, now).await.unwrap().unwrap();
    let code = |hash: &str, user: &str, tenant| {
        DeviceCode::new(hash.into(), user.into(), tenant, "client".into(), "openid".into(), now)
    };
    store.insert_device_code(&code("h-a", "AAAAAAAAA", Some(A)), now).await.unwrap();
    store.insert_device_code(&code("h-none", "NNNNNNNNN", None), now).await.unwrap();
    let b_before = tenant_rows(store, B).await;

    store.reset(ResetScope::Tenant(A)).await.unwrap();
    assert_eq!(tenant_rows(store, B).await, b_before, "B is untouched");
    assert_eq!(store.count_autopilot_devices(A, None).await.unwrap(), 0);
    assert_eq!(store.count_entra_devices(A, None).await.unwrap(), 0);
    assert!(store.user_by_upn(A, "u1@x.onmicrosoft.com").await.unwrap().is_none());
    assert!(store.list_deployment_profiles(A, &ProfileQuery::first(10)).await.unwrap().is_empty());
    assert!(store.pending_device_code("AAAAAAAAA", now).await.unwrap().is_none());
    assert!(store.pending_device_code("NNNNNNNNN", now).await.unwrap().is_some(), "a code of no tenant stays");
    assert_eq!(tag_ids(&store.list_role_scope_tags(A, &ListQuery::first(10)).await.unwrap()), [0], "Default only");
    // A registers the same devices again (their serials and hashes went with the reset), without
    // a sync: B now has the only devices, and fewer registrations than A.
    store.put_registrations(A, &regs(&a_serials), now).await.unwrap().unwrap();
    let a_before = tenant_rows(store, A).await;
    store.reset(ResetScope::Tenant(B)).await.unwrap();
    assert_eq!(tenant_rows(store, A).await, a_before, "A is untouched");
    assert_eq!(store.count_autopilot_devices(B, None).await.unwrap(), 0);
    assert_eq!(store.count_entra_devices(B, None).await.unwrap(), 0);
    assert!(store.user_by_upn(B, "u2@x.onmicrosoft.com").await.unwrap().is_none());
    store.reconcile_autopilot_devices(A, now).await.unwrap();
    assert_eq!(store.count_autopilot_devices(A, None).await.unwrap(), 5, "A's registrations stayed");

    // Foreign keys hold again: a user of a tenant that does not exist is refused.
    let nobody = TenantId::from_uuid(uuid!("cccccccc-cccc-4ccc-8ccc-cccccccccccc"));
    assert!(store.create_user(&test_user(nobody, "n@c.onmicrosoft.com")).await.is_err());
    store.reset(ResetScope::All).await.unwrap();
    assert!(store.create_user(&test_user(A, "n@a.onmicrosoft.com")).await.is_err(), "A is gone");
}

macro_rules! all_tests {
    ($backend:ident, $open:expr) => {
        backend_tests!(
            $backend,
            $open,
            [
                tenants_are_unique_by_id_and_domain,
                tenant_created_time_comes_from_the_clock,
                users_change_password_and_are_removed,
                apps_keep_credentials_and_assertions_are_used_once,
                sync_decision_is_409_then_429_then_started,
                jobs_are_leased_fenced_and_released,
                running_jobs_are_requeued_at_start,
                registrations_are_all_or_nothing_and_hashes_global,
                reconcile_is_set_based_idempotent_and_tenant_scoped,
                device_queries_filter_order_and_count,
                device_filters_ignore_case_for_all_of_unicode,
                imports_register_devices_or_fail_with_dds_errors,
                a_forced_import_error_stands_in_for_the_checks,
                device_deletion_is_requested_once_then_deregisters,
                exchange_connectors_sync_full_and_delta,
                exchange_syncs_apply_only_the_completing_attempt,
                exchange_schedules_start_each_due_sync_once,
                clock_offset_only_grows,
                signing_keys_round_trip,
                authorization_codes_are_redeemed_once,
                concurrent_sync_requests_start_once,
                first_signing_key_is_inserted_once,
                first_certificate_authority_wins,
                reconcile_sees_every_change_under_concurrent_writes,
                last_error_survives_a_later_success,
                connector_source_time_comes_from_the_clock,
                enqueuing_wakes_a_waiting_worker,
                committed_writes_move_the_write_generation,
                a_page_reads_only_the_fields_it_is_asked_for,
                role_scope_tags_are_numbered_and_keep_default,
                role_scope_tag_queries_filter_order_and_page,
                concurrent_role_scope_tag_creates_keep_names_and_ids_unique,
                a_sync_creates_entra_devices_with_the_devices,
                entra_devices_outlive_their_autopilot_devices,
                an_import_creates_the_entra_device,
                a_direct_create_registers_the_device_with_its_entra_device,
                deployment_profiles_are_kept_per_tenant_up_to_the_limit,
                profile_assignments_keep_the_tenant_rules,
                groups_are_created_filtered_replaced_and_deleted,
                assigned_members_are_added_once_and_removed,
                a_device_lists_the_groups_it_is_a_member_of,
                bound_members_are_added_all_or_nothing,
                dynamic_rules_select_devices_as_entra_does,
                a_dynamic_group_evaluates_a_large_set,
                device_codes_are_decided_polled_and_redeemed_once,
                resets_and_snapshots_keep_keys_and_clock,
                a_tenant_reset_keeps_every_other_tenants_rows,
                throttle_buckets_take_all_or_none_and_refill_by_window,
            ]
        );
    };
}

all_tests!(sqlite_in_memory, super::sqlite_memory());
all_tests!(sqlite_on_disk, super::sqlite_file());
all_tests!(postgresql, super::postgres());
backend_tests!(sqlite_small_chunks, super::sqlite_chunked(), [reconcile_in_chunks_stops_and_resumes]);
backend_tests!(postgresql_small_chunks, super::postgres_chunked(), [reconcile_in_chunks_stops_and_resumes]);

/// A reopened database keeps its certificate authority (a restart presents the same CA).
async fn certificate_authority_survives_a_reopen(url: &str) {
    let stored = {
        let store = dmsync_store::connect(url).await.unwrap();
        let stored = store.insert_certificate_authority(&certificate_authority(1)).await.unwrap();
        store.close().await;
        stored
    };
    let store = dmsync_store::connect(url).await.unwrap();
    assert_eq!(store.certificate_authority().await.unwrap(), Some(stored));
    store.close().await;
}

#[tokio::test]
async fn sqlite_on_disk_keeps_the_certificate_authority_across_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    certificate_authority_survives_a_reopen(&format!("sqlite://{}", dir.path().join("ca.db").display())).await;
}

#[tokio::test]
async fn postgresql_keeps_the_certificate_authority_across_a_reopen() {
    let Some(db) = TestDatabase::create().await else { return };
    certificate_authority_survives_a_reopen(&db.url).await;
}

/// A copy of the engine's migrations older than the one whose name contains `feature`, for a
/// database as a version without that feature left it.
fn migrations_before(engine: &str, feature: &str) -> tempfile::TempDir {
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations").join(engine);
    let version = |name: &str| name.split('_').next().unwrap().parse::<u32>().unwrap();
    let names: Vec<String> =
        std::fs::read_dir(&source).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    let scope_tags = names.iter().find(|n| n.contains(feature)).expect("the feature's migration");
    let dir = tempfile::tempdir().unwrap();
    for name in names.iter().filter(|n| version(n) < version(scope_tags)) {
        std::fs::copy(source.join(name), dir.path().join(name)).unwrap();
    }
    dir
}

/// A tenant created before the role scope tag migration gets its Default tag from it.
async fn an_older_tenant_gets_the_default_tag(url: &str, engine: &str) {
    let older = sqlx::migrate::Migrator::new(migrations_before(engine, "role_scope_tags").path()).await.unwrap();
    let mut db = <sqlx::AnyConnection as sqlx::Connection>::connect(url).await.unwrap();
    older.run(&mut db).await.unwrap();
    sqlx::query("INSERT INTO tenants (id, domain, created_at) VALUES ($1, 'old.example', 0)")
        .bind(A.to_string())
        .execute(&mut db)
        .await
        .unwrap();
    sqlx::Connection::close(db).await.unwrap();
    let store = dmsync_store::connect(url).await.unwrap();
    let tags = store.list_role_scope_tags(A, &ListQuery::first(10)).await.unwrap();
    assert_eq!(tags.len(), 1);
    assert_eq!(
        (tags[0].id, tags[0].display_name.as_str(), tags[0].is_built_in()),
        (RoleScopeTagId::DEFAULT, "Default", true)
    );
    assert_eq!(store.create_role_scope_tag(A, "New", "").await.unwrap().unwrap().id.number(), 1);
}

#[tokio::test]
async fn sqlite_gives_an_older_tenant_the_default_tag() {
    sqlx::any::install_default_drivers();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("older.db").display());
    an_older_tenant_gets_the_default_tag(&url, "sqlite").await;
}

#[tokio::test]
async fn postgresql_gives_an_older_tenant_the_default_tag() {
    sqlx::any::install_default_drivers();
    let Some(db) = TestDatabase::create().await else { return };
    an_older_tenant_gets_the_default_tag(&db.url, "postgres").await;
}

/// A device synced before Entra objects existed gets its `deviceId` and its object from the
/// migration, with the `[HWID]` the store would have given it.
async fn an_older_device_gets_its_entra_device(url: &str, engine: &str) {
    let older = sqlx::migrate::Migrator::new(migrations_before(engine, "entra_devices").path()).await.unwrap();
    let mut db = <sqlx::AnyConnection as sqlx::Connection>::connect(url).await.unwrap();
    older.run(&mut db).await.unwrap();
    let device = dmsync_core::AutopilotDeviceId::now_v7();
    let digest = {
        use sha2::Digest;
        sha2::Sha256::digest(b"old-hash").to_vec()
    };
    let statements = [
        "INSERT INTO tenants (id, domain, created_at) VALUES ($1, 'old.example', 0)",
        "INSERT INTO autopilot_registrations (tenant_id, serial_number, device_id, hardware_hash, hash_digest,
             manufacturer, model, group_tag, purchase_order_identifier, product_key, created_at, updated_at)
         VALUES ($1, 'OLD-1', $2, $3, $4, '', '', 'Sales', '', '', 5, 5)",
        "INSERT INTO autopilot_devices (tenant_id, id, serial_number, manufacturer, model, group_tag,
             purchase_order_identifier, product_key, created_at, updated_at)
         VALUES ($1, $2, 'OLD-1', '', '', 'Sales', '', '', 5, 5)",
    ];
    for (i, statement) in statements.into_iter().enumerate() {
        let mut query = sqlx::query(statement).bind(A.to_string());
        if i > 0 {
            query = query.bind(device.to_string());
        }
        if i == 1 {
            query = query.bind(b"old-hash".to_vec()).bind(digest.clone());
        }
        query.execute(&mut db).await.unwrap();
    }
    sqlx::Connection::close(db).await.unwrap();
    let store = dmsync_store::connect(url).await.unwrap();
    let device_id = store.autopilot_device(A, device).await.unwrap().unwrap().azure_ad_device_id.expect("a deviceId");
    let found = entra_device_by_device_id(store.as_ref(), A, device_id).await;
    assert_eq!(found.len(), 1);
    assert_eq!(
        found[0].physical_ids(),
        [
            format!("[ZTDID]:{device}"),
            "[OrderId]:Sales".to_owned(),
            format!("[HWID]:{}", expected_hardware_id("old-hash"))
        ]
    );
    assert_eq!(
        (found[0].display_name.as_str(), found[0].created_at),
        ("OLD-1", OffsetDateTime::UNIX_EPOCH + Duration::nanoseconds(500))
    );
}

#[tokio::test]
async fn sqlite_gives_an_older_device_its_entra_device() {
    sqlx::any::install_default_drivers();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("older.db").display());
    an_older_device_gets_its_entra_device(&url, "sqlite").await;
}

#[tokio::test]
async fn postgresql_gives_an_older_device_its_entra_device() {
    sqlx::any::install_default_drivers();
    let Some(db) = TestDatabase::create().await else { return };
    an_older_device_gets_its_entra_device(&db.url, "postgres").await;
}

// The deployment profile assignment engine. Groups, members, profiles and assignments are
// written through their own stores, as the server writes them. The engine reads whether a
// device ever contacted the service, which no store writes (dmsync models no check-in), so the
// tests that need it set it with the one test-only fixture left and take the `SqlStore` itself;
// `engine_tests!` runs them on every backend.

mod engine {
    use dmsync_core::autopilot::{AutopilotDevice, DeviceField, DeviceQuery};
    use dmsync_core::deployment_profiles::{AssignmentTarget, assignment_id};
    use dmsync_core::groups::MemberChange;
    use dmsync_core::profile_assignment::{ForcedAssignmentFailures, ProfileAssignmentStats, ProfileAssignmentStatus};
    use dmsync_core::{AutopilotDeviceId, Backend, DeploymentProfileId, EntraDeviceId, GroupId};
    use dmsync_store::SqlStore;
    use dmsync_store::fixtures;
    use time::{Duration, OffsetDateTime};

    use super::{A, B, LEASE, assignment_job, evaluation_job, new_group, profile_content, reg, with_tenants};

    const DELAY: Duration = Duration::minutes(10);

    fn t0() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(OffsetDateTime::now_utc().unix_timestamp()).unwrap()
    }

    /// The tenant's devices `E-1`…`E-n`, synced, each with its Entra object, in serial order.
    async fn devices(store: &dyn Backend, n: usize, now: OffsetDateTime) -> Vec<(AutopilotDeviceId, EntraDeviceId)> {
        with_tenants(store).await;
        let rows: Vec<_> = (1..=n).map(|i| reg(&format!("E-{i}"), &format!("hash-e{i}"))).collect();
        store.put_registrations(A, &rows, now).await.unwrap().unwrap();
        store.reconcile_autopilot_devices(A, now).await.unwrap();
        let mut found = Vec::new();
        for i in 1..=n {
            let filter = dmsync_core::filter::parse_filter(&format!("serialNumber eq 'E-{i}'"), |_| {
                Some(DeviceField::SerialNumber)
            })
            .unwrap();
            let device = store
                .list_autopilot_devices(A, &DeviceQuery { filter: Some(filter), ..DeviceQuery::first(1) })
                .await
                .unwrap()
                .remove(0);
            let objects = super::entra_device_by_device_id(store, A, device.azure_ad_device_id.unwrap()).await;
            found.push((device.id, objects[0].id));
        }
        found
    }

    /// An Entra join profile created at `created_at`, which decides which of several wins.
    async fn profile(store: &dyn Backend, name: &str, created_at: OffsetDateTime) -> DeploymentProfileId {
        store.create_deployment_profile(A, &profile_content(name), created_at).await.unwrap().unwrap().id
    }

    /// An assigned security group with these members.
    async fn group(store: &dyn Backend, members: &[EntraDeviceId], now: OffsetDateTime) -> GroupId {
        let group = new_group(A, "Autopilot Devices", None);
        let change = store.create_group(&group, members, now, now, &evaluation_job()).await.unwrap();
        assert_eq!(change, MemberChange::Done);
        group.id
    }

    async fn assign(store: &dyn Backend, profile: DeploymentProfileId, target: AssignmentTarget, now: OffsetDateTime) {
        store.create_profile_assignment(A, profile, target, now).await.unwrap().unwrap();
    }

    async fn unassign(store: &dyn Backend, profile: DeploymentProfileId, target: AssignmentTarget) {
        let id = assignment_id(profile, target);
        assert_eq!(store.delete_profile_assignment(A, profile, &id).await.unwrap(), Ok(()));
    }

    /// Asks for a pass at `now` (as a request would), then runs every pass due by `now`, as
    /// the worker would; the stats of the last one.
    async fn run_passes(store: &dyn Backend, now: OffsetDateTime, delay: Duration) -> ProfileAssignmentStats {
        store.enqueue_coalesced_job(A, &assignment_job(), now, now).await.unwrap();
        run_due(store, now, delay).await.expect("a pass was due")
    }

    /// Runs the passes due by `now` without asking for one.
    async fn run_due(store: &dyn Backend, now: OffsetDateTime, delay: Duration) -> Option<ProfileAssignmentStats> {
        run_due_failing(store, now, delay, &ForcedAssignmentFailures::Nothing).await
    }

    /// [`run_due`], each pass failing the devices `forced` names.
    async fn run_due_failing(
        store: &dyn Backend,
        now: OffsetDateTime,
        delay: Duration,
        forced: &ForcedAssignmentFailures,
    ) -> Option<ProfileAssignmentStats> {
        let mut last = None;
        while let Some(job) = store.claim_job("w", now, now, LEASE).await.unwrap() {
            assert_eq!(job.kind, "assignDeploymentProfiles");
            let (lease, next) = (job.lease(), assignment_job());
            let stats =
                store.assign_deployment_profiles(&lease, job.tenant_id, now, delay, &next, forced).await.unwrap();
            last = Some(stats.expect("the lease holds"));
        }
        last
    }

    /// [`run_passes`], the pass failing the devices `forced` names.
    async fn run_passes_failing(
        store: &dyn Backend,
        now: OffsetDateTime,
        delay: Duration,
        forced: &ForcedAssignmentFailures,
    ) -> ProfileAssignmentStats {
        store.enqueue_coalesced_job(A, &assignment_job(), now, now).await.unwrap();
        run_due_failing(store, now, delay, forced).await.expect("a pass was due")
    }

    async fn device(store: &dyn Backend, id: AutopilotDeviceId) -> AutopilotDevice {
        store.autopilot_device(A, id).await.unwrap().unwrap()
    }

    /// (status, intended, assigned) of a device.
    async fn state(
        store: &dyn Backend,
        id: AutopilotDeviceId,
    ) -> (ProfileAssignmentStatus, Option<DeploymentProfileId>, Option<DeploymentProfileId>) {
        let d = device(store, id).await;
        (d.profile_assignment_status, d.intended_profile_id, d.assigned_profile_id)
    }

    /// A group member is pending at once, assigned after the delay (on the Clock, by the pass
    /// the first one scheduled), and a member of the profile's exclusion group is not targeted.
    pub async fn a_group_member_is_pending_then_assigned_after_the_delay(store: &SqlStore) {
        use AssignmentTarget::{ExclusionGroup, Group};
        use ProfileAssignmentStatus::*;
        let t0 = t0();
        let d = devices(store, 3, t0).await;
        let p = profile(store, "P", t0).await;
        let g = group(store, &[d[0].1, d[1].1], t0).await;
        let x = group(store, &[d[1].1], t0).await;
        assign(store, p, Group(g), t0).await;
        assign(store, p, ExclusionGroup(x), t0).await;

        let stats = run_passes(store, t0, DELAY).await;
        assert_eq!((stats.pending, stats.assigned, stats.unassigned), (1, 0, 0));
        assert_eq!(stats.next_pass_at, Some(t0 + DELAY));
        assert_eq!(state(store, d[0].0).await, (Pending, Some(p), None));
        assert_eq!(state(store, d[1].0).await, (NotAssigned, None, None), "excluded");
        assert_eq!(state(store, d[2].0).await, (NotAssigned, None, None), "not a member");
        assert_eq!(device(store, d[0].0).await.profile_assigned_at, None);

        // Nothing is due before the delay; a pass asked for meanwhile changes nothing.
        assert!(run_due(store, t0 + DELAY - Duration::seconds(1), DELAY).await.is_none());
        let again = run_passes(store, t0 + Duration::minutes(5), DELAY).await;
        assert_eq!((again.pending, again.assigned, again.unassigned), (0, 0, 0), "idempotent");
        assert_eq!(again.next_pass_at, Some(t0 + DELAY), "the device keeps its first intended_at");

        // The scheduled pass (a clock advance makes it due) assigns it.
        let later = t0 + DELAY + Duration::seconds(3);
        let stats = run_due(store, later, DELAY).await.expect("the follow-up pass was scheduled");
        assert_eq!((stats.pending, stats.assigned, stats.next_pass_at), (0, 1, None));
        assert_eq!(state(store, d[0].0).await, (AssignedUnknownSyncState, Some(p), Some(p)));
        assert_eq!(device(store, d[0].0).await.profile_assigned_at, Some(later));
        assert!(run_due(store, later + Duration::days(1), DELAY).await.is_none(), "no pass is left queued");

        // A device that has contacted the service is assigned in sync.
        let y = group(store, &[d[2].1], t0).await;
        assign(store, p, Group(y), later).await;
        fixtures::set_last_contacted(store, A, d[2].0, later).await.unwrap();
        run_passes(store, later, Duration::ZERO).await;
        assert_eq!(state(store, d[2].0).await, (AssignedInSync, Some(p), Some(p)), "zero delay assigns at once");
    }

    /// Of several profiles reaching a device through groups, the oldest wins whatever the
    /// order of assignment; All Devices applies only where no group assignment does, and
    /// assigns at once.
    pub async fn the_oldest_profile_wins_and_all_devices_is_the_default(store: &SqlStore) {
        use AssignmentTarget::{AllDevices, Group};
        use ProfileAssignmentStatus::*;
        let t0 = t0();
        let d = devices(store, 3, t0).await;
        let everyone = profile(store, "All", t0 - Duration::days(30)).await;
        let older = profile(store, "Older", t0 - Duration::days(2)).await;
        let newer = profile(store, "Newer", t0 - Duration::days(1)).await;
        let g = group(store, &[d[0].1], t0).await;
        let h = group(store, &[d[0].1, d[1].1], t0).await;
        assign(store, newer, Group(g), t0).await;
        assign(store, older, Group(h), t0 + Duration::seconds(1)).await;
        assign(store, everyone, AllDevices, t0).await;
        fixtures::set_last_contacted(store, A, d[2].0, t0).await.unwrap();

        let stats = run_passes(store, t0, DELAY).await;
        assert_eq!((stats.pending, stats.assigned), (2, 1));
        assert_eq!(state(store, d[0].0).await, (Pending, Some(older), None), "the oldest of two group profiles");
        assert_eq!(state(store, d[1].0).await, (Pending, Some(older), None), "a group profile over All Devices");
        assert_eq!(state(store, d[2].0).await, (AssignedInSync, Some(everyone), Some(everyone)), "at once");
        assert_eq!(device(store, d[2].0).await.profile_assigned_at, Some(t0));

        // Profiles created at the same time: the smaller id wins (the store picks the ids, so
        // they are compared once known), whichever was assigned first.
        let same = t0 - Duration::days(5);
        let (one, two) = (profile(store, "One", same).await, profile(store, "Two", same).await);
        let (first, second) = if one.to_string() < two.to_string() { (one, two) } else { (two, one) };
        let k = group(store, &[d[1].1], t0).await;
        assign(store, second, Group(k), t0).await;
        assign(store, first, Group(k), t0).await;
        run_passes(store, t0 + Duration::seconds(1), DELAY).await;
        assert_eq!(state(store, d[1].0).await, (Pending, Some(first), None));
    }

    /// A device moves to a newer winner through `pending` (keeping the profile it had until
    /// then), and back to `notAssigned` when it leaves the group, is excluded, or its
    /// assignment is removed. Other tenants are never touched.
    pub async fn devices_are_rescoped_and_unassigned(store: &dyn Backend) {
        use AssignmentTarget::{ExclusionGroup, Group};
        use ProfileAssignmentStatus::*;
        let t0 = t0();
        let d = devices(store, 3, t0).await;
        store.put_registrations(B, &[reg("B-1", "hash-b1")], t0).await.unwrap().unwrap();
        store.reconcile_autopilot_devices(B, t0).await.unwrap();
        let p = profile(store, "P", t0).await;
        let g = group(store, &[d[0].1, d[1].1, d[2].1], t0).await;
        assign(store, p, Group(g), t0).await;
        run_passes(store, t0, Duration::ZERO).await;
        for (id, _) in &d {
            assert_eq!(state(store, *id).await, (AssignedUnknownSyncState, Some(p), Some(p)));
        }

        // An older profile reaches d0: pending for it, still assigned the other.
        let older = profile(store, "Older", t0 - Duration::days(1)).await;
        let h = group(store, &[d[0].1], t0).await;
        assign(store, older, Group(h), t0).await;
        let t1 = t0 + Duration::minutes(1);
        let stats = run_passes(store, t1, DELAY).await;
        assert_eq!((stats.pending, stats.assigned, stats.unassigned), (1, 0, 0));
        assert_eq!(state(store, d[0].0).await, (Pending, Some(older), Some(p)));

        // Its assignment removed: back under the first profile, which is pending again.
        unassign(store, older, Group(h)).await;
        run_passes(store, t1, DELAY).await;
        assert_eq!(state(store, d[0].0).await, (Pending, Some(p), Some(p)));

        // Out of the group, excluded, or the assignment removed: not assigned.
        assert_eq!(store.remove_group_member(A, g, d[0].1).await.unwrap(), MemberChange::Done);
        let x = group(store, &[d[1].1], t0).await;
        assign(store, p, ExclusionGroup(x), t1).await;
        let stats = run_passes(store, t1, DELAY).await;
        assert_eq!((stats.pending, stats.unassigned, stats.next_pass_at), (0, 2, None));
        for id in [d[0].0, d[1].0] {
            let cleared = device(store, id).await;
            assert_eq!(state(store, id).await, (NotAssigned, None, None));
            assert_eq!(cleared.profile_assigned_at, None);
        }
        assert_eq!(state(store, d[2].0).await, (AssignedUnknownSyncState, Some(p), Some(p)));
        unassign(store, p, Group(g)).await;
        let stats = run_passes(store, t1, DELAY).await;
        assert_eq!(stats.unassigned, 1);
        assert_eq!(state(store, d[2].0).await, (NotAssigned, None, None));

        // Tenant B's device was never looked at.
        let other = store.list_autopilot_devices(B, &DeviceQuery::first(10)).await.unwrap();
        assert_eq!(other[0].profile_assignment_status, NotAssigned);

        // `$filter` reads the status column.
        let filter = dmsync_core::filter::parse_filter("deploymentProfileAssignmentStatus eq 'notAssigned'", |_| {
            Some(DeviceField::DeploymentProfileAssignmentStatus)
        })
        .unwrap();
        assert_eq!(store.count_autopilot_devices(A, Some(&filter)).await.unwrap(), 3);
    }

    /// A forced failure fails the devices with that serial (compared exactly) that the pass
    /// would assign, pending ones coming due and All Devices ones alike: `failed`, the profile
    /// still intended, nothing assigned. Later passes keep them failed, even one that fails
    /// every device (it has nothing to assign); a new winning profile makes a device pending
    /// again, and leaving every profile's scope makes it not assigned.
    pub async fn a_forced_failure_fails_that_device_until_its_target_changes(store: &dyn Backend) {
        use AssignmentTarget::{AllDevices, Group};
        use ProfileAssignmentStatus::*;
        let t0 = t0();
        let d = devices(store, 4, t0).await;
        let p = profile(store, "P", t0).await;
        let g = group(store, &[d[0].1, d[1].1, d[2].1], t0).await;
        assign(store, p, Group(g), t0).await;
        let forced = ForcedAssignmentFailures::Serials(vec!["E-1".into(), "e-2".into(), "E-404".into()]);
        let stats = run_passes_failing(store, t0, DELAY, &forced).await;
        assert_eq!((stats.pending, stats.failed), (3, 0), "nothing is due yet, so nothing fails");
        assert!(stats.failed_serials.is_empty());

        let due = t0 + DELAY;
        let stats = run_due_failing(store, due, DELAY, &forced).await.expect("the follow-up pass");
        assert_eq!((stats.assigned, stats.failed, stats.next_pass_at), (2, 1, None));
        assert_eq!(stats.failed_serials, ["E-1"], "serials compare exactly");
        assert_eq!(state(store, d[0].0).await, (Failed, Some(p), None));
        assert_eq!(device(store, d[0].0).await.profile_assigned_at, None);
        assert_eq!(state(store, d[1].0).await, (AssignedUnknownSyncState, Some(p), Some(p)));

        // Later passes, even one failing every device, leave it failed and fail nothing else.
        let every = ForcedAssignmentFailures::Every;
        let stats = run_passes_failing(store, due, DELAY, &every).await;
        assert_eq!((stats.pending, stats.assigned, stats.unassigned, stats.failed), (0, 0, 0, 0));
        assert_eq!(state(store, d[0].0).await, (Failed, Some(p), None));

        // Through All Devices: the device not in the group fails at once instead of being
        // assigned, and the next pass, an All Devices one with no fault, keeps it failed.
        let everyone = profile(store, "All", t0 - Duration::days(30)).await;
        assign(store, everyone, AllDevices, due).await;
        let stats = run_passes_failing(store, due, DELAY, &every).await;
        assert_eq!((stats.assigned, stats.failed), (0, 1));
        assert_eq!(state(store, d[3].0).await, (Failed, Some(everyone), None));
        let stats = run_passes(store, due, DELAY).await;
        assert_eq!((stats.pending, stats.assigned, stats.failed), (0, 0, 0));
        assert_eq!(state(store, d[3].0).await, (Failed, Some(everyone), None));
        let filter = dmsync_core::filter::parse_filter("deploymentProfileAssignmentStatus eq 'failed'", |_| {
            Some(DeviceField::DeploymentProfileAssignmentStatus)
        })
        .unwrap();
        assert_eq!(store.count_autopilot_devices(A, Some(&filter)).await.unwrap(), 2);

        // A new winning profile: pending again, then assigned as usual.
        let older = profile(store, "Older", t0 - Duration::days(1)).await;
        let h = group(store, &[d[0].1], t0).await;
        assign(store, older, Group(h), due).await;
        let stats = run_passes(store, due, DELAY).await;
        assert_eq!((stats.pending, stats.failed), (1, 0));
        assert_eq!(state(store, d[0].0).await, (Pending, Some(older), None));
        run_due(store, due + DELAY, DELAY).await.expect("the follow-up pass");
        assert_eq!(state(store, d[0].0).await, (AssignedUnknownSyncState, Some(older), Some(older)));

        // Out of every profile's scope: not assigned.
        unassign(store, everyone, AllDevices).await;
        let stats = run_passes(store, due + DELAY, DELAY).await;
        assert_eq!(stats.unassigned, 1);
        assert_eq!(state(store, d[3].0).await, (NotAssigned, None, None));
    }

    /// Requests share the queued pass; one asked for while a pass runs is queued anew (the
    /// running pass may have read the state before the change). A pass whose lease was lost
    /// writes nothing.
    pub async fn passes_are_coalesced_and_fenced(store: &dyn Backend) {
        let t0 = t0();
        let d = devices(store, 1, t0).await;
        let p = profile(store, "P", t0).await;
        let g = group(store, &[d[0].1], t0).await;
        assign(store, p, AssignmentTarget::Group(g), t0).await;
        assert!(store.enqueue_coalesced_job(A, &assignment_job(), t0, t0).await.unwrap());
        assert!(!store.enqueue_coalesced_job(A, &assignment_job(), t0, t0).await.unwrap(), "coalesced");
        assert!(store.enqueue_coalesced_job(B, &assignment_job(), t0, t0).await.unwrap(), "per tenant");
        let job = store.claim_job("w", t0, t0, LEASE).await.unwrap().unwrap();
        let job_b = store.claim_job("w", t0, t0, LEASE).await.unwrap().unwrap();
        let (job, _job_b) = if job.tenant_id == A { (job, job_b) } else { (job_b, job) };
        assert!(store.enqueue_coalesced_job(A, &assignment_job(), t0, t0).await.unwrap(), "queued while running");
        let mut stale = job.lease();
        stale.attempt += 1;
        let nothing = ForcedAssignmentFailures::Nothing;
        let fenced = store.assign_deployment_profiles(&stale, A, t0, DELAY, &assignment_job(), &nothing).await.unwrap();
        assert_eq!(fenced, None);
        assert_eq!(state(store, d[0].0).await.0, ProfileAssignmentStatus::NotAssigned, "nothing written");
        store
            .assign_deployment_profiles(&job.lease(), A, t0, DELAY, &assignment_job(), &nothing)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(state(store, d[0].0).await.0, ProfileAssignmentStatus::Pending);
        // The queued pass and the follow-up: the former is due now, the latter after the delay.
        assert!(run_due(store, t0, DELAY).await.is_some());
        assert!(run_due(store, t0 + DELAY, DELAY).await.is_some());
        assert_eq!(state(store, d[0].0).await.0, ProfileAssignmentStatus::AssignedUnknownSyncState);
    }

    /// A completed import asks for a pass in its own transaction, so a device imported into a
    /// tenant with an All Devices profile is assigned once that pass runs.
    pub async fn an_import_asks_for_a_pass(store: &dyn Backend) {
        let t0 = t0();
        with_tenants(store).await;
        let p = profile(store, "All", t0).await;
        assign(store, p, AssignmentTarget::AllDevices, t0).await;
        let created = store
            .create_imports(A, "imp", &[super::new_import("I-1", "hash-i1")], t0, t0, &super::import_job())
            .await
            .unwrap();
        let job = store.claim_job("w", t0, t0, LEASE).await.unwrap().unwrap();
        store.process_imports(&job.lease(), A, t0, false, &assignment_job(), &[]).await.unwrap().unwrap();
        let stats = run_due(store, t0, DELAY).await.expect("the import enqueued a pass");
        assert_eq!(stats.assigned, 1);
        let id = store.imported_device(A, created[0].id).await.unwrap().unwrap().device_registration_id.unwrap();
        assert_eq!(state(store, id).await, (ProfileAssignmentStatus::AssignedUnknownSyncState, Some(p), Some(p)));
    }

    /// The members a dynamic `[OrderId]` rule gives a group once its evaluation has run are the
    /// devices a profile assigned to the group targets.
    pub async fn dynamic_group_members_are_targeted_once_evaluated(store: &dyn Backend) {
        let t0 = t0();
        with_tenants(store).await;
        let mut rows: Vec<_> = (1..=5).map(|i| reg(&format!("O-{i}"), &format!("hash-o{i}"))).collect();
        for row in rows.iter_mut().take(3) {
            row.group_tag = "Sales".into();
        }
        store.put_registrations(A, &rows, t0).await.unwrap().unwrap();
        store.reconcile_autopilot_devices(A, t0).await.unwrap();
        let sales = new_group(A, "Sales", Some(r#"(device.devicePhysicalIds -any (_ -eq "[OrderId]:Sales"))"#));
        super::create_group(store, &sales, t0).await;
        let stats = super::evaluate(store, A, t0).await;
        assert_eq!((stats.groups, stats.added, stats.removed), (1, 3, 0));
        assert_eq!(super::member_names(store, A, sales.id).await, ["O-1", "O-2", "O-3"]);
        assert_eq!(store.count_entra_devices(A, None).await.unwrap(), 5);
        let p = profile(store, "P", t0).await;
        assign(store, p, AssignmentTarget::Group(sales.id), t0).await;
        assert_eq!(run_passes(store, t0, DELAY).await.pending, 3);
    }
}

macro_rules! engine_tests {
    ($backend:ident, $open:expr, [$($test:ident),* $(,)?]) => {
        mod $backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let Some((store, _guard)) = $open.await else { return };
                    super::engine::$test(&store).await;
                }
            )*
        }
    };
}

macro_rules! all_engine_tests {
    ($backend:ident, $open:expr) => {
        engine_tests!(
            $backend,
            $open,
            [
                a_group_member_is_pending_then_assigned_after_the_delay,
                the_oldest_profile_wins_and_all_devices_is_the_default,
                devices_are_rescoped_and_unassigned,
                a_forced_failure_fails_that_device_until_its_target_changes,
                passes_are_coalesced_and_fenced,
                an_import_asks_for_a_pass,
                dynamic_group_members_are_targeted_once_evaluated,
            ]
        );
    };
}

async fn sqlite_sql_store() -> Option<(dmsync_store::SqlStore, ())> {
    Some((dmsync_store::SqlStore::open("sqlite::memory:").await.unwrap(), ()))
}

async fn postgres_sql_store() -> Option<(dmsync_store::SqlStore, TestDatabase)> {
    let db = TestDatabase::create().await?;
    Some((dmsync_store::SqlStore::open(&db.url).await.unwrap(), db))
}

all_engine_tests!(sqlite_engine, super::sqlite_sql_store());
all_engine_tests!(postgresql_engine, super::postgres_sql_store());
