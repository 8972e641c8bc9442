//! Reading an Exchange organization's mobile devices from a connector's source: a file in the
//! shape `Get-MobileDevice | Export-Csv` produces (or `ConvertTo-Json`), or an HTTP endpoint
//! that answers the same records as JSON and supports `?changedSince=`. The source is parsed as
//! a stream on a blocking thread and handed over in batches through a small channel, so a sync's
//! memory does not grow with the organization.

use std::io::{self, BufRead, BufReader, Read};
use std::time::Duration;

use futures::TryStreamExt;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, PrimitiveDateTime};
use tokio::sync::mpsc;

use dmsync_core::exchange::{ConnectorSource, ExchangeAccessState, MobileDeviceRecord};
use dmsync_core::limits::{MAX_RECORD_BYTES, RecordLimit};

/// Records per batch: each batch is one staging transaction of the sync.
pub const BATCH_RECORDS: usize = 5000;
/// Batches parsed ahead of the one being written. With the batch being parsed and the one being
/// written, at most four batches are in memory at once.
pub const BATCHES_AHEAD: usize = 2;
/// How long an HTTP source may take to answer, and at most between two reads of its body. The
/// body is read at the pace the sync writes it, so a large organization may take longer in all.
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);
/// Bytes read from the source at a time; the parsers read byte by byte from this buffer.
const READ_BUFFER: usize = 64 * 1024;

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
    /// The receiver of the batches went away (the sync stopped); its reason is reported there.
    #[error("the sync stopped reading the source")]
    Stopped,
}

/// Where a source's bytes come from, to name it when reading them fails half-way.
#[derive(Debug, Clone)]
pub enum Origin {
    File(String),
    Http(String),
}

impl Origin {
    fn read_error(&self, error: impl ToString) -> SourceError {
        match self {
            Origin::File(path) => SourceError::File(path.clone(), error.to_string()),
            Origin::Http(url) => SourceError::Http(url.clone(), error.to_string()),
        }
    }
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
    allowed
        .iter()
        .any(|a| a.eq_ignore_ascii_case(host) || with_port.as_deref().is_some_and(|hp| a.eq_ignore_ascii_case(hp)))
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
        return digits
            .parse::<i64>()
            .ok()
            .and_then(|ms| OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000).ok());
    }
    let formats = [
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]"),
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]"),
        time::macros::format_description!(
            "[month padding:none]/[day padding:none]/[year] [hour padding:none]:[minute]:[second]"
        ),
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

/// The properties a record is read from, as Get-MobileDevice names them; sources may spell them
/// in any case.
const COLUMNS: [&str; 14] = [
    "DeviceId",
    "DeviceType",
    "DeviceModel",
    "DeviceOS",
    "FriendlyName",
    "UserDisplayName",
    "UserPrincipalName",
    "PrimarySmtpAddress",
    "EmailAddress",
    "DeviceAccessState",
    "DeviceAccessStateReason",
    "FirstSyncTime",
    "LastSuccessSync",
    "WhenChanged",
];

/// One record's known properties as text, before they are checked and typed.
#[derive(Default)]
struct Fields([String; COLUMNS.len()]);

impl Fields {
    fn column(name: &str) -> Option<usize> {
        COLUMNS.iter().position(|c| c.eq_ignore_ascii_case(name))
    }

    fn take(&mut self, name: &str) -> String {
        Fields::column(name).map(|i| std::mem::take(&mut self.0[i])).unwrap_or_default()
    }
}

