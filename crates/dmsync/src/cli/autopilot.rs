//! `dmsync autopilot …`: the sync and its status, imports from an Autopilot CSV, and the device
//! list.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use dmsync_client::dmsync_graph::ApiVersion;
use dmsync_client::dmsync_graph::autopilot::{
    ImportedWindowsAutopilotDeviceIdentity, ImportedWindowsAutopilotDeviceIdentityImportStatus as ImportStatus,
    WindowsAutopilotSettings, WindowsAutopilotSyncStatus,
};
use dmsync_client::{ClientError, NewImportedDevice};
use dmsync_core::autopilot_csv;
use futures::StreamExt;
use time::OffsetDateTime;

use super::output::{OutputFormat, Progress, Table, print_json, print_list, refuse_csv, relative, timestamp};
use super::{CliResult, Exit, Failure, Session, WaitArgs};

/// Intune refuses a manual sync for ten minutes after the last one started. Graph does not say
/// when the next is allowed, so the CLI works it out from the settings' timestamps.
const SYNC_COOLDOWN: time::Duration = time::Duration::minutes(10);

/// The import action takes at most 500 identities per request.
const IMPORT_BATCH: usize = 500;

/// Attempts at one import request when Graph throttles it with 429.
const IMPORT_ATTEMPTS: u32 = 8;

/// Concurrent GETs while polling imported identities: fast enough for thousands of devices,
/// gentle enough for Graph's per-app limits.
const POLL_CONCURRENCY: usize = 8;

pub type Args = super::ClientArgs<Command>;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Show the Autopilot sync status: the last sync, its outcome, and when a manual sync is
    /// allowed again.
    #[command(after_help = super::EXIT_CODES_HELP)]
    Status,
    /// Start an Autopilot sync (POST …/windowsAutopilotSettings/sync).
    ///
    /// On 429 it says when the next sync is allowed and exits 7. On 409 (a sync is running) it
    /// exits 6, or with --wait follows the running sync. With --wait it shows progress until the
    /// sync completes (exit 0) or fails (exit 8).
    #[command(after_help = super::EXIT_CODES_HELP)]
    Sync(WaitArgs),
    /// Import devices from an Autopilot CSV (Get-WindowsAutopilotInfo's format) in batches of 500.
    ///
    /// Columns: Device Serial Number, Windows Product ID, Hardware Hash, and optionally Group Tag
    /// and Assigned User. UTF-8 or UTF-16 (as Windows PowerShell writes it). With --wait it shows
    /// the devices' import states until each is complete or in error, then a summary; exit 8 if
    /// any device is in error. A sample to try: examples/autopilot/devices.csv.
    #[command(after_help = super::EXIT_CODES_HELP)]
    Import(ImportArgs),
    /// List Autopilot devices, following every page.
    #[command(after_help = super::EXIT_CODES_HELP)]
    Devices(DevicesArgs),
}

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The Autopilot CSV file.
    pub file: PathBuf,
    /// Group tag for every device, instead of the file's Group Tag column.
    #[arg(long)]
    pub group_tag: Option<String>,
    #[command(flatten)]
    pub wait: WaitArgs,
}

#[derive(Debug, clap::Args)]
pub struct DevicesArgs {
    /// Only devices whose serial number contains S (Intune's `contains(serialNumber,'S')`).
    #[arg(long)]
    pub serial: Option<String>,
    /// An OData $filter, e.g. "groupTag eq 'Sales'". Combined with --serial by `and`.
    #[arg(long)]
    pub filter: Option<String>,
}

pub async fn run(args: Args) -> CliResult {
    let mut session = Session::connect(&args.connection).await?;
    match args.command {
        Command::Status => status(&mut session).await,
        Command::Sync(wait) => sync(&mut session, wait).await,
        Command::Import(import_args) => import(&mut session, import_args).await,
        Command::Devices(devices_args) => devices(&mut session, devices_args).await,
    }
}

fn status_word(status: WindowsAutopilotSyncStatus) -> &'static str {
    match status {
        WindowsAutopilotSyncStatus::Unknown => "unknown",
        WindowsAutopilotSyncStatus::InProgress => "inProgress",
        WindowsAutopilotSyncStatus::Completed => "completed",
        WindowsAutopilotSyncStatus::Failed => "failed",
    }
}

