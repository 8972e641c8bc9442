//! `dmsync requests …`: the server's request journal, through its admin API. `list` prints the
//! journalled requests that match the filters; `tail` follows the journal live, as `tail -f`
//! follows a file. Both speak to `/_dmsync/requests` with the admin token, never to a database.

use std::time::Duration;

use dmsync_client::{AdminClient, JournalEntry, RequestFilter};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{CliResult, Failure, parse_duration};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The dmsync server.
    #[arg(long, env = "DMSYNC_GRAPH_URL", default_value = "http://127.0.0.1:8080", global = true)]
    pub graph_url: String,
    /// The admin token; the development one works on loopback when the server has none set.
    #[arg(long, env = "DMSYNC_ADMIN_TOKEN", hide_env_values = true, default_value = "dmsync-dev-admin", global = true)]
    pub admin_token: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Print the journalled requests that match, oldest first: time, status, method, path and
    /// duration, one line each.
    #[command(after_help = super::EXIT_CODES_HELP)]
    List {
        #[command(flatten)]
        filters: Filters,
        /// Only the requests at or after this time (RFC 3339, on the server's clock).
        #[arg(long)]
        since: Option<String>,
    },
    /// Follow the journal: print the last few requests that match, then each new one as it is
    /// recorded, until interrupted.
    #[command(after_help = super::EXIT_CODES_HELP)]
    Tail {
        #[command(flatten)]
        filters: Filters,
        /// How many of the requests already journalled to print first.
        #[arg(long, short = 'n', default_value_t = 10)]
        lines: usize,
        /// How often to ask the server for new requests.
        #[arg(long, default_value = "1s", value_parser = parse_duration)]
        interval: Duration,
    },
}

#[derive(Debug, Clone, clap::Args)]
pub struct Filters {
    /// Only this method (GET, POST, PATCH, DELETE…).
    #[arg(long)]
    method: Option<String>,
    /// Only this path, where * stands for any characters (no regular expressions).
    #[arg(long)]
    path: Option<String>,
    /// Only this tenant's requests.
    #[arg(long)]
    tenant_id: Option<String>,
    /// Only this status (409) or class of statuses (4xx).
    #[arg(long)]
    status: Option<String>,
    /// Print each entry as one line of JSON, bodies and all.
    #[arg(long)]
    json: bool,
}

impl Filters {
    fn to_filter(&self, since: Option<String>) -> RequestFilter {
        RequestFilter {
            method: self.method.clone(),
            path: self.path.clone(),
            tenant_id: self.tenant_id.clone(),
            status: self.status.clone(),
            since,
        }
    }
}

/// How far before the newest time seen `tail` asks from: an entry is recorded when its response
/// ends but dated when its request arrived, so a slow request can land after quicker, later ones.
const TAIL_SLACK: time::Duration = time::Duration::minutes(10);

pub async fn run(args: Args) -> CliResult {
    let admin = AdminClient::new(args.graph_url, args.admin_token);
    match args.command {
        Command::List { filters, since } => {
            for entry in admin.list_requests(&filters.to_filter(since)).await? {
                print_entry(&entry, filters.json)?;
            }
            Ok(())
        }
        Command::Tail { filters, lines, interval } => tail(&admin, &filters, lines, interval).await,
    }
}

async fn tail(admin: &AdminClient, filters: &Filters, lines: usize, interval: Duration) -> CliResult {
    let first = admin.list_requests(&filters.to_filter(None)).await?;
    for entry in &first[first.len().saturating_sub(lines)..] {
        print_entry(entry, filters.json)?;
    }
    let mut last_sequence = first.last().map(|e| e.sequence);
    let mut newest = first.iter().filter_map(|e| OffsetDateTime::parse(&e.time, &Rfc3339).ok()).max();
    loop {
        tokio::time::sleep(interval).await;
        let since = newest.and_then(|t| (t - TAIL_SLACK).format(&Rfc3339).ok());
        let entries = admin.list_requests(&filters.to_filter(since)).await?;
        let seen = last_sequence;
        for entry in entries.iter().filter(|e| seen.is_none_or(|last| e.sequence > last)) {
            print_entry(entry, filters.json)?;
            last_sequence = Some(entry.sequence);
            if let Ok(time) = OffsetDateTime::parse(&entry.time, &Rfc3339) {
                newest = newest.max(Some(time));
            }
        }
    }
}

fn print_entry(entry: &JournalEntry, json: bool) -> CliResult {
    use std::io::Write;
    let line = if json {
        serde_json::to_string(entry).map_err(|e| Failure::new(super::Exit::Error, e.to_string()))?
    } else {
        let nearest = entry.nearest_route.as_deref().map(|r| format!("  (nearest route: {r})")).unwrap_or_default();
        format!(
            "{}  {}  {:<6} {}  {:.1}ms{nearest}",
            entry.time, entry.status, entry.method, entry.path, entry.duration_ms
        )
    };
    // A reader that went away (`| head`) ends the command quietly.
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").and_then(|()| out.flush()).map_err(|_| Failure::new(super::Exit::Error, "stdout closed"))
}
