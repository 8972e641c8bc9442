//! The real binary: a kill -9 in the middle of a sync, a graceful SIGTERM, and restarts on the
//! same database file.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use dmsync_client::GraphClient;

use crate::process::{RealServer, dev_user_token as token};

async fn sync_status(client: &GraphClient) -> serde_json::Value {
    serde_json::to_value(client.get_windows_autopilot_settings().await.unwrap()).unwrap()
}

#[tokio::test]
async fn a_sync_killed_mid_flight_completes_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("crash.db").display());
    let server = RealServer::start(&db, &["--sync-duration", "3s"]);
    let token = token(&server.base_url).await;
    let client = GraphClient::new(&server.base_url).with_token(token.clone());
    client.sync_windows_autopilot_settings().await.unwrap();
    assert_eq!(sync_status(&client).await["syncStatus"], "inProgress");
    drop(server); // SIGKILL: no chance to release the job.

    let server = RealServer::start(&db, &["--sync-duration", "3s"]);
    // The signing key lives in the database, so the old token is still good.
    let client = GraphClient::new(&server.base_url).with_token(token);
    let err = client.sync_windows_autopilot_settings().await.unwrap_err();
    assert_eq!(err.status(), Some(409), "still in progress after the restart, not stuck and not lost");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let s = sync_status(&client).await;
        if s["syncStatus"] == "completed" {
            assert_ne!(s["lastSyncDateTime"], "0001-01-01T00:00:00Z");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "sync never completed after restart: {s}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(client.sync_windows_autopilot_settings().await.unwrap_err().status(), Some(429));
}

#[tokio::test]
async fn sigterm_stops_gracefully_and_the_job_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("term.db").display());
    let server = RealServer::start(&db, &["--sync-duration", "30s", "--shutdown-timeout", "5s"]);
    let token = token(&server.base_url).await;
    let client = GraphClient::new(&server.base_url).with_token(token.clone());
    client.sync_windows_autopilot_settings().await.unwrap();
    let status = server.terminate(Duration::from_secs(10));
    assert!(status.success(), "clean exit: {status:?}");

    // The released job is picked up; the clock advance ends its wait.
    let server = RealServer::start(&db, &["--sync-duration", "30s"]);
    let client = GraphClient::new(&server.base_url).with_token(token);
    dmsync_client::AdminClient::new(&server.base_url, "dmsync-dev-admin").advance_clock(31.0).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while sync_status(&client).await["syncStatus"] != "completed" {
        assert!(tokio::time::Instant::now() < deadline, "released sync never completed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn a_second_process_on_the_same_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("one.db").display());
    let _first = RealServer::start(&db, &[]);
    let second = Command::new(env!("CARGO_BIN_EXE_dmsync"))
        .args(["serve", "--listen", "127.0.0.1:0", "--db", &db])
        .output()
        .unwrap();
    assert!(!second.status.success());
    assert!(String::from_utf8_lossy(&second.stderr).contains("another dmsync process"));
}

#[tokio::test]
async fn a_closed_stderr_does_not_stop_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("pipe.db").display());
    let mut child = Command::new(env!("CARGO_BIN_EXE_dmsync"))
        .args(["serve", "--listen", "127.0.0.1:0", "--db", &db, "--sync-duration", "0s"])
        .env("DMSYNC_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    let base = first.trim().strip_prefix("dmsync listening on ").unwrap().to_owned();
    // The log reader goes away, as `dmsync serve 2>&1 | head` does.
    drop(child.stderr.take());
    let server = RealServer { child, base_url: base.clone() };
    let client = GraphClient::new(&base).with_token(token(&base).await);
    client.sync_windows_autopilot_settings().await.expect("sync accepted while logging into a closed pipe");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while sync_status(&client).await["syncStatus"] != "completed" {
        assert!(tokio::time::Instant::now() < deadline, "the sync job died with its log line");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // SIGTERM still stops it within the deadline (terminate asserts that).
    server.terminate(Duration::from_secs(10));
}
