//! The crash-safety harness (issue 5). It runs the real `dmsync` binary, kills it with SIGKILL at
//! seeded random points while it works, restarts it on the same database and checks what
//! survived, through Graph and the admin API, and by reading the database while no server runs.
//!
//! Four scenarios, 26 kills in all, each scenario a test per backend:
//! - `registration_upload_and_sync`: 100,000 registrations uploaded as Autopilot CSV, then an
//!   Autopilot sync reconciling them in chunks; 6 kills, by turns during an upload and during a
//!   sync that updates every device.
//! - `import_batches`: 5,000 devices per round through Graph's `import` action, 10 requests of
//!   500 on two connections, processed by import jobs while the next requests arrive; 8 kills.
//! - `connector_full_sync`: an Exchange connector full sync of a 20,000-device file source that
//!   gains 1,000 devices and loses 1,000 at every round; 6 kills.
//! - `profile_assignment`: the deployment profile assignment engine over 20,000 devices. A
//!   profile, a dynamic group and the assignment are created through Graph, and every round a
//!   PATCH of the group's `membershipRule` moves it from one half of the devices to the other;
//!   6 kills, by turns during the membership evaluation and pass that the rule change sets off
//!   (the pass marks devices pending) and during the pass that assigns them.
//!
//! Each scenario first does its work once without a kill and measures how long it takes; a kill
//! then lands at a seeded fraction of that duration after the work starts, so kill points fall
//! inside the work on a fast machine and a slow one alike. The seed is printed; set
//! `DMSYNC_CRASH_SEED` to replay the same phases and fractions.
//!
//! Invariants, after every kill and at the end: an upload or import the server acknowledged
//! (2xx) is present exactly once; one that got no answer is all or nothing; no device is
//! duplicated or lost; the sync and connector state machines accept new work once the
//! restarted server has finished the interrupted job; nothing stays `inProgress` or `unknown`;
//! and after a graceful stop every row of the `jobs` table is `succeeded`.

use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::AnyPool;

use dmsync_client::GraphClient;
use dmsync_server::bootstrap::DEV_TENANT_ID;
use dmsync_server::config::DEV_ADMIN_TOKEN;

use crate::helpers::{RW, hardware_hash};
use crate::process::{RealServer, dev_user_token};

/// Flags for every start: no cooldown and no artificial delays, so the work is the real work;
/// a short lease, so that a backend that cannot requeue at start (several nodes share the
/// database) takes over a dead process's job within seconds. Not shorter: on SQLite a heartbeat
/// waits behind the job's own write transaction (one writer), and a lease shorter than a
/// reconciliation chunk lets a second worker take the job (harmless, as completion is fenced,
/// but the work is done twice).
const SERVER_FLAGS: &[&str] =
    &["--sync-duration", "0s", "--sync-cooldown", "0s", "--import-delay", "0s", "--job-lease", "5s"];

/// The longest any one wait of the harness lasts; a wait that hits it fails the test.
const WAIT_LIMIT: Duration = Duration::from_secs(90);

/// A fresh database for one test. The value keeps it alive (a temporary directory, or a
/// database dropped with it); `url` is what `dmsync serve --db` takes.
pub struct TestDatabase {
    pub url: String,
    _keep: Box<dyn Send + Sync>,
}

impl TestDatabase {
    /// A database at `url` that lives as long as `guard` (whatever removes it on drop).
    pub fn keeping(url: String, guard: impl Send + Sync + 'static) -> TestDatabase {
        TestDatabase { url, _keep: Box::new(guard) }
    }
}

/// SQLite: a file in a temporary directory.
fn sqlite_database() -> TestDatabase {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("crash.db").display());
    TestDatabase::keeping(url, dir)
}

