//! The web console's gate, from outside as a browser meets it: signing in with the admin token,
//! the session cookie's attributes over plain HTTP, CSRF on changes, the admin API's `Host` and
//! `Origin` checks, and sessions that end when the admin token changes. The pages themselves are
//! driven in a real browser by tests/compat/js/test/console*.test.js.

use reqwest::StatusCode;
use reqwest::header::{COOKIE, HOST, LOCATION, ORIGIN, SET_COOKIE};

use crate::helpers::*;

const CONSOLE: &str = "/_dmsync/console";

/// A client that shows redirects instead of following them, as the assertions need.
fn browser() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// Signs in with `token`; the response as it came.
async fn sign_in(app: &TestApp, token: &str) -> reqwest::Response {
    browser()
        .post(format!("{}{CONSOLE}/login", app.base_url))
        .form(&[("token", token), ("next", "/_dmsync/console/clock")])
        .send()
        .await
        .unwrap()
}

/// The `name=value` of the session cookie a sign-in set.
fn session_cookie(response: &reqwest::Response) -> String {
    let set = response.headers().get(SET_COOKIE).expect("a session cookie").to_str().unwrap();
    set.split(';').next().unwrap().to_owned()
}

/// The CSRF token a signed-in page carries on its body.
async fn csrf(app: &TestApp, cookie: &str) -> String {
    let page = browser().get(format!("{}{CONSOLE}/clock", app.base_url)).header(COOKIE, cookie).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    let start = html.find("data-csrf=\"").expect("the page carries its CSRF token") + "data-csrf=\"".len();
    html[start..start + html[start..].find('"').unwrap()].to_owned()
}

async fn clock_offset(app: &TestApp) -> f64 {
    let (_, clock) = admin(app, reqwest::Method::GET, "/_dmsync/clock", serde_json::Value::Null).await;
    clock["offsetSeconds"].as_f64().unwrap()
}

