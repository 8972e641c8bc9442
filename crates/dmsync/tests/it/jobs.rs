//! The job machinery end to end: an enqueued job starts without waiting for the poll, and a
//! job this version cannot run (an unknown kind, a payload that does not decode) fails for good
//! at once with a clear error instead of being retried.

use std::time::{Duration, Instant};

use dmsync_core::JobId;
use dmsync_core::exchange::{ConnectorSyncDecision, SyncType};
use dmsync_core::jobs::{Job, JobPayload, JobState, NewJob};
use reqwest::{Method, StatusCode};

use crate::helpers::*;

const SYNC: &str = "/beta/deviceManagement/windowsAutopilotSettings/sync";

/// Far longer than any test waits: a job that starts in time was woken, not polled.
const LONG_POLL: Duration = Duration::from_secs(120);

#[tokio::test]
async fn an_enqueued_job_starts_without_waiting_for_the_poll() {
    let app = spawn_app_with(|c| {
        c.job_poll_interval = LONG_POLL;
        c.sync_duration = time::Duration::ZERO;
    })
    .await;
    let client = app.user_client().await;
    // Let the workers finish their first look and go idle.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for round in 0..2 {
        let started = Instant::now();
        let r = app.raw(Method::POST, SYNC, Some(&app.user_token().await)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT, "round {round}");
        app.wait_for_sync_status(&client, "completed", Duration::from_secs(20)).await;
        let took = started.elapsed();
        assert!(took < LONG_POLL / 4, "round {round}: the sync took {took:?}, as long as a poll");
        // Out of the cooldown for the next round.
        app.admin.advance_clock(3600.0).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    app.stop().await;
}

/// A job written by a newer version.
#[derive(serde::Serialize, serde::Deserialize)]
struct FutureJob {}

impl JobPayload for FutureJob {
    const KIND: &'static str = "someFutureJob";
}

/// A deregistration whose payload names no device.
#[derive(serde::Serialize, serde::Deserialize)]
struct BrokenDeregistration {
    device: String,
}

impl JobPayload for BrokenDeregistration {
    const KIND: &'static str = "deregisterAutopilotDevice";
}

/// Enqueues the job as a connector's sync, through a connector of its own: the store carries
/// whatever kind and payload it is given, as the rows of another version would hold.
async fn enqueue(app: &TestApp, job: &NewJob) -> JobId {
    let r = app
        .raw(Method::POST, "/beta/deviceManagement/exchangeConnectors", Some(&app.user_token().await))
        .json(&serde_json::json!({
            "primarySmtpAddress": "svc@contoso.com", "serverName": "ex01.contoso.com",
            "connectorServerName": "conn01", "exchangeConnectorType": "onPremises", "version": "19.1",
            "exchangeAlias": "", "exchangeOrganization": "Contoso",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let connector: serde_json::Value = r.json().await.unwrap();
    let connector = connector["id"].as_str().unwrap().parse().unwrap();
    let tenant = app.tenant().parse().unwrap();
    let decision =
        app.state.store().trigger_connector_sync(tenant, connector, SyncType::FullSync, app.state.now(), job);
    match decision.await.unwrap() {
        ConnectorSyncDecision::Started { job_id } => job_id,
        other => panic!("the job was not enqueued: {other:?}"),
    }
}

async fn wait_for_failure(app: &TestApp, id: JobId) -> Job {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let job = app.state.store().job(id).await.unwrap().expect("the job exists");
        if job.state == JobState::Failed {
            return job;
        }
        assert!(Instant::now() < deadline, "the job never failed for good: {job:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_job_of_an_unknown_kind_fails_for_good_at_once() {
    let app = spawn_app().await;
    let id = enqueue(&app, &NewJob::new(&FutureJob {})).await;
    let job = wait_for_failure(&app, id).await;
    assert_eq!(job.attempt, 1, "not retried");
    let error = job.last_error.unwrap_or_default();
    assert!(error.contains("unknown job kind 'someFutureJob'"), "{error}");
    app.stop().await;
}

#[tokio::test]
async fn a_job_whose_payload_does_not_decode_fails_for_good_with_the_cause() {
    let app = spawn_app().await;
    let id = enqueue(&app, &NewJob::new(&BrokenDeregistration { device: "x".into() })).await;
    let job = wait_for_failure(&app, id).await;
    assert_eq!(job.attempt, 1, "not retried");
    let error = job.last_error.unwrap_or_default();
    // The whole chain: what failed, then serde's reason.
    assert!(error.contains("deregisterAutopilotDevice job is not valid: "), "{error}");
    assert!(error.contains("deviceId"), "{error}");
    app.stop().await;
}