/// Instantiates every scenario for every backend: `crash::BACKEND::SCENARIO`.
macro_rules! crash_harness {
    ($($backend:ident => $database:expr,)*) => {$(
        mod $backend {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn registration_upload_and_sync() {
                let database = $database;
                super::registration_upload_and_sync(&database).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn import_batches() {
                let database = $database;
                super::import_batches(&database).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn connector_full_sync() {
                let database = $database;
                super::connector_full_sync(&database).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn profile_assignment() {
                let database = $database;
                super::profile_assignment(&database).await;
            }
        }
    )*};
}

// The backends the harness runs on: one line each, `name => an expression giving a fresh
// TestDatabase` (it may await), e.g. `postgres => TestDatabase::keeping(db.url(), db)` around a
// helper that creates a PostgreSQL database and drops it when dropped.
crash_harness! {
    sqlite => sqlite_database(),
    // Outside CI an unreachable PostgreSQL skips loudly (`testdb`); with CI=true it fails.
    postgres => match crate::helpers::postgres_database().await {
        Some(db) => TestDatabase::keeping(db.url.clone(), db),
        None => return,
    },
}

/// The run's seed: `DMSYNC_CRASH_SEED`, or a fresh one, printed either way so a failure can be
/// replayed.
fn seeded_rng(scenario: &str) -> StdRng {
    let seed = match std::env::var("DMSYNC_CRASH_SEED") {
        Ok(text) => text.trim().parse().unwrap_or_else(|_| panic!("DMSYNC_CRASH_SEED={text:?} is not a u64")),
        Err(_) => rand::random::<u64>(),
    };
    eprintln!("crash harness: {scenario} seed {seed} (replay with DMSYNC_CRASH_SEED={seed})");
    StdRng::seed_from_u64(seed)
}

/// Counts where the kills fell, so the log shows that they fell inside the work.
#[derive(Default)]
struct Kills {
    total: usize,
    mid_work: usize,
}

impl Kills {
    fn record(&mut self, scenario: &str, what: &str, after: Duration, mid_work: bool) {
        self.total += 1;
        self.mid_work += mid_work as usize;
        let place = if mid_work { "mid-work" } else { "after the work" };
        eprintln!("crash harness: {scenario} kill {} {what} after {after:?}: {place}", self.total);
    }

    /// Kills the server `after` into a job of `kind` it was asked to run, and opens the database
    /// as the kill left it; the kill was mid-work if the job had not ended.
    async fn kill_during_job(
        &mut self,
        server: RealServer,
        after: Duration,
        database: &TestDatabase,
        kind: &str,
        scenario: &str,
        what: &str,
    ) -> AnyPool {
        tokio::time::sleep(after).await;
        server.kill9();
        let db = open_database_after_kill(database).await;
        let unfinished = unfinished_jobs(&db, kind).await;
        self.record(scenario, what, after, unfinished > 0);
        db
    }

    fn finish(&self, scenario: &str) {
        eprintln!("crash harness: {scenario}: {} kills, {} of them mid-work", self.total, self.mid_work);
        // Not a timing assertion: kill points are fractions of the measured work, so a run in
        // which none interrupted anything would not have tested what it claims to.
        assert!(self.mid_work > 0, "{scenario}: no kill landed inside the work");
    }
}

/// Starts `work`, kills the server `after` into it with SIGKILL, and returns what the client
/// saw: an answer that came before the kill, or the error the dead connection gave.
async fn kill_during<T: Send + 'static>(
    server: RealServer,
    after: Duration,
    work: impl Future<Output = T> + Send + 'static,
) -> T {
    let task = tokio::spawn(work);
    tokio::time::sleep(after).await;
    server.kill9();
    tokio::time::timeout(WAIT_LIMIT, task)
        .await
        .expect("the client gives up once the server is gone")
        .expect("the client task")
}

/// A read-only view of the database while no server runs, through sqlx's `Any` driver so the
/// same SQL reads every backend.
async fn open_database(database: &TestDatabase) -> AnyPool {
    sqlx::any::install_default_drivers();
    let url =
        if database.url.starts_with("sqlite:") { format!("{}?mode=ro", database.url) } else { database.url.clone() };
    sqlx::pool::PoolOptions::new().max_connections(1).connect(&url).await.expect("the database opens read-only")
}

/// [`open_database`] right after a SIGKILL, once the killed server's writes have settled.
async fn open_database_after_kill(database: &TestDatabase) -> AnyPool {
    let db = open_database(database).await;
    if !database.url.starts_with("sqlite:") {
        wait_for_dead_server_sessions(&db).await;
    }
    db
}

/// Waits until PostgreSQL has ended every session of the killed server. A COMMIT the server sent
/// just before SIGKILL still runs to its end in its backend, so counting rows before that backend
/// has gone would miss a write that did land, and the round's later check would see it appear.
async fn wait_for_dead_server_sessions(db: &AnyPool) {
    wait_until("the killed server's PostgreSQL sessions have ended", || async {
        let others = count(
            db,
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .await;
        (others == 0).then_some(())
    })
    .await;
}

async fn count(db: &AnyPool, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(db).await.unwrap_or_else(|e| panic!("{sql}: {e}"))
}

async fn count_with(db: &AnyPool, sql: &str, text: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(text.to_owned())
        .fetch_one(db)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Jobs not in a final state, per kind, while no server runs.
async fn unfinished_jobs(db: &AnyPool, kind: &str) -> i64 {
    count_with(
        db,
        "SELECT count(*) FROM jobs WHERE CAST(kind AS TEXT) = $1 AND CAST(state AS TEXT) IN ('queued', 'running')",
        kind,
    )
    .await
}

/// Waits, while the server runs, until no job is queued or running. On PostgreSQL a job that a
/// killed process held stays `running` until its lease runs out and a live server takes it over
/// (a starting replica cannot tell a dead owner from a live one), so a scenario's last checks
/// come after that.
async fn wait_for_jobs_to_end(database: &TestDatabase) {
    let db = open_database(database).await;
    wait_until("every job ends", || async {
        let unfinished =
            count(&db, "SELECT count(*) FROM jobs WHERE CAST(state AS TEXT) IN ('queued', 'running')").await;
        (unfinished == 0).then_some(())
    })
    .await;
    db.close().await;
}

/// After a graceful stop: every job the run created ended, and ended well (nothing in these
/// scenarios is meant to fail).
async fn assert_every_job_succeeded(database: &TestDatabase) {
    let db = open_database(database).await;
    let rows: Vec<(String, String, i64)> =
        sqlx::query_as("SELECT CAST(kind AS TEXT), CAST(state AS TEXT), count(*) FROM jobs GROUP BY kind, state")
            .fetch_all(&db)
            .await
            .expect("read the jobs table");
    eprintln!("crash harness: jobs at the end: {rows:?}");
    assert!(!rows.is_empty(), "the run created jobs");
    for (kind, state, n) in &rows {
        assert_eq!(state, "succeeded", "{n} {kind} jobs ended {state}, not succeeded: {rows:?}");
    }
    db.close().await;
}

/// Restarts the server on the database, as an operator would after the crash.
fn restart(database: &TestDatabase) -> RealServer {
    RealServer::start(&database.url, SERVER_FLAGS)
}

/// Stops the server with SIGTERM; it must exit cleanly.
fn stop(server: RealServer) {
    let status = server.terminate(Duration::from_secs(20));
    assert!(status.success(), "a clean exit on SIGTERM: {status:?}");
}

async fn send_json(request: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let response = request.send().await.expect("the request reaches the server");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// `@odata.count` of a Graph collection query.
async fn graph_count(graph: &GraphClient, path: &str, filter: Option<&str>) -> i64 {
    let mut request = graph.request(Method::GET, path).query(&[("$count", "true"), ("$top", "1")]);
    if let Some(filter) = filter {
        request = request.query(&[("$filter", filter)]);
    }
    let (status, body) = send_json(request).await;
    assert_eq!(status, StatusCode::OK, "GET {path} ({filter:?}): {body}");
    body["@odata.count"].as_i64().unwrap_or_else(|| panic!("no @odata.count: {body}"))
}

/// Every entity of a Graph collection query, following nextLinks.
async fn graph_all(graph: &GraphClient, path: &str, filter: &str) -> Vec<Value> {
    let mut all = Vec::new();
    let (mut status, mut body) =
        send_json(graph.request(Method::GET, path).query(&[("$top", "1000"), ("$filter", filter)])).await;
    loop {
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        all.extend(body["value"].as_array().cloned().unwrap_or_default());
        match body["@odata.nextLink"].as_str() {
            Some(next) => (status, body) = send_json(graph.request(Method::GET, next)).await,
            None => return all,
        }
    }
}

/// Polls `check` until it returns a value, for at most `WAIT_LIMIT`.
async fn wait_until<T, F: Future<Output = Option<T>>>(what: &str, mut check: impl FnMut() -> F) -> T {
    let deadline = Instant::now() + WAIT_LIMIT;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "gave up waiting: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

const DEVICES: &str = "beta/deviceManagement/windowsAutopilotDeviceIdentities";
const IMPORTED: &str = "beta/deviceManagement/importedWindowsAutopilotDeviceIdentities";

// ---------------------------------------------------------------------------------------------
// Registrations and the Autopilot sync

const REGISTRATIONS: usize = 100_000;
const REGISTRATION_KILLS: usize = 6;

/// The same 100,000 serials and hashes every time, with `tag` as the group tag, so that each
/// upload after the first updates every row and an upload cut short shows as a mix of tags.
fn registrations_csv(hashes: &[(String, String)], tag: &str) -> String {
    let mut csv = String::with_capacity(REGISTRATIONS * 80);
    csv.push_str("Device Serial Number,Windows Product ID,Hardware Hash,Group Tag\n");
    for (serial, hash) in hashes {
        csv.push_str(&format!("{serial},,{hash},{tag}\n"));
    }
    csv
}

async fn upload_registrations(base_url: String, csv: String) -> Result<StatusCode, reqwest::Error> {
    let url = format!("{base_url}/_dmsync/tenants/{DEV_TENANT_ID}/autopilot/registrations");
    let response = reqwest::Client::new()
        .post(url)
        .bearer_auth(DEV_ADMIN_TOKEN)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await?;
    Ok(response.status())
}

async fn sync_status(graph: &GraphClient) -> Value {
    serde_json::to_value(graph.get_windows_autopilot_settings().await.expect("get windowsAutopilotSettings")).unwrap()
}

/// Waits for the sync to end, and asserts it ended `completed`.
async fn wait_for_completed_sync(graph: &GraphClient) {
    let settings = wait_until("the sync leaves inProgress", || async {
        let s = sync_status(graph).await;
        (s["syncStatus"] != "inProgress").then_some(s)
    })
    .await;
    assert_eq!(settings["syncStatus"], "completed", "{settings}");
}

/// Graph shows exactly the registered devices, once each, all with `tag`.
async fn assert_devices_show(graph: &GraphClient, tag: &str) {
    assert_eq!(graph_count(graph, DEVICES, None).await, REGISTRATIONS as i64, "devices, through Graph");
    let filter = format!("groupTag eq '{tag}'");
    assert_eq!(
        graph_count(graph, DEVICES, Some(&filter)).await,
        REGISTRATIONS as i64,
        "devices with the last upload's tag"
    );
}

/// The registrations and devices as the database holds them: each serial once.
async fn assert_registrations_intact(db: &AnyPool) {
    let n = REGISTRATIONS as i64;
    assert_eq!(count(db, "SELECT count(*) FROM autopilot_registrations").await, n, "registrations lost or duplicated");
    assert_eq!(count(db, "SELECT count(DISTINCT serial_number) FROM autopilot_registrations").await, n);
    // The harness's own connection has no DMSYNC_UNICODE_NOCASE collation, so its queries must
    // not let SQLite pick the case-insensitive filter indexes: counting a column none of them
    // holds makes it read the table.
    let devices = count(db, "SELECT count(created_at) FROM autopilot_devices").await;
    assert_eq!(
        count(db, "SELECT count(DISTINCT serial_number) FROM autopilot_devices").await,
        devices,
        "a duplicated device"
    );
    assert_eq!(count(db, "SELECT count(DISTINCT id) FROM autopilot_devices").await, devices, "a duplicated device id");
}

async fn registration_upload_and_sync(database: &TestDatabase) {
    let scenario = "registration_upload_and_sync";
    let mut rng = seeded_rng(scenario);
    let hashes: Vec<(String, String)> = (0..REGISTRATIONS)
        .map(|n| {
            let serial = format!("S{n:07}");
            let hash = hardware_hash(&serial);
            (serial, hash)
        })
        .collect();
    let mut server = restart(database);
    let token = dev_user_token(&server.base_url).await;
    let graph = |server: &RealServer| GraphClient::new(&server.base_url).with_token(token.clone());

    // Once without a kill: the durations the kill points are drawn from.
    let started = Instant::now();
    let status = upload_registrations(server.base_url.clone(), registrations_csv(&hashes, "t0")).await.unwrap();
    assert!(status.is_success(), "the first upload: {status}");
    let upload_time = started.elapsed();
    let started = Instant::now();
    graph(&server).sync_windows_autopilot_settings().await.expect("the first sync starts");
    wait_for_completed_sync(&graph(&server)).await;
    let sync_time = started.elapsed();
    eprintln!("crash harness: {scenario}: upload {upload_time:?}, sync {sync_time:?}, uninterrupted");
    assert_devices_show(&graph(&server), "t0").await;

    let mut tag = "t0".to_owned();
    let mut kills = Kills::default();
    // Uploads and syncs take turns; the seed picks which comes first and every kill point.
    let uploads_first = rng.gen_bool(0.5) as usize;
    for round in 1..=REGISTRATION_KILLS {
        if round % 2 == uploads_first {
            let new_tag = format!("t{round}");
            let after = upload_time.mul_f64(rng.gen_range(0.0..1.0));
            let upload = upload_registrations(server.base_url.clone(), registrations_csv(&hashes, &new_tag));
            let answer = kill_during(server, after, upload).await;
            let acknowledged = match answer {
                Ok(status) => {
                    assert!(status.is_success(), "an upload answered {status}");
                    true
                }
                Err(_) => false,
            };
            kills.record(scenario, "during a 100,000-row upload", after, !acknowledged);
            let db = open_database_after_kill(database).await;
            assert_registrations_intact(&db).await;
            let tagged =
                count_with(&db, "SELECT count(*) FROM autopilot_registrations WHERE group_tag = $1", &new_tag).await;
            assert!(
                tagged == 0 || tagged == REGISTRATIONS as i64,
                "an upload is all or nothing: {tagged} rows carry {new_tag}"
            );
            if acknowledged {
                assert_eq!(tagged, REGISTRATIONS as i64, "an acknowledged upload is all there");
            }
            if tagged > 0 {
                tag = new_tag;
            }
            db.close().await;
            server = restart(database);
        } else {
            // A sync with work to do: every registration changed since the last one.
            let new_tag = format!("t{round}");
            let status =
                upload_registrations(server.base_url.clone(), registrations_csv(&hashes, &new_tag)).await.unwrap();
            assert!(status.is_success(), "an upload answered {status}");
            tag = new_tag;
            graph(&server)
                .sync_windows_autopilot_settings()
                .await
                .expect("a sync is accepted: nothing stuck in progress");
            let after = sync_time.mul_f64(rng.gen_range(0.0..1.0));
            let db = kills.kill_during_job(server, after, database, "autopilotSync", scenario, "during a sync").await;
            assert_registrations_intact(&db).await;
            // Reconciliation commits chunk by chunk, so a kill may leave some devices updated.
            let updated =
                count_with(&db, "SELECT count(created_at) FROM autopilot_devices WHERE group_tag = $1", &tag).await;
            eprintln!(
                "crash harness: {scenario}: {updated} of {REGISTRATIONS} devices reconciled when the sync was killed"
            );
            db.close().await;
            server = restart(database);
            // The restarted server finishes the interrupted sync on its own.
            wait_for_completed_sync(&graph(&server)).await;
            assert_devices_show(&graph(&server), &tag).await;
        }
    }
    kills.finish(scenario);

    // The state machine accepts new work, and a last sync brings every upload in.
    graph(&server).sync_windows_autopilot_settings().await.expect("a sync after the crashes");
    wait_for_completed_sync(&graph(&server)).await;
    assert_devices_show(&graph(&server), &tag).await;
    wait_for_jobs_to_end(database).await;
    stop(server);
    let db = open_database(database).await;
    assert_registrations_intact(&db).await;
    assert_eq!(count(&db, "SELECT count(created_at) FROM autopilot_devices").await, REGISTRATIONS as i64);
    db.close().await;
    assert_every_job_succeeded(database).await;
}

// ---------------------------------------------------------------------------------------------
// Imports through Graph's import action

const IMPORT_BATCHES: usize = 10;
const IMPORT_BATCH: usize = 500;
const IMPORT_KILLS: usize = 8;

fn import_serial(round: usize, batch: usize, n: usize) -> String {
    format!("I{round:02}B{batch:02}N{n:03}")
}

/// What one `import` request got: the ids of the stored identities, or nothing.
type BatchAnswer = (usize, Option<Vec<String>>);

/// Posts the round's batches on two connections, five each, in order; a batch after the
/// server died is not sent at all.
async fn post_import_batches(graph: GraphClient, round: usize) -> Vec<BatchAnswer> {
    let lanes = (0..2).map(|lane| {
        let graph = graph.clone();
        tokio::spawn(async move {
            let mut answers = Vec::new();
            for batch in (lane..IMPORT_BATCHES).step_by(2) {
                let items: Vec<Value> = (0..IMPORT_BATCH)
                    .map(|n| {
                        let serial = import_serial(round, batch, n);
                        json!({"serialNumber": serial, "hardwareIdentifier": hardware_hash(&serial), "groupTag": "crash"})
                    })
                    .collect();
                let sent = graph
                    .request(Method::POST, &format!("{IMPORTED}/import"))
                    .json(&json!({ "importedWindowsAutopilotDeviceIdentities": items }))
                    .send()
                    .await;
                let ids = match sent {
                    Ok(response) => {
                        let status = response.status();
                        match response.json::<Value>().await {
                            Ok(body) => {
                                assert_eq!(status, StatusCode::OK, "import answered {status}: {body}");
                                let ids: Vec<String> = body["value"]
                                    .as_array()
                                    .expect("value")
                                    .iter()
                                    .map(|d| d["id"].as_str().unwrap().to_owned())
                                    .collect();
                                assert_eq!(ids.len(), IMPORT_BATCH);
                                Some(ids)
                            }
                            // The server died while sending the body: not acknowledged.
                            Err(_) => None,
                        }
                    }
                    Err(_) => None,
                };
                answers.push((batch, ids));
            }
            answers
        })
    });
    let mut all = Vec::new();
    for lane in lanes.collect::<Vec<_>>() {
        all.extend(lane.await.expect("an import lane"));
    }
    all
}

/// Waits until none of the round's imports is `unknown`, then checks them through Graph:
/// every acknowledged identity once and `complete`, and one device per completed import.
async fn check_import_round(graph: &GraphClient, round: usize, answers: &[BatchAnswer], stored_batches: usize) {
    let prefix = format!("I{round:02}");
    let filter = format!("startswith(serialNumber,'{prefix}')");
    let imported = wait_until("the round's imports are processed", || async {
        let all = graph_all(graph, IMPORTED, &filter).await;
        all.iter().all(|d| d["state"]["deviceImportStatus"] != "unknown").then_some(all)
    })
    .await;
    assert_eq!(imported.len(), stored_batches * IMPORT_BATCH, "imported identities of round {round}");
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for identity in &imported {
        *seen.entry(identity["id"].as_str().unwrap()).or_default() += 1;
        assert_eq!(identity["state"]["deviceImportStatus"], "complete", "{identity}");
    }
    for (batch, ids) in answers {
        for id in ids.iter().flatten() {
            assert_eq!(
                seen.get(id.as_str()),
                Some(&1),
                "acknowledged import {id} of batch {batch} is there exactly once"
            );
        }
    }
    let devices = graph_all(graph, DEVICES, &filter).await;
    let mut serials: Vec<&str> = devices.iter().map(|d| d["serialNumber"].as_str().unwrap()).collect();
    serials.sort_unstable();
    serials.dedup();
    assert_eq!(serials.len(), devices.len(), "a device is duplicated");
    assert_eq!(devices.len(), imported.len(), "one device per completed import");
}

async fn import_batches(database: &TestDatabase) {
    let scenario = "import_batches";
    let mut rng = seeded_rng(scenario);
    let mut server = restart(database);
    let token = dev_user_token(&server.base_url).await;
    let graph = |server: &RealServer| GraphClient::new(&server.base_url).with_token(token.clone());

    let started = Instant::now();
    let answers = post_import_batches(graph(&server), 0).await;
    let import_time = started.elapsed();
    assert!(answers.iter().all(|(_, ids)| ids.is_some()), "every batch is acknowledged without a kill");
    check_import_round(&graph(&server), 0, &answers, IMPORT_BATCHES).await;
    eprintln!("crash harness: {scenario}: 5,000 imports posted in {import_time:?}, uninterrupted");

    let mut kills = Kills::default();
    for round in 1..=IMPORT_KILLS {
        // A little past the posting, so that some kills land in the processing of the last
        // batches.
        let after = import_time.mul_f64(rng.gen_range(0.0..1.2));
        let client = graph(&server);
        let answers = kill_during(server, after, post_import_batches(client, round)).await;
        let db = open_database_after_kill(database).await;
        let unacknowledged = answers.iter().filter(|(_, ids)| ids.is_none()).count();
        let unfinished = unfinished_jobs(&db, "importAutopilotDevices").await;
        kills.record(scenario, "during 5,000 imports", after, unacknowledged > 0 || unfinished > 0);
        let mut stored_batches = 0;
        for (batch, ids) in &answers {
            let pattern = format!("I{round:02}B{batch:02}%");
            let stored =
                count_with(&db, "SELECT count(*) FROM imported_devices WHERE serial_number LIKE $1", &pattern).await;
            assert!(
                stored == 0 || stored == IMPORT_BATCH as i64,
                "an import request is all or nothing: batch {batch} has {stored}"
            );
            if ids.is_some() {
                assert_eq!(stored, IMPORT_BATCH as i64, "acknowledged batch {batch} is stored");
            }
            stored_batches += (stored > 0) as usize;
        }
        db.close().await;
        server = restart(database);
        check_import_round(&graph(&server), round, &answers, stored_batches).await;
    }
    kills.finish(scenario);

    // The import pipeline accepts new work after the crashes.
    let serial = "AFTER-THE-CRASHES";
    let (status, body) = send_json(
        graph(&server)
            .request(Method::POST, IMPORTED)
            .json(&json!({"serialNumber": serial, "hardwareIdentifier": hardware_hash(serial)})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    wait_until("the import after the crashes completes", || async {
        let (_, body) = send_json(graph(&server).request(Method::GET, &format!("{IMPORTED}/{id}"))).await;
        (body["state"]["deviceImportStatus"] == "complete").then_some(())
    })
    .await;
    wait_for_jobs_to_end(database).await;
    stop(server);
    let db = open_database(database).await;
    assert_eq!(
        count(&db, "SELECT count(*) FROM imported_devices WHERE status = 'unknown'").await,
        0,
        "an import stayed unknown"
    );
    let devices = count(&db, "SELECT count(created_at) FROM autopilot_devices").await;
    assert_eq!(
        count(&db, "SELECT count(DISTINCT serial_number) FROM autopilot_devices").await,
        devices,
        "a duplicated device"
    );
    db.close().await;
    assert_every_job_succeeded(database).await;
}

// ---------------------------------------------------------------------------------------------
// The Exchange connector's full sync

const CONNECTOR_DEVICES: usize = 20_000;
/// How far the inventory's window of device ids moves at every round.
const CONNECTOR_SHIFT: usize = 1_000;
const CONNECTOR_KILLS: usize = 6;
const CONNECTORS: &str = "v1.0/deviceManagement/exchangeConnectors";
const MANAGED_DEVICES: &str = "v1.0/deviceManagement/managedDevices";

fn eas_device_id(n: usize) -> String {
    format!("DEV{n:010}")
}

/// Writes the inventory of round `round` as `Get-MobileDevice | Export-Csv` does: devices
/// `round * CONNECTOR_SHIFT ..` for `CONNECTOR_DEVICES`. Written aside and renamed, so that a
/// sync reads one inventory or the next, never half of one.
fn write_inventory(path: &std::path::Path, round: usize) {
    let mut csv = String::from(
        "#TYPE Microsoft.Exchange.Data.Directory.SystemConfiguration.MobileDevice\n\
         \"DeviceId\",\"DeviceType\",\"DeviceModel\",\"DeviceOS\",\"FriendlyName\",\"UserDisplayName\",\"UserPrincipalName\",\"PrimarySmtpAddress\",\"DeviceAccessState\",\"DeviceAccessStateReason\",\"FirstSyncTime\",\"WhenChanged\"\n",
    );
    let first = round * CONNECTOR_SHIFT;
    for n in first..first + CONNECTOR_DEVICES {
        let id = eas_device_id(n);
        csv.push_str(&format!(
            "\"{id}\",\"iPhone\",\"iPhone15,2\",\"iOS 17.1.2 21B101\",\"\",\"User {n}\",\"user{n}@contoso.com\",\"user{n}@contoso.com\",\"Allowed\",\"Global\",\"11/20/2026 9:15:00 AM\",\"11/22/2026 2:05:09 PM\"\n"
        ));
    }
    let aside = path.with_extension("tmp");
    std::fs::write(&aside, csv).expect("write the inventory");
    std::fs::rename(&aside, path).expect("move the inventory in place");
}

async fn connector_last_sync(graph: &GraphClient, id: &str) -> Value {
    let (status, body) = send_json(graph.request(Method::GET, &format!("{CONNECTORS}/{id}"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// Asks for a full sync: it must be accepted, as nothing may stay in progress.
async fn start_full_sync(graph: &GraphClient, id: &str) {
    let response = graph
        .request(Method::POST, &format!("{CONNECTORS}/{id}/sync"))
        .json(&json!({"syncType": "fullSync"}))
        .send()
        .await
        .expect("the sync request reaches the server");
    let status = response.status();
    assert_eq!(
        status,
        StatusCode::NO_CONTENT,
        "a full sync is accepted: {}",
        response.text().await.unwrap_or_default()
    );
}

/// Waits for a sync to record itself (`lastSyncDateTime` moves past `before`) and asserts it
/// ended `connected`.
async fn wait_for_connector_sync(graph: &GraphClient, id: &str, before: &Value) {
    let connector = wait_until("the connector sync finishes", || async {
        let c = connector_last_sync(graph, id).await;
        (c["lastSyncDateTime"] != *before).then_some(c)
    })
    .await;
    assert_eq!(connector["status"], "connected", "{connector}");
}

/// managedDevices shows exactly the inventory of `round`, each device once.
async fn assert_inventory_shows(graph: &GraphClient, round: usize) {
    let first = round * CONNECTOR_SHIFT;
    assert_eq!(
        graph_count(graph, MANAGED_DEVICES, None).await,
        CONNECTOR_DEVICES as i64,
        "managedDevices after round {round}"
    );
    for (n, want) in [(first, 1), (first + CONNECTOR_DEVICES - 1, 1), (first + CONNECTOR_DEVICES, 0)] {
        let filter = format!("easDeviceId eq '{}'", eas_device_id(n));
        assert_eq!(graph_count(graph, MANAGED_DEVICES, Some(&filter)).await, want, "{filter}");
    }
    if first > 0 {
        let filter = format!("easDeviceId eq '{}'", eas_device_id(first - 1));
        assert_eq!(
            graph_count(graph, MANAGED_DEVICES, Some(&filter)).await,
            0,
            "a device the full sync removed: {filter}"
        );
    }
}

/// The connector's devices as the database holds them: one inventory whole, each device once.
/// Returns the round whose inventory it is.
async fn stored_inventory_round(db: &AnyPool) -> usize {
    let n = count(db, "SELECT count(*) FROM eas_devices").await;
    assert_eq!(n, CONNECTOR_DEVICES as i64, "devices lost or left over");
    assert_eq!(count(db, "SELECT count(DISTINCT eas_device_id) FROM eas_devices").await, n, "a duplicated device");
    let lowest: String = sqlx::query_scalar("SELECT min(eas_device_id) FROM eas_devices").fetch_one(db).await.unwrap();
    let highest: String = sqlx::query_scalar("SELECT max(eas_device_id) FROM eas_devices").fetch_one(db).await.unwrap();
    let first: usize = lowest.trim_start_matches("DEV").parse().unwrap();
    assert_eq!(first % CONNECTOR_SHIFT, 0, "the devices are one whole inventory: from {lowest}");
    assert_eq!(
        highest,
        eas_device_id(first + CONNECTOR_DEVICES - 1),
        "the devices are one whole inventory: {lowest}..{highest}"
    );
    first / CONNECTOR_SHIFT
}

async fn connector_full_sync(database: &TestDatabase) {
    let scenario = "connector_full_sync";
    let mut rng = seeded_rng(scenario);
    let files = tempfile::tempdir().unwrap();
    let inventory = files.path().join("mobile-devices.csv");
    let mut server = restart(database);
    let admin = dmsync_client::AdminClient::new(&server.base_url, DEV_ADMIN_TOKEN);
    let week = Some(7 * 86400);
    let token = admin
        .mint_token(
            &DEV_TENANT_ID.to_string(),
            "delegated",
            &[RW, "DeviceManagementManagedDevices.Read.All"],
            "work",
            week,
        )
        .await
        .expect("a token");
    let graph = |server: &RealServer| GraphClient::new(&server.base_url).with_token(token.clone());

    let (status, body) = send_json(
        graph(&server)
            .request(Method::POST, CONNECTORS)
            .json(&json!({"exchangeConnectorType": "onPremises", "serverName": "ex01"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    write_inventory(&inventory, 0);
    let (status, body) = send_json(
        reqwest::Client::new()
            .put(format!("{}/_dmsync/tenants/{DEV_TENANT_ID}/exchangeConnectors/{id}/source", server.base_url))
            .bearer_auth(DEV_ADMIN_TOKEN)
            .json(&json!({"kind": "file", "path": inventory.display().to_string()})),
    )
    .await;
    assert!(status.is_success(), "set the source: {status} {body}");

    let before = connector_last_sync(&graph(&server), &id).await["lastSyncDateTime"].clone();
    let started = Instant::now();
    start_full_sync(&graph(&server), &id).await;
    wait_for_connector_sync(&graph(&server), &id, &before).await;
    let sync_time = started.elapsed();
    eprintln!("crash harness: {scenario}: full sync of {CONNECTOR_DEVICES} devices in {sync_time:?}, uninterrupted");
    assert_inventory_shows(&graph(&server), 0).await;

    let mut kills = Kills::default();
    for round in 1..=CONNECTOR_KILLS {
        write_inventory(&inventory, round);
        let before = connector_last_sync(&graph(&server), &id).await["lastSyncDateTime"].clone();
        start_full_sync(&graph(&server), &id).await;
        let after = sync_time.mul_f64(rng.gen_range(0.0..1.0));
        let db = kills
            .kill_during_job(server, after, database, "exchangeConnectorSync", scenario, "during a full sync")
            .await;
        let stored = stored_inventory_round(&db).await;
        assert!(stored == round || stored == round - 1, "the devices are round {stored}'s, in round {round}");
        db.close().await;
        server = restart(database);
        // The restarted server finishes the interrupted sync on its own.
        wait_for_connector_sync(&graph(&server), &id, &before).await;
        assert_inventory_shows(&graph(&server), round).await;
    }
    kills.finish(scenario);

    // The connector accepts new work after the crashes.
    let before = connector_last_sync(&graph(&server), &id).await["lastSyncDateTime"].clone();
    start_full_sync(&graph(&server), &id).await;
    wait_for_connector_sync(&graph(&server), &id, &before).await;
    assert_inventory_shows(&graph(&server), CONNECTOR_KILLS).await;
    wait_for_jobs_to_end(database).await;
    stop(server);
    let db = open_database(database).await;
    assert_eq!(stored_inventory_round(&db).await, CONNECTOR_KILLS);
    db.close().await;
    assert_every_job_succeeded(database).await;
}

// ---------------------------------------------------------------------------------------------
// The deployment profile assignment engine

const ASSIGNMENT_DEVICES: usize = 20_000;
const ASSIGNMENT_ROUNDS: usize = 3;
/// The assignment delay the server runs with; each round advances the Clock past it.
const ASSIGNMENT_DELAY: &str = "60s";
const PAST_ASSIGNMENT_DELAY: f64 = 61.0;
/// Dynamic groups are evaluated as soon as a rule changes, so that the evaluation and the pass
/// it asks for follow the rule change at once, and a kill drawn from their measured duration
/// lands in either.
const GROUP_PROCESSING_DELAY: &str = "0s";
const PROFILES: &str = "beta/deviceManagement/windowsAutopilotDeploymentProfiles";

/// Half the devices carry `Sales`, the other half `Ops`; each round's group holds one half.
fn tagged_registrations_csv(hashes: &[(String, String)]) -> String {
    let mut csv = String::from("Device Serial Number,Windows Product ID,Hardware Hash,Group Tag\n");
    for (n, (serial, hash)) in hashes.iter().enumerate() {
        let tag = if n % 2 == 0 { "Sales" } else { "Ops" };
        csv.push_str(&format!("{serial},,{hash},{tag}\n"));
    }
    csv
}

/// The dynamic rule Autopilot admins write for the devices of one group tag.
fn order_id_rule(tag: &str) -> String {
    format!(r#"(device.devicePhysicalIds -any (_ -eq "[OrderId]:{tag}"))"#)
}

/// Through Graph, as an admin's tools create them: an Entra join profile, a dynamic device group
/// whose rule selects the devices tagged `tag`, and the profile's assignment to the group; the
/// ids of the profile and the group.
async fn assign_profile_to_dynamic_group(graph: &GraphClient, tag: &str) -> (String, String) {
    let body =
        json!({"@odata.type": "#microsoft.graph.azureADWindowsAutopilotDeploymentProfile", "displayName": "Crash"});
    let (status, profile) = send_json(graph.request(Method::POST, PROFILES).json(&body)).await;
    assert_eq!(status, StatusCode::CREATED, "the profile: {profile}");
    let body = json!({
        "displayName": "Crash devices", "mailEnabled": false, "mailNickname": "crash-devices", "securityEnabled": true,
        "groupTypes": ["DynamicMembership"], "membershipRule": order_id_rule(tag),
        "membershipRuleProcessingState": "On",
    });
    let (status, group) = send_json(graph.request(Method::POST, "v1.0/groups").json(&body)).await;
    assert_eq!(status, StatusCode::CREATED, "the group: {group}");
    let (profile, group) = (profile["id"].as_str().unwrap().to_owned(), group["id"].as_str().unwrap().to_owned());
    let body = json!({"target": {"@odata.type": "#microsoft.graph.groupAssignmentTarget", "groupId": group}});
    let (status, assignment) =
        send_json(graph.request(Method::POST, &format!("{PROFILES}/{profile}/assignments")).json(&body)).await;
    assert_eq!(status, StatusCode::CREATED, "the assignment: {assignment}");
    (profile, group)
}

/// Points the group's rule at the devices tagged `tag`, through Graph; the server evaluates the
/// group, and the evaluation asks for a pass.
async fn set_group_rule(graph: &GraphClient, group: &str, tag: &str) {
    let body = json!({ "membershipRule": order_id_rule(tag) });
    let (status, answer) = send_json(graph.request(Method::PATCH, &format!("v1.0/groups/{group}")).json(&body)).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "the rule change: {answer}");
}

/// Devices whose assignment columns disagree with their status: a pass that a kill cut short
/// must leave none (it is one transaction).
async fn assert_assignment_states_consistent(db: &AnyPool) {
    let broken = count(
        db,
        "SELECT count(*) FROM autopilot_device_rows
          WHERE (CAST(profile_assignment_status AS TEXT) = 'notAssigned'
                 AND (intended_profile_id IS NOT NULL OR assigned_profile_id IS NOT NULL OR profile_assigned_at IS NOT NULL))
             OR (CAST(profile_assignment_status AS TEXT) = 'pending' AND (intended_profile_id IS NULL OR intended_at IS NULL))
             OR (CAST(profile_assignment_status AS TEXT) LIKE 'assigned%'
                 AND (assigned_profile_id IS NULL OR profile_assigned_at IS NULL
                      OR CAST(assigned_profile_id AS TEXT) <> CAST(intended_profile_id AS TEXT)))",
    )
    .await;
    assert_eq!(broken, 0, "devices whose assignment state is half-written");
    assert_eq!(
        count(db, "SELECT count(created_at) FROM autopilot_devices").await,
        ASSIGNMENT_DEVICES as i64,
        "devices lost"
    );
}

async fn devices_with_status(db: &AnyPool, status: &str) -> i64 {
    count_with(
        db,
        "SELECT count(*) FROM autopilot_device_rows WHERE CAST(profile_assignment_status AS TEXT) = $1",
        status,
    )
    .await
}

/// The group's members whose `[OrderId]` is `tag`.
async fn members_tagged(db: &AnyPool, group: &str, tag: &str) -> i64 {
    let sql = "SELECT count(*) FROM group_members m
                 JOIN entra_devices e ON e.tenant_id = m.tenant_id AND e.id = m.member_id
                WHERE CAST(m.group_id AS TEXT) = $1 AND CAST(e.order_id AS TEXT) = $2";
    sqlx::query_scalar(sql)
        .bind(group.to_owned())
        .bind(tag.to_owned())
        .fetch_one(db)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// The group holds the devices tagged `before` or those tagged `after`, all of them and nothing
/// else: an evaluation that a kill cut short must not leave a mix (it is one transaction).
/// Whether it holds the `after` ones.
async fn assert_group_whole(db: &AnyPool, group: &str, before: &str, after: &str) -> bool {
    let half = (ASSIGNMENT_DEVICES / 2) as i64;
    let members = count_with(db, "SELECT count(*) FROM group_members WHERE CAST(group_id AS TEXT) = $1", group).await;
    let (old, new) = (members_tagged(db, group, before).await, members_tagged(db, group, after).await);
    assert!(
        members == half && (old == half || new == half),
        "the group holds {members} devices, {old} tagged {before} and {new} tagged {after}"
    );
    new == half
}

/// Waits, with the server running, until `want` devices read `status`; how long that took.
async fn wait_for_devices_with_status(database: &TestDatabase, status: &str, want: i64) -> Duration {
    let started = Instant::now();
    let db = open_database(database).await;
    wait_until(&format!("{want} devices read {status}"), || async {
        (devices_with_status(&db, status).await == want).then_some(())
    })
    .await;
    db.close().await;
    started.elapsed()
}

async fn profile_assignment(database: &TestDatabase) {
    let scenario = "profile_assignment";
    let mut rng = seeded_rng(scenario);
    let hashes: Vec<(String, String)> = (0..ASSIGNMENT_DEVICES)
        .map(|n| {
            let serial = format!("PA{n:06}");
            let hash = hardware_hash(&serial);
            (serial, hash)
        })
        .collect();
    let delays = ["--profile-assignment-delay", ASSIGNMENT_DELAY, "--group-processing-delay", GROUP_PROCESSING_DELAY];
    let flags: Vec<&str> = SERVER_FLAGS.iter().copied().chain(delays).collect();
    let start = || RealServer::start(&database.url, &flags);
    let server = start();
    let token = dev_user_token(&server.base_url).await;
    let graph = |server: &RealServer| GraphClient::new(&server.base_url).with_token(token.clone());
    let admin = |server: &RealServer| dmsync_client::AdminClient::new(&server.base_url, DEV_ADMIN_TOKEN);
    let status = upload_registrations(server.base_url.clone(), tagged_registrations_csv(&hashes)).await.unwrap();
    assert!(status.is_success(), "the upload: {status}");
    graph(&server).sync_windows_autopilot_settings().await.expect("the sync starts");
    wait_for_completed_sync(&graph(&server)).await;

    // The group's rule first selects no device, so that the run measured below is what every
    // round does: a rule change, the evaluation it asks for, and the pass that follows.
    let (profile, group) = assign_profile_to_dynamic_group(&graph(&server), "Nobody").await;
    wait_for_jobs_to_end(database).await;

    let half = (ASSIGNMENT_DEVICES / 2) as i64;
    // Once without a kill: the durations of the evaluation with its pass, and of the pass that
    // assigns.
    let started = Instant::now();
    set_group_rule(&graph(&server), &group, "Sales").await;
    wait_for_devices_with_status(database, "pending", half).await;
    let pending_time = started.elapsed();
    admin(&server).advance_clock(PAST_ASSIGNMENT_DELAY).await.unwrap();
    let assign_time = wait_for_devices_with_status(database, "assignedUnkownSyncState", half).await;
    eprintln!(
        "crash harness: {scenario}: evaluation and pending {pending_time:?}, assigned {assign_time:?}, uninterrupted"
    );
    wait_for_jobs_to_end(database).await;
    stop(server);

    let mut kills = Kills::default();
    for round in 1..=ASSIGNMENT_ROUNDS {
        let (before, tag) = if round % 2 == 0 { ("Ops", "Sales") } else { ("Sales", "Ops") };

        // A kill during the evaluation that moves the group to the other half, or the pass after
        // it that marks the new half pending and the old half not assigned. The jobs every start
        // asks for have ended first, so the kill lands in the rule change's work.
        let server = start();
        wait_for_jobs_to_end(database).await;
        let started = Instant::now();
        set_group_rule(&graph(&server), &group, tag).await;
        let after = pending_time.mul_f64(rng.gen_range(0.0..1.0));
        tokio::time::sleep(after.saturating_sub(started.elapsed())).await;
        server.kill9();
        // Later than drawn when the rule change itself took longer.
        let after = started.elapsed();
        let db = open_database_after_kill(database).await;
        assert_assignment_states_consistent(&db).await;
        let moved = assert_group_whole(&db, &group, before, tag).await;
        let pending = devices_with_status(&db, "pending").await;
        let what = if moved {
            "in the rule change's evaluation and pass (the group evaluated)"
        } else {
            "in the rule change's evaluation and pass (the group not yet evaluated)"
        };
        kills.record(scenario, what, after, pending != half);
        db.close().await;

        // The restarted server evaluates and passes again; a kill during the pass that assigns.
        let server = start();
        wait_for_devices_with_status(database, "pending", half).await;
        admin(&server).advance_clock(PAST_ASSIGNMENT_DELAY).await.unwrap();
        let after = assign_time.mul_f64(rng.gen_range(0.0..1.0));
        tokio::time::sleep(after).await;
        server.kill9();
        let db = open_database_after_kill(database).await;
        assert_assignment_states_consistent(&db).await;
        assert!(assert_group_whole(&db, &group, before, tag).await, "the group was evaluated before the pass");
        let assigned = devices_with_status(&db, "assignedUnkownSyncState").await;
        kills.record(scenario, "during the pass that assigns", after, assigned != half);
        db.close().await;

        // The group holds exactly the devices tagged `tag`, each assigned the profile, once;
        // every other device is not assigned.
        let server = start();
        wait_for_devices_with_status(database, "assignedUnkownSyncState", half).await;
        wait_for_jobs_to_end(database).await;
        stop(server);
        let db = open_database(database).await;
        assert_assignment_states_consistent(&db).await;
        assert!(assert_group_whole(&db, &group, before, tag).await, "round {round}: the group holds the {tag} devices");
        assert_eq!(devices_with_status(&db, "notAssigned").await, half, "the other half is not assigned");
        let in_group = count_with(
            &db,
            "SELECT count(*) FROM autopilot_device_rows
              WHERE CAST(profile_assignment_status AS TEXT) = 'assignedUnkownSyncState'
                AND CAST(group_tag AS TEXT) = $1",
            tag,
        )
        .await;
        assert_eq!(in_group, half, "round {round}: every device tagged {tag} is assigned");
        let to_profile = count_with(
            &db,
            "SELECT count(*) FROM autopilot_device_rows WHERE CAST(assigned_profile_id AS TEXT) = $1",
            &profile,
        )
        .await;
        assert_eq!(to_profile, half, "round {round}: assigned to the profile");
        db.close().await;
    }
    kills.finish(scenario);
    assert_every_job_succeeded(database).await;
}
