//! The one place dmsync writes the HTML pages of its identity provider: the authorize endpoint's
//! sign-in and error pages, the device code verification page, and the `form_post` page that
//! carries an answer to a redirect URI. A [`Page`] says what differs between them; the layout,
//! the escaping and the security headers are the same for every one.
//!
//! Every page loads nothing from elsewhere. Its Content-Security-Policy allows the one inline
//! stylesheet and (on the `form_post` page only) the one inline script, each by its hash, and
//! forms posted back to dmsync or to the redirect URI the page answers; the page cannot be
//! framed or cached.

use std::sync::LazyLock;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

use crate::http::context::ForeignErrorBody;

/// One visible field of a page's form.
pub struct Input<'a> {
    pub name: &'a str,
    pub label: &'a str,
    /// The input's `type`.
    pub kind: &'a str,
    pub value: &'a str,
    pub autocomplete: &'a str,
}

/// A second submit button, such as Cancel: it posts `name=value` with the form and skips the
/// browser's checks of the fields, since cancelling needs no password.
pub struct SecondButton<'a> {
    pub label: &'a str,
    pub name: &'a str,
    pub value: &'a str,
}

/// A page's form: it posts to `action` (on dmsync), with hidden fields and visible inputs.
pub struct PageForm<'a> {
    pub action: &'a str,
    pub hidden: &'a [(&'a str, &'a str)],
    pub inputs: &'a [Input<'a>],
    pub submit: &'a str,
    pub second_button: Option<SecondButton<'a>>,
}

/// What differs between dmsync's pages: the authorize sign-in page, its error page, and the
/// device code verification page with its user code field, its Cancel button and its closing
/// words.
pub struct Page<'a> {
    pub title: &'a str,
    pub heading: &'a str,
    /// A paragraph under the heading: what to do, or what happened.
    pub text: Option<&'a str>,
    /// An error shown above the form, such as Entra's `AADSTS…` text.
    pub error: Option<&'a str>,
    pub form: Option<PageForm<'a>>,
    /// The origin of the redirect URI the form's answer sends the browser to: the page's
    /// `form-action` must allow it, since browsers check it on the redirect after the post.
    pub redirect_origin: Option<String>,
}

const STYLESHEET: &str = "body{font-family:'Segoe UI',system-ui,sans-serif;background:#f2f2f2;margin:0}\
main{max-width:440px;margin:10vh auto;background:#fff;padding:44px;box-shadow:0 2px 6px rgba(0,0,0,.2)}\
h1{font-size:24px;font-weight:600;margin:0 0 16px}label{display:block;margin-top:12px;font-size:15px}\
input[type=email],input[type=password],input[type=text]{width:100%;box-sizing:border-box;padding:6px 0;border:0;\
border-bottom:1px solid #666;font-size:15px}button{margin-top:24px;margin-right:8px;background:#0067b8;color:#fff;\
border:0;padding:8px 32px;font-size:15px}button.second{background:#e6e6e6;color:#000}\
.error{color:#e81123;font-size:14px;overflow-wrap:anywhere}.brand{font-size:13px;color:#666;margin-bottom:16px}";

const AUTO_SUBMIT: &str = "document.forms[0].submit();";

/// `'sha256-…'` CSP sources of the one inline stylesheet and the one inline script: nothing
/// else inline can run or apply.
static STYLE_SOURCE: LazyLock<String> = LazyLock::new(|| csp_hash(STYLESHEET));
static SCRIPT_SOURCE: LazyLock<String> = LazyLock::new(|| csp_hash(AUTO_SUBMIT));

fn csp_hash(text: &str) -> String {
    format!("'sha256-{}'", STANDARD.encode(Sha256::digest(text.as_bytes())))
}

/// Escapes text for HTML content and double-quoted attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// An HTML page with the headers every dmsync page has: no framing, no caching, and a
/// Content-Security-Policy that allows the inline stylesheet, the auto-submit script and posts
/// to `form_action` only.
fn html_response(status: StatusCode, body: String, form_action: &str, script: bool) -> Response {
    let script_src = if script { SCRIPT_SOURCE.as_str() } else { "'none'" };
    let csp = format!(
        "default-src 'none'; style-src {}; script-src {script_src}; img-src 'none'; form-action {form_action}; frame-ancestors 'none'; base-uri 'none'",
        STYLE_SOURCE.as_str()
    );
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store, no-cache"));
    if let Ok(value) = HeaderValue::from_str(&csp) {
        headers.insert(header::CONTENT_SECURITY_POLICY, value);
    }
    // The page speaks to a person, not in Graph's error body.
    response.extensions_mut().insert(ForeignErrorBody);
    response
}

