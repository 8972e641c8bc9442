//! wrk, the load generator of the HTTP benchmarks, and what it measured.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, ensure};

/// What wrk measured.
pub struct Load {
    pub requests_per_second: f64,
    pub p50: Duration,
    pub p99: Duration,
    pub non_2xx: u64,
}

fn parse_duration(text: &str) -> Option<Duration> {
    let (number, unit) = text.split_at(text.find(|c: char| c.is_ascii_alphabetic())?);
    let value: f64 = number.parse().ok()?;
    let seconds = match unit {
        "us" => value / 1e6,
        "ms" => value / 1e3,
        "s" => value,
        "m" => value * 60.0,
        _ => return None,
    };
    Some(Duration::from_secs_f64(seconds))
}

/// Runs wrk with `--latency`, one thread per core (at most the connection count).
pub fn wrk(url: &str, connections: u32, seconds: u64, token: Option<&str>, script: Option<&Path>) -> Result<Load> {
    let threads = connections.min(2);
    let mut command = Command::new("wrk");
    command.args([
        "--latency",
        "-t",
        &threads.to_string(),
        "-c",
        &connections.to_string(),
        "-d",
        &format!("{seconds}s"),
    ]);
    if let Some(t) = token {
        command.args(["-H", &format!("Authorization: Bearer {t}")]);
    }
    if let Some(s) = script {
        command.arg("-s").arg(s);
    }
    let output =
        command.arg(url).stderr(Stdio::inherit()).output().context("running wrk (install it: apt-get install wrk)")?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    ensure!(output.status.success(), "wrk failed: {text}");
    let field = |prefix: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix).map(|r| r.trim().to_owned()))
            .with_context(|| format!("no '{prefix}' in wrk's output:\n{text}"))
    };
    let requests_per_second: f64 = field("Requests/sec:")?.parse()?;
    let p50 = parse_duration(&field("50%")?).context("wrk's p50")?;
    let p99 = parse_duration(&field("99%")?).context("wrk's p99")?;
    let non_2xx = field("Non-2xx or 3xx responses:").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
    Ok(Load { requests_per_second, p50, p99, non_2xx })
}

/// Whether `program` is on PATH.
pub fn which(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
