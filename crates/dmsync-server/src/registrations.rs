//! Reading registration uploads for the admin API: the real Autopilot CSV format
//! (`Device Serial Number,Windows Product ID,Hardware Hash[,Group Tag][,Assigned User]`) or a
//! JSON list, parsed as a stream on a blocking thread and handed over in batches, so an upload
//! of a million rows never sits in memory at once.

use std::io::{BufReader, BufWriter, Read, Seek, Write};

use serde::Deserialize;
use serde::de::{SeqAccess, Visitor};

use dmsync_core::autopilot::{NewRegistration, RegistrationProblem, RegistrationRejection};
use dmsync_core::limits::{self, RecordLimit};

/// Rows per batch handed to the store.
pub const BATCH_ROWS: usize = 2000;
/// The largest upload accepted, in rows.
pub const MAX_ROWS: u64 = 2_000_000;
/// How many refused rows are reported at most.
pub const MAX_REPORTED: usize = 1000;

/// One row as the JSON form sends it.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct RegistrationRow {
    #[serde(default)]
    pub serial_number: String,
    #[serde(default)]
    pub hardware_hash: String,
    #[serde(default)]
    pub manufacturer: String,
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub group_tag: String,
    #[serde(default)]
    pub purchase_order_identifier: String,
    #[serde(default)]
    pub product_key: String,
}

/// Decodes a hardware hash sent as standard base64 (what WMI gives) or base64url, padded or not.
pub fn decode_hardware_hash(text: &str) -> Option<Vec<u8>> {
    dmsync_core::autopilot_csv::decode_hardware_hash(text)
}

/// Checks what can be checked without the database.
pub fn validate(line: u64, row: RegistrationRow) -> Result<NewRegistration, RegistrationRejection> {
    let reject = |reason| RegistrationRejection { line, serial_number: row.serial_number.clone(), reason };
    if row.serial_number.trim().is_empty() {
        return Err(reject(RegistrationProblem::MissingSerialNumber));
    }
    if row.hardware_hash.trim().is_empty() {
        return Err(reject(RegistrationProblem::MissingHardwareHash));
    }
    if !limits::hardware_hash_within_bound(&row.hardware_hash) {
        return Err(reject(RegistrationProblem::HardwareHashTooLong));
    }
    let hardware_hash =
        decode_hardware_hash(&row.hardware_hash).ok_or_else(|| reject(RegistrationProblem::InvalidHardwareHash))?;
    Ok(NewRegistration {
        serial_number: row.serial_number.trim().to_owned(),
        hardware_hash,
        manufacturer: row.manufacturer,
        model: row.model,
        group_tag: row.group_tag,
        purchase_order_identifier: row.purchase_order_identifier,
        product_key: row.product_key,
    })
}

/// The good rows of an upload, kept in an unnamed temporary file while the client is still
/// sending, so that the database is only asked for once the whole upload has arrived: a client
/// that stalls holds a file, never the store's writer. The file has no name (it goes away with
/// the process, even on `kill -9`), so an upload that got no answer leaves nothing behind.
pub struct Spool {
    file: BufWriter<std::fs::File>,
    rows: u64,
}

impl Spool {
    pub fn new() -> std::io::Result<Spool> {
        Ok(Spool { file: BufWriter::new(tempfile::tempfile()?), rows: 0 })
    }

    /// Appends a batch; each row is its line number and its fields, each length-prefixed.
    pub fn append(&mut self, batch: &[(u64, NewRegistration)]) -> std::io::Result<()> {
        for (line, r) in batch {
            self.file.write_all(&line.to_le_bytes())?;
            for field in [
                r.serial_number.as_bytes(),
                &r.hardware_hash,
                r.manufacturer.as_bytes(),
                r.model.as_bytes(),
                r.group_tag.as_bytes(),
                r.purchase_order_identifier.as_bytes(),
                r.product_key.as_bytes(),
            ] {
                self.file.write_all(&(field.len() as u64).to_le_bytes())?;
                self.file.write_all(field)?;
            }
        }
        self.rows += batch.len() as u64;
        Ok(())
    }