/// A JSON property as text: strings as they are, `null` as empty, anything else as its JSON.
fn json_text(value: Value) -> String {
    match value {
        Value::String(s) => s,
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// One JSON record: an object whose known properties are kept and the others skipped unread.
impl<'de> serde::Deserialize<'de> for Fields {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Fields, D::Error> {
        struct FieldsVisitor;
        impl<'de> Visitor<'de> for FieldsVisitor {
            type Value = Fields;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a mobile device record (a JSON object)")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields, A::Error> {
                let mut fields = Fields::default();
                while let Some(key) = map.next_key::<String>()? {
                    match Fields::column(&key) {
                        Some(i) => fields.0[i] = json_text(map.next_value()?),
                        None => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(fields)
            }
        }
        deserializer.deserialize_map(FieldsVisitor)
    }
}

/// Builds a record from its properties.
fn record(mut fields: Fields) -> Result<MobileDeviceRecord, SourceError> {
    let device_id = fields.take("DeviceId");
    if device_id.trim().is_empty() {
        return Err(SourceError::Invalid("a record has no DeviceId".into()));
    }
    let upn = fields.take("UserPrincipalName");
    let email = [fields.take("PrimarySmtpAddress"), fields.take("EmailAddress"), upn.clone()]
        .into_iter()
        .find(|s| !s.is_empty())
        .unwrap_or_default();
    Ok(MobileDeviceRecord {
        device_id: device_id.trim().to_owned(),
        device_type: fields.take("DeviceType"),
        device_model: fields.take("DeviceModel"),
        device_os: fields.take("DeviceOS"),
        friendly_name: fields.take("FriendlyName"),
        user_display_name: fields.take("UserDisplayName"),
        user_principal_name: if upn.is_empty() { email.clone() } else { upn },
        email_address: email,
        access_state: access_state(&fields.take("DeviceAccessState")),
        access_state_reason: fields.take("DeviceAccessStateReason"),
        first_sync: parse_exchange_date(&fields.take("FirstSyncTime")),
        last_success_sync: parse_exchange_date(&fields.take("LastSuccessSync")),
        when_changed: parse_exchange_date(&fields.take("WhenChanged")),
    })
}

/// Checks each record, keeps those a delta wants, and hands them on in batches.
pub struct Batcher<F: FnMut(Vec<MobileDeviceRecord>) -> bool> {
    changed_since: Option<OffsetDateTime>,
    batch: Vec<MobileDeviceRecord>,
    /// Takes a full batch; false when the receiver has gone.
    sink: F,
    kept: u64,
}

impl<F: FnMut(Vec<MobileDeviceRecord>) -> bool> Batcher<F> {
    /// A delta passes the watermark and keeps only records changed after it; a full read keeps
    /// everything.
    pub fn new(changed_since: Option<OffsetDateTime>, sink: F) -> Batcher<F> {
        Batcher { changed_since, batch: Vec::with_capacity(BATCH_RECORDS), sink, kept: 0 }
    }

    fn push(&mut self, fields: Fields) -> Result<(), SourceError> {
        let record = record(fields)?;
        if self.changed_since.is_some_and(|since| record.when_changed.is_none_or(|w| w <= since)) {
            return Ok(());
        }
        self.batch.push(record);
        if self.batch.len() >= BATCH_RECORDS { self.hand_over() } else { Ok(()) }
    }

    fn hand_over(&mut self) -> Result<(), SourceError> {
        self.kept += self.batch.len() as u64;
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH_RECORDS));
        if batch.is_empty() || (self.sink)(batch) { Ok(()) } else { Err(SourceError::Stopped) }
    }

    /// Hands over the last batch; returns how many records were kept.
    fn finish(mut self) -> Result<u64, SourceError> {
        self.hand_over()?;
        Ok(self.kept)
    }
}

/// Skips the byte-order mark and the `#TYPE` line Windows PowerShell's Export-Csv writes first.
fn skip_preamble<R: BufRead>(mut reader: R) -> io::Result<impl Read> {
    let mut line = Vec::new();
    let mut first = true;
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        if first && line.starts_with("\u{feff}".as_bytes()) {
            line.drain(.."\u{feff}".len());
        }
        first = false;
        if !line.starts_with(b"#TYPE") {
            break;
        }
    }
    Ok(io::Cursor::new(line).chain(reader))
}

