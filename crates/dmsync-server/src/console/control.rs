//! The control page: the fault rules in force (`GET`, `POST`, `DELETE /_dmsync/faults`) and the
//! throttling switch (`GET` and `PUT /_dmsync/throttling`), both for this process only.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use maud::html;
use serde::Deserialize;

use super::client::{As, Failed, Origin};
use super::layout::failed_alert;
use super::layout::{self, Notice, Section, Shell};
use super::session::{NoFields, Posted, Session};
use super::{BASE, ConsoleState, see_other};

/// What the rule field holds at first: a rule that shows the shape and is harmless to add.
const EXAMPLE_RULE: &str = r#"{
  "match": { "method": "GET", "path": "/beta/deviceManagement/windowsAutopilotSettings" },
  "effect": { "status": 503 },
  "times": 2
}"#;

#[derive(Deserialize)]
struct Rules {
    value: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct Throttling {
    mode: String,
}

fn compact(value: Option<&serde_json::Value>) -> String {
    value.map_or_else(String::new, |v| v.to_string())
}

fn render(
    session: &Session,
    rules: Result<Rules, Failed>,
    throttling: Result<Throttling, Failed>,
    rule_text: &str,
    notice: Option<Notice>,
    status: StatusCode,
) -> Response {
    let content = html! {
        section class="card" aria-labelledby="faults-heading" {
            h2 id="faults-heading" { "Fault rules" }
            p class="hint" {
                "A rule answers matching Graph requests (or job runs) in the route's place, "
                code { "times" } " times or until removed. See docs/TESTING-WITH-DMSYNC.md."
            }
            @match &rules {
                Err(failed) => (failed_alert(failed)),
                Ok(rules) if rules.value.is_empty() => (layout::empty("No fault rules.", html! { "Add one below." })),
                Ok(rules) => {
                    table class="data" id="fault-rules" {
                        thead { tr {
                            th scope="col" { "Id" } th scope="col" { "Match" } th scope="col" { "Effect" }
                            th scope="col" { "Times left" } th scope="col" { "Fired" } th scope="col" { span class="visually-hidden" { "Delete" } }
                        } }
                        tbody {
                            @for rule in &rules.value {
                                @let id = rule.get("id").and_then(|v| v.as_str()).unwrap_or("");
                                tr data-rule=(id) {
                                    td class="mono" { (id) }
                                    td class="mono" { (compact(rule.get("match"))) }
                                    td class="mono" { (compact(rule.get("effect"))) }
                                    td { @match rule.get("times") { Some(times) => (times), None => span class="muted" { "until removed" } } }
                                    td { (compact(rule.get("fired"))) }
                                    td {
                                        form method="post" action={ (BASE) "/control/faults/" (id) "/delete" } class="inline" {
                                            (layout::csrf_field(session))
                                            button type="submit" class="secondary" aria-label={ "Delete rule " (id) } { "Delete" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                    form method="post" action={ (BASE) "/control/faults/clear" } class="toolbar spaced" data-confirm="Remove every fault rule?" {
                        (layout::csrf_field(session))
                        button type="submit" class="danger" { "Clear all rules" }
                    }
                }
            }
            h3 { "Add a rule" }
            form method="post" action={ (BASE) "/control/faults" } class="stack wide" {
                (layout::csrf_field(session))
                label for="rule" { span { "Rule (JSON, as " code { "POST /_dmsync/faults" } " takes it)" } }
                textarea id="rule" name="rule" rows="7" spellcheck="false" required { (rule_text) }
                div { button type="submit" { "Add rule" } }
            }
        }
        section class="card" aria-labelledby="throttling-heading" {
            h2 id="throttling-heading" { "Throttling" }
            @match &throttling {
                Err(failed) => (failed_alert(failed)),
                Ok(throttling) => {
                    p { "Now: " span id="throttling-mode" class="badge" { (throttling.mode) } }
                    form method="post" action={ (BASE) "/control/throttling" } class="toolbar" {
                        (layout::csrf_field(session))
                        fieldset class="choices" {
                            legend { "Mode" }
                            label class="choice" { input type="radio" name="mode" value="off" checked[throttling.mode == "off"]; " Off" }
                            label class="choice" {
                                input type="radio" name="mode" value="documented" checked[throttling.mode == "documented"];
                                " Graph's documented Intune limits"
                            }
                        }
                        button type="submit" { "Apply" }
                    }
                    @if throttling.mode == "custom" {
                        p class="hint" { "Custom limits from a file are in force; switching replaces them." }
                    }
                    p class="hint" { "Until the server restarts; " code { "serve --throttling" } " sets it at start." }
                }
            }
        }
    };
    let shell = Shell { title: "Faults and throttling", session, section: Section::Control, tenant: None };
    layout::page(status, shell, notice, content)
}

async fn load(state: &ConsoleState, origin: &Origin) -> (Result<Rules, Failed>, Result<Throttling, Failed>) {
    let calls = state.calls(origin);
    (calls.admin_get("/_dmsync/faults").await, calls.admin_get("/_dmsync/throttling").await)
}

#[derive(Deserialize)]
pub struct Done {
    done: Option<String>,
}

/// `GET /_dmsync/console/control`.
pub async fn show_control(
    State(state): State<ConsoleState>,
    session: Session,
    origin: Origin,
    Query(query): Query<Done>,
) -> Response {
    let (rules, throttling) = load(&state, &origin).await;
    let notice = query.done.map(|done| {
        Notice::Success(match done.as_str() {
            "added" => "Added the rule.".into(),
            "deleted" => "Deleted the rule.".into(),
            "cleared" => "Removed every rule.".into(),
            "off" => "Throttling is off.".into(),
            _ => "Throttling applies Graph's documented limits.".into(),
        })
    });
    render(&session, rules, throttling, EXAMPLE_RULE, notice, StatusCode::OK)
}

/// Shows the page again with `failed`'s message, the rule field as it was.
async fn refused(state: &ConsoleState, origin: &Origin, session: &Session, rule: &str, failed: &Failed) -> Response {
    let (rules, throttling) = load(state, origin).await;
    let status = if failed.status.is_client_error() { StatusCode::BAD_REQUEST } else { StatusCode::BAD_GATEWAY };
    render(session, rules, throttling, rule, Some(Notice::Error(failed.sentence())), status)
}

#[derive(Deserialize)]
pub struct NewRule {
    rule: String,
}

/// `POST /_dmsync/console/control/faults`: the text goes to `POST /_dmsync/faults` as it was
/// typed, so a malformed rule gets the admin API's own 400 message.
pub async fn add_fault(State(state): State<ConsoleState>, origin: Origin, posted: Posted<NewRule>) -> Response {
    let body = Bytes::from(posted.form.rule.clone());
    let sent = state
        .graph
        .send(&state.app, &origin, Method::POST, "/_dmsync/faults", As::Admin, Some((body, "application/json")))
        .await;
    match sent {
        Ok(_) => see_other(&format!("{BASE}/control?done=added")),
        Err(failed) => refused(&state, &origin, &posted.session, &posted.form.rule, &failed).await,
    }
}

/// `POST /_dmsync/console/control/faults/{id}/delete`: `DELETE /_dmsync/faults/{id}`.
pub async fn delete_fault(
    State(state): State<ConsoleState>,
    origin: Origin,
    Path(id): Path<String>,
    posted: Posted<NoFields>,
) -> Response {
    let id: String = form_urlencoded::byte_serialize(id.as_bytes()).collect();
    let sent = state.calls(&origin).send_empty(Method::DELETE, &format!("/_dmsync/faults/{id}"), As::Admin).await;
    match sent {
        Ok(_) => see_other(&format!("{BASE}/control?done=deleted")),
        Err(failed) => refused(&state, &origin, &posted.session, EXAMPLE_RULE, &failed).await,
    }
}

/// `POST /_dmsync/console/control/faults/clear`: `DELETE /_dmsync/faults`.
pub async fn clear_faults(State(state): State<ConsoleState>, origin: Origin, posted: Posted<NoFields>) -> Response {
    match state.calls(&origin).send_empty(Method::DELETE, "/_dmsync/faults", As::Admin).await {
        Ok(_) => see_other(&format!("{BASE}/control?done=cleared")),
        Err(failed) => refused(&state, &origin, &posted.session, EXAMPLE_RULE, &failed).await,
    }
}

#[derive(Deserialize)]
pub struct Mode {
    mode: String,
}

/// `POST /_dmsync/console/control/throttling`: `PUT /_dmsync/throttling` with the mode.
pub async fn switch_throttling(State(state): State<ConsoleState>, origin: Origin, posted: Posted<Mode>) -> Response {
    let mode = if posted.form.mode == "documented" { "documented" } else { "off" };
    let sent =
        state.calls(&origin).admin_send(Method::PUT, "/_dmsync/throttling", &serde_json::json!({ "mode": mode })).await;
    match sent {
        Ok(_) => see_other(&format!("{BASE}/control?done={mode}")),
        Err(failed) => refused(&state, &origin, &posted.session, EXAMPLE_RULE, &failed).await,
    }
}
