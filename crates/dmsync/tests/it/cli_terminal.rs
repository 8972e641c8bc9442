//! The CLI in a real terminal: tmux runs the real binary in a pane of a private tmux server, and
//! `capture-pane` reads the screen, so what is checked is what a person sees: the spinner and the
//! progress bar while the work runs, colour, and the final state left on screen. tmux is
//! required (scripts/test.sh installs it when missing); without it these tests fail, never skip.

use std::path::Path;
use std::time::Duration;

use dmsync_server::bootstrap::{DEV_CLIENT_ID, DEV_USER_PASSWORD, DEV_USER_UPN};

use crate::cli::autopilot_csv;
use crate::helpers::*;

/// A private tmux server (its own socket), killed when dropped.
struct Tmux {
    socket: String,
    dir: tempfile::TempDir,
}

impl Tmux {
    fn start() -> Tmux {
        let version = std::process::Command::new("tmux").arg("-V").output();
        assert!(
            matches!(&version, Ok(o) if o.status.success()),
            "tmux is required for the terminal tests (scripts/test.sh installs it): {version:?}"
        );
        Tmux { socket: format!("dmsync-test-{}", uuid::Uuid::new_v4()), dir: tempfile::tempdir().unwrap() }
    }

    fn tmux(&self, args: &[&str]) -> String {
        let output =
            std::process::Command::new("tmux").arg("-L").arg(&self.socket).args(args).output().expect("tmux runs");
        assert!(output.status.success(), "tmux {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Runs the CLI in a new 120×30 window with a clean environment, then prints its exit code
    /// and keeps the pane open for capturing.
    fn run(&self, name: &str, base_url: &str, cache: &Path, args: &[&str]) {
        let quoted: Vec<String> = args.iter().map(|a| format!("'{}'", a.replace('\'', r"'\''"))).collect();
        let script = format!(
            "#!/bin/sh\n\
             env -i PATH=\"$PATH\" TERM=\"$TERM\" XDG_CACHE_HOME='{cache}' DMSYNC_GRAPH_URL='{base_url}' \
             DMSYNC_TENANT='{tenant}' DMSYNC_CLIENT_ID='{client}' DMSYNC_USERNAME='{user}' DMSYNC_PASSWORD='{password}' \
             DMSYNC_POLL_INTERVAL=200ms '{bin}' {args}\n\
             echo \"exit=$?\"\n\
             sleep 600\n",
            cache = cache.display(),
            tenant = dmsync_server::bootstrap::DEV_TENANT_ID,
            client = DEV_CLIENT_ID,
            user = DEV_USER_UPN,
            password = DEV_USER_PASSWORD,
            bin = env!("CARGO_BIN_EXE_dmsync"),
            args = quoted.join(" "),
        );
        let path = self.dir.path().join(format!("{name}.sh"));
        std::fs::write(&path, script).unwrap();
        let command = format!("sh {}", path.display());
        self.tmux(&["new-window", "-t", "cli", "-n", name, &command]);
    }

    fn new_session(&self) {
        self.tmux(&["new-session", "-d", "-s", "cli", "-x", "120", "-y", "30"]);
    }

    /// The window's screen; `escapes` keeps colour sequences.
    fn screen(&self, name: &str, escapes: bool) -> String {
        let target = format!("cli:{name}");
        let mut args = vec!["capture-pane", "-p", "-t", &target];
        if escapes {
            args.push("-e");
        }
        self.tmux(&args)
    }

    /// Waits until the screen shows `text`, and returns the screen.
    async fn wait_for(&self, name: &str, text: &str) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let screen = self.screen(name, false);
            if screen.contains(text) {
                return screen;
            }
            assert!(tokio::time::Instant::now() < deadline, "the screen never showed {text:?}:\n{screen}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = std::process::Command::new("tmux").arg("-L").arg(&self.socket).arg("kill-server").output();
    }
}

#[tokio::test]
async fn sync_wait_shows_a_spinner_then_the_outcome_and_status_is_coloured() {
    let app = spawn_app_with(|c| c.sync_duration = time::Duration::seconds(3600)).await;
    let cache = tempfile::tempdir().unwrap();
    let tmux = Tmux::start();
    tmux.new_session();
    tmux.run("sync", &app.base_url, cache.path(), &["autopilot", "sync", "--wait"]);
    // A spinner with the elapsed time, which the plain-line mode does not have.
    let running = tmux.wait_for("sync", "Autopilot sync started: inProgress (").await;
    assert!(!running.contains("exit="), "{running}");
    app.admin.advance_clock(3601.0).await.unwrap();
    let done = tmux.wait_for("sync", "exit=0").await;
    assert!(done.contains("Autopilot sync completed ("), "the spinner's last state stays: {done}");
    assert!(done.contains("Autopilot sync completed at "), "{done}");
    assert!(!done.contains("inProgress"), "the spinner line was replaced, not repeated: {done}");

    tmux.run("status", &app.base_url, cache.path(), &["autopilot", "status"]);
    tmux.wait_for("status", "exit=0").await;
    let coloured = tmux.screen("status", true);
    assert!(coloured.contains("\u{1b}[32mcompleted"), "completed in green on a terminal: {coloured:?}");
    app.stop().await;
}

#[tokio::test]
async fn import_wait_draws_a_progress_bar_of_device_states() {
    let app = spawn_app_with(|c| c.import_delay = time::Duration::seconds(3600)).await;
    let cache = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("devices.csv");
    let rows: Vec<(String, String)> =
        (1..=3).map(|i| (format!("TTY-{i}"), hardware_hash(&format!("TTY-{i}")))).collect();
    let rows: Vec<(&str, &str)> = rows.iter().map(|(s, h)| (s.as_str(), h.as_str())).collect();
    std::fs::write(&path, autopilot_csv(&rows)).unwrap();

    let tmux = Tmux::start();
    tmux.new_session();
    tmux.run("import", &app.base_url, cache.path(), &["autopilot", "import", path.to_str().unwrap(), "--wait"]);
    let waiting = tmux.wait_for("import", "0/3 unknown 3").await;
    assert!(waiting.contains("] 0/3 unknown 3 ("), "a bar, its position and the states: {waiting}");
    // The hour-long import delay ends when the server's clock passes it.
    app.admin.advance_clock(3601.0).await.unwrap();
    let done = tmux.wait_for("import", "exit=0").await;
    assert!(done.contains("] 3/3 complete 3 ("), "the bar's final state stays: {done}");
    assert!(done.contains("complete  3"), "the summary table: {done}");
    assert!(done.contains("[================================]"), "a full bar: {done}");
    app.stop().await;
}