    /// Reads the rows back in order, in batches of at most `BATCH_ROWS`, handing each to `sink`
    /// (false = stop).
    pub fn replay(self, mut sink: impl FnMut(Vec<(u64, NewRegistration)>) -> bool) -> std::io::Result<()> {
        let mut file = self.file.into_inner().map_err(|e| e.into_error())?;
        file.rewind()?;
        let mut reader = BufReader::new(file);
        let mut left = self.rows;
        let read_u64 = |reader: &mut BufReader<std::fs::File>| -> std::io::Result<u64> {
            let mut bytes = [0u8; 8];
            reader.read_exact(&mut bytes)?;
            Ok(u64::from_le_bytes(bytes))
        };
        let read_bytes = |reader: &mut BufReader<std::fs::File>| -> std::io::Result<Vec<u8>> {
            let mut bytes = [0u8; 8];
            reader.read_exact(&mut bytes)?;
            let mut field = vec![0u8; u64::from_le_bytes(bytes) as usize];
            reader.read_exact(&mut field)?;
            Ok(field)
        };
        let text = |bytes: Vec<u8>| String::from_utf8(bytes).map_err(std::io::Error::other);
        while left > 0 {
            let take = left.min(BATCH_ROWS as u64);
            let mut batch = Vec::with_capacity(take as usize);
            for _ in 0..take {
                let line = read_u64(&mut reader)?;
                let registration = NewRegistration {
                    serial_number: text(read_bytes(&mut reader)?)?,
                    hardware_hash: read_bytes(&mut reader)?,
                    manufacturer: text(read_bytes(&mut reader)?)?,
                    model: text(read_bytes(&mut reader)?)?,
                    group_tag: text(read_bytes(&mut reader)?)?,
                    purchase_order_identifier: text(read_bytes(&mut reader)?)?,
                    product_key: text(read_bytes(&mut reader)?)?,
                };
                batch.push((line, registration));
            }
            left -= take;
            if !sink(batch) {
                break;
            }
        }
        Ok(())
    }
}

/// Why an upload could not be read at all.
#[derive(Debug, PartialEq, Eq)]
pub enum UploadError {
    Malformed(String),
    TooManyRows,
    /// The receiving side stopped (the store failed); the error is reported there.
    Abandoned,
    /// The spool file could not be written (the local disk failed).
    Spool(String),
}

/// What the parser saw besides the good rows it handed over.
#[derive(Debug, Default)]
pub struct ParseOutcome {
    pub rows: u64,
    pub refused: Vec<RegistrationRejection>,
    pub refused_total: u64,
}

/// Collects rows into batches and hands each full batch to `sink` (false = stop).
struct Batcher<F: FnMut(Vec<(u64, NewRegistration)>) -> bool> {
    batch: Vec<(u64, NewRegistration)>,
    sink: F,
    outcome: ParseOutcome,
}

impl<F: FnMut(Vec<(u64, NewRegistration)>) -> bool> Batcher<F> {
    fn push(&mut self, line: u64, row: RegistrationRow) -> Result<(), UploadError> {
        self.outcome.rows += 1;
        if self.outcome.rows > MAX_ROWS {
            return Err(UploadError::TooManyRows);
        }
        match validate(line, row) {
            Ok(r) => {
                // Once a row is refused nothing will be written, so good rows are only counted.
                if self.outcome.refused_total == 0 {
                    self.batch.push((line, r));
                    if self.batch.len() >= BATCH_ROWS && !(self.sink)(std::mem::take(&mut self.batch)) {
                        return Err(UploadError::Abandoned);
                    }
                }
            }
            Err(rejection) => {
                self.outcome.refused_total += 1;
                if self.outcome.refused.len() < MAX_REPORTED {
                    self.outcome.refused.push(rejection);
                }
            }
        }
        Ok(())
    }

