//! Reading an Exchange organization's mobile devices from a connector's source: a file in the
//! shape `Get-MobileDevice | Export-Csv` (or `ConvertTo-Json`) produces, or an HTTP endpoint
//! that answers the same records as JSON and supports `?changedSince=`.

use std::io::Read;
use std::time::Duration;

use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, PrimitiveDateTime};

use dmsync_core::exchange::{ConnectorSource, ExchangeAccessState, MobileDeviceRecord};

/// Why a source could not be read; the sync fails and the connector is `disconnected`.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("no source is configured for this connector")]
    NotConfigured,
    #[error("the source file {0} could not be read: {1}")]
    File(String, String),
    #[error("the source URL {0} could not be fetched: {1}")]
    Http(String, String),
    #[error("the host of {0} is not in --exchange-source-allow-host")]
    HostNotAllowed(String),
    #[error("the source data is not valid: {0}")]
    Invalid(String),
}

/// Whether an HTTP source's host may be fetched. Against SSRF, only hosts named with
/// `--exchange-source-allow-host` are; the comparison ignores case and includes the port if the
/// allow-list entry has one.
pub fn host_allowed(url: &str, allowed: &[String]) -> bool {
    let Ok(parsed) = reqwest::Url::parse(url) else { return false };
    if !matches!(parsed.scheme(), "http" | "https") {
        return false;
    }
    let Some(host) = parsed.host_str() else { return false };
    let with_port = parsed.port().map(|p| format!("{host}:{p}"));
    allowed.iter().any(|a| a.eq_ignore_ascii_case(host) || with_port.as_deref().is_some_and(|hp| a.eq_ignore_ascii_case(hp)))
}

/// Parses the date forms Exchange exports use: ISO 8601, .NET's `/Date(ms)/` (Windows
/// PowerShell's ConvertTo-Json) and the en-US form Export-Csv writes (`11/22/2026 2:05:09 PM`).
/// Times without an offset are taken as UTC.
pub fn parse_exchange_date(text: &str) -> Option<OffsetDateTime> {
    let t = text.trim();
    if t.is_empty() {
        return None;
    }
    if let Ok(d) = OffsetDateTime::parse(t, &Rfc3339) {
        return Some(d);
    }
    if let Some(ms) = t.strip_prefix("/Date(").and_then(|r| r.strip_suffix(")/")) {
        let digits: String = ms.chars().take_while(|c| c.is_ascii_digit() || *c == '-').collect();
        return digits.parse::<i64>().ok().and_then(|ms| OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000).ok());
    }
    let formats = [
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]"),
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]"),
        time::macros::format_description!("[month padding:none]/[day padding:none]/[year] [hour padding:none]:[minute]:[second]"),
    ];
    for f in formats {
        if let Ok(d) = PrimitiveDateTime::parse(t, f) {
            return Some(d.assume_utc());
        }
    }
    // The 12-hour clock with AM/PM.
    let f12 = time::macros::format_description!(
        "[month padding:none]/[day padding:none]/[year] [hour padding:none repr:12]:[minute]:[second] [period]"
    );
    PrimitiveDateTime::parse(&t.to_ascii_uppercase(), f12).ok().map(|d| d.assume_utc())
}

fn access_state(text: &str) -> ExchangeAccessState {
    match text.trim().to_ascii_lowercase().as_str() {
        "" => ExchangeAccessState::None,
        "allowed" => ExchangeAccessState::Allowed,
        "blocked" => ExchangeAccessState::Blocked,
        "quarantined" => ExchangeAccessState::Quarantined,
        _ => ExchangeAccessState::Unknown,
    }
}

