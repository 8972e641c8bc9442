//! The command-line client: the real `dmsync` binary against the real server on port 0, with
//! stdout and stderr as pipes (so no colour and no progress bars, only plain lines). The
//! terminal rendering is checked in `cli_terminal.rs`.

use std::process::Stdio;
use std::time::Duration;

use dmsync_server::bootstrap::{DEV_CLIENT_ID, DEV_CLIENT_SECRET, DEV_USER_PASSWORD, DEV_USER_UPN};
use serde_json::{Value, json};

use crate::helpers::*;

/// The CLI pointed at one test server, with its own token cache directory.
pub struct Cli {
    pub base_url: String,
    pub tenant: String,
    pub cache: tempfile::TempDir,
}

pub struct Outcome {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout))
    }
}

impl std::fmt::Debug for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {}\n--- stdout\n{}--- stderr\n{}", self.code, self.stdout, self.stderr)
    }
}

impl Cli {
    pub fn new(app: &TestApp) -> Cli {
        Cli { base_url: app.base_url.clone(), tenant: app.tenant(), cache: tempfile::tempdir().unwrap() }
    }

    /// The binary with a clean environment: the connection and the delegated development user
    /// through DMSYNC_* variables, a private token cache, and quick polling.
    pub fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_dmsync"));
        command
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("XDG_CACHE_HOME", self.cache.path())
            .env("DMSYNC_GRAPH_URL", &self.base_url)
            .env("DMSYNC_TENANT", &self.tenant)
            .env("DMSYNC_CLIENT_ID", DEV_CLIENT_ID.to_string())
            .env("DMSYNC_USERNAME", DEV_USER_UPN)
            .env("DMSYNC_PASSWORD", DEV_USER_PASSWORD)
            .env("DMSYNC_POLL_INTERVAL", "100ms")
            .env("DMSYNC_WAIT_TIMEOUT", "60s")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command
    }

    pub async fn output(mut command: tokio::process::Command) -> Outcome {
        let output = tokio::time::timeout(Duration::from_secs(90), command.output())
            .await
            .expect("the CLI finished within 90 s")
            .expect("the CLI ran");
        Outcome {
            code: output.status.code().expect("exited, not killed"),
            stdout: String::from_utf8(output.stdout).expect("UTF-8 stdout"),
            stderr: String::from_utf8(output.stderr).expect("UTF-8 stderr"),
        }
    }

    pub async fn run(&self, args: &[&str]) -> Outcome {
        let outcome = Cli::output(self.command(args)).await;
        assert!(
            !outcome.stdout.contains('\x1b') && !outcome.stderr.contains('\x1b'),
            "no escapes off a terminal: {outcome:?}"
        );
        outcome
    }
}

/// An Autopilot CSV as Get-WindowsAutopilotInfo writes it.
pub fn autopilot_csv(rows: &[(&str, &str)]) -> String {
    let mut text = String::from("Device Serial Number,Windows Product ID,Hardware Hash,Group Tag,Assigned User\n");
    for (serial, hash) in rows {
        text.push_str(&format!("{serial},,{hash},,\n"));
    }
    text
}

#[tokio::test]
async fn token_prints_a_token_graph_accepts_and_caches_it_privately() {
    let app = spawn_app().await;
    let cli = Cli::new(&app);
    let first = cli.run(&["token"]).await;
    assert_eq!(first.code, 0, "{first:?}");
    let token = first.stdout.trim().to_owned();
    let settings = app.get_json("/beta/deviceManagement/windowsAutopilotSettings", Some(&token)).await;
    assert_eq!(settings["syncStatus"], "unknown");

    // One file, owner-only, with the token and no password.
    let dir = cli.cache.path().join("dmsync/tokens");
    let files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let text = std::fs::read_to_string(&files[0]).unwrap();
    assert!(text.contains(&token) && !text.contains(DEV_USER_PASSWORD) && !text.contains(DEV_USER_UPN), "{text}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&files[0]).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
    }
    // The cached token is reused, even with a password that would now be refused.
    let mut command = cli.command(&["token", "--output", "json"]);
    command.env("DMSYNC_PASSWORD", "wrong");
    let cached = Cli::output(command).await;
    assert_eq!(cached.code, 0, "{cached:?}");
    assert_eq!(cached.json()["accessToken"], token.as_str());
    assert!(cached.json()["expiresOn"].as_i64().unwrap() > time::OffsetDateTime::now_utc().unix_timestamp());

    // An app token through flags, without the cache.
    let app_token = cli
        .run(&["token", "--no-token-cache", "--client-secret", DEV_CLIENT_SECRET, "--username", "", "--password", ""])
        .await;
    assert_eq!(app_token.code, 2, "both grants at once are a usage error: {app_token:?}");
    let mut command = cli.command(&["token", "--client-secret", DEV_CLIENT_SECRET]);
    command.env("DMSYNC_NO_TOKEN_CACHE", "yes");
    command.env_remove("DMSYNC_USERNAME").env_remove("DMSYNC_PASSWORD");
    let app_token = Cli::output(command).await;
    assert_eq!(app_token.code, 0, "{app_token:?}");
    assert_ne!(app_token.stdout.trim(), token);
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "--no-token-cache writes nothing");
    app.stop().await;
}

