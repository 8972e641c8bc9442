//! Several replicas as one service, on one PostgreSQL database: they start together on an empty
//! database without competing keys or identities, a token minted by one is valid on all, the
//! Autopilot sync rule holds exactly once across them, a job whose replica died is finished by
//! another once its lease runs out, and a scheduled connector sync starts once per schedule.
//!
//! These tests always run on PostgreSQL, whatever `DMSYNC_TEST_BACKEND` says: with CI=true an
//! unreachable PostgreSQL fails them; elsewhere they print a loud notice and pass without
//! running (see `TestDatabase::create`).

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::Row;

use crate::helpers::*;

/// Starts `n` replicas at once on the same fresh database.
pub(crate) async fn start_replicas(
    n: usize,
    configure: impl Fn(&mut dmsync_server::Config),
) -> Option<(Vec<TestApp>, sqlx::PgPool)> {
    let db = postgres_database().await?;
    let url = db.url.clone();
    let pool = sqlx::PgPool::connect(&url).await.expect("inspection pool");
    let shared = std::sync::Arc::new(db);
    let apps = futures::future::join_all((0..n).map(|_| {
        let mut config = test_config(&url);
        configure(&mut config);
        spawn_app_on(config, TestDb::Shared(shared.clone()))
    }))
    .await;
    Some((apps, pool))
}