/// Builds a record from named fields (CSV columns or JSON properties, names case-insensitive).
fn record(get: impl Fn(&str) -> String) -> Result<MobileDeviceRecord, SourceError> {
    let device_id = get("DeviceId");
    if device_id.trim().is_empty() {
        return Err(SourceError::Invalid("a record has no DeviceId".into()));
    }
    let upn = get("UserPrincipalName");
    let email = [get("PrimarySmtpAddress"), get("EmailAddress"), upn.clone()].into_iter().find(|s| !s.is_empty()).unwrap_or_default();
    Ok(MobileDeviceRecord {
        device_id: device_id.trim().to_owned(),
        device_type: get("DeviceType"),
        device_model: get("DeviceModel"),
        device_os: get("DeviceOS"),
        friendly_name: get("FriendlyName"),
        user_display_name: get("UserDisplayName"),
        user_principal_name: if upn.is_empty() { email.clone() } else { upn },
        email_address: email,
        access_state: access_state(&get("DeviceAccessState")),
        access_state_reason: get("DeviceAccessStateReason"),
        first_sync: parse_exchange_date(&get("FirstSyncTime")),
        last_success_sync: parse_exchange_date(&get("LastSuccessSync")),
        when_changed: parse_exchange_date(&get("WhenChanged")),
    })
}

/// Reads `Get-MobileDevice | Export-Csv` output, skipping the `#TYPE` line Windows PowerShell
/// writes first.
pub fn parse_csv(mut reader: impl Read) -> Result<Vec<MobileDeviceRecord>, SourceError> {
    let mut text = String::new();
    reader.read_to_string(&mut text).map_err(|e| SourceError::Invalid(e.to_string()))?;
    let body: String = text.trim_start_matches('\u{feff}').lines().skip_while(|l| l.starts_with("#TYPE")).collect::<Vec<_>>().join("\n");
    let mut csv = csv::ReaderBuilder::new().flexible(true).from_reader(body.as_bytes());
    let headers: Vec<String> = csv.headers().map_err(|e| SourceError::Invalid(e.to_string()))?.iter().map(|h| h.trim().to_ascii_lowercase()).collect();
    let mut records = Vec::new();
    for row in csv.records() {
        let row = row.map_err(|e| SourceError::Invalid(e.to_string()))?;
        records.push(record(|name| {
            headers.iter().position(|h| h == &name.to_ascii_lowercase()).and_then(|i| row.get(i)).unwrap_or("").trim().to_owned()
        })?);
    }
    Ok(records)
}

/// Reads a JSON list of the same records (`ConvertTo-Json`, or an HTTP source's answer).
pub fn parse_json(bytes: &[u8]) -> Result<Vec<MobileDeviceRecord>, SourceError> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| SourceError::Invalid(e.to_string()))?;
    let items = match value {
        Value::Array(items) => items,
        Value::Object(mut o) => match o.remove("value") {
            Some(Value::Array(items)) => items,
            _ => vec![Value::Object(o)],
        },
        _ => return Err(SourceError::Invalid("expected a JSON list of mobile devices".into())),
    };
    items
        .iter()
        .map(|item| {
            let object = item.as_object().ok_or_else(|| SourceError::Invalid("a record is not an object".into()))?;
            record(|name| {
                object
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| match v {
                        Value::String(s) => s.clone(),
                        Value::Null => String::new(),
                        other => other.to_string(),
                    })
                    .unwrap_or_default()
            })
        })
        .collect()
}

