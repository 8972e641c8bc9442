//! The summary table every benchmark prints: figures beside their targets, and the per-phase
//! measurements of the server process.

use std::time::Duration;

use anyhow::Result;

use crate::probe::PhaseStats;

/// One row of the summary table.
pub struct Figure {
    pub name: String,
    pub value: String,
    pub target: String,
    pub met: Option<bool>,
}

pub fn figure(
    name: impl Into<String>,
    value: impl Into<String>,
    target: impl Into<String>,
    met: Option<bool>,
) -> Figure {
    Figure { name: name.into(), value: value.into(), target: target.into(), met }
}

pub fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

pub fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// Awaits `future` for at most `limit`, naming `what` if it runs over.
pub async fn bounded<T>(limit: Duration, what: &str, future: impl std::future::Future<Output = T>) -> Result<T> {
    tokio::time::timeout(limit, future).await.map_err(|_| anyhow::anyhow!("timed out after {limit:?}: {what}"))
}

pub fn render(figures: &[Figure], phases: &[PhaseStats], notes: &[String]) -> String {
    let mut out = String::new();
    out.push_str("\n## Figures\n\n| figure | value | target | met? |\n|---|---|---|---|\n");
    for f in figures {
        let met = match f.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "—",
        };
        out.push_str(&format!("| {} | {} | {} | {} |\n", f.name, f.value, f.target, met));
    }
    if !phases.is_empty() {
        out.push_str(
            "\n## Phases (server process)\n\n| phase | wall | server CPU user | server CPU sys | server CPU / wall | bench CPU | server disk written | server peak RSS in phase |\n|---|---|---|---|---|---|---|---|\n",
    );
        for p in phases {
            out.push_str(&format!(
                "| {} | {:.2} s | {:.2} s | {:.2} s | {:.0}% | {:.2} s | {:.1} MB | {:.1} MB |\n",
                p.name,
                p.wall.as_secs_f64(),
                p.server_user,
                p.server_sys,
                100.0 * (p.server_user + p.server_sys) / p.wall.as_secs_f64().max(1e-9),
                p.bench_cpu,
                p.server_written as f64 / 1e6,
                p.max_rss_kb as f64 / 1024.0,
            ));
        }
    }
    if !notes.is_empty() {
        out.push('\n');
        for n in notes {
            out.push_str(&format!("- {n}\n"));
        }
    }
    out
}