    fn finish(mut self) -> Result<ParseOutcome, UploadError> {
        if !self.batch.is_empty() && self.outcome.refused_total == 0 && !(self.sink)(std::mem::take(&mut self.batch)) {
            return Err(UploadError::Abandoned);
        }
        Ok(self.outcome)
    }
}

/// Parses the Autopilot CSV format. The header names the columns (case-insensitively, in any
/// order): `Device Serial Number` and `Hardware Hash` are required; `Windows Product ID` is the
/// product key; `Group Tag` (or `OrderID`), `Manufacturer`, `Model` and
/// `Purchase Order Identifier` are optional; other columns (`Assigned User`) are ignored. Lines
/// are numbered from the header, line 1, counting every non-blank line.
pub fn parse_csv<R: Read>(
    reader: R,
    sink: impl FnMut(Vec<(u64, NewRegistration)>) -> bool,
) -> Result<ParseOutcome, UploadError> {
    // Each record (the header too) is bounded while it is read, so a line without an end costs
    // no more memory than the bound.
    let limit = RecordLimit::new(limits::MAX_RECORD_BYTES);
    let mut csv = csv::ReaderBuilder::new().flexible(true).trim(csv::Trim::All).from_reader(limit.wrap(reader));
    let too_long =
        |line: u64| UploadError::Malformed(format!("Line {line} of the CSV is longer than {} bytes.", limit.limit()));
    let headers = match csv.headers() {
        Ok(headers) => headers.clone(),
        Err(_) if limit.exceeded() => return Err(too_long(1)),
        Err(e) => return Err(UploadError::Malformed(format!("The CSV header could not be read: {e}"))),
    };
    limit.record_ended();
    let find = |names: &[&str]| {
        headers.iter().position(|h| {
            let h = h.trim_start_matches('\u{feff}').trim();
            names.iter().any(|n| h.eq_ignore_ascii_case(n))
        })
    };
    let (Some(serial), Some(hash)) = (find(&["Device Serial Number"]), find(&["Hardware Hash"])) else {
        return Err(UploadError::Malformed(
            "The CSV header must name the columns 'Device Serial Number' and 'Hardware Hash'.".into(),
        ));
    };
    let product = find(&["Windows Product ID"]);
    let tag = find(&["Group Tag", "OrderID"]);
    let manufacturer = find(&["Manufacturer"]);
    let model = find(&["Model"]);
    let order = find(&["Purchase Order Identifier"]);
    let mut batcher = Batcher { batch: Vec::with_capacity(BATCH_ROWS), sink, outcome: ParseOutcome::default() };
    let mut record = csv::StringRecord::new();
    loop {
        // Where the record being read starts, for the error if it has no end.
        let next_line = csv.position().line();
        match csv.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                limit.record_ended();
                if record.iter().all(|f| f.is_empty()) {
                    continue;
                }
                let line = record.position().map(|p| p.line()).unwrap_or(0);
                let field = |i: Option<usize>| i.and_then(|i| record.get(i)).unwrap_or("").to_owned();
                let row = RegistrationRow {
                    serial_number: field(Some(serial)),
                    hardware_hash: field(Some(hash)),
                    manufacturer: field(manufacturer),
                    model: field(model),
                    group_tag: field(tag),
                    purchase_order_identifier: field(order),
                    product_key: field(product),
                };
                batcher.push(line, row)?;
            }
            Err(_) if limit.exceeded() => return Err(too_long(next_line)),
            Err(e) => return Err(UploadError::Malformed(format!("The CSV is not valid: {e}"))),
        }
    }
    batcher.finish()
}