/// Renders a page with `status`, every value escaped.
pub fn render_page(status: StatusCode, page: &Page<'_>) -> Response {
    let mut html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"referrer\" content=\"no-referrer\"><title>{}</title><style>{STYLESHEET}</style></head>\
         <body><main><div class=\"brand\">dmsync · Microsoft Entra ID emulator</div><h1>{}</h1>",
        escape(page.title),
        escape(page.heading)
    );
    if let Some(text) = page.text {
        html.push_str(&format!("<p>{}</p>", escape(text)));
    }
    if let Some(error) = page.error {
        html.push_str(&format!("<p class=\"error\" id=\"error\" role=\"alert\">{}</p>", escape(error)));
    }
    if let Some(form) = &page.form {
        html.push_str(&format!("<form method=\"post\" action=\"{}\">", escape(form.action)));
        for (name, value) in form.hidden {
            html.push_str(&format!("<input type=\"hidden\" name=\"{}\" value=\"{}\">", escape(name), escape(value)));
        }
        // The first empty field takes the focus: the password when the user name is prefilled.
        let focus = form.inputs.iter().position(|input| input.value.is_empty());
        for (i, input) in form.inputs.iter().enumerate() {
            let autofocus = if focus == Some(i) { " autofocus" } else { "" };
            html.push_str(&format!(
                "<label for=\"{name}\">{label}</label><input id=\"{name}\" name=\"{name}\" type=\"{kind}\" value=\"{value}\" autocomplete=\"{autocomplete}\" required{autofocus}>",
                name = escape(input.name),
                label = escape(input.label),
                kind = escape(input.kind),
                value = escape(input.value),
                autocomplete = escape(input.autocomplete),
            ));
        }
        html.push_str(&format!("<div><button type=\"submit\" id=\"submit\">{}</button>", escape(form.submit)));
        if let Some(button) = &form.second_button {
            html.push_str(&format!(
                "<button type=\"submit\" class=\"second\" name=\"{}\" value=\"{}\" formnovalidate>{}</button>",
                escape(button.name),
                escape(button.value),
                escape(button.label)
            ));
        }
        html.push_str("</div></form>");
    }
    html.push_str("</main></body></html>\n");
    let form_action = match &page.redirect_origin {
        Some(origin) => format!("'self' {origin}"),
        None => "'self'".to_owned(),
    };
    html_response(status, html, &form_action, false)
}

/// `response_mode=form_post`: a page whose form posts `fields` to `redirect_uri` as soon as it
/// loads (with a button for a browser without scripts). `redirect_origin` is the redirect URI's
/// origin as a CSP source; without one the form may post nowhere.
pub fn form_post_page(redirect_uri: &str, redirect_origin: Option<String>, fields: &[(&str, String)]) -> Response {
    let mut html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Working...</title>\
         <style>{STYLESHEET}</style></head><body><main><form method=\"post\" action=\"{}\">",
        escape(redirect_uri)
    );
    for (name, value) in fields {
        html.push_str(&format!("<input type=\"hidden\" name=\"{}\" value=\"{}\">", escape(name), escape(value)));
    }
    html.push_str(&format!(
        "<noscript><p>Script is disabled. Click Submit to continue.</p><button type=\"submit\">Submit</button></noscript>\
         </form><script>{AUTO_SUBMIT}</script></main></body></html>\n"
    ));
    let form_action = redirect_origin.unwrap_or_else(|| "'none'".to_owned());
    html_response(StatusCode::OK, html, &form_action, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body_of(response: Response) -> String {
        let body = futures::executor::block_on(axum::body::to_bytes(response.into_body(), 1 << 20)).unwrap();
        String::from_utf8(body.to_vec()).unwrap()
    }

    #[test]
    fn pages_escape_everything_they_show() {
        let hidden = [("state", "\"><script>alert(1)</script>")];
        let inputs = [Input { name: "login", label: "L", kind: "email", value: "<b>&", autocomplete: "username" }];
        let second_button = Some(SecondButton { label: "<i>", name: "action", value: "\"cancel" });
        let page = Page {
            title: "t",
            heading: "h",
            text: Some("a<b"),
            error: Some("<img src=x onerror=alert(1)>"),
            form: Some(PageForm { action: "/x", hidden: &hidden, inputs: &inputs, submit: "s", second_button }),
            redirect_origin: Some("http://localhost:1".into()),
        };
        let response = render_page(StatusCode::BAD_REQUEST, &page);
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let csp = response.headers()[header::CONTENT_SECURITY_POLICY].to_str().unwrap().to_owned();
        assert!(csp.starts_with("default-src 'none'"), "{csp}");
        assert!(csp.contains("form-action 'self' http://localhost:1") && csp.contains("script-src 'none'"), "{csp}");
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert_eq!(response.headers()[header::X_FRAME_OPTIONS], "DENY");
        assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store, no-cache");
        let body = body_of(response);
        assert!(!body.contains("<script>") && !body.contains("<img") && !body.contains("<b>"), "{body}");
        assert!(!body.contains("<i>") && !body.contains("\"cancel"), "{body}");
        assert!(body.contains("&quot;&gt;&lt;script&gt;") && body.contains("a&lt;b"), "{body}");
    }

    #[test]
    fn only_the_form_post_page_runs_its_one_script() {
        let response =
            form_post_page("http://localhost:1/", Some("http://localhost:1".into()), &[("code", "c".into())]);
        let csp = response.headers()[header::CONTENT_SECURITY_POLICY].to_str().unwrap().to_owned();
        assert!(csp.contains(&format!("script-src {}", SCRIPT_SOURCE.as_str())), "{csp}");
        assert!(csp.contains("form-action http://localhost:1;"), "{csp}");
        let response = form_post_page("x", None, &[]);
        let csp = response.headers()[header::CONTENT_SECURITY_POLICY].to_str().unwrap().to_owned();
        assert!(csp.contains("form-action 'none'"), "{csp}");
    }
}
