//! The Clock page: dmsync's time and its offset from the wall clock, and the control that moves
//! it forward (`GET /_dmsync/clock`, `POST /_dmsync/clock/advance`).

use axum::extract::{Query, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use maud::html;
use serde::Deserialize;

use super::client::{Failed, Origin};
use super::layout::{self, Notice, Section, Shell};
use super::session::{Posted, Session};
use super::{BASE, ConsoleState, see_other};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ClockDocument {
    now: String,
    offset_seconds: f64,
}

/// The quick steps the page offers, as the tests and the sync's cooldown need them.
const STEPS: &[(&str, u64)] = &[("1 minute", 60), ("10 minutes", 600), ("1 hour", 3600), ("1 day", 86_400)];

/// An offset as words: "2 h 10 min 5 s".
fn offset_words(seconds: f64) -> String {
    let total = seconds.max(0.0).round() as u64;
    let (days, hours, minutes, secs) = (total / 86_400, total / 3600 % 24, total / 60 % 60, total % 60);
    let parts: Vec<String> = [(days, "d"), (hours, "h"), (minutes, "min"), (secs, "s")]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n} {unit}"))
        .collect();
    if parts.is_empty() { "none".into() } else { parts.join(" ") }
}

fn render(
    session: &Session,
    clock: Result<ClockDocument, Failed>,
    notice: Option<Notice>,
    status: StatusCode,
) -> Response {
    let content = html! {
        @match &clock {
            Err(failed) => div class="notice error" role="alert" { (failed.sentence()) },
            Ok(clock) => section class="card" id="clock" data-refresh="5000" aria-live="polite" {
                dl class="props" {
                    dt { "dmsync's time" } dd id="clock-now" class="mono" { (clock.now) }
                    dt { "Ahead of the wall clock by" } dd id="clock-offset" { (offset_words(clock.offset_seconds)) }
                }
            },
        }
        section class="card" aria-labelledby="advance-heading" {
            h2 id="advance-heading" { "Advance the Clock" }
            p class="hint" {
                "Time only moves forward. Jobs, sync cooldowns, pending assignments and token lifetimes all follow it."
            }
            div class="toolbar" {
                @for (label, seconds) in STEPS {
                    form method="post" class="inline" {
                        (layout::csrf_field(session))
                        input type="hidden" name="seconds" value=(seconds);
                        button type="submit" class="secondary" { "+ " (label) }
                    }
                }
            }
            form method="post" class="toolbar" {
                (layout::csrf_field(session))
                label { "Seconds" input name="seconds" type="number" min="0" step="any" required; }
                button type="submit" { "Advance" }
            }
        }
    };
    let shell = Shell { title: "Clock", session, section: Section::Clock, tenant: None };
    layout::page(status, shell, notice, content)
}

#[derive(Deserialize)]
pub struct Advanced {
    advanced: Option<u64>,
}

/// `GET /_dmsync/console/clock`.
pub async fn show_clock(
    State(state): State<ConsoleState>,
    session: Session,
    origin: Origin,
    Query(query): Query<Advanced>,
) -> Response {
    let clock = state.calls(&origin).admin_get("/_dmsync/clock").await;
    let notice = query.advanced.map(|s| Notice::Success(format!("Advanced the Clock by {}.", offset_words(s as f64))));
    render(&session, clock, notice, StatusCode::OK)
}

#[derive(Deserialize)]
pub struct Advance {
    seconds: String,
}

/// `POST /_dmsync/console/clock`: `POST /_dmsync/clock/advance`.
pub async fn advance_clock(State(state): State<ConsoleState>, origin: Origin, posted: Posted<Advance>) -> Response {
    let calls = state.calls(&origin);
    let seconds = posted.form.seconds.trim().parse::<f64>();
    let result = match seconds {
        Ok(seconds) => calls
            .admin_send(Method::POST, "/_dmsync/clock/advance", &serde_json::json!({ "seconds": seconds }))
            .await
            .map(|_| seconds)
            .map_err(|failed| failed.sentence()),
        Err(_) => Err("Seconds must be a number.".to_owned()),
    };
    match result {
        Ok(seconds) => see_other(&format!("{BASE}/clock?advanced={}", seconds.round() as u64)),
        Err(message) => {
            let clock = calls.admin_get("/_dmsync/clock").await;
            render(&posted.session, clock, Some(Notice::Error(message)), StatusCode::BAD_REQUEST)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::offset_words;

    #[test]
    fn an_offset_reads_as_words() {
        assert_eq!(offset_words(0.0), "none");
        assert_eq!(offset_words(7805.4), "2 h 10 min 5 s");
        assert_eq!(offset_words(90_061.0), "1 d 1 h 1 min 1 s");
    }
}
