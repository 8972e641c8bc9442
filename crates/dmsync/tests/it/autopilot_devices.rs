//! Registrations become device identities on sync; the devices list is keyset-paged with an
//! absolute nextLink, and each version shows its own properties.

use std::collections::HashSet;
use std::time::Duration;

use dmsync_graph::ApiVersion;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

async fn synced_app(serials: &[&str]) -> TestApp {
    let app = spawn_app_with(|c| c.sync_duration = time::Duration::ZERO).await;
    let rows: Vec<_> = serials.iter().map(|s| registration(s)).collect();
    let summary = app.admin.add_registrations(&app.tenant(), &rows).await.unwrap();
    assert_eq!(summary.created, serials.len() as u64);
    let client = app.user_client().await;
    client.sync_windows_autopilot_settings().await.unwrap();
    app.wait_for_sync_status(&client, "completed", Duration::from_secs(10)).await;
    app
}

#[tokio::test]
async fn a_sync_turns_registrations_into_devices_with_graphs_shape() {
    let app = synced_app(&["SN-1"]).await;
    let token = app.user_token().await;
    let list: Value = app.get_json("/v1.0/deviceManagement/windowsAutopilotDeviceIdentities", Some(&token)).await;
    assert_eq!(
        list["@odata.context"],
        "https://graph.microsoft.com/v1.0/$metadata#deviceManagement/windowsAutopilotDeviceIdentities"
    );
    assert!(list.get("@odata.nextLink").is_none());
    let device = &list["value"][0];
    assert_eq!(device["serialNumber"], "SN-1");
    assert_eq!(device["manufacturer"], "Contoso");
    assert_eq!(device["groupTag"], "", "unset strings are empty, not null");
    assert_eq!(device["enrollmentState"], "notContacted");
    assert_eq!(device["lastContactedDateTime"], "0001-01-01T00:00:00Z");
    assert!(device.get("@odata.type").is_none());
    assert!(device.get("deploymentProfileAssignmentStatus").is_none(), "beta-only property absent in v1.0");
    assert!(device.get("azureAdDeviceId").is_none());

    let id = device["id"].as_str().unwrap();
    let beta: Value =
        app.get_json(&format!("/beta/deviceManagement/windowsAutopilotDeviceIdentities/{id}"), Some(&token)).await;
    assert_eq!(
        beta["@odata.context"],
        "https://graph.microsoft.com/beta/$metadata#deviceManagement/windowsAutopilotDeviceIdentities/$entity"
    );
    assert_eq!(beta["deploymentProfileAssignmentStatus"], "notAssigned");
    assert_eq!(beta["remediationState"], "unknown");
    assert_eq!(beta["userlessEnrollmentStatus"], "unknown");
    assert_eq!(beta["deploymentProfileAssignedDateTime"], "0001-01-01T00:00:00Z");
    let azure_ad_device_id = beta["azureAdDeviceId"].as_str().unwrap();
    assert!(azure_ad_device_id.parse::<uuid::Uuid>().is_ok(), "the Entra object's deviceId: {beta}");
    assert_eq!(beta["azureActiveDirectoryDeviceId"], azure_ad_device_id);

    let selected: Value = app
        .get_json(
            &format!("/beta/deviceManagement/windowsAutopilotDeviceIdentities/{id}?%24select=serialNumber"),
            Some(&token),
        )
        .await;
    assert_eq!(selected["serialNumber"], "SN-1");
    assert!(selected.get("model").is_none());
    app.stop().await;
}