/// Reads `Get-MobileDevice | Export-Csv` output row by row, skipping the `#TYPE` line Windows
/// PowerShell writes first. Returns how many records were kept.
pub fn parse_csv<R: Read, F: FnMut(Vec<MobileDeviceRecord>) -> bool>(
    reader: R,
    origin: &Origin,
    mut batcher: Batcher<F>,
) -> Result<u64, SourceError> {
    // Each line (the preamble's too) is bounded while it is read, so a source with a line
    // without an end costs no more memory than the bound.
    let limit = RecordLimit::new(MAX_RECORD_BYTES);
    let too_long = |line: u64| SourceError::Invalid(format!("line {line} is longer than {} bytes", limit.limit()));
    let csv_error = |e: csv::Error, line: u64| {
        if limit.exceeded() {
            too_long(line)
        } else if e.is_io_error() {
            origin.read_error(e)
        } else {
            SourceError::Invalid(e.to_string())
        }
    };
    let body = skip_preamble(BufReader::with_capacity(READ_BUFFER, limit.wrap(reader)))
        .map_err(|e| if limit.exceeded() { too_long(1) } else { origin.read_error(e) })?;
    limit.record_ended();
    let mut csv = csv::ReaderBuilder::new().flexible(true).from_reader(body);
    let headers = csv.headers().map_err(|e| csv_error(e, 1))?;
    limit.record_ended();
    let columns: Vec<Option<usize>> =
        COLUMNS.iter().map(|name| headers.iter().position(|h| h.trim().eq_ignore_ascii_case(name))).collect();
    let mut row = csv::StringRecord::new();
    loop {
        // Lines count from the header (line 1), after any `#TYPE` preamble.
        let next_line = csv.position().line();
        if !csv.read_record(&mut row).map_err(|e| csv_error(e, next_line))? {
            break;
        }
        limit.record_ended();
        let mut fields = Fields::default();
        for (field, column) in fields.0.iter_mut().zip(&columns) {
            if let Some(value) = column.and_then(|c| row.get(c)) {
                *field = value.trim().to_owned();
            }
        }
        batcher.push(fields)?;
    }
    batcher.finish()
}

/// Reads a JSON list of the same records (`ConvertTo-Json`, or an HTTP source's answer) element
/// by element. Also accepted, as before streaming: an OData envelope (`{"value":[…]}`) and a
/// single record (what ConvertTo-Json writes for an organization of one). Returns how many
/// records were kept.
pub fn parse_json<R: Read, F: FnMut(Vec<MobileDeviceRecord>) -> bool>(
    reader: R,
    origin: &Origin,
    batcher: Batcher<F>,
) -> Result<u64, SourceError> {
    /// Where the visitors put each record, and the first error that is not serde's.
    struct Records<F: FnMut(Vec<MobileDeviceRecord>) -> bool> {
        batcher: Batcher<F>,
        error: Option<SourceError>,
        limit: RecordLimit,
    }
    impl<F: FnMut(Vec<MobileDeviceRecord>) -> bool> Records<F> {
        fn push<E: serde::de::Error>(&mut self, fields: Fields) -> Result<(), E> {
            self.limit.record_ended();
            self.batcher.push(fields).map_err(|e| {
                self.error = Some(e);
                E::custom("stopped")
            })
        }
        fn push_all<'de, A: SeqAccess<'de>>(&mut self, mut seq: A) -> Result<(), A::Error> {
            while let Some(fields) = seq.next_element::<Fields>()? {
                self.push(fields)?;
            }
            Ok(())
        }
    }
    /// The whole document: a list, an envelope or one record.
    struct Document<'a, F: FnMut(Vec<MobileDeviceRecord>) -> bool>(&'a mut Records<F>);
    impl<'de, F: FnMut(Vec<MobileDeviceRecord>) -> bool> Visitor<'de> for Document<'_, F> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON list of mobile devices")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
            self.0.push_all(seq)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            // Whether it is an envelope is known only once `value` is seen, so the object's own
            // properties are kept meanwhile, as those of the record it may be.
            let mut fields = Fields::default();
            let mut envelope = false;
            while let Some(key) = map.next_key::<String>()? {
                if key == "value" {
                    envelope |= map.next_value_seed(EnvelopeValue(&mut *self.0))?;
                } else if let Some(i) = Fields::column(&key) {
                    fields.0[i] = json_text(map.next_value()?);
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            if envelope { Ok(()) } else { self.0.push(fields) }
        }
    }
    /// An object's `value`: true when it was a list of records (then read), false otherwise.
    struct EnvelopeValue<'a, F: FnMut(Vec<MobileDeviceRecord>) -> bool>(&'a mut Records<F>);
    impl<'de, F: FnMut(Vec<MobileDeviceRecord>) -> bool> DeserializeSeed<'de> for EnvelopeValue<'_, F> {
        type Value = bool;
        fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
            deserializer.deserialize_any(self)
        }
    }
    impl<'de, F: FnMut(Vec<MobileDeviceRecord>) -> bool> Visitor<'de> for EnvelopeValue<'_, F> {
        type Value = bool;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<bool, A::Error> {
            self.0.push_all(seq).map(|()| true)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok(false)
        }
        fn visit_bool<E>(self, _: bool) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_i64<E>(self, _: i64) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_u64<E>(self, _: u64) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_f64<E>(self, _: f64) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_str<E>(self, _: &str) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_unit<E>(self) -> Result<bool, E> {
            Ok(false)
        }
    }

    // Each record is bounded while it is read, as a CSV line is.
    let limit = RecordLimit::new(MAX_RECORD_BYTES);
    let mut records = Records { batcher, error: None, limit: limit.clone() };
    let mut de = serde_json::Deserializer::from_reader(BufReader::with_capacity(READ_BUFFER, limit.wrap(reader)));
    let result = serde::Deserializer::deserialize_any(&mut de, Document(&mut records)).and_then(|()| de.end());
    if let Some(error) = records.error {
        return Err(error);
    }
    result.map_err(|e| {
        if limit.exceeded() {
            SourceError::Invalid(format!("a record is longer than {} bytes", limit.limit()))
        } else if e.is_io() {
            origin.read_error(e)
        } else {
            SourceError::Invalid(e.to_string())
        }
    })?;
    records.batcher.finish()
}