#[tokio::test]
async fn the_admin_token_signs_in_with_a_strict_http_only_cookie_scoped_to_the_console() {
    let app = spawn_app().await;
    let refused = sign_in(&app, "not-the-token").await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert!(refused.headers().get(SET_COOKIE).is_none());
    assert!(refused.text().await.unwrap().contains("That is not the admin token."));

    let signed_in = sign_in(&app, "dmsync-dev-admin").await;
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
    assert_eq!(signed_in.headers()[LOCATION], "/_dmsync/console/clock");
    let set = signed_in.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    assert!(set.starts_with("dmsync_console="), "{set}");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/_dmsync/console", "Max-Age="] {
        assert!(set.contains(attribute), "{attribute} in {set}");
    }
    // Plain HTTP: a Secure cookie would never come back.
    assert!(!set.contains("Secure"), "{set}");

    // A page without the cookie leads to sign-in; with it, to the page.
    let cookie = session_cookie(&signed_in);
    let url = format!("{}{CONSOLE}/clock", app.base_url);
    let without = browser().get(&url).send().await.unwrap();
    assert_eq!(without.status(), StatusCode::SEE_OTHER);
    assert_eq!(without.headers()[LOCATION], "/_dmsync/console/login?next=%2F_dmsync%2Fconsole%2Fclock");
    let with = browser().get(&url).header(COOKIE, &cookie).send().await.unwrap();
    assert_eq!(with.status(), StatusCode::OK);
    let csp = with.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(with.headers()["x-frame-options"], "DENY");
    assert_eq!(with.headers()["cache-control"], "no-store");

    // An altered cookie is no session.
    let altered = format!("{}x", cookie);
    let refused = browser().get(&url).header(COOKIE, altered).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn a_change_needs_the_sessions_csrf_token_and_this_origin() {
    let app = spawn_app().await;
    let cookie = session_cookie(&sign_in(&app, "dmsync-dev-admin").await);
    let token = csrf(&app, &cookie).await;
    let url = format!("{}{CONSOLE}/clock", app.base_url);
    let before = clock_offset(&app).await;
    for form in [vec![("seconds", "60")], vec![("seconds", "60"), ("csrf", "forged")]] {
        let r = browser().post(&url).header(COOKIE, &cookie).form(&form).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{form:?}");
        assert!(r.text().await.unwrap().contains("CSRF"));
    }
    // Another site's page, even with the token (which it cannot read), is refused.
    let foreign = browser()
        .post(&url)
        .header(COOKIE, &cookie)
        .header(ORIGIN, "https://evil.example")
        .form(&[("seconds", "60"), ("csrf", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), StatusCode::FORBIDDEN);
    // A name the admin API does not answer to (a DNS rebinding page) is refused before sign-in.
    let rebound = browser().get(format!("{}{CONSOLE}/login", app.base_url)).header(HOST, "evil.example").send().await;
    assert_eq!(rebound.unwrap().status(), StatusCode::FORBIDDEN);
    assert_eq!(clock_offset(&app).await, before);

    // The token in the form, or in the header a script sends, is accepted.
    let posted = browser().post(&url).header(COOKIE, &cookie).form(&[("seconds", "60"), ("csrf", &token)]).send();
    assert_eq!(posted.await.unwrap().status(), StatusCode::SEE_OTHER);
    let scripted = browser()
        .post(&url)
        .header(COOKIE, &cookie)
        .header("x-csrf-token", &token)
        .form(&[("seconds", "60")])
        .send()
        .await
        .unwrap();
    assert_eq!(scripted.status(), StatusCode::SEE_OTHER);
    assert_eq!(clock_offset(&app).await, before + 120.0);
    // A bad value is the page again with the error, and changes nothing.
    let bad = browser().post(&url).header(COOKIE, &cookie).form(&[("seconds", "soon"), ("csrf", &token)]).send();
    let bad = bad.await.unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    assert!(bad.text().await.unwrap().contains("Seconds must be a number."));
    assert_eq!(clock_offset(&app).await, before + 120.0);
}

#[tokio::test]
async fn a_session_is_worth_nothing_to_a_server_with_another_admin_token() {
    let first = spawn_app_with(|c| c.admin_token = Some("first-admin-token".into())).await;
    let second = spawn_app_with(|c| c.admin_token = Some("second-admin-token".into())).await;
    assert_eq!(sign_in(&first, "dmsync-dev-admin").await.status(), StatusCode::UNAUTHORIZED);
    let cookie = session_cookie(&sign_in(&first, "first-admin-token").await);
    let page =
        |app: &TestApp| browser().get(format!("{}{CONSOLE}/tenants", app.base_url)).header(COOKIE, &cookie).send();
    assert_eq!(page(&first).await.unwrap().status(), StatusCode::OK);
    assert_eq!(page(&second).await.unwrap().status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn a_browser_at_the_root_is_sent_to_the_console_and_a_client_is_not() {
    let app = spawn_app().await;
    let root = format!("{}/", app.base_url);
    let page = browser().get(&root).header("accept", "text/html,application/xhtml+xml").send().await.unwrap();
    assert_eq!(page.status(), StatusCode::SEE_OTHER);
    assert_eq!(page.headers()[LOCATION], "/_dmsync/console/tenants");
    let sdk = browser().get(&root).header("accept", "application/json").send().await.unwrap();
    assert_ne!(sdk.status(), StatusCode::SEE_OTHER);
    assert!(sdk.headers()["content-type"].to_str().unwrap().contains("json"));
}

/// The text as maud puts it in a page.
fn escaped(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A signed-in browser's cookie and CSRF token.
async fn signed_in(app: &TestApp) -> (String, String) {
    let cookie = session_cookie(&sign_in(app, "dmsync-dev-admin").await);
    let token = csrf(app, &cookie).await;
    (cookie, token)
}

const PROFILES: &str = "/beta/deviceManagement/windowsAutopilotDeploymentProfiles";

#[tokio::test]
async fn assigning_a_profile_needs_the_csrf_token_and_then_creates_the_assignment() {
    let app = spawn_app().await;
    let (cookie, token) = signed_in(&app).await;
    let user = app.user_token().await;
    let (status, profile) = send(
        &app,
        reqwest::Method::POST,
        PROFILES,
        &user,
        Some(serde_json::json!({
            "@odata.type": "#microsoft.graph.azureADWindowsAutopilotDeploymentProfile",
            "displayName": "Sales",
        })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{profile}");
    let id = profile["id"].as_str().unwrap();
    let url = format!("{}{CONSOLE}/tenants/{}/profiles/{id}/assignments", app.base_url, app.tenant());
    let assignments = format!("{PROFILES}/{id}/assignments");

    let forged = browser().post(&url).header(COOKIE, &cookie).form(&[("target", "allDevices")]).send().await.unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.get_json(&assignments, Some(&user)).await["value"], serde_json::json!([]));

    let posted = browser()
        .post(&url)
        .header(COOKIE, &cookie)
        .form(&[("target", "allDevices"), ("mode", "include"), ("csrf", &token)])
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), StatusCode::SEE_OTHER);
    let value = app.get_json(&assignments, Some(&user)).await["value"].clone();
    assert_eq!(value.as_array().unwrap().len(), 1, "{value}");
    assert_eq!(value[0]["target"]["@odata.type"], "#microsoft.graph.allDevicesAssignmentTarget");

    // The profile's page names the assignment.
    let page = browser()
        .get(format!("{}{CONSOLE}/tenants/{}/profiles/{id}", app.base_url, app.tenant()))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("All devices"));

    // Removing it takes the token too, and then the assignment is gone.
    let remove = format!("{url}/remove");
    let assignment_id = value[0]["id"].as_str().unwrap();
    let forged = browser().post(&remove).header(COOKIE, &cookie).form(&[("assignmentId", assignment_id)]).send();
    assert_eq!(forged.await.unwrap().status(), StatusCode::FORBIDDEN);
    assert_eq!(app.get_json(&assignments, Some(&user)).await["value"].as_array().unwrap().len(), 1);
    let removed = browser()
        .post(&remove)
        .header(COOKIE, &cookie)
        .form(&[("assignmentId", assignment_id), ("csrf", &token)])
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.get_json(&assignments, Some(&user)).await["value"], serde_json::json!([]));
}

#[tokio::test]
async fn a_malformed_fault_rule_shows_the_admin_apis_400_message_and_adds_nothing() {
    let app = spawn_app().await;
    let (cookie, token) = signed_in(&app).await;
    let url = format!("{}{CONSOLE}/control/faults", app.base_url);
    for rule in [r#"{"match":{"method":"GET"},"effect":{"status":99}}"#, "{ not json"] {
        let direct = app
            .raw(reqwest::Method::POST, "/_dmsync/faults", Some("dmsync-dev-admin"))
            .header("content-type", "application/json")
            .body(rule)
            .send()
            .await
            .unwrap();
        assert_eq!(direct.status(), StatusCode::BAD_REQUEST, "{rule}");
        let body: serde_json::Value = direct.json().await.unwrap();
        let message = body["error"]["message"].as_str().unwrap().to_owned();

        let page = browser().post(&url).header(COOKIE, &cookie).form(&[("rule", rule), ("csrf", &token)]).send();
        let page = page.await.unwrap();
        assert_eq!(page.status(), StatusCode::BAD_REQUEST, "{rule}");
        let html = page.text().await.unwrap();
        assert!(html.contains(&escaped(&message)), "{message} in {html}");
        // The rule stays in its field, to be corrected.
        assert!(html.contains(&escaped(rule)), "{rule}");
    }
    let (_, rules) = admin(&app, reqwest::Method::GET, "/_dmsync/faults", serde_json::Value::Null).await;
    assert_eq!(rules["value"], serde_json::json!([]));
}

#[tokio::test]
async fn the_consoles_own_calls_do_not_appear_in_the_journal() {
    let app = spawn_app().await;
    let (cookie, token) = signed_in(&app).await;
    let (status, _) = admin(&app, reqwest::Method::DELETE, "/_dmsync/requests", serde_json::Value::Null).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let tenant = app.tenant();
    for page in [
        format!("/tenants/{tenant}/profiles"),
        format!("/tenants/{tenant}/connectors"),
        "/requests".to_owned(),
        "/control".to_owned(),
    ] {
        let r = browser().get(format!("{}{CONSOLE}{page}", app.base_url)).header(COOKIE, &cookie).send().await;
        assert_eq!(r.unwrap().status(), StatusCode::OK, "{page}");
    }
    let created = browser()
        .post(format!("{}{CONSOLE}/tenants/{tenant}/profiles", app.base_url))
        .header(COOKIE, &cookie)
        .form(&[("displayName", "From the console"), ("kind", "azureAD"), ("csrf", &token)])
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::SEE_OTHER);
    let (_, journal) = admin(&app, reqwest::Method::GET, "/_dmsync/requests", serde_json::Value::Null).await;
    assert_eq!(journal["value"], serde_json::json!([]), "{journal}");

    // A client's request is journalled, and the journal page shows it.
    let user = app.user_token().await;
    app.get_json(PROFILES, Some(&user)).await;
    let page = browser()
        .get(format!("{}{CONSOLE}/requests?method=GET", app.base_url))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    let html = page.text().await.unwrap();
    assert!(html.contains(PROFILES), "{html}");
    assert!(html.contains("From the console"), "the list's answer body is in its entry");
}