#[tokio::test]
async fn paging_follows_absolute_next_links_to_every_device_once() {
    let serials: Vec<String> = (0..25).map(|i| format!("PAGE-{i:03}")).collect();
    let refs: Vec<&str> = serials.iter().map(String::as_str).collect();
    let app = synced_app(&refs).await;
    let client = app.user_client().await;
    let first = client.list_windows_autopilot_device_identities(ApiVersion::Beta, "?$top=10&$orderby=", None).await;
    assert_eq!(first.unwrap_err().status(), Some(400), "$orderby is not supported yet");
    let first =
        client.list_windows_autopilot_device_identities(ApiVersion::Beta, "?$top=10&x-custom=1", None).await.unwrap();
    assert_eq!(first.value.len(), 10);
    let link = first.next_link.clone().expect("more pages");
    assert!(
        link.starts_with(&format!("{}/beta/deviceManagement/windowsAutopilotDeviceIdentities?", app.base_url)),
        "{link}"
    );
    assert!(
        link.contains("%24top=10") && link.contains("x-custom=1") && link.contains("%24skiptoken="),
        "options carried over: {link}"
    );

    let all = client.all_windows_autopilot_device_identities(ApiVersion::Beta, "?$top=10").await.unwrap();
    let seen: HashSet<String> = all.iter().map(|d| d.serial_number.clone()).collect();
    assert_eq!(all.len(), 25);
    assert_eq!(seen.len(), 25);

    // A tampered skiptoken is a clear 400.
    let r = app
        .raw(
            Method::GET,
            "/beta/deviceManagement/windowsAutopilotDeviceIdentities?$skiptoken=%%%",
            Some(&app.user_token().await),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    app.stop().await;
}

/// A proxy in front of dmsync, or a client that keeps addressing https://graph.microsoft.com
/// (the JavaScript graph-client recipe: its URL parser takes absolute links only as https, and
/// Node's fetch cannot set Host), names the origin in X-Forwarded-Host and -Proto; the links
/// must come back under it, or the client cannot follow them.
#[tokio::test]
async fn next_links_follow_the_forwarded_host_and_proto() {
    let app = synced_app(&["FWD-1", "FWD-2", "FWD-3"]).await;
    let token = app.user_token().await;
    let next_link = |host: Option<&'static str>, proto: Option<&'static str>| {
        let mut r =
            app.raw(Method::GET, "/beta/deviceManagement/windowsAutopilotDeviceIdentities?$top=2", Some(&token));
        if let Some(h) = host {
            r = r.header("X-Forwarded-Host", h);
        }
        if let Some(p) = proto {
            r = r.header("X-Forwarded-Proto", p);
        }
        async move {
            let r = r.send().await.unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            let v: Value = r.json().await.unwrap();
            v["@odata.nextLink"].as_str().expect("a second page").to_owned()
        }
    };
    let set = "/beta/deviceManagement/windowsAutopilotDeviceIdentities?";
    let link = next_link(Some("graph.microsoft.com"), Some("https")).await;
    assert!(link.starts_with(&format!("https://graph.microsoft.com{set}")), "{link}");
    // Without the headers: the address the client used.
    let link = next_link(None, None).await;
    assert!(link.starts_with(&format!("{}{set}", app.base_url)), "{link}");
    // Something that is not a host[:port] is ignored rather than pasted into a link.
    for bad in ["evil.example/x?", "a@b", "a,b"] {
        let link = next_link(Some(bad), None).await;
        assert!(link.starts_with(&format!("{}{set}", app.base_url)), "{bad}: {link}");
    }
    // The link is followed as given once the forwarded origin is mapped back to dmsync.
    let link = next_link(Some("graph.microsoft.com"), Some("https")).await;
    let local = link.replace("https://graph.microsoft.com", "");
    let page = app.get_json(&local, Some(&token)).await;
    assert_eq!(page["value"].as_array().unwrap().len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn a_resync_updates_changed_registrations_and_keeps_ids() {
    let app = synced_app(&["KEEP-1", "CHANGE-1"]).await;
    let client = app.user_client().await;
    let before = client.all_windows_autopilot_device_identities(ApiVersion::V1, "").await.unwrap();
    let mut changed = registration("CHANGE-1");
    changed.group_tag = "Sales".into();
    let summary = app.admin.add_registrations(&app.tenant(), &[registration("KEEP-1"), changed]).await.unwrap();
    assert_eq!((summary.created, summary.updated, summary.unchanged), (0, 1, 1));
    app.admin.advance_clock(601.0).await.unwrap();
    let client = app.user_client().await;
    client.sync_windows_autopilot_settings().await.unwrap();
    app.wait_for_sync_status(&client, "completed", Duration::from_secs(10)).await;
    let after = client.all_windows_autopilot_device_identities(ApiVersion::V1, "").await.unwrap();
    let tag = |list: &[dmsync_graph::autopilot::WindowsAutopilotDeviceIdentity], s: &str| {
        list.iter().find(|d| d.serial_number == s).map(|d| (d.id.clone(), d.group_tag.clone())).unwrap()
    };
    assert_eq!(tag(&after, "CHANGE-1").1, "Sales");
    assert_eq!(tag(&after, "CHANGE-1").0, tag(&before, "CHANGE-1").0, "the device id is stable");
    assert_eq!(tag(&after, "KEEP-1"), tag(&before, "KEEP-1"));
    app.stop().await;
}

#[tokio::test]
async fn bad_registration_rows_are_reported_per_line_and_nothing_is_written() {
    let app = spawn_app().await;
    let rows = json!([
        {"serialNumber": "OK-1", "hardwareHash": hardware_hash("OK-1")},
        {"serialNumber": "", "hardwareHash": hardware_hash("x")},
        {"serialNumber": "BAD-HASH", "hardwareHash": "***not base64***"},
        {"serialNumber": "NO-HASH"},
    ]);
    let r = app
        .raw(
            Method::POST,
            &format!("/_dmsync/tenants/{}/autopilot/registrations", app.tenant()),
            Some("dmsync-dev-admin"),
        )
        .json(&rows)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body: Value = r.json().await.unwrap();
    let details = body["error"]["details"].as_array().unwrap();
    let codes: Vec<(&str, &str)> =
        details.iter().map(|d| (d["code"].as_str().unwrap(), d["target"].as_str().unwrap())).collect();
    assert_eq!(codes[0], ("missingSerialNumber", "line 2 (serialNumber '')"));
    assert_eq!(codes[1].0, "invalidHardwareHash");
    assert!(codes[1].1.starts_with("line 3"));
    assert_eq!(codes[2].0, "missingHardwareHash");
    // Nothing was written: a good row alone now creates one registration, not zero.
    let summary = app.admin.add_registrations(&app.tenant(), &[registration("OK-1")]).await.unwrap();
    assert_eq!(summary.created, 1);

    // Duplicates inside one request, and a hash already under another serial.
    let dup = vec![registration("D-1"), registration("D-1")];
    let err = app.admin.add_registrations(&app.tenant(), &dup).await.unwrap_err();
    assert_eq!(err.status(), Some(400));
    let mut moved = registration("OTHER-SERIAL");
    moved.hardware_hash = hardware_hash("OK-1");
    let err = app.admin.add_registrations(&app.tenant(), &[moved]).await.unwrap_err();
    assert_eq!(err.status(), Some(400));
    app.stop().await;
}

#[tokio::test]
async fn filter_orderby_count_and_expand_work_as_scripts_use_them() {
    let app = synced_app(&["PF1GHXN3", "PF1GHXN4", "R90ZZ001", "R90ZZ002", "R90ZZ003"]).await;
    let token = app.user_token().await;
    let get = |path: String| {
        let r = app.raw(Method::GET, &path, Some(&token));
        async move {
            let r = r.send().await.unwrap();
            let status = r.status();
            (status, r.text().await.unwrap())
        }
    };
    let set = "/beta/deviceManagement/windowsAutopilotDeviceIdentities";
    let serials = |text: &str| -> Vec<String> {
        let v: Value = serde_json::from_str(text).unwrap();
        v["value"].as_array().unwrap().iter().map(|d| d["serialNumber"].as_str().unwrap().to_owned()).collect()
    };

    // Get-AutopilotDevice -serial: contains(), URL-escaped the way Python sends it, and as JS does.
    let (s, body) = get(format!("{set}?$filter=contains%28serialNumber%2C%27ghxn3%27%29")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(serials(&body), ["PF1GHXN3"]);
    let (_, body) = get(format!("{set}?%24filter=startswith(serialNumber,%27R90%27)%20and%20serialNumber%20ne%20%27R90ZZ002%27&$orderby=serialNumber%20desc")).await;
    assert_eq!(serials(&body), ["R90ZZ003", "R90ZZ001"]);

    // $count=true and /$count.
    let (_, body) = get(format!("{set}?$filter=startswith(serialNumber,'R90')&$count=true&$top=1")).await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["@odata.count"], 3);
    assert!(v["@odata.nextLink"].is_string());
    let (s, body) = get(format!("{set}/$count?$filter=startswith(serialNumber,'PF')")).await;
    assert_eq!((s, body.as_str()), (StatusCode::OK, "2"));
    let (s, body) = get(format!("{set}/%24count")).await;
    assert_eq!((s, body.as_str()), (StatusCode::OK, "5"));

    // Ordered paging through nextLinks.
    let client = app.graph.with_token(token.clone());
    let all = client
        .all_windows_autopilot_device_identities(ApiVersion::Beta, "?$orderby=serialNumber desc&$top=2")
        .await
        .unwrap();
    let order: Vec<&str> = all.iter().map(|d| d.serial_number.as_str()).collect();
    assert_eq!(order, ["R90ZZ003", "R90ZZ002", "R90ZZ001", "PF1GHXN4", "PF1GHXN3"]);

    // $expand of the profiles (beta), as the -Assign wait loop reads them.
    let id = &all[0].id;
    let (s, body) = get(format!("{set}/{id}?$expand=deploymentProfile,intendedDeploymentProfile")).await;
    assert_eq!(s, StatusCode::OK);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert!(v["deploymentProfile"].is_null() && v.get("deploymentProfile").is_some());
    assert_eq!(v["deploymentProfileAssignmentStatus"], "notAssigned");

    // Unsupported expressions get a clear 400.
    for (query, needle) in [
        ("$filter=serialNumber gt 'A'", "operator 'gt'"),
        ("$filter=hardwareHash eq 'A'", "property named 'hardwareHash'"),
        ("$filter=serialNumber eq true", "boolean"),
        ("$orderby=serialNumber,model", "more than one"),
        ("$expand=everything", "expand"),
    ] {
        let (s, body) = get(format!("{set}?{query}")).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{query}");
        assert!(body.contains(needle), "{query}: {body}");
    }
    let (s, _) =
        get(format!("/v1.0/deviceManagement/windowsAutopilotDeviceIdentities/{id}?$expand=deploymentProfile")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "no navigation properties in v1.0");
    app.stop().await;
}

#[tokio::test]
async fn a_deregistered_device_disappears_at_the_next_sync() {
    let app = synced_app(&["GONE-1", "STAY-1"]).await;
    let admin = |method: Method, path: String| app.raw(method, &path, Some("dmsync-dev-admin"));
    let path = format!("/_dmsync/tenants/{}/autopilot/registrations/GONE-1", app.tenant());
    assert_eq!(admin(Method::DELETE, path.clone()).send().await.unwrap().status(), StatusCode::NO_CONTENT);
    assert_eq!(admin(Method::DELETE, path).send().await.unwrap().status(), StatusCode::NOT_FOUND);
    let client = app.user_client().await;
    assert_eq!(
        client.all_windows_autopilot_device_identities(ApiVersion::V1, "").await.unwrap().len(),
        2,
        "until a sync"
    );
    app.admin.advance_clock(601.0).await.unwrap();
    client.sync_windows_autopilot_settings().await.unwrap();
    app.wait_for_sync_status(&client, "completed", Duration::from_secs(10)).await;
    let left = client.all_windows_autopilot_device_identities(ApiVersion::V1, "").await.unwrap();
    assert_eq!(left.iter().map(|d| d.serial_number.as_str()).collect::<Vec<_>>(), ["STAY-1"]);
    app.stop().await;
}

/// A CSV upload whose client stops sending must not hold the database: other writes go on, and
/// the upload, once finished, is committed whole.
#[tokio::test]
async fn a_stalled_registration_upload_holds_no_database_writer() {
    let app = spawn_app_with(|c| c.sync_duration = time::Duration::ZERO).await;
    let path = format!("/_dmsync/tenants/{}/autopilot/registrations", app.tenant());
    let client = app.user_client().await;
    let (sender, chunks) = futures::channel::mpsc::unbounded::<Result<String, std::io::Error>>();
    sender.unbounded_send(Ok("Device Serial Number,Windows Product ID,Hardware Hash\n".to_owned())).unwrap();
    sender.unbounded_send(Ok(format!("STALL-1,,{}\n", hardware_hash("stall-1")))).unwrap();
    let upload = app
        .raw(Method::POST, &path, Some("dmsync-dev-admin"))
        .header("content-type", "text/csv")
        .body(reqwest::Body::wrap_stream(chunks))
        .send();
    let upload = tokio::spawn(upload);
    // Let the server read the first rows, then write through Graph while the upload stalls.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = std::time::Instant::now();
    let synced = tokio::time::timeout(Duration::from_secs(10), client.sync_windows_autopilot_settings()).await;
    assert!(matches!(synced, Ok(Ok(_))), "a write waited on a stalled upload: {synced:?}");
    println!("write during a stalled upload answered in {:?}", started.elapsed());

    sender.unbounded_send(Ok(format!("STALL-2,,{}\n", hardware_hash("stall-2")))).unwrap();
    drop(sender);
    let r = upload.await.unwrap().unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"created": 2, "updated": 0, "unchanged": 0}));
    app.stop().await;
}

