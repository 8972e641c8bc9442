//! The Autopilot CSV import, as the admin center's "Import" pane: a hardware-hash CSV read by
//! the reader the CLI uses (`dmsync_core::autopilot_csv`, so both refuse the same files, whole),
//! sent to `POST …/importedWindowsAutopilotDeviceIdentities/import` in batches, then a page
//! that follows the imports by their ids until every row is finished, and shows each row's
//! state.

use axum::extract::{Query, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;

use dmsync_core::TenantId;
use dmsync_core::autopilot_csv::{self, CsvProblem};

use super::client::{Failed, Origin};
use super::layout::{self, Notice, Section, Shell, TenantNav, tenant_path};
use super::session::{Posted, PostedBytes, Session};
use super::tenants::ConsoleTenant;
use super::{ConsoleState, see_other};

/// The largest CSV the console takes: thousands of devices, far more than one import needs.
pub const MAX_CSV_BYTES: usize = 8 * 1024 * 1024;

/// The most identities one import request carries, as Graph's import action takes them.
const IMPORT_BATCH: usize = crate::resources::imported_devices::MAX_IMPORT_BATCH;

/// How often the progress page asks again while rows are unfinished.
const PROGRESS_REFRESH_MS: u32 = 1000;

/// The most imports one progress link follows (a CSV within the size bound needs far fewer).
const MAX_IMPORT_IDS: usize = 200;

const IMPORTED: &str = "/beta/deviceManagement/importedWindowsAutopilotDeviceIdentities";

/// The bad rows of a refused file, or the reason the whole file was refused.
enum Refusal {
    File(String),
    Rows(Vec<(u64, String)>),
    Graph { failed: Failed, accepted: Vec<String> },
}

fn import_form(session: &Session, tenant: TenantId) -> Markup {
    html! {
        section class="card" aria-labelledby="upload-heading" {
            h2 id="upload-heading" { "Upload a hardware-hash CSV" }
            p class="hint" {
                "The CSV Get-WindowsAutopilotInfo writes: Device Serial Number, Windows Product ID, Hardware Hash, "
                "and optionally Group Tag and Assigned User. At most 8 MiB; if any row is bad, none is imported."
            }
            form method="post" action=(tenant_path(tenant, "autopilot/import")) data-upload class="stack" id="upload-form" {
                div class="dropzone" {
                    label for="csv-file" { "Drop the CSV here, or choose it" }
                    input type="file" id="csv-file" name="file" accept=".csv,text/csv";
                }
                p data-upload-status class="hint" aria-live="polite" {}
                div { button type="submit" { "Import" } }
            }
        }
        section class="card" aria-labelledby="paste-heading" {
            h2 id="paste-heading" { "Or paste its text" }
            p class="hint" { "For a browser without script, where the file above cannot be sent." }
            form method="post" action=(tenant_path(tenant, "autopilot/import/paste")) class="stack" {
                (layout::csrf_field(session))
                label { "CSV text" textarea name="csv" rows="6" spellcheck="false" {} }
                div { button type="submit" class="secondary" { "Import the text" } }
            }
        }
    }
}

fn import_page(session: &Session, nav: &TenantNav, status: StatusCode, refusal: Option<&Refusal>) -> Response {
    let notice = refusal.map(|refusal| match refusal {
        Refusal::File(message) => Notice::Error(format!("Nothing was imported: {message}.")),
        Refusal::Rows(rows) => Notice::Error(format!(
            "Nothing was imported: {} {} cannot be read. Fix {} and upload the file again.",
            rows.len(),
            if rows.len() == 1 { "row" } else { "rows" },
            if rows.len() == 1 { "it" } else { "them" },
        )),
        Refusal::Graph { failed, accepted } if accepted.is_empty() => {
            Notice::Error(format!("Graph refused the import: {}", failed.sentence()))
        }
        Refusal::Graph { failed, .. } => Notice::Error(format!(
            "Graph refused a later batch, after earlier ones were accepted: {}",
            failed.sentence()
        )),
    });
    let content = html! {
        @if let Some(Refusal::Rows(rows)) = refusal {
            section class="card" aria-labelledby="bad-rows-heading" {
                h2 id="bad-rows-heading" { "Rows to fix" }
                table class="data" id="bad-rows" {
                    thead { tr { th scope="col" { "Line" } th scope="col" { "Problem" } } }
                    tbody { @for (line, message) in rows { tr { td class="mono" { (line) } td { (message) } } } }
                }
                @if rows.len() >= autopilot_csv::MAX_REPORTED_ROWS {
                    p class="hint" { "Only the first " (autopilot_csv::MAX_REPORTED_ROWS) " bad rows are named." }
                }
            }
        }
        @if let Some(Refusal::Graph { accepted, .. }) = refusal && !accepted.is_empty() {
            p { a href=(progress_link(nav.id, accepted)) { "Follow the batches Graph accepted" } }
        }
        (import_form(session, nav.id))
    };
    let shell = Shell { title: "Import Autopilot devices", session, section: Section::Import, tenant: Some(nav) };
    layout::page(status, shell, notice, content)
}

fn progress_link(tenant: TenantId, import_ids: &[String]) -> String {
    let query = form_urlencoded::Serializer::new(String::new()).append_pair("ids", &import_ids.join(",")).finish();
    format!("{}?{query}", tenant_path(tenant, "autopilot/import/progress"))
}

/// `GET /_dmsync/console/tenants/{tenant}/autopilot/import`.
pub async fn show_import(session: Session, ConsoleTenant(nav): ConsoleTenant) -> Response {
    import_page(&session, &nav, StatusCode::OK, None)
}

#[derive(Deserialize)]
struct Accepted {
    value: Vec<AcceptedIdentity>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AcceptedIdentity {
    import_id: String,
}

/// Reads the file and imports it, batch by batch; the import ids Graph gave.
async fn import_csv(
    state: &ConsoleState,
    origin: &Origin,
    tenant: TenantId,
    bytes: &[u8],
) -> Result<Vec<String>, Refusal> {
    if bytes.len() > MAX_CSV_BYTES {
        return Err(Refusal::File("the file is larger than 8 MiB".into()));
    }
    let text = autopilot_csv::decode_text(bytes)
        .ok_or_else(|| Refusal::File("the file is not UTF-8 or UTF-16 text".into()))?;
    let devices = autopilot_csv::read_autopilot_csv(&text, None).map_err(|problem| match problem {
        CsvProblem::File(message) => Refusal::File(message),
        CsvProblem::Rows(rows) => Refusal::Rows(rows),
    })?;
    if devices.is_empty() {
        return Err(Refusal::File("the file has no device rows".into()));
    }
    let calls = state.calls(origin);
    let mut import_ids: Vec<String> = Vec::new();
    for batch in devices.chunks(IMPORT_BATCH) {
        let identities: Vec<serde_json::Value> = batch
            .iter()
            .map(|device| {
                serde_json::json!({
                    "serialNumber": device.serial_number,
                    "hardwareIdentifier": device.hardware_hash,
                    "groupTag": device.group_tag,
                    "productKey": device.product_key,
                    "assignedUserPrincipalName": device.assigned_user_principal_name,
                })
            })
            .collect();
        let body = serde_json::json!({ "importedWindowsAutopilotDeviceIdentities": identities });
        let answer = calls.graph_send(tenant, Method::POST, &format!("{IMPORTED}/import"), &body).await;
        let accepted: Accepted = match answer.and_then(|bytes| super::client::read(&bytes)) {
            Ok(accepted) => accepted,
            Err(failed) => return Err(Refusal::Graph { failed, accepted: import_ids }),
        };
        for identity in accepted.value {
            if !import_ids.contains(&identity.import_id) {
                import_ids.push(identity.import_id);
            }
        }
    }
    Ok(import_ids)
}

async fn answer_import(
    state: &ConsoleState,
    origin: &Origin,
    session: &Session,
    nav: &TenantNav,
    bytes: &[u8],
) -> Response {
    match import_csv(state, origin, nav.id, bytes).await {
        Ok(import_ids) => see_other(&progress_link(nav.id, &import_ids)),
        Err(refusal) => {
            let status = match &refusal {
                Refusal::Graph { failed, .. } => failed.status,
                _ => StatusCode::BAD_REQUEST,
            };
            import_page(session, nav, status, Some(&refusal))
        }
    }
}

/// `POST /_dmsync/console/tenants/{tenant}/autopilot/import`: the file as the request's body
/// (the script's upload and drop), with the CSRF token in its header.
pub async fn upload_csv(
    State(state): State<ConsoleState>,
    origin: Origin,
    ConsoleTenant(nav): ConsoleTenant,
    posted: PostedBytes,
) -> Response {
    answer_import(&state, &origin, &posted.session, &nav, &posted.bytes).await
}

#[derive(Deserialize)]
pub struct Pasted {
    csv: String,
}

/// `POST /_dmsync/console/tenants/{tenant}/autopilot/import/paste`: the file's text in a form.
pub async fn paste_csv(
    State(state): State<ConsoleState>,
    origin: Origin,
    ConsoleTenant(nav): ConsoleTenant,
    posted: Posted<Pasted>,
) -> Response {
    answer_import(&state, &origin, &posted.session, &nav, posted.form.csv.as_bytes()).await
}

#[derive(Deserialize)]
pub struct ProgressQuery {
    ids: String,
}

#[derive(Deserialize)]
struct ImportedPage {
    value: Vec<ImportedRow>,
    #[serde(rename = "@odata.nextLink")]
    next_link: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ImportedRow {
    serial_number: String,
    state: ImportedState,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ImportedState {
    device_import_status: String,
    device_error_code: i64,
    device_error_name: String,
}

/// The states of `importedWindowsAutopilotDeviceIdentityImportStatus`, in the bar's order.
const STATES: &[&str] = &["complete", "partial", "error", "pending", "unknown"];

fn finished(status: &str) -> bool {
    matches!(status, "complete" | "partial" | "error")
}

/// Every row of the imports, read by `importId eq '…'` and its pages.
async fn imported_rows(
    state: &ConsoleState,
    origin: &Origin,
    tenant: TenantId,
    ids: &[&str],
) -> Result<Vec<ImportedRow>, Failed> {
    let calls = state.calls(origin);
    let mut rows = Vec::new();
    for id in ids {
        let filter = form_urlencoded::Serializer::new(String::new())
            .append_pair("$filter", &format!("importId eq '{}'", id.replace('\'', "''")))
            .finish();
        let mut path = format!("{IMPORTED}?{filter}");
        loop {
            let page: ImportedPage = calls.graph_get(tenant, &path).await?;
            rows.extend(page.value);
            match page.next_link.as_deref().and_then(|link| link.split_once("/beta/")) {
                Some((_, rest)) => path = format!("/beta/{rest}"),
                None => break,
            }
        }
    }
    Ok(rows)
}

/// `GET /_dmsync/console/tenants/{tenant}/autopilot/import/progress?ids=…`: a bar of the rows'
/// states that refreshes itself while any is unfinished, then every row's result.
pub async fn show_progress(
    State(state): State<ConsoleState>,
    session: Session,
    origin: Origin,
    ConsoleTenant(nav): ConsoleTenant,
    Query(query): Query<ProgressQuery>,
) -> Response {
    let ids: Vec<&str> = query.ids.split(',').map(str::trim).filter(|id| !id.is_empty()).take(MAX_IMPORT_IDS).collect();
    // Graph lists the rows by id; by serial number a person finds one.
    let rows = imported_rows(&state, &origin, nav.id, &ids).await.map(|mut rows| {
        rows.sort_by(|a, b| a.serial_number.cmp(&b.serial_number));
        rows
    });
    let content = match &rows {
        Err(failed) => html! { div class="notice error" role="alert" { (failed.sentence()) } },
        Ok(rows) if rows.is_empty() => layout::empty(
            "These imports have no rows.",
            html! { "Imported rows are deleted once processed or by a cleanup; " a href=(tenant_path(nav.id, "autopilot/devices")) { "see the devices" } "." },
        ),
        Ok(rows) => progress(nav.id, rows),
    };
    let shell = Shell { title: "Import progress", session: &session, section: Section::Import, tenant: Some(&nav) };
    layout::page(StatusCode::OK, shell, None, content)
}

fn progress(tenant: TenantId, rows: &[ImportedRow]) -> Markup {
    let total = rows.len();
    let done = rows.iter().filter(|row| finished(&row.state.device_import_status)).count();
    let count = |state: &str| rows.iter().filter(|row| row.state.device_import_status == state).count();
    let refresh = (done < total).then_some(PROGRESS_REFRESH_MS);
    html! {
        section class="card" id="import-progress" data-refresh=[refresh] aria-live="polite" aria-labelledby="progress-heading" {
            h2 id="progress-heading" {
                @if done < total { "Importing…" } @else { "Import finished" }
            }
            label for="import-bar" { (done) " of " (total) " rows processed" }
            progress id="import-bar" max=(total) value=(done) { (done) " of " (total) }
            ul class="legend" {
                @for state in STATES {
                    li { (layout::badge(state)) " " (count(state)) }
                }
            }
            @if done == total {
                table class="data" id="import-results" {
                    thead { tr {
                        th scope="col" { "Serial number" }
                        th scope="col" { "State" }
                        th scope="col" { "Error code" }
                        th scope="col" { "Error" }
                    } }
                    tbody {
                        @for row in rows {
                            tr {
                                td class="mono" { (row.serial_number) }
                                td { (layout::badge(&row.state.device_import_status)) }
                                td { @if row.state.device_error_code != 0 { (row.state.device_error_code) } }
                                td { (row.state.device_error_name) }
                            }
                        }
                    }
                }
                p {
                    a href=(tenant_path(tenant, "autopilot/devices")) { "See the Autopilot devices" }
                    " · "
                    a href=(tenant_path(tenant, "autopilot/import")) { "Import another file" }
                }
            }
        }
    }
}