pub(crate) async fn stop_all(apps: Vec<TestApp>, pool: sqlx::PgPool) {
    pool.close().await;
    futures::future::join_all(apps.into_iter().map(TestApp::stop)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_share_keys_and_start_one_sync_among_300_requests() {
    // A long sync, so that every request after the winner meets it in progress or cooling down.
    let Some((apps, pool)) = start_replicas(3, |c| c.sync_duration = time::Duration::seconds(60)).await else { return };

    // One signing key and one set of development identities, though all three started at once
    // (each generates a key in the background; only the first insert is kept).
    for app in &apps {
        app.state.keys().wait_until_ready().await;
    }
    let keys: i64 = sqlx::query_scalar("SELECT count(*) FROM signing_keys").fetch_one(&pool).await.unwrap();
    assert_eq!(keys, 1);
    let tenants: i64 = sqlx::query_scalar("SELECT count(*) FROM tenants").fetch_one(&pool).await.unwrap();
    assert_eq!(tenants, 1);
    let mut kids = HashSet::new();
    for app in &apps {
        let jwks = app.get_json(&format!("/{}/discovery/v2.0/keys", app.tenant()), None).await;
        kids.insert(jwks["keys"][0]["kid"].as_str().unwrap().to_owned());
    }
    assert_eq!(kids.len(), 1, "every replica publishes the same key");

    // A token minted by any replica is accepted by every replica.
    for minter in &apps {
        let token = minter.user_token().await;
        for app in &apps {
            app.get_json("/beta/deviceManagement/windowsAutopilotSettings", Some(&token)).await;
        }
    }

    let token = apps[0].user_token().await;
    let http = reqwest::Client::new();
    let statuses = futures::future::join_all((0..300).map(|i| {
        let request = http
            .post(format!("{}/beta/deviceManagement/windowsAutopilotSettings/sync", apps[i % 3].base_url))
            .bearer_auth(&token)
            .send();
        async move { request.await.expect("request sent").status() }
    }))
    .await;
    let count = |s: StatusCode| statuses.iter().filter(|x| **x == s).count();
    assert_eq!(count(StatusCode::NO_CONTENT), 1, "{statuses:?}");
    assert_eq!(count(StatusCode::CONFLICT) + count(StatusCode::TOO_MANY_REQUESTS), 299, "{statuses:?}");
    let jobs: i64 =
        sqlx::query_scalar("SELECT count(*) FROM jobs WHERE kind = 'autopilotSync'").fetch_one(&pool).await.unwrap();
    assert_eq!(jobs, 1);
    // Every replica read the settings before the sync (above) and shows the sync at once,
    // whichever replica started it: nothing is cached per replica.
    for app in &apps {
        assert_eq!(
            app.get_json("/beta/deviceManagement/windowsAutopilotSettings", Some(&token)).await["syncStatus"],
            "inProgress"
        );
    }
    stop_all(apps, pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clock_advance_on_one_replica_reaches_the_others() {
    let Some((apps, pool)) = start_replicas(2, |c| c.sync_duration = time::Duration::ZERO).await else { return };
    let token = apps[0].user_token().await;
    let sync = |app: &TestApp| {
        app.raw(Method::POST, "/beta/deviceManagement/windowsAutopilotSettings/sync", Some(&token)).send()
    };
    assert_eq!(sync(&apps[0]).await.unwrap().status(), StatusCode::NO_CONTENT);
    apps[0].wait_for_sync_status(&apps[0].graph.with_token(token.clone()), "completed", Duration::from_secs(20)).await;
    assert_eq!(sync(&apps[1]).await.unwrap().status(), StatusCode::TOO_MANY_REQUESTS);
    apps[0].admin.advance_clock(601.0).await.unwrap();
    // The other replica follows the shared clock within a second.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let status = sync(&apps[1]).await.unwrap().status();
        if status == StatusCode::NO_CONTENT {
            break;
        }
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert!(tokio::time::Instant::now() < deadline, "the second replica never saw the clock advance");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop_all(apps, pool).await;
}

/// The real binary, killed with SIGKILL while it holds a sync job: a replica on the same
/// database takes the job over once the lease has run out (not before), and finishes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_replica_was_killed_is_finished_by_another_after_the_lease() {
    let Some(db) = postgres_database().await else { return };
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let mut doomed = Command::new(env!("CARGO_BIN_EXE_dmsync"))
        .args(["serve", "--listen", "127.0.0.1:0", "--db", &db.url, "--job-lease", "6s", "--sync-duration", "2s"])
        .env("DMSYNC_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("dmsync starts");
    let mut stdout = BufReader::new(doomed.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).expect("first line");
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    let base = first.trim().strip_prefix("dmsync listening on ").expect("listening line").to_owned();
    let graph = dmsync_client::GraphClient::new(&base);
    let token = graph
        .token_password(
            &base,
            &dmsync_server::bootstrap::DEV_TENANT_ID.to_string(),
            &dmsync_server::bootstrap::DEV_CLIENT_ID.to_string(),
            dmsync_server::bootstrap::DEV_USER_UPN,
            dmsync_server::bootstrap::DEV_USER_PASSWORD,
        )
        .await
        .unwrap()
        .access_token;
    graph.with_token(token.clone()).sync_windows_autopilot_settings().await.unwrap();
    // Wait until the doomed replica holds the job, then kill it without a chance to let go.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let running: i64 =
            sqlx::query_scalar("SELECT count(*) FROM jobs WHERE kind = 'autopilotSync' AND state = 'running'")
                .fetch_one(&pool)
                .await
                .unwrap();
        if running == 1 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the job was never claimed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    doomed.kill().unwrap();
    doomed.wait().unwrap();
    let killed_at = tokio::time::Instant::now();

    let survivor = spawn_app_on(
        dmsync_server::Config {
            job_lease: time::Duration::seconds(6),
            sync_duration: time::Duration::seconds(2),
            ..test_config(&db.url)
        },
        TestDb::Shared(std::sync::Arc::new(db)),
    )
    .await;
    let client = survivor.graph.with_token(token);
    // Not requeued at start (another replica might be alive): still inProgress for a while.
    let settings = serde_json::to_value(client.get_windows_autopilot_settings().await.unwrap()).unwrap();
    assert_eq!(settings["syncStatus"], "inProgress");
    survivor.wait_for_sync_status(&client, "completed", Duration::from_secs(30)).await;
    let row = sqlx::query("SELECT state, attempt, lease_owner FROM jobs WHERE kind = 'autopilotSync'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(row.get::<String, _>("state"), "succeeded");
    assert_eq!(row.get::<i64, _>("attempt"), 2, "the second attempt, by the survivor");
    assert!(row.get::<Option<String>, _>("lease_owner").is_none());
    assert!(killed_at.elapsed() >= Duration::from_secs(3), "taken over only after the lease ran out");
    pool.close().await;
    survivor.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_scheduled_connector_sync_runs_once_across_replicas() {
    let Some((apps, pool)) = start_replicas(3, |_| {}).await else { return };
    let app = &apps[0];
    let week = Some(7 * 86400);
    let token = app.admin.mint_token(&app.tenant(), "delegated", &[RW], "work", week).await.unwrap();
    let created: Value = app
        .raw(Method::POST, "/v1.0/deviceManagement/exchangeConnectors", Some(&token))
        .json(&json!({"exchangeConnectorType": "onPremises", "serverName": "ex01"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap();
    let inventory = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/exchange/mobile-devices.csv");
    let set = app
        .raw(
            Method::PUT,
            &format!("/_dmsync/tenants/{}/exchangeConnectors/{id}/source", app.tenant()),
            Some("dmsync-dev-admin"),
        )
        .json(&json!({"kind": "file", "path": inventory}))
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), StatusCode::NO_CONTENT);

    let syncs = || {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM jobs WHERE kind = 'exchangeConnectorSync'").fetch_one(&pool)
    };
    let finished = || {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM jobs WHERE kind = 'exchangeConnectorSync' AND state = 'succeeded'",
        )
        .fetch_one(&pool)
    };
    for period in 1..=2i64 {
        // A day on: the full sync is due on every replica's scheduler at about the same time.
        app.admin.advance_clock(86401.0).await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while finished().await.unwrap() < period {
            assert!(tokio::time::Instant::now() < deadline, "the scheduled sync never finished");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Give the other replicas' schedulers (they follow the clock within a second) time to
        // start a duplicate, if the claim let them.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(syncs().await.unwrap(), period, "one sync per schedule, not one per replica");
    }
    let devices: i64 = sqlx::query_scalar("SELECT count(*) FROM eas_devices").fetch_one(&pool).await.unwrap();
    assert!(devices > 0);
    stop_all(apps, pool).await;
}