/// Reads the source. A delta passes the watermark (an HTTP source gets it as `?changedSince=`)
/// and keeps only records changed after it; a full read keeps everything.
pub async fn read(
    source: Option<&ConnectorSource>,
    changed_since: Option<OffsetDateTime>,
    allowed_hosts: &[String],
) -> Result<Vec<MobileDeviceRecord>, SourceError> {
    let records = match source.ok_or(SourceError::NotConfigured)? {
        ConnectorSource::File { path } => {
            let p = path.clone();
            let bytes = tokio::fs::read(&p).await.map_err(|e| SourceError::File(p.clone(), e.to_string()))?;
            if p.to_ascii_lowercase().ends_with(".json") { parse_json(&bytes)? } else { parse_csv(bytes.as_slice())? }
        }
        ConnectorSource::Http { url } => {
            if !host_allowed(url, allowed_hosts) {
                return Err(SourceError::HostNotAllowed(url.clone()));
            }
            let mut request_url = reqwest::Url::parse(url).map_err(|e| SourceError::Http(url.clone(), e.to_string()))?;
            if let Some(since) = changed_since {
                let stamp = since.format(&Rfc3339).map_err(|e| SourceError::Invalid(e.to_string()))?;
                request_url.query_pairs_mut().append_pair("changedSince", &stamp);
            }
            // No redirects: a redirect could lead to a host outside the allow-list.
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|e| SourceError::Http(url.clone(), e.to_string()))?;
            let response = client
                .get(request_url)
                .send()
                .await
                .and_then(|r| r.error_for_status())
                .map_err(|e| SourceError::Http(url.clone(), e.to_string()))?;
            let bytes = response.bytes().await.map_err(|e| SourceError::Http(url.clone(), e.to_string()))?;
            parse_json(&bytes)?
        }
    };
    Ok(match changed_since {
        Some(since) => records.into_iter().filter(|r| r.when_changed.is_some_and(|w| w > since)).collect(),
        None => records,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_export_csv_with_its_type_line_and_us_dates() {
        let csv = "#TYPE Microsoft.Exchange.Data.Directory.SystemConfiguration.MobileDevice\n\
                   \"DeviceId\",\"DeviceType\",\"DeviceModel\",\"DeviceOS\",\"FriendlyName\",\"UserDisplayName\",\"DeviceAccessState\",\"DeviceAccessStateReason\",\"FirstSyncTime\",\"WhenChanged\"\n\
                   \"ApplF17XK\",\"iPhone\",\"iPhone15,2\",\"iOS 17.1.2 21B101\",\"\",\"contoso.com/Users/Kim\",\"Allowed\",\"Global\",\"11/20/2026 9:15:00 AM\",\"11/22/2026 2:05:09 PM\"\n";
        let records = parse_csv(csv.as_bytes()).unwrap();
        assert_eq!(records.len(), 1);
        let r = &records[0];
        assert_eq!((r.device_id.as_str(), r.access_state), ("ApplF17XK", ExchangeAccessState::Allowed));
        assert_eq!(r.when_changed.unwrap().to_string(), "2026-11-22 14:05:09.0 +00:00:00");
        assert_eq!(r.first_sync.unwrap().hour(), 9);
    }

    #[test]
    fn reads_json_with_dotnet_dates_and_refuses_records_without_ids() {
        let json = br#"[{"DeviceId":"A1","DeviceAccessState":"Quarantined","WhenChanged":"/Date(1700000000000)/","PrimarySmtpAddress":"kim@contoso.com"}]"#;
        let r = &parse_json(json).unwrap()[0];
        assert_eq!(r.access_state, ExchangeAccessState::Quarantined);
        assert_eq!(r.when_changed.unwrap().unix_timestamp(), 1_700_000_000);
        assert_eq!((r.email_address.as_str(), r.user_principal_name.as_str()), ("kim@contoso.com", "kim@contoso.com"));
        assert!(parse_json(br#"[{"DeviceType":"x"}]"#).is_err());
        assert!(parse_json(b"nonsense").is_err());
    }

    #[test]
    fn only_allowed_hosts_may_be_fetched() {
        let allowed = vec!["exchange.contoso.com".to_owned(), "127.0.0.1:9000".to_owned()];
        assert!(host_allowed("https://EXCHANGE.contoso.com/devices", &allowed));
        assert!(host_allowed("http://127.0.0.1:9000/x", &allowed));
        assert!(!host_allowed("http://127.0.0.1:9001/x", &allowed));
        assert!(!host_allowed("http://169.254.169.254/latest", &allowed));
        assert!(!host_allowed("file:///etc/passwd", &allowed));
    }
}

#[cfg(test)]
mod date_tests {
    use super::parse_exchange_date;

    #[test]
    fn parses_every_date_form_exchange_exports() {
        for (text, unix) in [
            ("11/22/2026 2:05:09 PM", 1_795_356_309),
            ("11/22/2026 02:05:09 PM", 1_795_356_309),
            ("11/22/2026 12:05:09 AM", 1_795_305_909),
            ("11/22/2026 14:05:09", 1_795_356_309),
            ("2026-11-22T14:05:09Z", 1_795_356_309),
            ("2026-11-22T14:05:09", 1_795_356_309),
            ("/Date(1795356309000)/", 1_795_356_309),
        ] {
            assert_eq!(parse_exchange_date(text).map(|d| d.unix_timestamp()), Some(unix), "{text}");
        }
        assert_eq!(parse_exchange_date(""), None);
        assert_eq!(parse_exchange_date("yesterday"), None);
    }
}
