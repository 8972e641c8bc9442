//! What /proc tells about the machine and the server process: CPU time, disk writes and
//! resident memory, measured per phase, with a sampler thread for the peak RSS of each phase.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// A `kB` field of `/proc/PID/status` (`VmRSS`, `VmHWM`).
pub fn status_kb(pid: u32, key: &str) -> Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    text.lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(':')))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no {key} in /proc/{pid}/status"))
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// User and system CPU seconds of a process (`self` or a pid).
pub fn cpu_seconds(pid: &str) -> (f64, f64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name may hold spaces; the fields after its closing parenthesis do not.
    let rest = text.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = clock_ticks();
    let get = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) / tick;
    // After the name: state is field 3 of stat(5), so utime (14) and stime (15) are at 11 and 12.
    (get(11), get(12))
}

/// Bytes the process caused to be written to storage (`write_bytes` of /proc/PID/io).
pub fn written_bytes(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/io"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("write_bytes:").and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0)
}

/// nproc, CPU model, memory, kernel, load and date.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, v)| v.trim().to_owned()))
        .unwrap_or_else(|| "unknown".into());
    let nproc = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:").map(|v| v.trim().to_owned()))
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let now = time::OffsetDateTime::now_utc();
    let date = now.format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
    format!(
        "machine: nproc {nproc}, {model}, MemTotal {mem}, Linux {}, load average at start {}\ndate: {date}\n",
        kernel.trim(),
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    )
}

pub struct PhaseStats {
    pub name: String,
    pub wall: Duration,
    pub server_user: f64,
    pub server_sys: f64,
    pub bench_cpu: f64,
    pub server_written: u64,
    pub max_rss_kb: u64,
}

struct Open {
    name: String,
    start: Instant,
    server: (f64, f64),
    bench: (f64, f64),
    written: u64,
}

/// Measures phases of the benchmark on the server process.
pub struct PhaseMeter {
    pid: u32,
    pub phases: Vec<PhaseStats>,
    open: Option<Open>,
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl PhaseMeter {
    pub fn new(pid: u32) -> PhaseMeter {
        let peak = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (peak.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                if let Ok(kb) = status_kb(pid, "VmRSS") {
                    p.fetch_max(kb, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        PhaseMeter { pid, phases: Vec::new(), open: None, peak, stop }
    }

    pub fn begin(&mut self, name: &str) {
        self.peak.store(status_kb(self.pid, "VmRSS").unwrap_or(0), Ordering::Relaxed);
        self.open = Some(Open {
            name: name.to_owned(),
            start: Instant::now(),
            server: cpu_seconds(&self.pid.to_string()),
            bench: cpu_seconds("self"),
            written: written_bytes(self.pid),
        });
    }

    pub fn end(&mut self) {
        let Some(open) = self.open.take() else { return };
        let server = cpu_seconds(&self.pid.to_string());
        let bench = cpu_seconds("self");
        let rss = status_kb(self.pid, "VmRSS").unwrap_or(0);
        self.phases.push(PhaseStats {
            name: open.name,
            wall: open.start.elapsed(),
            server_user: server.0 - open.server.0,
            server_sys: server.1 - open.server.1,
            bench_cpu: (bench.0 + bench.1) - (open.bench.0 + open.bench.1),
            server_written: written_bytes(self.pid).saturating_sub(open.written),
            max_rss_kb: self.peak.load(Ordering::Relaxed).max(rss),
        });
    }
}

impl Drop for PhaseMeter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