#[tokio::test]
async fn bad_credentials_exit_3_and_missing_ones_exit_2() {
    let app = spawn_app().await;
    let cli = Cli::new(&app);
    let mut command = cli.command(&["autopilot", "status"]);
    command.env("DMSYNC_PASSWORD", "wrong");
    let refused = Cli::output(command).await;
    assert_eq!(refused.code, 3, "{refused:?}");
    assert!(refused.stderr.contains("invalid_grant") && refused.stderr.contains("AADSTS50126"), "{refused:?}");

    // Against Microsoft's Graph, no credentials is a usage error, found before any request.
    let mut command = cli.command(&["autopilot", "status", "--graph-url", "https://graph.microsoft.com"]);
    command.env_remove("DMSYNC_USERNAME").env_remove("DMSYNC_PASSWORD");
    let missing = Cli::output(command).await;
    assert_eq!(missing.code, 2, "{missing:?}");
    assert!(missing.stderr.contains("no credentials"), "{missing:?}");

    // Against a local dmsync, no credentials at all signs in as the development user, and says so.
    let mut command = cli.command(&["autopilot", "--no-token-cache", "status"]);
    for variable in ["DMSYNC_USERNAME", "DMSYNC_PASSWORD", "DMSYNC_TENANT", "DMSYNC_CLIENT_ID", "DMSYNC_CLIENT_SECRET"]
    {
        command.env_remove(variable);
    }
    let local = Cli::output(command).await;
    assert_eq!(local.code, 0, "{local:?}");
    assert!(local.stderr.contains("development user admin@contoso.onmicrosoft.com"), "{local:?}");

    let unreachable = cli.run(&["autopilot", "status", "--graph-url", "http://127.0.0.1:1"]).await;
    assert_eq!(unreachable.code, 1, "{unreachable:?}");
    assert!(
        unreachable.stderr.contains("could not reach the server") && unreachable.stderr.contains("refused"),
        "{unreachable:?}"
    );

    let garbage = cli.run(&["autopilot", "--no-token-cache", "status", "--token", "not-a-jwt"]).await;
    assert_eq!(garbage.code, 3, "{garbage:?}");
    assert!(
        garbage.stderr.contains("401 InvalidAuthenticationToken") && garbage.stderr.contains("request-id: "),
        "{garbage:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn snapshots_and_resets_from_the_command_line() {
    let app = synced_app(&["CLI-SNAP-1"]).await;
    let cli = Cli::new(&app);
    let created = cli.run(&["snapshot", "create", "one-device", "-o", "json"]).await;
    assert_eq!(created.code, 0, "{created:?}");
    assert_eq!(created.json()["name"], "one-device");
    let listed = cli.run(&["snapshot", "list", "-o", "json"]).await;
    assert_eq!(listed.json()[0]["name"], "one-device", "{listed:?}");
    let table = cli.run(&["snapshot", "list"]).await;
    assert!(table.stdout.starts_with("NAME") && table.stdout.contains("one-device"), "{table:?}");

    let reset = cli.run(&["reset", "--tenant", &app.tenant()]).await;
    assert_eq!(reset.code, 0, "{reset:?}");
    let devices = cli.run(&["autopilot", "devices", "-o", "json"]).await;
    assert_eq!(devices.json().as_array().unwrap().len(), 0, "{devices:?}");
    let restored = cli.run(&["snapshot", "restore", "one-device"]).await;
    assert_eq!(restored.code, 0, "{restored:?}");
    let devices = cli.run(&["autopilot", "devices", "-o", "json"]).await;
    assert_eq!(devices.json()[0]["serialNumber"], "CLI-SNAP-1", "{devices:?}");

    for command in ["create", "restore", "delete"] {
        let refused = cli.run(&["snapshot", command, "../faults"]).await;
        assert_eq!(refused.code, 2, "{refused:?}");
        assert!(refused.stderr.contains("letters, digits"), "{refused:?}");
    }
    let missing = cli.run(&["snapshot", "delete", "nothing"]).await;
    assert_ne!(missing.code, 0, "{missing:?}");
    assert_eq!(cli.run(&["snapshot", "delete", "one-device"]).await.code, 0);
    assert_eq!(cli.run(&["reset"]).await.code, 0);
    app.stop().await;
}

#[tokio::test]
async fn help_documents_every_command_and_the_exit_codes() {
    let app = spawn_app().await;
    let cli = Cli::new(&app);
    for args in [
        vec!["--help"],
        vec!["token", "--help"],
        vec!["token", "-h"],
        vec!["autopilot", "--help"],
        vec!["autopilot", "status", "--help"],
        vec!["autopilot", "sync", "--help"],
        vec!["autopilot", "import", "--help"],
        vec!["autopilot", "devices", "--help"],
        vec!["exchange", "--help"],
        vec!["exchange", "connectors", "--help"],
        vec!["exchange", "connectors", "list", "--help"],
        vec!["exchange", "connectors", "create", "--help"],
        vec!["exchange", "connectors", "delete", "--help"],
        vec!["exchange", "sync", "--help"],
        vec!["reset", "--help"],
        vec!["snapshot", "--help"],
        vec!["requests", "--help"],
        vec!["requests", "list", "--help"],
        vec!["requests", "tail", "--help"],
    ] {
        let help = cli.run(&args).await;
        assert_eq!(help.code, 0, "{args:?}: {help:?}");
        assert!(help.stdout.contains("Usage: dmsync") && help.stdout.contains("Exit codes:"), "{args:?}: {help:?}");
    }
    let top = cli.run(&["--help"]).await.stdout;
    assert!(top.contains("Exit codes:") && top.contains("7  a sync is not allowed yet (429)"), "{top}");
    let sync = cli.run(&["autopilot", "sync", "--help"]).await.stdout;
    assert!(sync.contains("DMSYNC_GRAPH_URL") && sync.contains("--wait") && sync.contains("Exit codes:"), "{sync}");
    let usage = cli.run(&["exchange", "sync", "some-id"]).await;
    assert_eq!(usage.code, 2, "--full or --delta is required: {usage:?}");
    app.stop().await;
}

#[tokio::test]
async fn status_and_sync_wait_then_429_says_when_the_next_sync_is_allowed() {
    let app = spawn_app().await;
    let cli = Cli::new(&app);
    let status = cli.run(&["autopilot", "status"]).await;
    assert_eq!(status.code, 0, "{status:?}");
    assert!(status.stdout.starts_with("never synced, unknown; a manual sync is allowed now"), "{status:?}");

    let synced = cli.run(&["autopilot", "sync", "--wait"]).await;
    assert_eq!(synced.code, 0, "{synced:?}");
    assert!(synced.stdout.starts_with("Autopilot sync completed at "), "{synced:?}");
    assert!(synced.stderr.contains("inProgress"), "progress as plain lines: {synced:?}");

    let status = cli.run(&["autopilot", "status"]).await;
    assert!(
        status.stdout.starts_with("last sync just now, completed; a manual sync is allowed again in 10 min"),
        "{status:?}"
    );
    let csv = cli.run(&["autopilot", "status", "--output", "csv"]).await;
    assert_eq!(csv.code, 2, "CSV is for lists: {csv:?}");
    let settings = cli.run(&["autopilot", "status", "--output", "json"]).await.json();
    assert_eq!(settings["syncStatus"], "completed");
    let trigger = dmsync_graph::GraphDateTime::parse(settings["lastManualSyncTriggerDateTime"].as_str().unwrap())
        .unwrap()
        .0
        .unwrap();
    let next = dmsync_graph::GraphDateTime::parse(settings["nextManualSyncAllowedDateTime"].as_str().unwrap())
        .unwrap()
        .0
        .unwrap();
    assert_eq!(next - trigger, time::Duration::minutes(10));

    // Intune's 429 has no Retry-After: the time comes from the settings.
    let throttled = cli.run(&["autopilot", "sync"]).await;
    assert_eq!(throttled.code, 7, "{throttled:?}");
    let expected_at = {
        let t = next.to_offset(time::UtcOffset::UTC);
        format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        )
    };
    assert!(
        throttled
            .stderr
            .contains("429 TooManyRequests: Windows Autopilot devices were synced less than 10 minutes ago"),
        "{throttled:?}"
    );
    assert!(
        throttled.stderr.contains(&format!("the next manual sync is allowed at {expected_at} (in 10 min)")),
        "{throttled:?}"
    );
    assert!(throttled.stderr.contains("request-id: "), "{throttled:?}");

    // After the cooldown (moved, not waited for), a sync without --wait just starts.
    app.admin.advance_clock(601.0).await.unwrap();
    let started = cli.run(&["autopilot", "sync", "--output", "json"]).await;
    assert_eq!(started.code, 0, "{started:?}");
    assert_eq!(started.json(), json!({"result": "started"}));
    app.stop().await;
}