/// Reads the source into `batches`, parsing on a blocking thread at the pace the receiver takes
/// them. A delta passes the watermark (an HTTP source gets it as `?changedSince=`) and keeps only
/// records changed after it; a full read keeps everything. Returns how many records were sent.
pub async fn read(
    source: Option<&ConnectorSource>,
    changed_since: Option<OffsetDateTime>,
    allowed_hosts: &[String],
    batches: mpsc::Sender<Vec<MobileDeviceRecord>>,
) -> Result<u64, SourceError> {
    let batcher = Batcher::new(changed_since, move |batch| batches.blocking_send(batch).is_ok());
    let parse = match source.ok_or(SourceError::NotConfigured)? {
        ConnectorSource::File { path } => {
            let origin = Origin::File(path.clone());
            let json = path.to_ascii_lowercase().ends_with(".json");
            let path = path.clone();
            tokio::task::spawn_blocking(move || {
                let file = std::fs::File::open(&path).map_err(|e| origin.read_error(e))?;
                if json { parse_json(file, &origin, batcher) } else { parse_csv(file, &origin, batcher) }
            })
        }
        ConnectorSource::Http { url } => {
            let origin = Origin::Http(url.clone());
            let body = fetch(url, changed_since, allowed_hosts).await?;
            tokio::task::spawn_blocking(move || parse_json(body, &origin, batcher))
        }
    };
    parse.await.map_err(|e| SourceError::Invalid(format!("the source parser failed: {e}")))?
}

