//! The server under callgrind: instructions per request, which other processes on the machine
//! do not move. The server starts with instrumentation off (`--instr-atstart=no`); a
//! measurement turns it on, zeroes the counters after a warm-up, dumps after the measured
//! requests, and reads the dump's total.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};

use crate::wrk::which;

/// Whether valgrind and callgrind_control are installed.
pub fn available() -> bool {
    which("valgrind") && which("callgrind_control")
}

/// The words that run a server under callgrind, for `Server::start_wrapped`, with its dumps
/// and valgrind's log in `dir`.
pub fn wrapper(dir: &Path) -> Result<Vec<String>> {
    std::fs::create_dir_all(dir)?;
    Ok(vec![
        "valgrind".into(),
        "--tool=callgrind".into(),
        "--instr-atstart=no".into(),
        format!("--callgrind-out-file={}", dir.join("callgrind.out").display()),
        format!("--log-file={}", dir.join("valgrind.log").display()),
    ])
}

/// `callgrind_control WORDS PID`.
pub fn control(pid: u32, words: &[&str]) -> Result<()> {
    let status = Command::new("callgrind_control")
        .args(words)
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    ensure!(status.success(), "callgrind_control {words:?} failed");
    Ok(())
}

/// The `n`th dump callgrind wrote in `dir` (`callgrind.out.N`).
pub fn nth_dump(dir: &Path, n: usize) -> Result<PathBuf> {
    let path = dir.join(format!("callgrind.out.{n}"));
    let started = Instant::now();
    while !path.is_file() {
        ensure!(started.elapsed() < Duration::from_secs(30), "callgrind wrote no {}", path.display());
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(path)
}

/// The total instruction count of a callgrind dump (its `summary:` or `totals:` line).
pub fn instructions(dump: &Path) -> Result<u64> {
    let started = Instant::now();
    loop {
        let text = std::fs::read_to_string(dump)?;
        if let Some(n) = text
            .lines()
            .find_map(|l| l.strip_prefix("summary:").or_else(|| l.strip_prefix("totals:")))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
        {
            return Ok(n);
        }
        ensure!(started.elapsed() < Duration::from_secs(30), "no summary in {}", dump.display());
        std::thread::sleep(Duration::from_millis(100));
    }
}