#[tokio::test]
async fn relative_times_are_measured_on_the_servers_clock_after_an_advance() {
    let app = spawn_app().await;
    let cli = Cli::new(&app);
    assert_eq!(cli.run(&["autopilot", "sync", "--wait"]).await.code, 0);
    // A minute and a half on the server's clock, none on this machine's: the server allows the
    // next sync in eight and a half minutes, and the CLI must say so rather than measure against
    // its own clock. (Away from whole minutes, because `Date` has whole seconds.)
    app.admin.advance_clock(90.0).await.unwrap();
    let status = cli.run(&["autopilot", "status"]).await;
    assert_eq!(status.code, 0, "{status:?}");
    assert!(
        status.stdout.starts_with("last sync 2 min ago, completed; a manual sync is allowed again in 9 min"),
        "{status:?}"
    );
    let throttled = cli.run(&["autopilot", "sync"]).await;
    assert_eq!(throttled.code, 7, "{throttled:?}");
    assert!(throttled.stderr.contains("(in 9 min)"), "{throttled:?}");

    // The Date header is the server's Clock, which is what the CLI reads.
    let response = app.raw(reqwest::Method::GET, "/healthz", None).send().await.unwrap();
    let date = response.headers()["date"].to_str().unwrap().to_owned();
    let date = time::OffsetDateTime::parse(&date, &time::format_description::well_known::Rfc2822).unwrap();
    let ahead = date - time::OffsetDateTime::now_utc();
    assert!(ahead > time::Duration::seconds(88) && ahead < time::Duration::seconds(92), "Date {date} is {ahead} ahead");
    app.stop().await;
}