/// GETs an HTTP source and returns its body as a blocking reader over the byte stream.
async fn fetch(
    url: &str,
    changed_since: Option<OffsetDateTime>,
    allowed_hosts: &[String],
) -> Result<impl Read + use<>, SourceError> {
    if !host_allowed(url, allowed_hosts) {
        return Err(SourceError::HostNotAllowed(url.to_owned()));
    }
    let http_error = |e: &dyn std::fmt::Display| SourceError::Http(url.to_owned(), e.to_string());
    let mut request_url = reqwest::Url::parse(url).map_err(|e| http_error(&e))?;
    if let Some(since) = changed_since {
        let stamp = since.format(&Rfc3339).map_err(|e| SourceError::Invalid(e.to_string()))?;
        request_url.query_pairs_mut().append_pair("changedSince", &stamp);
    }
    // No redirects: a redirect could lead to a host outside the allow-list.
    let client = reqwest::Client::builder()
        .connect_timeout(FETCH_TIMEOUT)
        .read_timeout(FETCH_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| http_error(&e))?;
    let response = tokio::time::timeout(FETCH_TIMEOUT, client.get(request_url).send())
        .await
        .map_err(|_| http_error(&"no answer within 30 s"))?
        .and_then(|r| r.error_for_status())
        .map_err(|e| http_error(&e))?;
    let stream = response.bytes_stream().map_err(io::Error::other);
    Ok(tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(stream)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_csv(text: &str) -> Result<Vec<MobileDeviceRecord>, SourceError> {
        let mut records = Vec::new();
        parse_csv(
            text.as_bytes(),
            &Origin::File("devices.csv".into()),
            Batcher::new(None, |batch| {
                records.extend(batch);
                true
            }),
        )?;
        Ok(records)
    }

    /// Parses JSON as a delta since `since` would; returns the batches handed over, and the end.
    fn read_json(
        text: &[u8],
        since: Option<OffsetDateTime>,
    ) -> (Vec<Vec<MobileDeviceRecord>>, Result<u64, SourceError>) {
        let mut batches = Vec::new();
        let end = parse_json(
            text,
            &Origin::Http("http://source/devices".into()),
            Batcher::new(since, |batch| {
                batches.push(batch);
                true
            }),
        );
        (batches, end)
    }

    fn json_records(text: &[u8]) -> Result<Vec<MobileDeviceRecord>, SourceError> {
        let (batches, end) = read_json(text, None);
        end.map(|_| batches.concat())
    }

    #[test]
    fn reads_export_csv_with_its_type_line_and_us_dates() {
        let csv = "#TYPE Microsoft.Exchange.Data.Directory.SystemConfiguration.MobileDevice\n\
                   \"DeviceId\",\"DeviceType\",\"DeviceModel\",\"DeviceOS\",\"FriendlyName\",\"UserDisplayName\",\"DeviceAccessState\",\"DeviceAccessStateReason\",\"FirstSyncTime\",\"WhenChanged\"\n\
                   \"ApplF17XK\",\"iPhone\",\"iPhone15,2\",\"iOS 17.1.2 21B101\",\"\",\"contoso.com/Users/Kim\",\"Allowed\",\"Global\",\"11/20/2026 9:15:00 AM\",\"11/22/2026 2:05:09 PM\"\n";
        let records = read_csv(csv).unwrap();
        assert_eq!(records.len(), 1);
        let r = &records[0];
        assert_eq!((r.device_id.as_str(), r.access_state), ("ApplF17XK", ExchangeAccessState::Allowed));
        assert_eq!(r.when_changed.unwrap().to_string(), "2026-11-22 14:05:09.0 +00:00:00");
        assert_eq!(r.first_sync.unwrap().hour(), 9);
    }

    #[test]
    fn reads_json_with_dotnet_dates_and_refuses_records_without_ids() {
        let json = br#"[{"DeviceId":"A1","DeviceAccessState":"Quarantined","WhenChanged":"/Date(1700000000000)/","PrimarySmtpAddress":"kim@contoso.com"}]"#;
        let r = &json_records(json).unwrap()[0];
        assert_eq!(r.access_state, ExchangeAccessState::Quarantined);
        assert_eq!(r.when_changed.unwrap().unix_timestamp(), 1_700_000_000);
        assert_eq!((r.email_address.as_str(), r.user_principal_name.as_str()), ("kim@contoso.com", "kim@contoso.com"));
        assert!(json_records(br#"[{"DeviceType":"x"}]"#).is_err());
        assert!(json_records(b"nonsense").is_err());
    }

    #[test]
    fn reads_every_json_shape_it_read_before_streaming() {
        let one =
            br#"{"deviceid":"S1","DEVICEACCESSSTATE":"Blocked","FriendlyName":7,"DeviceOS":null,"Extra":{"a":[1]}}"#;
        let r = &json_records(one).unwrap()[0];
        assert_eq!((r.device_id.as_str(), r.access_state), ("S1", ExchangeAccessState::Blocked), "names ignore case");
        assert_eq!((r.friendly_name.as_str(), r.device_os.as_str()), ("7", ""), "numbers as their JSON, null as empty");
        let envelope =
            br#"{"@odata.context":"x","value":[{"DeviceId":"E1"},{"DeviceId":"E2"}],"@odata.nextLink":null}"#;
        let ids: Vec<String> = json_records(envelope).unwrap().into_iter().map(|r| r.device_id).collect();
        assert_eq!(ids, ["E1", "E2"]);
        let not_a_list = br#"{"DeviceId":"V1","value":{"not":"a list"}}"#;
        assert_eq!(
            json_records(not_a_list).unwrap()[0].device_id,
            "V1",
            "an object whose value is no list is a record"
        );
        assert!(json_records(br#"[{"DeviceId":"A"}, 5]"#).is_err(), "a record is not an object");
        assert!(json_records(br#"[{"DeviceId":"A"}] trailing"#).is_err());
        assert!(json_records(br#""devices""#).is_err());
    }

    #[test]
    fn hands_records_over_in_batches_and_keeps_only_changes_for_a_delta() {
        let mut text = String::from("[");
        for n in 0..(2 * BATCH_RECORDS + 1) {
            let changed = if n % 2 == 0 { "2026-11-22T10:00:00Z" } else { "2026-11-20T10:00:00Z" };
            text.push_str(&format!(
                r#"{}{{"DeviceId":"D{n}","WhenChanged":"{changed}"}}"#,
                if n == 0 { "" } else { "," }
            ));
        }
        text.push(']');
        let (batches, end) = read_json(text.as_bytes(), None);
        assert_eq!(batches.iter().map(Vec::len).collect::<Vec<_>>(), [BATCH_RECORDS, BATCH_RECORDS, 1]);
        assert_eq!(end.unwrap(), 2 * BATCH_RECORDS as u64 + 1);
        let since = parse_exchange_date("2026-11-21T00:00:00Z");
        let (batches, end) = read_json(text.as_bytes(), since);
        assert_eq!(end.unwrap(), BATCH_RECORDS as u64 + 1);
        assert!(batches.concat().iter().all(|r| r.when_changed > since));
    }

    #[test]
    fn a_bad_record_after_full_batches_fails_the_read() {
        let mut text = String::from("[");
        for n in 0..BATCH_RECORDS + 10 {
            text.push_str(&format!(r#"{{"DeviceId":"D{n}"}},"#));
        }
        text.push_str(r#"{"DeviceType":"no id"},{"DeviceId":"after"}]"#);
        let (batches, end) = read_json(text.as_bytes(), None);
        assert_eq!(batches.len(), 1, "the batch before the bad record was handed over");
        assert!(matches!(end, Err(SourceError::Invalid(m)) if m.contains("DeviceId")));
        // A receiver that goes away stops the parser.
        let end = parse_json(text.as_bytes(), &Origin::File("x.json".into()), Batcher::new(None, |_| false));
        assert!(matches!(end, Err(SourceError::Stopped)));
    }

    #[test]
    fn reads_csv_with_a_bom_columns_in_any_case_and_short_rows() {
        let csv = "\u{feff}#TYPE Microsoft.Exchange.Data.Directory.SystemConfiguration.MobileDevice\r\n\
                   deviceid,DEVICEACCESSSTATE, WhenChanged \r\n\
                   \" A1 \",Blocked,2026-11-22T10:00:00Z\r\n\
                   A2\r\n";
        let records = read_csv(csv).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!((records[0].device_id.as_str(), records[0].access_state), ("A1", ExchangeAccessState::Blocked));
        assert_eq!(records[0].when_changed.map(|d| d.unix_timestamp()), Some(1_795_341_600));
        assert_eq!((records[1].device_id.as_str(), records[1].access_state), ("A2", ExchangeAccessState::None));
        assert!(read_csv("#TYPE only\n").unwrap().is_empty());
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

    #[test]
    fn a_line_or_a_record_without_an_end_is_refused_at_the_bound() {
        let origin = Origin::File("devices.csv".into());
        let endless = |head: &'static [u8]| head.chain(io::repeat(b'x').take(100 << 20));
        for head in [&b"#TYPE x\nDeviceId,DeviceModel\nA,"[..], &b"DeviceId,DeviceModel\nA,\""[..]] {
            let outcome = parse_csv(endless(head), &origin, Batcher::new(None, |_| true));
            // Lines count from the header, after the `#TYPE` preamble.
            assert!(
                matches!(&outcome, Err(SourceError::Invalid(m)) if m == &format!("line 2 is longer than {MAX_RECORD_BYTES} bytes")),
                "{outcome:?}"
            );
        }
        let outcome = parse_csv(endless(b"#TYPE "), &origin, Batcher::new(None, |_| true));
        assert!(matches!(outcome, Err(SourceError::Invalid(m)) if m.starts_with("line 1 ")));
        let outcome = parse_json(endless(b"[{\"DeviceId\":\""), &origin, Batcher::new(None, |_| true));
        assert!(matches!(outcome, Err(SourceError::Invalid(m)) if m.starts_with("a record is longer")));
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