/// `$filter` ignores case beyond ASCII, as Graph does, through HTTP on either backend.
#[tokio::test]
async fn filters_ignore_case_for_all_of_unicode() {
    let app = spawn_app_with(|c| c.sync_duration = time::Duration::ZERO).await;
    app.admin.add_registrations(&app.tenant(), &[registration("ÜNI-1"), registration("UNI-2")]).await.unwrap();
    let client = app.user_client().await;
    client.sync_windows_autopilot_settings().await.unwrap();
    app.wait_for_sync_status(&client, "completed", Duration::from_secs(30)).await;
    let token = app.user_token().await;
    let path = "/beta/deviceManagement/windowsAutopilotDeviceIdentities";
    let list = app.get_json(&format!("{path}?$filter=serialNumber eq 'üni-1'"), Some(&token)).await;
    assert_eq!(list["value"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list["value"][0]["serialNumber"], "ÜNI-1");
    let count = app.get_json(&format!("{path}/$count?$filter=startswith(serialNumber,'ün')"), Some(&token)).await;
    assert_eq!(count, json!(1));
    app.stop().await;
}

/// The peak resident memory of this process (the server runs in it), in MiB.
fn peak_rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse::<u64>().ok());
    kib.unwrap_or(0) / 1024
}

/// A 100 MB line without a newline, and a 100 MB quoted field without its closing quote, are
/// refused at the record bound with the line's number, while the upload is still arriving.
#[tokio::test]
async fn a_registration_line_without_an_end_is_refused_at_the_bound() {
    let app = spawn_app().await;
    let path = format!("/_dmsync/tenants/{}/autopilot/registrations", app.tenant());
    for tail in ["B,,", "B,,\""] {
        let before = peak_rss_mib();
        let head = format!("Device Serial Number,Windows Product ID,Hardware Hash\nA,,{}\n{tail}", hardware_hash("a"));
        let megabyte = vec![b'A'; 1 << 20];
        let chunks = std::iter::once(head.into_bytes()).chain(std::iter::repeat_n(megabyte, 100));
        let body = reqwest::Body::wrap_stream(futures::stream::iter(chunks.map(Ok::<_, std::io::Error>)));
        let r = app
            .raw(Method::POST, &path, Some("dmsync-dev-admin"))
            .header("content-type", "text/csv")
            .body(body)
            .send()
            .await;
        println!(
            "100 MB unterminated {tail:?}: peak RSS of the test process {before} MiB before, {} MiB after",
            peak_rss_mib()
        );
        let r = r.expect("the server answers before the whole body is sent");
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let body: Value = r.json().await.unwrap();
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.starts_with("Line 3 of the CSV is longer than"), "{body}");
    }
    app.stop().await;
}