/// When a manual sync is allowed again: ten minutes after the last manual trigger (or, if there
/// never was one, the last sync). A completed import can restart the cooldown too, invisibly, so
/// this is a lower bound; a 429's own Retry-After wins when Graph sends one.
fn next_sync_allowed(settings: &WindowsAutopilotSettings) -> Option<OffsetDateTime> {
    let anchor = settings.last_manual_sync_trigger_date_time.0.or(settings.last_sync_date_time.0)?;
    Some(anchor + SYNC_COOLDOWN)
}

/// "last sync 3 min ago, completed; a manual sync is allowed again in 7 min".
fn sentence(settings: &WindowsAutopilotSettings, now: OffsetDateTime) -> String {
    let last = match settings.last_sync_date_time.0 {
        Some(at) => format!("last sync {}", relative(at, now)),
        None => "never synced".to_owned(),
    };
    let state = match settings.sync_status {
        WindowsAutopilotSyncStatus::InProgress => "a sync is in progress".to_owned(),
        other => status_word(other).to_owned(),
    };
    let next = match next_sync_allowed(settings) {
        _ if settings.sync_status == WindowsAutopilotSyncStatus::InProgress => {
            "a manual sync is refused (409) until it ends".to_owned()
        }
        Some(at) if at > now => format!("a manual sync is allowed again {}", relative(at, now)),
        _ => "a manual sync is allowed now".to_owned(),
    };
    format!("{last}, {state}; {next}")
}

fn styled_status(status: WindowsAutopilotSyncStatus) -> String {
    let word = status_word(status);
    match status {
        WindowsAutopilotSyncStatus::Completed => console::style(word).green().to_string(),
        WindowsAutopilotSyncStatus::Failed => console::style(word).red().to_string(),
        WindowsAutopilotSyncStatus::InProgress => console::style(word).yellow().to_string(),
        WindowsAutopilotSyncStatus::Unknown => word.to_owned(),
    }
}

async fn status(session: &mut Session) -> CliResult {
    refuse_csv(session.output)?;
    let settings = session.call(async |g| g.get_windows_autopilot_settings().await).await?;
    let now = session.server_now();
    if session.output == OutputFormat::Json {
        let next = next_sync_allowed(&settings).map(|at| dmsync_client::dmsync_graph::GraphDateTime(Some(at)));
        let mut doc = serde_json::to_value(&settings).expect("wire type serialises");
        doc["nextManualSyncAllowedDateTime"] = serde_json::to_value(next).expect("timestamps serialise");
        doc["summary"] = sentence(&settings, now).into();
        print_json(&doc);
        return Ok(());
    }
    let when = |at: Option<OffsetDateTime>| match at {
        Some(at) => format!("{} ({})", timestamp(at), relative(at, now)),
        None => "never".to_owned(),
    };
    println!("{}", sentence(&settings, now));
    println!();
    println!("status:            {}", styled_status(settings.sync_status));
    println!("last sync:         {}", when(settings.last_sync_date_time.0));
    println!("last manual sync:  {}", when(settings.last_manual_sync_trigger_date_time.0));
    let next = match next_sync_allowed(&settings) {
        Some(at) if at > now => when(Some(at)),
        _ => "now".to_owned(),
    };
    println!("next manual sync:  {next}");
    Ok(())
}

/// The 429 explained: when the next sync is allowed, from Retry-After if Graph sent one, else from
/// the settings.
async fn throttled(session: &mut Session, error: &ClientError) -> Failure {
    // The 429 itself carried the server's Date.
    let now = session.server_now();
    let request_id = error.request_id().map(|id| format!("\n  request-id: {id}")).unwrap_or_default();
    let at = match error.retry_after() {
        Some(delay) => Some(now + delay),
        None => match session.call(async |g| g.get_windows_autopilot_settings().await).await {
            Ok(settings) => next_sync_allowed(&settings),
            Err(_) => None,
        },
    };
    let when = match at {
        Some(at) if at > now => format!("at {} ({})", timestamp(at), relative(at, now)),
        // The timestamps say the cooldown is over, so something else restarted it (an import).
        _ => "within 10 min".to_owned(),
    };
    Failure::new(
        Exit::Throttled,
        format!(
            "Graph answered 429 TooManyRequests: {}\n  the next manual sync is allowed {when}{request_id}",
            error.readable_message()
        ),
    )
}