fn autopilot_page(app: &TestApp, rest: &str) -> String {
    format!("{}{CONSOLE}/tenants/{}/autopilot/{rest}", app.base_url, app.tenant())
}

async fn imported_count(app: &TestApp) -> usize {
    let token = app.app_token().await;
    let list = app.get_json("/beta/deviceManagement/importedWindowsAutopilotDeviceIdentities", Some(&token)).await;
    list["value"].as_array().unwrap().len()
}

#[tokio::test]
async fn an_upload_with_a_bad_row_imports_nothing_and_names_each_bad_line() {
    let app = spawn_app().await;
    let (cookie, token) = signed_in(&app).await;
    let good = hardware_hash("good");
    let csv = format!(
        "Device Serial Number,Windows Product ID,Hardware Hash\nSN-1,,{good}\n,,{good}\nSN-3,,not*base64\nSN-4,,{good}\n"
    );
    // Without the CSRF header, the upload is refused before the file is read.
    let forged = browser().post(autopilot_page(&app, "import")).header(COOKIE, &cookie).body(csv.clone()).send();
    assert_eq!(forged.await.unwrap().status(), StatusCode::FORBIDDEN);

    let refused = browser()
        .post(autopilot_page(&app, "import"))
        .header(COOKIE, &cookie)
        .header("x-csrf-token", &token)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let page = refused.text().await.unwrap();
    assert!(page.contains("Nothing was imported: 2 rows cannot be read."), "{page}");
    for line in ["<td class=\"mono\">3</td>", "<td class=\"mono\">4</td>"] {
        assert!(page.contains(line), "{line} in {page}");
    }
    assert_eq!(imported_count(&app).await, 0);

    // The same file fixed imports every row, and leads to the progress of its import.
    let fixed =
        format!("Device Serial Number,Windows Product ID,Hardware Hash\nSN-1,,{good}\nSN-4,,{}\n", hardware_hash("4"));
    let accepted = browser()
        .post(autopilot_page(&app, "import"))
        .header(COOKIE, &cookie)
        .header("x-csrf-token", &token)
        .body(fixed)
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), StatusCode::SEE_OTHER);
    let location = accepted.headers()[LOCATION].to_str().unwrap().to_owned();
    assert!(location.contains("/autopilot/import/progress?ids="), "{location}");
    assert_eq!(imported_count(&app).await, 2);
    let progress = browser().get(format!("{}{location}", app.base_url)).header(COOKIE, &cookie).send().await.unwrap();
    let progress = progress.text().await.unwrap();
    assert!(progress.contains("of 2 rows processed"), "{progress}");

    // Without script, the file's text is posted in a form, with the CSRF field.
    let text = format!("Device Serial Number,Hardware Hash\nSN-5,{}\n", hardware_hash("5"));
    let pasted = browser()
        .post(autopilot_page(&app, "import/paste"))
        .header(COOKIE, &cookie)
        .form(&[("csv", text.as_str()), ("csrf", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(pasted.status(), StatusCode::SEE_OTHER);
    assert_eq!(imported_count(&app).await, 3);
}

#[tokio::test]
async fn the_sync_button_syncs_as_the_console_user_and_says_409_and_429() {
    let app = spawn_app().await;
    let (cookie, token) = signed_in(&app).await;
    let sync = |form: Vec<(&'static str, String)>| {
        browser().post(autopilot_page(&app, "sync")).header(COOKIE, &cookie).form(&form).send()
    };
    assert_eq!(sync(vec![]).await.unwrap().status(), StatusCode::FORBIDDEN);

    // The default permission profile refuses the sync to applications; the console's delegated
    // user is allowed it.
    let started = sync(vec![("csrf", token.clone())]).await.unwrap();
    assert_eq!(started.status(), StatusCode::SEE_OTHER);
    assert!(started.headers()[LOCATION].to_str().unwrap().ends_with("/autopilot/devices?sync=started"));
    let again = sync(vec![("csrf", token.clone())]).await.unwrap();
    assert!(again.headers()[LOCATION].to_str().unwrap().ends_with("?sync=inProgress"));

    let page = browser().get(autopilot_page(&app, "devices?sync=inProgress")).header(COOKIE, &cookie).send();
    let page = page.await.unwrap().text().await.unwrap();
    assert!(page.contains("status-inProgress") && page.contains("data-refresh="), "{page}");
    assert!(page.contains("409 Conflict"), "{page}");

    admin(&app, reqwest::Method::POST, "/_dmsync/clock/advance", serde_json::json!({ "seconds": 60 })).await;
    let client = app.user_client().await;
    app.wait_for_sync_status(&client, "completed", std::time::Duration::from_secs(10)).await;
    let cooling = sync(vec![("csrf", token.clone())]).await.unwrap();
    assert!(cooling.headers()[LOCATION].to_str().unwrap().contains("?sync=cooldown"));
    let page = browser().get(autopilot_page(&app, "devices?sync=cooldown")).header(COOKIE, &cookie).send();
    let page = page.await.unwrap().text().await.unwrap();
    assert!(page.contains("429 Too Many Requests") && page.contains("data-countdown="), "{page}");
    assert!(page.contains("status-completed") && !page.contains("data-refresh="), "{page}");
}

#[tokio::test]
async fn the_device_list_filters_by_serial_and_group_tag_and_pages_by_skiptoken() {
    let serials: Vec<String> = (0..60).map(|i| format!("PAGE-{i:03}")).collect();
    let refs: Vec<&str> = serials.iter().map(String::as_str).collect();
    let app = synced_app(&refs).await;
    let (cookie, _) = signed_in(&app).await;
    let get = |rest: String| {
        let cookie = cookie.clone();
        let url = autopilot_page(&app, &rest);
        async move { browser().get(url).header(COOKIE, cookie).send().await.unwrap().text().await.unwrap() }
    };
    let first = get("devices".into()).await;
    assert!(first.contains("60 devices"), "{first}");
    let start = first.find("skiptoken=").expect("a next page link") + "skiptoken=".len();
    let token = &first[start..start + first[start..].find('"').unwrap()];
    let second = get(format!("devices?skiptoken={token}")).await;
    assert_eq!(second.matches("<tr>").count() - 1, 10, "the second page has the last 10 rows");

    let one = get("devices?serial=page-007".into()).await;
    assert!(one.contains(">PAGE-007<") && one.contains("1 device matches"), "{one}");
    let none = get("devices?groupTag=Nobody".into()).await;
    assert!(none.contains("No device matches these filters."), "{none}");
}

/// The device detail page lists the device's groups from `devices/{id}/memberOf`, with their
/// kind, and says so when the device is in none.
#[tokio::test]
async fn the_device_page_lists_the_devices_groups() {
    let app = synced_app(&["GRP-1", "GRP-2"]).await;
    let (cookie, _) = signed_in(&app).await;
    let token = app.app_token().await;
    let identities = app.get_json("/beta/deviceManagement/windowsAutopilotDeviceIdentities", Some(&token)).await;
    let autopilot_id = |serial: &str| {
        let found = identities["value"].as_array().unwrap().iter().find(|d| d["serialNumber"] == serial).unwrap();
        found["id"].as_str().unwrap().to_owned()
    };
    let entra = app.get_json("/v1.0/devices?$filter=displayName eq 'GRP-1'", Some(&token)).await;
    let object = entra["value"][0]["id"].as_str().unwrap().to_owned();
    let group = serde_json::json!({
        "displayName": "Kiosk devices", "mailEnabled": false, "mailNickname": "kiosk", "securityEnabled": true,
        "members@odata.bind": [format!("https://graph.microsoft.com/v1.0/directoryObjects/{object}")],
    });
    let (status, created) = send_with(&app, reqwest::Method::POST, "/v1.0/groups", &token, false, Some(group)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");

    let get = |serial: &str| {
        let url = autopilot_page(&app, &format!("devices/{}", autopilot_id(serial)));
        let cookie = cookie.clone();
        async move { browser().get(url).header(COOKIE, cookie).send().await.unwrap().text().await.unwrap() }
    };
    let page = get("GRP-1").await;
    let groups = &page[page.find("id=\"device-groups\"").expect("the groups")..];
    assert!(groups.contains("Kiosk devices") && groups.contains("Assigned"), "{groups}");
    let page = get("GRP-2").await;
    assert!(page.contains("This device is in no group."), "{page}");
}

#[tokio::test]
async fn an_upload_past_the_size_bound_is_refused_and_the_server_keeps_serving() {
    let app = spawn_app().await;
    let (cookie, token) = signed_in(&app).await;
    // Just past the CSV bound: the page says why and nothing is imported.
    let just_over = vec![b'a'; 8 * 1024 * 1024 + 1];
    let refused = browser()
        .post(autopilot_page(&app, "import"))
        .header(COOKIE, &cookie)
        .header("x-csrf-token", &token)
        .header("content-type", "text/csv")
        .body(just_over)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert!(refused.text().await.unwrap().contains("larger than 8 MiB"));
    // Far past it: the body limit answers before the body is read whole.
    let far_over = vec![b'a'; 16 * 1024 * 1024];
    let cut = browser()
        .post(autopilot_page(&app, "import"))
        .header(COOKIE, &cookie)
        .header("x-csrf-token", &token)
        .header("content-type", "text/csv")
        .body(far_over)
        .send()
        .await;
    if let Ok(cut) = cut {
        assert_eq!(cut.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }
    assert_eq!(imported_count(&app).await, 0);
    let page = browser().get(autopilot_page(&app, "devices")).header(COOKIE, &cookie).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
}