#[tokio::test]
async fn registrations_stream_as_autopilot_csv() {
    let app = spawn_app_with(|c| c.sync_duration = time::Duration::ZERO).await;
    let path = format!("/_dmsync/tenants/{}/autopilot/registrations", app.tenant());
    // 20,000 rows, streamed in chunks so the server never sees the upload whole.
    let rows = 20_000usize;
    let chunks: Vec<Result<String, std::io::Error>> = std::iter::once(Ok(
        "Device Serial Number,Windows Product ID,Hardware Hash,Group Tag,Assigned User\r\n".to_owned(),
    ))
    .chain((0..rows / 1000).map(|c| {
        Ok((0..1000)
            .map(|i| format!("CSV-{:06},,{},Fleet,\r\n", c * 1000 + i, hardware_hash(&format!("csv-{c}-{i}"))))
            .collect())
    }))
    .collect();
    let body = reqwest::Body::wrap_stream(futures::stream::iter(chunks));
    let r = app
        .raw(Method::POST, &path, Some("dmsync-dev-admin"))
        .header("content-type", "text/csv")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let summary: Value = r.json().await.unwrap();
    assert_eq!(summary, json!({"created": rows, "updated": 0, "unchanged": 0}));

    let client = app.user_client().await;
    client.sync_windows_autopilot_settings().await.unwrap();
    app.wait_for_sync_status(&client, "completed", Duration::from_secs(30)).await;
    let token = app.user_token().await;
    let count = app
        .get_json(
            "/beta/deviceManagement/windowsAutopilotDeviceIdentities/$count?$filter=groupTag eq 'fleet'",
            Some(&token),
        )
        .await;
    assert_eq!(count, json!(rows));

    // A bad line is reported by its line number in the file, and nothing is written.
    let csv = format!(
        "Device Serial Number,Windows Product ID,Hardware Hash\n NEW-1,,{}\nNEW-2,,not*base64\n",
        hardware_hash("new-1")
    );
    let r = app
        .raw(Method::POST, &path, Some("dmsync-dev-admin"))
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["details"][0]["target"], "line 3 (serialNumber 'NEW-2')");
    let r = app
        .raw(Method::POST, &path, Some("dmsync-dev-admin"))
        .header("content-type", "text/csv")
        .body(format!("Device Serial Number,Hardware Hash\nNEW-1,{}\n", hardware_hash("new-1")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["created"], 1, "NEW-1 was not half-written before");
    // Other content types are refused; a CSV without the required columns is 400.
    let r = app
        .raw(Method::POST, &path, Some("dmsync-dev-admin"))
        .header("content-type", "application/xml")
        .body("<x/>")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = app
        .raw(Method::POST, &path, Some("dmsync-dev-admin"))
        .header("content-type", "text/csv")
        .body("a,b\n1,2\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    app.stop().await;
}

/// A lenient-JSON body nested ten thousand deep used to overflow the stack inside json5 and
/// abort the whole server. Now its nesting is refused before any parser sees it, on either
/// version and spelling, whether or not the device exists, and the server keeps answering.
#[tokio::test]
async fn a_deeply_nested_lenient_body_is_a_400_and_the_server_lives_on() {
    let app = spawn_app().await;
    let token = app.user_token().await;
    let missing = "00000000-0000-4000-8000-000000000001";
    let lenient = format!("{}1{}", "{a:[".repeat(5_000), "]}".repeat(5_000));
    let strict = format!("{}1{}", "[".repeat(10_000), "]".repeat(10_000));
    for (version, action) in [("v1.0", "updateDeviceProperties"), ("beta", "UpdateDeviceProperties")] {
        for body in [&lenient, &strict] {
            let path = format!("/{version}/deviceManagement/windowsAutopilotDeviceIdentities/{missing}/{action}");
            let r = app
                .raw(Method::POST, &path, Some(&token))
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{path}");
            let error: Value = r.json().await.unwrap();
            assert!(error["error"]["message"].as_str().unwrap().contains("levels deep"), "{error}");
        }
    }
    let list = app.get_json("/v1.0/deviceManagement/windowsAutopilotDeviceIdentities", Some(&token)).await;
    assert_eq!(list["value"], json!([]), "the server still answers");
    app.stop().await;
}

/// Query options over their bounds are Graph's 400, never work proportional to their size.
#[tokio::test]
async fn oversized_query_options_are_a_400() {
    let app = spawn_app().await;
    let token = app.user_token().await;
    let list = "/v1.0/deviceManagement/windowsAutopilotDeviceIdentities";
    let many_nodes = vec!["id eq 'x'"; 290].join(" or ");
    let deep = format!("{}serialNumber eq 'x'{}", "(".repeat(1_000), ")".repeat(1_000));
    for (query, needle) in [
        (format!("$orderby={}", "a".repeat(5_000)), "longer than 4096"),
        (format!("$select={}", "id,".repeat(2_000)), "longer than 4096"),
        (format!("$skiptoken={}", "A".repeat(5_000)), "longer than 4096"),
        (format!("$filter={many_nodes}"), "more than 512"),
        (format!("$filter={deep}"), "nested more than 32"),
    ] {
        let r = app.raw(Method::GET, list, Some(&token)).query(&[query.split_once('=').unwrap()]).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{needle}");
        let error: Value = r.json().await.unwrap();
        assert_eq!(error["error"]["code"], "BadRequest");
        assert!(error["error"]["message"].as_str().unwrap().contains(needle), "{error}");
    }
    app.stop().await;
}

/// A page read again is served from memory until the next write, and a write, whether a
/// request's or a background job's, is seen by the next read of the same URL.
#[tokio::test]
async fn a_page_read_again_shows_every_write_in_between() {
    let app = synced_app(&["SN-1"]).await;
    let token = app.user_token().await;
    let list = "/v1.0/deviceManagement/windowsAutopilotDeviceIdentities?$select=id,groupTag";
    let first: Value = app.get_json(list, Some(&token)).await;
    assert_eq!(first, app.get_json(list, Some(&token)).await, "the same page twice");
    assert_eq!(first["value"][0]["groupTag"], "");

    let id = first["value"][0]["id"].as_str().unwrap();
    let path = format!("/v1.0/deviceManagement/windowsAutopilotDeviceIdentities/{id}/updateDeviceProperties");
    let r = app.raw(Method::POST, &path, Some(&token)).json(&json!({"groupTag": "Sales"})).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let after: Value = app.get_json(list, Some(&token)).await;
    assert_eq!(after["value"][0]["groupTag"], "Sales", "a request's write is seen at once");

    // A background job's write: a sync that adds a device.
    app.admin.add_registrations(&app.tenant(), &[registration("SN-2")]).await.unwrap();
    app.admin.advance_clock(601.0).await.unwrap();
    let client = app.user_client().await;
    client.sync_windows_autopilot_settings().await.unwrap();
    app.wait_for_sync_status(&client, "completed", Duration::from_secs(10)).await;
    let synced: Value = app.get_json(list, Some(&token)).await;
    assert_eq!(synced["value"].as_array().unwrap().len(), 2, "{synced}");
    app.stop().await;
}

/// beta's resource-account actions and allowNextEnrollment: 204, and the properties they set.
#[tokio::test]
async fn resource_account_actions_and_allow_next_enrollment() {
    let app = synced_app(&["HUB-1"]).await;
    let token = app.user_token().await;
    let list: Value = app.get_json("/beta/deviceManagement/windowsAutopilotDeviceIdentities", Some(&token)).await;
    let id = list["value"][0]["id"].as_str().unwrap().to_owned();
    let device = format!("/beta/deviceManagement/windowsAutopilotDeviceIdentities/{id}");
    let post = |action: &str, body: Option<Value>| {
        let r = app.raw(Method::POST, &format!("{device}/{action}"), Some(&token));
        match body {
            Some(body) => r.json(&body),
            None => r,
        }
    };
    let r = post(
        "assignResourceAccountToDevice",
        Some(json!({"userPrincipalName": "room1@contoso.com", "addressableUserName": "Room 1",
                    "resourceAccountName": "Room 1 account"})),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let got = app.get_json(&device, Some(&token)).await;
    assert_eq!(got["resourceName"], "Room 1 account", "{got}");
    assert_eq!(got["userPrincipalName"], "room1@contoso.com");
    assert_eq!(got["addressableUserName"], "Room 1");
    // v1.0 shows the property; the actions are beta's.
    let v1 = app.get_json(&format!("/v1.0/deviceManagement/windowsAutopilotDeviceIdentities/{id}"), Some(&token)).await;
    assert_eq!(v1["resourceName"], "Room 1 account");
    let r = app
        .raw(
            Method::POST,
            &format!("/v1.0/deviceManagement/windowsAutopilotDeviceIdentities/{id}/allowNextEnrollment"),
            Some(&token),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    assert_eq!(post("unassignResourceAccountFromDevice", None).send().await.unwrap().status(), StatusCode::NO_CONTENT);
    let got = app.get_json(&device, Some(&token)).await;
    assert_eq!((got["resourceName"].as_str(), got["userPrincipalName"].as_str()), (Some(""), Some("")), "{got}");
    assert_eq!(post("allowNextEnrollment", None).send().await.unwrap().status(), StatusCode::NO_CONTENT);
    let missing = "/beta/deviceManagement/windowsAutopilotDeviceIdentities/00000000-0000-0000-0000-000000000001/allowNextEnrollment";
    assert_eq!(app.raw(Method::POST, missing, Some(&token)).send().await.unwrap().status(), StatusCode::NOT_FOUND);
    app.stop().await;
}