async fn sync(session: &mut Session, wait: WaitArgs) -> CliResult {
    refuse_csv(session.output)?;
    // With --wait, the trigger time before the request tells a new sync from the last one.
    let previous_trigger = match wait.wait {
        true => Some(
            session.call(async |g| g.get_windows_autopilot_settings().await).await?.last_manual_sync_trigger_date_time,
        ),
        false => None,
    };
    match session.call(async |g| g.sync_windows_autopilot_settings().await).await {
        Ok(()) if !wait.wait => {
            report(session.output, "started", "Autopilot sync started.");
            Ok(())
        }
        Ok(()) => wait_for_sync(session, wait, "Autopilot sync started", previous_trigger).await,
        Err(e) if e.status() == Some(409) && wait.wait => {
            wait_for_sync(session, wait, "An Autopilot sync is already running; waiting for it", None).await
        }
        Err(e) if e.status() == Some(409) => Err(Failure::new(
            Exit::Conflict,
            format!("{}\n  (use --wait to follow the running sync)", super::describe(&e)),
        )),
        Err(e) if e.status() == Some(429) => Err(throttled(session, &e).await),
        Err(e) => Err(e.into()),
    }
}

/// One line for people, or `{"result": …}` for scripts.
fn report(format: OutputFormat, result: &str, text: &str) {
    match format {
        OutputFormat::Json => print_json(&serde_json::json!({ "result": result })),
        _ => println!("{text}"),
    }
}

/// How long a read after the 204 may still show the previous sync. dmsync changes the status
/// in the same transaction as the 204; a replicated service may answer from an older copy for a
/// moment, and then the last sync's `completed` is not this sync's.
const STALE_READ_GRACE: Duration = Duration::from_secs(30);

async fn wait_for_sync(
    session: &mut Session,
    wait: WaitArgs,
    started: &str,
    previous_trigger: Option<dmsync_client::dmsync_graph::GraphDateTime>,
) -> CliResult {
    let mut progress = Progress::spinner(&format!("{started}: inProgress"));
    let begun = tokio::time::Instant::now();
    let deadline = begun + wait.timeout;
    loop {
        let settings = session.call(async |g| g.get_windows_autopilot_settings().await).await?;
        let stale = previous_trigger.is_some_and(|t| t == settings.last_manual_sync_trigger_date_time)
            && settings.sync_status != WindowsAutopilotSyncStatus::InProgress
            && begun.elapsed() < STALE_READ_GRACE;
        match settings.sync_status {
            _ if stale => progress.set_message(&format!("{started}: waiting for it to show")),
            WindowsAutopilotSyncStatus::InProgress | WindowsAutopilotSyncStatus::Unknown => {
                progress.set_message(&format!("{started}: inProgress"));
            }
            WindowsAutopilotSyncStatus::Completed => {
                progress.finish("Autopilot sync completed");
                let at = settings.last_sync_date_time.0.map(timestamp).unwrap_or_default();
                report(session.output, "completed", &format!("Autopilot sync completed at {at}."));
                return Ok(());
            }
            WindowsAutopilotSyncStatus::Failed => {
                progress.finish("Autopilot sync failed");
                report(session.output, "failed", "Autopilot sync failed.");
                return Err(Failure::new(Exit::OperationFailed, "the Autopilot sync failed (syncStatus failed)"));
            }
        }
        if tokio::time::Instant::now() >= deadline {
            progress.finish("gave up waiting");
            return Err(Failure::new(
                Exit::TimedOut,
                format!("the sync was still in progress after {}", humantime::format_duration(wait.timeout)),
            ));
        }
        tokio::time::sleep(wait.poll_interval).await;
    }
}

