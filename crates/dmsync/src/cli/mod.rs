//! The client subcommands: `dmsync token`, `dmsync autopilot …` and `dmsync exchange …`. They
//! speak Graph over HTTP through `dmsync-client`, to a dmsync server or to real Microsoft Graph,
//! and never touch a database.

pub mod admin;
pub mod autopilot;
pub mod exchange;
mod output;
pub mod requests;
pub mod seed;
mod session;
pub mod throttling;
mod token_cache;

use std::time::Duration;

use dmsync_client::ClientError;

pub use session::{Connection, Session, TokenArgs, print_token};

/// The exit codes, documented in README.md and in `dmsync --help`. Scripts branch on them, so
/// a code never changes meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    // 0 is success, which is not a failure and so not a variant.
    /// Anything not listed below: the network, an unexpected answer, a 400 or a 5xx.
    Error = 1,
    /// Bad flags, missing credentials, or an input file that cannot be read.
    Usage = 2,
    /// The token endpoint refused the credentials, or Graph answered 401.
    Authentication = 3,
    /// Graph answered 403: the token lacks the permission.
    Forbidden = 4,
    /// Graph answered 404.
    NotFound = 5,
    /// A sync is already running (409) and `--wait` was not given.
    Conflict = 6,
    /// A sync is not allowed yet (429); the message says when it will be.
    Throttled = 7,
    /// The operation ran and failed: a sync failed, an import has devices in error, a connector
    /// is disconnected.
    OperationFailed = 8,
    /// `--wait` gave up after `--timeout`.
    TimedOut = 9,
}

/// The table in `dmsync --help`, the same as README.md's.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success
  1  any other error (network, unexpected answer, a 400 or 5xx from Graph)
  2  usage error: bad flags, missing credentials, unreadable input file
  3  authentication failed (token endpoint refused, or Graph answered 401)
  4  forbidden (403): the token lacks the permission
  5  not found (404)
  6  a sync is already running (409) and --wait was not given
  7  a sync is not allowed yet (429); the message says when it will be
  8  the operation ran and failed (sync failed, import errors, connector disconnected)
  9  --wait timed out";

/// Why a command stopped: the exit code and what to tell the person.
#[derive(Debug)]
pub struct Failure {
    pub exit: Exit,
    pub message: String,
}

impl Failure {
    pub fn new(exit: Exit, message: impl Into<String>) -> Failure {
        Failure { exit, message: message.into() }
    }

    pub fn usage(message: impl Into<String>) -> Failure {
        Failure::new(Exit::Usage, message)
    }
}

/// The exit code for a client error.
pub fn exit_for(error: &ClientError) -> Exit {
    match error {
        ClientError::Identity { .. } => Exit::Authentication,
        _ => match error.status() {
            Some(401) => Exit::Authentication,
            Some(403) => Exit::Forbidden,
            Some(404) => Exit::NotFound,
            Some(409) => Exit::Conflict,
            Some(429) => Exit::Throttled,
            _ => Exit::Error,
        },
    }
}

/// Renders a client error for people: Graph's status, code and readable message, and the
/// request-id that Microsoft support (or dmsync's logs) can find it by.
pub fn describe(error: &ClientError) -> String {
    match error {
        ClientError::Graph { status, error: body, .. } => {
            let mut text = format!("Graph answered {status} {}: {}", body.code, error.readable_message());
            if let Some(id) = error.request_id() {
                text.push_str(&format!("\n  request-id: {id}"));
            }
            for detail in body.details.iter().take(20) {
                let target = detail.target.as_deref().map(|t| format!(" ({t})")).unwrap_or_default();
                text.push_str(&format!("\n  {}: {}{target}", detail.code, detail.message));
            }
            text
        }
        ClientError::Identity { status, error: code, description } => {
            format!("the token endpoint answered {status} {code}: {description}")
        }
        ClientError::Status { status, body } => {
            format!("HTTP {status}: {}", body.chars().take(500).collect::<String>())
        }
        ClientError::Transport(e) => {
            // reqwest's own text names only the URL; the cause (refused, DNS, TLS) is in the chain.
            let mut text = format!("could not reach the server: {e}");
            let mut source = std::error::Error::source(e);
            while let Some(cause) = source {
                text.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            text
        }
        ClientError::Decode(e) => format!("unexpected answer: {e}"),
    }
}

impl From<ClientError> for Failure {
    fn from(error: ClientError) -> Failure {
        Failure::new(exit_for(&error), describe(&error))
    }
}

pub type CliResult<T = ()> = Result<T, Failure>;

/// A client command group: the connection flags (global, so they go before or after the
/// subcommand) and the subcommand.
#[derive(Debug, clap::Args)]
pub struct ClientArgs<C: clap::Subcommand> {
    #[command(flatten)]
    pub connection: Connection,
    #[command(subcommand)]
    pub command: C,
}

/// How `--wait` polls: Graph has no push for these states, and every real script polls too.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct WaitArgs {
    /// Wait until the operation finishes, showing its progress.
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits at most.
    #[arg(long, env = "DMSYNC_WAIT_TIMEOUT", default_value = "30m", value_parser = parse_duration)]
    pub timeout: Duration,
    /// How often --wait asks for the state.
    #[arg(long, env = "DMSYNC_POLL_INTERVAL", default_value = "2s", value_parser = parse_duration)]
    pub poll_interval: Duration,
}

/// A duration: a bare number is seconds; otherwise `10m`, `500ms`, `1h30m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    if let Ok(secs) = s.trim().parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(s).map_err(|e| format!("'{s}' is not a duration (try 600, 600s, 10m or 500ms): {e}"))
}

/// A duration the server measures on its Clock, as `time::Duration` (what the Clock and the
/// store count in), converted here once. Whether zero is meaningful is the server's
/// configuration check, which names the flag.
pub fn parse_clock_duration(s: &str) -> Result<time::Duration, String> {
    let duration = parse_duration(s)?;
    time::Duration::try_from(duration).map_err(|_| format!("'{s}' is too long a duration"))
}

/// Runs a client command and turns its outcome into the process's exit code, printing the
/// failure on stderr.
pub fn finish(outcome: CliResult) -> std::process::ExitCode {
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("{} {}", console::style("error:").red().bold().for_stderr(), failure.message);
            std::process::ExitCode::from(failure.exit as u8)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_durations_are_parsed_once_into_time_durations() {
        assert_eq!(parse_clock_duration("600").unwrap(), time::Duration::minutes(10));
        assert_eq!(parse_clock_duration("10m").unwrap(), time::Duration::minutes(10));
        assert_eq!(parse_clock_duration("1h30m").unwrap(), time::Duration::minutes(90));
        assert_eq!(parse_clock_duration("500ms").unwrap(), time::Duration::milliseconds(500));
        assert_eq!(parse_clock_duration("0s").unwrap(), time::Duration::ZERO);
        assert!(parse_clock_duration("soon").unwrap_err().contains("is not a duration"));
        assert!(parse_clock_duration("-5s").is_err());
        assert!(parse_clock_duration("18446744073709551615s").unwrap_err().contains("too long"));
    }
}
