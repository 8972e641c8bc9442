//! The console's page shell (header, navigation, notices) and the small pieces every page uses.
//! Every value reaches the HTML through maud, which escapes it.

use axum::http::StatusCode;
use axum::response::Response;
use dmsync_core::TenantId;
use maud::{DOCTYPE, Markup, html};
use time::OffsetDateTime;

use super::client::Failed;
use super::session::Session;
use super::{BASE, assets, html};

/// Where a page sits in the navigation.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Section {
    Tenants,
    Devices,
    Import,
    Profiles,
    Connectors,
    Clock,
    Requests,
    Control,
}

/// The tenant a page is about, for the navigation's links, and the others it can switch to.
#[derive(Clone, Debug)]
pub struct TenantNav {
    pub id: TenantId,
    pub domain: String,
    /// Every tenant (this one included) by domain, for the switcher.
    pub all: Vec<(TenantId, String)>,
}

impl Section {
    /// The path below a tenant that shows this section, for the sections that are a tenant's.
    fn tenant_page(self) -> Option<&'static str> {
        match self {
            Section::Devices => Some("autopilot/devices"),
            Section::Import => Some("autopilot/import"),
            Section::Profiles => Some("profiles"),
            Section::Connectors => Some("connectors"),
            _ => None,
        }
    }
}

/// A message above a page's content.
#[derive(Clone, Debug)]
pub enum Notice {
    Success(String),
    Info(String),
    Error(String),
}

impl Notice {
    fn render(&self) -> Markup {
        let (class, role, text) = match self {
            Notice::Success(text) => ("notice success", "status", text),
            Notice::Info(text) => ("notice info", "status", text),
            Notice::Error(text) => ("notice error", "alert", text),
        };
        html! { div class=(class) role=(role) { (text) } }
    }
}

/// A page's shell: what differs between pages besides their content.
pub struct Shell<'a> {
    pub title: &'a str,
    pub session: &'a Session,
    pub section: Section,
    pub tenant: Option<&'a TenantNav>,
}

/// The path of a tenant's page in the console, such as `tenant_path(t, "autopilot/devices")`.
pub fn tenant_path(tenant: TenantId, rest: &str) -> String {
    format!("{BASE}/tenants/{tenant}/{rest}")
}

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · dmsync console" }
            // No favicon request: it would reach the Graph routes and show in the journal.
            link rel="icon" href="data:,";
            link rel="stylesheet" href=(assets::stylesheet_path());
            script src=(assets::script_path()) defer {}
        }
    }
}

fn nav_link(href: &str, label: &str, current: bool) -> Markup {
    html! {
        @if current {
            a href=(href) aria-current="page" { (label) }
        } @else {
            a href=(href) { (label) }
        }
    }
}

