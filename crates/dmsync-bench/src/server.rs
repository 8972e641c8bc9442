//! The server under test: the release binary as a child process on a fresh database, its
//! output drained by threads into a log file (so it never blocks on a full pipe), and the lines
//! that mark phases inside the server kept with the instant they arrived.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// Server log lines the benchmark relates to its own timings.
const MARKERS: &[&str] = &[
    "registration upload staged",
    "autopilot sync reconciled",
    "autopilot sync completed",
    "autopilot import processed",
    "exchange connector synced",
    "job claimed",
    " WARN ",
    " ERROR ",
];

/// Marker lines of the server's log, with when each arrived.
#[derive(Clone, Default)]
pub struct LogTap {
    lines: Arc<Mutex<Vec<(Instant, String)>>>,
}

impl LogTap {
    fn push(&self, line: &str) {
        if MARKERS.iter().any(|m| line.contains(m)) {
            self.lines.lock().unwrap().push((Instant::now(), line.to_owned()));
        }
    }

    /// A position: later lookups see only lines that arrived after it.
    pub fn mark(&self) -> usize {
        self.lines.lock().unwrap().len()
    }

    pub fn find_after(&self, mark: usize, needle: &str) -> Option<(Instant, String)> {
        self.lines.lock().unwrap().iter().skip(mark).find(|(_, l)| l.contains(needle)).cloned()
    }

    pub fn count_after(&self, mark: usize, needle: &str) -> usize {
        self.lines.lock().unwrap().iter().skip(mark).filter(|(_, l)| l.contains(needle)).count()
    }
}

/// The `key=value` fields of a text log line whose key starts with `prefix`.
pub fn fields(line: &str, prefix: &str) -> String {
    line.split_whitespace().filter(|w| w.starts_with(prefix) && w.contains('=')).collect::<Vec<_>>().join(" ")
}

pub struct Server {
    pub pid: u32,
    pub base_url: String,
    pub log: LogTap,
    child: Option<Child>,
}

fn drain(reader: impl std::io::Read + Send + 'static, file: Arc<Mutex<std::fs::File>>, tap: LogTap) {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(reader);
        let mut line = String::new();
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    tap.push(&line);
                    let _ = file.lock().unwrap().write_all(line.as_bytes());
                }
            }
        }
    });
}

/// The `--db` URL of a SQLite file.
pub fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

impl Server {
    /// Starts `dmsync serve` on port 0 and waits for its banner.
    pub async fn start(binary: &Path, db: &str, log_path: &Path) -> Result<Server> {
        Server::start_with(binary, db, log_path, &[]).await
    }

    /// [`Server::start`] with more `serve` flags; one that the benchmarks set by default (fast
    /// syncs and imports, a 1 s cooldown) replaces that default.
    pub async fn start_with(binary: &Path, db: &str, log_path: &Path, extra_args: &[String]) -> Result<Server> {
        Server::start_wrapped(&[], binary, db, log_path, extra_args).await
    }

    /// [`Server::start_with`] under a wrapper program (`valgrind --tool=callgrind …`): the
    /// wrapper's words come first, then the binary and its arguments. `pid` is the wrapper's,
    /// which for valgrind is the process that runs the server.
    pub async fn start_wrapped(
        wrapper: &[String],
        binary: &Path,
        db: &str,
        log_path: &Path,
        extra_args: &[String],
    ) -> Result<Server> {
        let defaults = [("--sync-duration", "0s"), ("--import-delay", "0s"), ("--sync-cooldown", "1s")];
        let log_file = std::fs::File::create(log_path).with_context(|| format!("creating {}", log_path.display()))?;
        let log_file = Arc::new(Mutex::new(log_file));
        let mut command = match wrapper.split_first() {
            Some((program, words)) => {
                let mut c = Command::new(program);
                c.args(words).arg(binary);
                c
            }
            None => Command::new(binary),
        };
        let mut child = command
            .args(["serve", "--listen", "127.0.0.1:0", "--db", db])
            .args(defaults.iter().filter(|(flag, _)| !extra_args.iter().any(|a| a == flag)).flat_map(|(f, v)| [*f, *v]))
            .args(extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let pid = child.id();
        let tap = LogTap::default();
        drain(child.stderr.take().expect("piped stderr"), log_file.clone(), tap.clone());

        // The first stdout line is the banner; the rest of stdout is drained like stderr.
        let stdout = child.stdout.take().expect("piped stdout");
        let (banner_tx, banner_rx) = tokio::sync::oneshot::channel::<Option<String>>();
        let (file, stdout_tap) = (log_file.clone(), tap.clone());
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut first = String::new();
            let got = reader.read_line(&mut first).ok().filter(|n| *n > 0).map(|_| first.clone());
            let _ = file.lock().unwrap().write_all(first.as_bytes());
            let _ = banner_tx.send(got);
            drain(reader, file, stdout_tap);
        });
        let mut server = Server { pid, base_url: String::new(), log: tap, child: Some(child) };
        let banner = match tokio::time::timeout(Duration::from_secs(120), banner_rx).await {
            Ok(Ok(Some(line))) => line,
            Ok(_) => bail!("the server exited before printing its banner (see {})", log_path.display()),
            Err(_) => bail!("no banner from the server within 120 s (see {})", log_path.display()),
        };
        let url = banner
            .trim()
            .strip_prefix("dmsync listening on ")
            .with_context(|| format!("unexpected banner {banner:?}"))?;
        server.base_url = url.trim_end_matches('/').to_owned();
        Ok(server)
    }

    /// SIGTERM, then up to 30 s for a graceful exit; SIGKILL after that.
    pub async fn stop(mut self) -> Result<String> {
        let Some(mut child) = self.child.take() else { return Ok("already stopped".into()) };
        // SAFETY: kill(2) on the pid of our own child, which has not been reaped yet.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status.to_string());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("no exit within 30 s of SIGTERM; killed");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Only when stop() was not reached (a panic): never leave the server running.
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