/// Reads and parses an Autopilot CSV file with the reader the web console uses too.
fn read_autopilot_csv(path: &Path, group_tag: Option<&str>) -> CliResult<Vec<NewImportedDevice>> {
    let bytes = std::fs::read(path).map_err(|e| Failure::usage(format!("cannot read {}: {e}", path.display())))?;
    let text = autopilot_csv::decode_text(&bytes)
        .ok_or_else(|| Failure::usage(format!("{} is not UTF-8 or UTF-16 text", path.display())))?;
    let devices = autopilot_csv::read_autopilot_csv(&text, group_tag)
        .map_err(|problem| Failure::usage(format!("{}: {problem}", path.display())))?;
    Ok(devices
        .into_iter()
        .map(|device| NewImportedDevice {
            serial_number: device.serial_number,
            hardware_identifier: device.hardware_hash,
            group_tag: device.group_tag,
            product_key: device.product_key,
            assigned_user_principal_name: device.assigned_user_principal_name,
        })
        .collect())
}

/// One import request, retried while Graph throttles it: after Retry-After when Graph sends one,
/// else after an exponential backoff (1 s, 2 s, 4 s … capped at 60 s).
async fn import_batch(
    session: &mut Session,
    batch: &[NewImportedDevice],
    progress: &Progress,
) -> CliResult<Vec<ImportedWindowsAutopilotDeviceIdentity>> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match session.call(async |g| g.import_windows_autopilot_device_identities(ApiVersion::Beta, batch).await).await
        {
            Err(e) if e.status() == Some(429) && attempt < IMPORT_ATTEMPTS => {
                let delay = e
                    .retry_after()
                    .unwrap_or(Duration::from_secs(1 << (attempt - 1).min(6)).min(Duration::from_secs(60)));
                progress.println(&format!(
                    "throttled (429{}), retrying in {}",
                    e.request_id().map(|id| format!(", request-id {id}")).unwrap_or_default(),
                    humantime::format_duration(Duration::from_secs(delay.as_secs().max(1)))
                ));
                tokio::time::sleep(delay).await;
            }
            other => return Ok(other?),
        }
    }
}

fn import_status_word(status: ImportStatus) -> &'static str {
    match status {
        ImportStatus::Unknown => "unknown",
        ImportStatus::Pending => "pending",
        ImportStatus::Partial => "partial",
        ImportStatus::Complete => "complete",
        ImportStatus::Error => "error",
    }
}

/// Whether the deployment service is done with an identity. `unknown` and `pending` both mean
/// it is not, whatever the scripts that stop at "not unknown" assume.
fn finished(identity: &ImportedWindowsAutopilotDeviceIdentity) -> bool {
    !matches!(identity.state.device_import_status, ImportStatus::Unknown | ImportStatus::Pending)
}

fn state_counts(identities: &[ImportedWindowsAutopilotDeviceIdentity]) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for identity in identities {
        *counts.entry(import_status_word(identity.state.device_import_status)).or_default() += 1;
    }
    counts.iter().map(|(state, n)| format!("{state} {n}")).collect::<Vec<_>>().join(", ")
}

async fn import(session: &mut Session, args: ImportArgs) -> CliResult {
    refuse_csv(session.output)?;
    let devices = read_autopilot_csv(&args.file, args.group_tag.as_deref())?;
    let total = devices.len() as u64;
    let mut progress = Progress::bar(total, "uploading");
    let mut identities = Vec::with_capacity(devices.len());
    for batch in devices.chunks(IMPORT_BATCH) {
        let accepted = import_batch(session, batch, &progress).await?;
        identities.extend(accepted);
        progress.set_position(identities.len() as u64);
        progress.set_message(&format!("uploaded {}/{total}", identities.len()));
    }
    if !args.wait.wait {
        progress.finish(&format!("uploaded {total} devices"));
        return print_import_summary(session.output, &identities, false);
    }
    progress.set_position(0);
    let deadline = tokio::time::Instant::now() + args.wait.timeout;
    loop {
        let done = identities.iter().filter(|i| finished(i)).count() as u64;
        progress.set_position(done);
        progress.set_message(&state_counts(&identities));
        if done == total {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            progress.finish(&state_counts(&identities));
            print_import_summary(session.output, &identities, true)?;
            return Err(Failure::new(
                Exit::TimedOut,
                format!(
                    "{} devices were still being imported after {}",
                    total - done,
                    humantime::format_duration(args.wait.timeout)
                ),
            ));
        }
        tokio::time::sleep(args.wait.poll_interval).await;
        refresh_unfinished(session, &mut identities).await?;
    }
    progress.finish(&state_counts(&identities));
    print_import_summary(session.output, &identities, true)
}