/// A whole page for a signed-in browser.
pub fn page(status: StatusCode, shell: Shell<'_>, notice: Option<Notice>, content: Markup) -> Response {
    let tenant_links: &[(Section, &str, &str)] = &[
        (Section::Devices, "autopilot/devices", "Autopilot devices"),
        (Section::Import, "autopilot/import", "Import"),
        (Section::Profiles, "profiles", "Deployment profiles"),
        (Section::Connectors, "connectors", "Exchange connectors"),
    ];
    let server_links: &[(Section, &str, &str)] = &[
        (Section::Tenants, "tenants", "Tenants"),
        (Section::Clock, "clock", "Clock"),
        (Section::Requests, "requests", "Requests"),
        (Section::Control, "control", "Faults and throttling"),
    ];
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            (head(shell.title))
            body data-csrf=(shell.session.csrf()) {
                a class="skip" href="#main" { "Skip to content" }
                header class="bar" {
                    a class="brand" href={ (BASE) "/tenants" } { "dmsync" }
                    nav aria-label="Server" {
                        @for (section, path, label) in server_links {
                            (nav_link(&format!("{BASE}/{path}"), label, shell.section == *section))
                        }
                    }
                    form method="post" action={ (BASE) "/logout" } class="signout" {
                        input type="hidden" name="csrf" value=(shell.session.csrf());
                        button type="submit" class="link" { "Sign out" }
                    }
                }
                @if let Some(tenant) = shell.tenant {
                    nav class="tenant" aria-label="Tenant" {
                        form method="get" action={ (BASE) "/switch" } class="switch" {
                            label for="tenant-switch" class="visually-hidden" { "Tenant" }
                            select id="tenant-switch" name="tenant" data-autosubmit {
                                @for (id, domain) in &tenant.all {
                                    option value=(id) selected[*id == tenant.id] { (domain) }
                                }
                            }
                            input type="hidden" name="to" value=(shell.section.tenant_page().unwrap_or("autopilot/devices"));
                            noscript { button type="submit" class="secondary" { "Switch" } }
                        }
                        @for (section, path, label) in tenant_links {
                            (nav_link(&tenant_path(tenant.id, path), label, shell.section == *section))
                        }
                    }
                }
                main id="main" tabindex="-1" {
                    h1 { (shell.title) }
                    @if let Some(notice) = &notice { (notice.render()) }
                    (content)
                }
            }
        }
    };
    html(status, markup)
}

/// A page before sign-in (the sign-in form), without navigation.
pub fn signed_out_page(status: StatusCode, title: &str, notice: Option<Notice>, content: Markup) -> Response {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body class="signed-out" {
                main id="main" {
                    p class="brand" { "dmsync console" }
                    h1 { (title) }
                    @if let Some(notice) = &notice { (notice.render()) }
                    (content)
                }
            }
        }
    };
    html(status, markup)
}

/// A page that is only a notice (refusals, a missing page).
pub fn bare_page(status: StatusCode, title: &str, notice: Notice) -> Response {
    signed_out_page(status, title, Some(notice), html! { p { a href={ (BASE) "/tenants" } { "Back to the console" } } })
}

pub fn not_found() -> Response {
    bare_page(StatusCode::NOT_FOUND, "Not found", Notice::Error("The console has no such page.".into()))
}

/// A table's honest empty state: what is missing, and what would fill it.
pub fn empty(what: &str, hint: Markup) -> Markup {
    html! { div class="empty" { p { strong { (what) } } p { (hint) } } }
}

/// A time as the admin center shows it (UTC, to the second), in a `<time>` the script can
/// turn into "3 min ago".
pub fn when(time: Option<OffsetDateTime>) -> Markup {
    match time.filter(|t| t.year() > 1) {
        None => html! { span class="muted" { "never" } },
        Some(t) => {
            let iso = t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
            let shown = format!(
                "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            );
            html! { time datetime=(iso) { (shown) } }
        }
    }
}

/// A status as a badge whose class names the value, so the stylesheet can colour it.
pub fn badge(value: &str) -> Markup {
    let class = format!("badge status-{}", value.chars().filter(char::is_ascii_alphanumeric).collect::<String>());
    html! { span class=(class) { (value) } }
}

/// The hidden CSRF field every form that changes something carries.
pub fn csrf_field(session: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(session.csrf()); }
}

/// A Graph timestamp as the console shows it; Graph's "never" (`0001-01-01`) reads as never.
pub fn graph_time(text: Option<&str>) -> Markup {
    when(parse_graph_time(text))
}

/// A Graph timestamp read back; the year-1 "never" of Graph's defaults reads as none.
pub fn parse_graph_time(text: Option<&str>) -> Option<OffsetDateTime> {
    text.and_then(|t| OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok())
        .filter(|t| t.year() > 1)
}

/// A notice as an error alert inside a page's content, for a region whose call failed.
pub fn failed_alert(failed: &Failed) -> Markup {
    html! {
        div class="notice error" role="alert" {
            (failed.sentence())
            @if let Some(seconds) = failed.retry_after { " Retry after " (seconds) " s." }
        }
    }
}