#[tokio::test]
async fn a_429_with_retry_after_is_reported_from_the_header() {
    let app = spawn_app_with(|c| c.sync_retry_after = true).await;
    let cli = Cli::new(&app);
    assert_eq!(cli.run(&["autopilot", "sync", "--wait"]).await.code, 0);
    // Four minutes on: the header says 360 s remain, so "in 6 min", whatever the local clock.
    app.admin.advance_clock(240.0).await.unwrap();
    let throttled = cli.run(&["autopilot", "sync"]).await;
    assert_eq!(throttled.code, 7, "{throttled:?}");
    assert!(throttled.stderr.contains("(in 6 min)"), "{throttled:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_409_exits_6_and_with_wait_follows_the_running_sync() {
    let app = spawn_app_with(|c| c.sync_duration = time::Duration::seconds(3600)).await;
    let cli = Cli::new(&app);
    app.user_client().await.sync_windows_autopilot_settings().await.unwrap();

    let conflict = cli.run(&["autopilot", "sync"]).await;
    assert_eq!(conflict.code, 6, "{conflict:?}");
    assert!(
        conflict.stderr.contains("409 Conflict: A sync of Windows Autopilot devices is already in progress"),
        "{conflict:?}"
    );
    assert!(conflict.stderr.contains("request-id: ") && conflict.stderr.contains("--wait"), "{conflict:?}");
    let status = cli.run(&["autopilot", "status"]).await;
    assert!(
        status.stdout.contains("a sync is in progress; a manual sync is refused (409) until it ends"),
        "{status:?}"
    );

    let timed_out = cli.run(&["autopilot", "sync", "--wait", "--timeout", "300ms"]).await;
    assert_eq!(timed_out.code, 9, "{timed_out:?}");

    let waiting = cli.command(&["autopilot", "sync", "--wait"]).spawn().unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The hour-long sync ends when the server's clock passes it.
    app.admin.advance_clock(3601.0).await.unwrap();
    let output = tokio::time::timeout(Duration::from_secs(60), waiting.wait_with_output()).await.unwrap().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert_eq!(output.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stderr.contains("already running; waiting for it"), "{stderr}");
    assert!(stdout.starts_with("Autopilot sync completed"), "{stdout}");
    app.stop().await;
}

#[tokio::test]
async fn a_forbidden_sync_exits_4_with_graphs_code_and_request_id() {
    let app = spawn_app().await;
    let cli = Cli::new(&app);
    let mut command = cli.command(&["autopilot", "sync", "--client-secret", DEV_CLIENT_SECRET]);
    command.env_remove("DMSYNC_USERNAME").env_remove("DMSYNC_PASSWORD");
    let forbidden = Cli::output(command).await;
    assert_eq!(forbidden.code, 4, "app tokens may not sync under the original profile: {forbidden:?}");
    assert!(forbidden.stderr.contains("Graph answered 403 Forbidden: Application is not authorized"), "{forbidden:?}");
    assert!(forbidden.stderr.contains("request-id: "), "{forbidden:?}");
    app.stop().await;
}

#[tokio::test]
async fn import_wait_shows_states_and_ends_with_complete_and_named_errors() {
    let app = spawn_app_with(|c| c.import_delay = time::Duration::milliseconds(300)).await;
    let cli = Cli::new(&app);
    // One device is registered already: its import fails with 806.
    app.admin.add_registrations(&app.tenant(), &[registration("CLI-TAKEN")]).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let csv = autopilot_csv(&[
        ("CLI-1", &hardware_hash("CLI-1")),
        ("CLI-2", &hardware_hash("CLI-2")),
        ("CLI-TAKEN", &hardware_hash("CLI-TAKEN")),
    ]);
    // UTF-16LE with a byte-order mark, as Windows PowerShell's Out-File writes it.
    let mut utf16 = vec![0xFF, 0xFE];
    utf16.extend(csv.encode_utf16().flat_map(u16::to_le_bytes));
    let path = dir.path().join("devices.csv");
    std::fs::write(&path, utf16).unwrap();

    let import = cli.run(&["autopilot", "import", path.to_str().unwrap(), "--group-tag", "Kiosk", "--wait"]).await;
    assert_eq!(import.code, 8, "a device in error: {import:?}");
    let lines: Vec<&str> = import.stdout.lines().collect();
    assert_eq!(
        lines[0..3],
        ["STATE     DEVICES  ERROR", "complete  2", "error     1        ZtdDeviceAlreadyAssigned (806)"],
        "{import:?}"
    );
    assert!(import.stdout.contains("CLI-TAKEN  ZtdDeviceAlreadyAssigned"), "{import:?}");
    assert!(import.stderr.contains("unknown 3"), "the states as plain lines: {import:?}");
    assert!(import.stderr.contains("1 of 3 devices were not imported"), "{import:?}");

    let devices = cli.run(&["autopilot", "devices", "--serial", "CLI-", "--output", "json"]).await.json();
    let mut imported: Vec<(&str, &str)> = devices
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["serialNumber"].as_str().unwrap(), d["groupTag"].as_str().unwrap()))
        .collect();
    imported.sort();
    assert_eq!(
        imported,
        [("CLI-1", "Kiosk"), ("CLI-2", "Kiosk")],
        "the group tag flag wins; the taken device was not imported"
    );

    // Without --wait the devices are only submitted.
    let path = dir.path().join("more.csv");
    std::fs::write(&path, autopilot_csv(&[("CLI-3", &hardware_hash("CLI-3"))])).unwrap();
    let submitted = cli.run(&["autopilot", "import", path.to_str().unwrap(), "--output", "json"]).await;
    assert_eq!(submitted.code, 0, "{submitted:?}");
    let summary = submitted.json();
    assert_eq!(
        (summary["unfinished"].as_u64(), summary["devices"][0]["serialNumber"].as_str()),
        (Some(1), Some("CLI-3"))
    );

    let broken = dir.path().join("broken.csv");
    std::fs::write(&broken, "Serial,Hash\nA,B\n").unwrap();
    let refused = cli.run(&["autopilot", "import", broken.to_str().unwrap()]).await;
    assert_eq!(refused.code, 2, "{refused:?}");
    assert!(refused.stderr.contains("'Device Serial Number' and 'Hardware Hash'"), "{refused:?}");
    app.stop().await;
}