/// GETs every unfinished identity again, a few at a time, as the real import scripts poll.
async fn refresh_unfinished(
    session: &mut Session,
    identities: &mut [ImportedWindowsAutopilotDeviceIdentity],
) -> CliResult {
    let pending: Vec<usize> = (0..identities.len()).filter(|&i| !finished(&identities[i])).collect();
    let ids: Vec<(usize, String)> = pending.iter().map(|&i| (i, identities[i].id.clone())).collect();
    let session_ref = &*session;
    let fetched: Vec<(usize, Result<ImportedWindowsAutopilotDeviceIdentity, ClientError>)> =
        futures::stream::iter(ids.into_iter().map(|(i, id)| async move {
            (i, session_ref.graph().get_imported_windows_autopilot_device_identity(ApiVersion::Beta, &id).await)
        }))
        .buffer_unordered(POLL_CONCURRENCY)
        .collect()
        .await;
    let mut renew = false;
    for (i, result) in fetched {
        match result {
            Ok(identity) => identities[i] = identity,
            // Throttled or an expired token: this round keeps the old state; the next one retries.
            Err(e) if e.status() == Some(429) => {}
            Err(e) if e.status() == Some(401) => renew = true,
            Err(e) => return Err(e.into()),
        }
    }
    if renew {
        session.renew_token().await?;
    }
    Ok(())
}

fn print_import_summary(
    format: OutputFormat,
    identities: &[ImportedWindowsAutopilotDeviceIdentity],
    waited: bool,
) -> CliResult {
    let complete = identities.iter().filter(|i| i.state.device_import_status == ImportStatus::Complete).count();
    let errors: Vec<&ImportedWindowsAutopilotDeviceIdentity> =
        identities.iter().filter(|i| i.state.device_import_status == ImportStatus::Error).collect();
    if format == OutputFormat::Json {
        let import_ids: std::collections::BTreeSet<&str> = identities.iter().map(|i| i.import_id.as_str()).collect();
        print_json(&serde_json::json!({
            "importIds": import_ids,
            "complete": complete,
            "error": errors.len(),
            "unfinished": identities.iter().filter(|i| !finished(i)).count(),
            "devices": identities,
        }));
    } else if !waited {
        println!(
            "Submitted {} devices; the deployment service processes them in the background.\n\
             Run again with --wait to follow them, or list them with `dmsync autopilot devices`.",
            identities.len()
        );
    } else {
        let mut by_error: BTreeMap<(i32, &str), usize> = BTreeMap::new();
        for identity in &errors {
            *by_error
                .entry((identity.state.device_error_code, identity.state.device_error_name.as_str()))
                .or_default() += 1;
        }
        let mut table = Table::new(&["STATE", "DEVICES", "ERROR"]);
        table.row(vec!["complete".into(), complete.to_string(), String::new()]);
        if by_error.is_empty() {
            table.row(vec!["error".into(), "0".into(), String::new()]);
        }
        for ((code, name), n) in &by_error {
            table.row(vec!["error".into(), n.to_string(), format!("{name} ({code})")]);
        }
        let unfinished = identities.iter().filter(|i| !finished(i)).count();
        if unfinished > 0 {
            table.row(vec!["unfinished".into(), unfinished.to_string(), String::new()]);
        }
        print!("{}", table.render());
        if !errors.is_empty() {
            let mut table = Table::new(&["SERIAL", "ERROR"]);
            for identity in &errors {
                table.row(vec![identity.serial_number.clone(), identity.state.device_error_name.clone()]);
            }
            println!();
            print!("{}", table.render());
        }
    }
    if waited && !errors.is_empty() {
        return Err(Failure::new(
            Exit::OperationFailed,
            format!("{} of {} devices were not imported", errors.len(), identities.len()),
        ));
    }
    Ok(())
}

