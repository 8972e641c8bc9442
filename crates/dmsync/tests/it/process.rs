//! The real `dmsync` binary as a child process: started on port 0 against a database URL,
//! killed with SIGKILL or stopped with SIGTERM, and started again on the same database. Used by
//! the lifecycle tests and the crash-safety harness.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use dmsync_client::GraphClient;
use dmsync_server::bootstrap::{DEV_CLIENT_ID, DEV_TENANT_ID, DEV_USER_PASSWORD, DEV_USER_UPN};

/// A running `dmsync serve`. Dropping it kills the process with SIGKILL and reaps it, so a
/// failing test never leaves a server behind.
pub struct RealServer {
    pub child: Child,
    pub base_url: String,
}

impl Drop for RealServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl RealServer {
    /// Starts the binary on `db` and returns once it prints the address it listens on.
    /// Warnings and errors go to stderr, which the test runner captures and shows on failure.
    pub fn start(db: &str, extra: &[&str]) -> RealServer {
        let mut child = Command::new(env!("CARGO_BIN_EXE_dmsync"))
            .args(["serve", "--listen", "127.0.0.1:0", "--db", db])
            .args(extra)
            .env("DMSYNC_LOG", "warn,sqlx=error")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("dmsync starts");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        stdout.read_line(&mut first).expect("first line");
        // Keep draining stdout so the server never writes into a closed pipe.
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        let base_url = first
            .trim()
            .strip_prefix("dmsync listening on ")
            .unwrap_or_else(|| panic!("expected the listening line, got {first:?}"))
            .to_owned();
        RealServer { child, base_url }
    }

    /// SIGKILL: the process gets no chance to finish a request, release a job or close the
    /// database. Returns once the process is gone, so its lock on the database is released.
    pub fn kill9(self) {
        drop(self);
    }

    /// Sends SIGTERM and waits for the process to exit, for at most `limit`.
    pub fn terminate(mut self, limit: Duration) -> ExitStatus {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(started.elapsed() < limit, "dmsync did not stop within {limit:?} of SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A delegated token for the development user, from the server's token endpoint. Signing keys
/// live in the database, so the token stays good across restarts on the same database.
pub async fn dev_user_token(base: &str) -> String {
    GraphClient::new(base)
        .token_password(base, &DEV_TENANT_ID.to_string(), &DEV_CLIENT_ID.to_string(), DEV_USER_UPN, DEV_USER_PASSWORD)
        .await
        .expect("password grant")
        .access_token
}