#[tokio::test]
async fn import_backs_off_on_429_and_honours_retry_after() {
    // dmsync does not throttle imports, as Graph can: a throttling proxy in front of the real
    // server answers the first two imports 429 (one with Retry-After, one without) and passes
    // everything else through.
    let app = spawn_app_with(|c| c.import_delay = time::Duration::ZERO).await;
    let proxy = throttling_proxy(&app.base_url, 2).await;
    let mut cli = Cli::new(&app);
    cli.base_url = proxy.base_url.clone();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("devices.csv");
    std::fs::write(&path, autopilot_csv(&[("THR-1", &hardware_hash("THR-1"))])).unwrap();
    let started = std::time::Instant::now();
    let import = cli.run(&["autopilot", "import", path.to_str().unwrap(), "--wait"]).await;
    assert_eq!(import.code, 0, "{import:?}");
    assert!(import.stderr.contains("throttled (429, request-id "), "{import:?}");
    assert!(import.stdout.contains("complete  1"), "{import:?}");
    assert_eq!(proxy.throttled(2), 2);
    // Retry-After: 1 s, then the second step of the exponential backoff, 2 s.
    assert!(started.elapsed() >= Duration::from_secs(3), "{:?}", started.elapsed());
    app.stop().await;
}

pub struct ThrottlingProxy {
    pub base_url: String,
    count: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl ThrottlingProxy {
    /// How many import requests were answered 429.
    fn throttled(&self, limit: usize) -> usize {
        self.count.load(std::sync::atomic::Ordering::SeqCst).min(limit)
    }
}

/// Answers the first `limit` import requests with Graph's throttling 429 (the first with
/// `Retry-After: 1`, the others without) and forwards every other request to `upstream`.
async fn throttling_proxy(upstream: &str, limit: usize) -> ThrottlingProxy {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    let upstream = upstream.to_owned();
    let http = reqwest::Client::new();
    let handler = move |request: axum::extract::Request| {
        let (seen, upstream, http) = (seen.clone(), upstream.clone(), http.clone());
        async move {
            use axum::response::IntoResponse;
            let (parts, body) = request.into_parts();
            let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
            if parts.uri.path().ends_with("/import") {
                let n = seen.fetch_add(1, Ordering::SeqCst);
                if n < limit {
                    let body = json!({"error": {"code": "TooManyRequests", "message": "Please retry again later.",
                        "innerError": {"date": "2026-11-30T20:00:00", "request-id": format!("throttle-{n}"), "client-request-id": "x"}}});
                    let mut response = (axum::http::StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
                    if n == 0 {
                        response.headers_mut().insert("retry-after", "1".parse().unwrap());
                    }
                    return response;
                }
            }
            let url = format!("{upstream}{}", parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"));
            let mut forwarded = http.request(parts.method, url).body(body);
            for (name, value) in &parts.headers {
                if name != "host" {
                    forwarded = forwarded.header(name, value);
                }
            }
            let answer = forwarded.send().await.unwrap();
            let status = answer.status();
            let headers = answer.headers().clone();
            let bytes = answer.bytes().await.unwrap();
            let mut response = (status, bytes).into_response();
            for (name, value) in &headers {
                if name != "content-length" && name != "transfer-encoding" {
                    response.headers_mut().insert(name, value.clone());
                }
            }
            response
        }
    };
    let router = axum::Router::new().fallback(handler);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    ThrottlingProxy { base_url, count }
}

#[tokio::test]
async fn devices_follow_paging_filter_and_print_table_json_and_csv() {
    let app = spawn_app().await;
    let cli = Cli::new(&app);
    let mut rows: Vec<_> = (0..230).map(|i| registration(&format!("PG-{i:04}"))).collect();
    rows[7].group_tag = "Sales".into();
    app.admin.add_registrations(&app.tenant(), &rows).await.unwrap();
    assert_eq!(cli.run(&["autopilot", "sync", "--wait"]).await.code, 0);

    let all = cli.run(&["autopilot", "devices", "--output", "json"]).await;
    assert_eq!(all.code, 0, "{all:?}");
    assert_eq!(all.json().as_array().unwrap().len(), 230, "three pages of 100 followed");

    let table = cli.run(&["autopilot", "devices", "--serial", "PG-0007"]).await;
    let lines: Vec<&str> = table.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{table:?}");
    assert!(lines[0].starts_with("SERIAL   GROUP TAG  MANUFACTURER  MODEL     ENROLLMENT    USER  ID"), "{table:?}");
    assert!(lines[1].starts_with("PG-0007  Sales      Contoso       Laptop 7  notContacted"), "{table:?}");

    let csv = cli.run(&["autopilot", "devices", "--filter", "groupTag eq 'Sales'", "--output", "csv"]).await;
    let lines: Vec<&str> = csv.stdout.lines().collect();
    assert_eq!(lines[0], "SERIAL,GROUP TAG,MANUFACTURER,MODEL,ENROLLMENT,USER,ID", "{csv:?}");
    assert!(lines[1].starts_with("PG-0007,Sales,Contoso,Laptop 7,notContacted,,"), "{csv:?}");
    assert_eq!(lines.len(), 2, "{csv:?}");

    let both = cli
        .run(&[
            "autopilot",
            "devices",
            "--serial",
            "PG-00",
            "--filter",
            "groupTag eq 'Sales' or groupTag eq 'x'",
            "--output",
            "json",
        ])
        .await;
    assert_eq!(both.json().as_array().unwrap().len(), 1, "{both:?}");

    let bad = cli.run(&["autopilot", "devices", "--filter", "colour eq 'red'"]).await;
    assert_eq!(bad.code, 1, "{bad:?}");
    assert!(bad.stderr.contains("Graph answered 400 BadRequest") && bad.stderr.contains("request-id: "), "{bad:?}");
    app.stop().await;
}

/// An Exchange source that answers only when the test lets it, so a sync stays running.
async fn gated_source() -> (String, tokio::sync::watch::Sender<bool>) {
    let (open, gate) = tokio::sync::watch::channel(false);
    let source = axum::Router::new().route(
        "/devices",
        axum::routing::get(move || {
            let mut gate = gate.clone();
            async move {
                let _ = gate.wait_for(|open| *open).await;
                axum::Json(json!([{"DeviceId": "EAS-1", "DeviceType": "iPhone", "DeviceModel": "iPhone 15",
                    "DeviceOS": "iOS 18.1", "DeviceAccessState": "Allowed", "WhenChanged": "2026-11-22T10:00:00Z"}]))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, source).await });
    (host, open)
}

#[tokio::test]
async fn exchange_connectors_crud_and_syncs_with_409_wait_and_failure() {
    let (host, open) = gated_source().await;
    let allowed = host.clone();
    let app = spawn_app_with(move |c| c.exchange_source_allowed_hosts = vec![allowed]).await;
    let cli = Cli::new(&app);

    let created = cli
        .run(&[
            "exchange",
            "connectors",
            "create",
            "--server-name",
            "ex01.contoso.com",
            "--primary-smtp-address",
            "svc@contoso.com",
            "-o",
            "json",
        ])
        .await;
    assert_eq!(created.code, 0, "{created:?}");
    let connector = created.json();
    assert_eq!(
        (connector["status"].as_str(), connector["exchangeConnectorType"].as_str()),
        (Some("connectionPending"), Some("onPremises"))
    );
    let id = connector["id"].as_str().unwrap().to_owned();
    let list = cli.run(&["exchange", "connectors", "list"]).await;
    assert!(
        list.stdout
            .lines()
            .nth(1)
            .unwrap()
            .starts_with(&format!("{id}  ex01.contoso.com  onPremises  connectionPending  never")),
        "{list:?}"
    );

    let source = json!({"kind": "http", "url": format!("http://{host}/devices")});
    app.admin.set_exchange_connector_source(&app.tenant(), &id, &source).await.unwrap();

    // The first sync waits on the gated source; the second is a 409.
    let started = cli.run(&["exchange", "sync", &id, "--full"]).await;
    assert_eq!(started.code, 0, "{started:?}");
    assert!(started.stdout.starts_with(&format!("Full sync of {id} started.")), "{started:?}");
    let conflict = cli.run(&["exchange", "sync", &id, "--delta"]).await;
    assert_eq!(conflict.code, 6, "{conflict:?}");
    assert!(
        conflict.stderr.contains("Graph answered 409 Conflict") && conflict.stderr.contains("request-id: "),
        "{conflict:?}"
    );

    // With --wait, the 409 follows the running sync to its end.
    let waiting = cli.command(&["exchange", "sync", &id, "--delta", "--wait"]).spawn().unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    open.send(true).unwrap();
    let output = tokio::time::timeout(Duration::from_secs(60), waiting.wait_with_output()).await.unwrap().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert_eq!(output.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stderr.contains("already running; waiting for it") && stderr.contains("sync succeeded: connector connected"),
        "{stderr}"
    );
    assert!(stdout.contains("connected"), "{stdout}");

    // A source that went away: the sync fails and the connector is disconnected, exit 8.
    let gone = json!({"kind": "file", "path": "/nonexistent/dmsync/mobile-devices.csv"});
    app.admin.set_exchange_connector_source(&app.tenant(), &id, &gone).await.unwrap();
    let failed = cli.run(&["exchange", "sync", &id, "--full", "--wait"]).await;
    assert_eq!(failed.code, 8, "{failed:?}");
    assert!(failed.stdout.contains("disconnected"), "{failed:?}");

    let deleted = cli.run(&["exchange", "connectors", "delete", &id]).await;
    assert_eq!((deleted.code, deleted.stdout.trim()), (0, format!("Deleted connector {id}.").as_str()), "{deleted:?}");
    let again = cli.run(&["exchange", "connectors", "delete", &id]).await;
    assert_eq!(again.code, 5, "{again:?}");
    assert!(again.stderr.contains("Graph answered 404"), "{again:?}");
    let empty = cli.run(&["exchange", "connectors", "list", "-o", "json"]).await;
    assert_eq!(empty.json(), json!([]));
    app.stop().await;
}

#[tokio::test]
async fn a_connector_without_a_source_fails_its_sync_and_the_error_says_how_to_set_one() {
    let app = spawn_app().await;
    let cli = Cli::new(&app);
    let created = cli.run(&["exchange", "connectors", "create", "--server-name", "ex01", "-o", "json"]).await;
    let id = created.json()["id"].as_str().unwrap().to_owned();
    let failed = cli.run(&["exchange", "sync", &id, "--full", "--wait"]).await;
    assert_eq!(failed.code, 8, "{failed:?}");
    assert!(failed.stderr.contains("the connector is disconnected"), "{failed:?}");
    assert!(
        failed.stderr.contains("without a source fails every sync")
            && failed.stderr.contains(&format!("PUT /_dmsync/tenants/TENANT/exchangeConnectors/{id}/source")),
        "{failed:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_cached_token_the_server_no_longer_accepts_is_renewed_once() {
    let app = spawn_app().await;
    let cli = Cli::new(&app);
    let first = cli.run(&["token"]).await.stdout;
    // A day on the server's clock expires the cached token there, not here.
    app.admin.advance_clock(86_400.0).await.unwrap();
    let status = cli.run(&["autopilot", "status"]).await;
    assert_eq!(status.code, 0, "{status:?}");
    let second = cli.run(&["token"]).await.stdout;
    assert_ne!(first, second, "the refused token was replaced in the cache");
    app.stop().await;
}