/// `'` doubled, as OData string literals need.
fn odata_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

async fn devices(session: &mut Session, args: DevicesArgs) -> CliResult {
    let mut clauses = Vec::new();
    if let Some(serial) = &args.serial {
        clauses.push(format!("contains(serialNumber,{})", odata_literal(serial)));
    }
    if let Some(filter) = &args.filter {
        clauses.push(if args.serial.is_some() { format!("({filter})") } else { filter.clone() });
    }
    let query = if clauses.is_empty() {
        String::new()
    } else {
        let filter = clauses.join(" and ");
        format!("?$filter={}", percent_encode(&filter))
    };
    let devices =
        session.call(async |g| g.all_windows_autopilot_device_identities(ApiVersion::V1, &query).await).await?;
    let mut table = Table::new(&["SERIAL", "GROUP TAG", "MANUFACTURER", "MODEL", "ENROLLMENT", "USER", "ID"]);
    for d in &devices {
        let enrollment = serde_json::to_value(d.enrollment_state).ok().and_then(|v| v.as_str().map(str::to_owned));
        table.row(vec![
            d.serial_number.clone(),
            d.group_tag.clone(),
            d.manufacturer.clone(),
            d.model.clone(),
            enrollment.unwrap_or_default(),
            d.user_principal_name.clone(),
            d.id.clone(),
        ]);
    }
    print_list(session.output, &devices, table);
    Ok(())
}

/// Percent-encodes a query value, spaces as `%20`: not every OData service reads `+` as a space.
fn percent_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'(' | b')' | b',' | b'\'' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use dmsync_client::dmsync_graph::GraphDateTime;
    use dmsync_core::limits;

    #[test]
    fn an_endless_line_or_a_hash_over_the_bound_is_a_usage_error_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hashes.csv");
        let header = "Device Serial Number,Windows Product ID,Hardware Hash\nA,,AAAA\n";
        let endless = format!("{header}B,,\"{}", "x".repeat(8 << 20));
        let long_hash = format!("{header}B,,{}\n", "A".repeat(limits::MAX_HARDWARE_HASH_BASE64 + 4));
        for (text, needle) in
            [(endless, "line 3 is longer than"), (long_hash, "line 3: the hardware hash is longer than")]
        {
            std::fs::write(&path, text).unwrap();
            let failure = read_autopilot_csv(&path, None).unwrap_err();
            assert!(matches!(failure.exit, Exit::Usage));
            assert!(failure.message.contains(needle), "{}", failure.message);
        }
    }

    fn settings(
        status: WindowsAutopilotSyncStatus,
        manual: Option<OffsetDateTime>,
        last: Option<OffsetDateTime>,
    ) -> WindowsAutopilotSettings {
        WindowsAutopilotSettings {
            id: "x".into(),
            last_manual_sync_trigger_date_time: GraphDateTime(manual),
            last_sync_date_time: GraphDateTime(last),
            sync_status: status,
        }
    }

    #[test]
    fn the_status_sentence_says_when_a_sync_is_allowed() {
        let now = OffsetDateTime::now_utc();
        let s = settings(
            WindowsAutopilotSyncStatus::Completed,
            Some(now - time::Duration::minutes(3)),
            Some(now - time::Duration::minutes(3)),
        );
        assert_eq!(sentence(&s, now), "last sync 3 min ago, completed; a manual sync is allowed again in 7 min");
        let s = settings(WindowsAutopilotSyncStatus::Unknown, None, None);
        assert_eq!(sentence(&s, now), "never synced, unknown; a manual sync is allowed now");
        let s = settings(WindowsAutopilotSyncStatus::Completed, None, Some(now - time::Duration::hours(2)));
        assert_eq!(sentence(&s, now), "last sync 2 h ago, completed; a manual sync is allowed now");
    }

    #[test]
    fn filters_are_quoted_and_encoded() {
        assert_eq!(odata_literal("O'Brien"), "'O''Brien'");
        assert_eq!(percent_encode("groupTag eq 'A&B'"), "groupTag%20eq%20'A%26B'");
    }
}