/// Parses a JSON list of registrations element by element.
pub fn parse_json<R: Read>(
    reader: R,
    sink: impl FnMut(Vec<(u64, NewRegistration)>) -> bool,
) -> Result<ParseOutcome, UploadError> {
    struct ListVisitor<'a, F: FnMut(Vec<(u64, NewRegistration)>) -> bool> {
        batcher: &'a mut Batcher<F>,
        error: &'a mut Option<UploadError>,
        limit: &'a RecordLimit,
    }
    impl<'de, F: FnMut(Vec<(u64, NewRegistration)>) -> bool> Visitor<'de> for ListVisitor<'_, F> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON list of registrations")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            let mut line = 0u64;
            loop {
                let row = match seq.next_element::<RegistrationRow>() {
                    Ok(Some(row)) => row,
                    Ok(None) => break,
                    Err(_) if self.limit.exceeded() => {
                        *self.error = Some(UploadError::Malformed(format!(
                            "Element {} of the registration list is longer than {} bytes.",
                            line + 1,
                            self.limit.limit()
                        )));
                        return Err(serde::de::Error::custom("stopped"));
                    }
                    Err(e) => return Err(e),
                };
                self.limit.record_ended();
                line += 1;
                if let Err(e) = self.batcher.push(line, row) {
                    *self.error = Some(e);
                    return Err(serde::de::Error::custom("stopped"));
                }
            }
            Ok(())
        }
    }
    let mut batcher = Batcher { batch: Vec::with_capacity(BATCH_ROWS), sink, outcome: ParseOutcome::default() };
    let mut error = None;
    // Each element is bounded while it is read, as a CSV record is.
    let limit = RecordLimit::new(limits::MAX_RECORD_BYTES);
    let mut de = serde_json::Deserializer::from_reader(std::io::BufReader::new(limit.wrap(reader)));
    let visitor = ListVisitor { batcher: &mut batcher, error: &mut error, limit: &limit };
    let result = serde::Deserializer::deserialize_seq(&mut de, visitor).and_then(|()| de.end());
    if let Some(e) = error {
        return Err(e);
    }
    result.map_err(|e| UploadError::Malformed(format!("The registration list is not valid JSON: {e}")))?;
    batcher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(
        parse: impl FnOnce(&mut dyn FnMut(Vec<(u64, NewRegistration)>) -> bool) -> Result<ParseOutcome, UploadError>,
    ) -> (Vec<(u64, NewRegistration)>, Result<ParseOutcome, UploadError>) {
        let mut rows = Vec::new();
        let outcome = parse(&mut |batch| {
            rows.extend(batch);
            true
        });
        (rows, outcome)
    }

    #[test]
    fn reads_the_autopilot_csv_with_optional_columns_and_a_bom() {
        let csv = "\u{feff}Device Serial Number,Windows Product ID,Hardware Hash,Group Tag,Assigned User\n\
                   PF1GHXN3,00330-80000,VGhpcyBpcyBhIGhhc2g=,Sales,kim@contoso.com\n\
                   \n\
                   PF1GHXN4,,QW5vdGhlciBoYXNo\n";
        let (rows, outcome) = collect(|sink| parse_csv(csv.as_bytes(), sink));
        let outcome = outcome.unwrap();
        assert_eq!(outcome.rows, 2);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].0, 2, "line numbers count the header");
        assert_eq!(rows[0].1.serial_number, "PF1GHXN3");
        assert_eq!(rows[0].1.product_key, "00330-80000");
        assert_eq!(rows[0].1.group_tag, "Sales");
        assert_eq!(rows[0].1.hardware_hash, b"This is a hash");
        // The csv crate does not count blank lines; see docs/GRAPH-COMPAT.md.
        assert_eq!((rows[1].0, rows[1].1.group_tag.as_str()), (3, ""));
    }

    #[test]
    fn reports_bad_rows_by_line_and_hands_over_nothing_after_one() {
        let csv = "Device Serial Number,Windows Product ID,Hardware Hash\nA,,AAAA\n,,AAAA\nC,,***\nD,,\n";
        let (_, outcome) = collect(|sink| parse_csv(csv.as_bytes(), sink));
        let outcome = outcome.unwrap();
        let refused: Vec<(u64, RegistrationProblem)> =
            outcome.refused.iter().map(|r| (r.line, r.reason.clone())).collect();
        assert_eq!(
            refused,
            [
                (3, RegistrationProblem::MissingSerialNumber),
                (4, RegistrationProblem::InvalidHardwareHash),
                (5, RegistrationProblem::MissingHardwareHash)
            ]
        );
        let missing = "Serial,Hash\nA,AAAA\n";
        assert!(matches!(collect(|sink| parse_csv(missing.as_bytes(), sink)).1, Err(UploadError::Malformed(_))));
    }

    #[test]
    fn streams_json_lists_in_batches() {
        let mut json = String::from("[");
        for i in 0..(BATCH_ROWS * 2 + 5) {
            if i > 0 {
                json.push(',');
            }
            json.push_str(&format!(r#"{{"serialNumber":"S{i}","hardwareHash":"AAAA","model":"M"}}"#));
        }
        json.push(']');
        let mut batches = Vec::new();
        let outcome = parse_json(json.as_bytes(), |b| {
            batches.push(b.len());
            true
        })
        .unwrap();
        assert_eq!(outcome.rows as usize, BATCH_ROWS * 2 + 5);
        assert_eq!(batches, [BATCH_ROWS, BATCH_ROWS, 5]);
        assert!(matches!(parse_json(&b"[{\"serialNumber\":1}]"[..], |_| true), Err(UploadError::Malformed(_))));
        assert!(matches!(parse_json(&b"{}"[..], |_| true), Err(UploadError::Malformed(_))));
        assert!(matches!(parse_json(&b"[] trailing"[..], |_| true), Err(UploadError::Malformed(_))));
    }

    /// A header, one good row, then `tail` for 100 MB: read as a stream, never held whole.
    fn endless_line(tail: &'static [u8]) -> impl Read {
        let head = "Device Serial Number,Windows Product ID,Hardware Hash\nA,,AAAA\n".to_owned();
        std::io::Cursor::new(head.into_bytes()).chain(tail).chain(std::io::repeat(b'x').take(100 << 20))
    }

    #[test]
    fn a_line_or_a_quoted_field_without_an_end_is_refused_at_the_bound_with_its_line() {
        for tail in [&b"B,,"[..], &b"B,,\""[..]] {
            let (_, outcome) = collect(|sink| parse_csv(endless_line(tail), sink));
            match outcome {
                Err(UploadError::Malformed(message)) => {
                    assert!(message.starts_with("Line 3 of the CSV is longer than"), "{message}")
                }
                other => panic!("expected a refusal, got {other:?}"),
            }
        }
        let header = std::io::repeat(b'x').take(100 << 20);
        let (_, outcome) = collect(|sink| parse_csv(header, sink));
        assert!(matches!(outcome, Err(UploadError::Malformed(m)) if m.starts_with("Line 1 ")));
    }

    #[test]
    fn a_json_element_without_an_end_is_refused_at_the_bound() {
        let body = std::io::Cursor::new(&b"[{\"serialNumber\":\"A\",\"hardwareHash\":\""[..])
            .chain(std::io::repeat(b'A').take(100 << 20));
        let outcome = parse_json(body, |_| true);
        assert!(
            matches!(outcome, Err(UploadError::Malformed(m)) if m.starts_with("Element 1 of the registration list is longer"))
        );
    }

    #[test]
    fn a_hardware_hash_over_the_bound_is_refused_by_line() {
        let long = "A".repeat(limits::MAX_HARDWARE_HASH_BASE64 + 4);
        let at_bound = "A".repeat(limits::MAX_HARDWARE_HASH_BASE64);
        let csv = format!("Device Serial Number,Hardware Hash\nA,{at_bound}\nB,{long}\n");
        let (_, outcome) = collect(|sink| parse_csv(csv.as_bytes(), sink));
        let refused: Vec<(u64, RegistrationProblem)> =
            outcome.unwrap().refused.iter().map(|r| (r.line, r.reason.clone())).collect();
        assert_eq!(refused, [(3, RegistrationProblem::HardwareHashTooLong)]);
        let json = format!(r#"[{{"serialNumber":"B","hardwareHash":"{long}"}}]"#);
        let outcome = parse_json(json.as_bytes(), |_| true).unwrap();
        assert_eq!(outcome.refused[0].reason, RegistrationProblem::HardwareHashTooLong);
    }
}
