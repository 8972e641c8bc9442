//! The Autopilot device CSV that OEMs, `Get-WindowsAutopilotInfo` and the Intune admin center
//! exchange: `Device Serial Number`, `Windows Product ID`, `Hardware Hash`, and optionally
//! `Group Tag` (or the older `OrderID`) and `Assigned User`. One reader serves the CLI's
//! `autopilot import` and the web console's upload, so both accept and refuse the same files.

use crate::limits::{self, RecordLimit};

/// One device row of the file, its fields trimmed. The hardware hash is still base64 text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvDevice {
    /// The file's line the row starts on, counting the header as line 1.
    pub line: u64,
    pub serial_number: String,
    pub hardware_hash: String,
    pub group_tag: String,
    pub product_key: String,
    pub assigned_user_principal_name: String,
}

/// What is wrong with a file: a problem with the whole file, or the rows that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsvProblem {
    #[error("{0}")]
    File(String),
    /// Every bad row, up to [`MAX_REPORTED_ROWS`], each with its line; the file is refused
    /// whole, as the admin center refuses it, so that a fixed file imports once.
    #[error("{}", .0.iter().map(|(line, message)| format!("line {line}: {message}")).collect::<Vec<_>>().join("; "))]
    Rows(Vec<(u64, String)>),
}

/// The most bad rows one refusal names: enough to fix a file, bounded for a file of bad rows.
pub const MAX_REPORTED_ROWS: usize = 50;

/// Reads a file's bytes as text. `Get-WindowsAutopilotInfo` on Windows PowerShell writes UTF-16
/// with a byte-order mark; PowerShell 7 and Excel write UTF-8, with or without one.
pub fn decode_text(bytes: &[u8]) -> Option<String> {
    let utf16 = |bytes: &[u8], from: fn([u8; 2]) -> u16| {
        let units: Vec<u16> = bytes.chunks_exact(2).map(|c| from([c[0], c[1]])).collect();
        String::from_utf16(&units).ok()
    };
    match bytes {
        [0xFF, 0xFE, rest @ ..] => utf16(rest, u16::from_le_bytes),
        [0xFE, 0xFF, rest @ ..] => utf16(rest, u16::from_be_bytes),
        [0xEF, 0xBB, 0xBF, rest @ ..] => String::from_utf8(rest.to_vec()).ok(),
        _ => String::from_utf8(bytes.to_vec()).ok(),
    }
}

/// Parses the file. Columns are found by name, case-insensitively, in any order; a `group_tag`
/// given here replaces the file's. Blank lines are skipped.
pub fn read_autopilot_csv(text: &str, group_tag: Option<&str>) -> Result<Vec<CsvDevice>, CsvProblem> {
    // Each record is bounded while it is parsed, so a line without an end is refused at the
    // bound rather than copied whole.
    let limit = RecordLimit::new(limits::MAX_RECORD_BYTES);
    let mut reader =
        csv::ReaderBuilder::new().flexible(true).trim(csv::Trim::All).from_reader(limit.wrap(text.as_bytes()));
    let too_long = |line: u64| CsvProblem::File(format!("line {line} is longer than {} bytes", limit.limit()));
    let headers = match reader.headers() {
        Ok(headers) => headers.clone(),
        Err(_) if limit.exceeded() => return Err(too_long(1)),
        Err(e) => return Err(CsvProblem::File(format!("the header cannot be read: {e}"))),
    };
    limit.record_ended();
    let column = |names: &[&str]| headers.iter().position(|h| names.iter().any(|n| h.eq_ignore_ascii_case(n)));
    let (Some(serial), Some(hash)) = (column(&["Device Serial Number"]), column(&["Hardware Hash"])) else {
        return Err(CsvProblem::File("the header must name 'Device Serial Number' and 'Hardware Hash'".into()));
    };
    let product = column(&["Windows Product ID"]);
    let tag = column(&["Group Tag", "OrderID"]);
    let user = column(&["Assigned User"]);
    let mut devices = Vec::new();
    let mut bad_rows = Vec::new();
    let mut record = csv::StringRecord::new();
    loop {
        let next_line = reader.position().line();
        match reader.read_record(&mut record) {
            Ok(true) => limit.record_ended(),
            Ok(false) => break,
            Err(_) if limit.exceeded() => return Err(too_long(next_line)),
            Err(e) => return Err(CsvProblem::File(format!("not valid CSV: {e}"))),
        }
        if record.iter().all(str::is_empty) {
            continue;
        }
        // The reader counts a record from the end of the one before, blank lines and all.
        let line = record.position().map_or(next_line, |p| {
            let rest = text.as_bytes().get(p.byte() as usize..).unwrap_or_default();
            p.line() + blank_lines_at_start(rest)
        });
        let field = |i: Option<usize>| i.and_then(|i| record.get(i)).unwrap_or("").to_owned();
        let device = CsvDevice {
            line,
            serial_number: field(Some(serial)),
            hardware_hash: field(Some(hash)),
            group_tag: group_tag.map(str::to_owned).unwrap_or_else(|| field(tag)),
            product_key: field(product),
            assigned_user_principal_name: field(user),
        };
        let problem = if device.serial_number.is_empty() || device.hardware_hash.is_empty() {
            Some("it has no serial number or no hardware hash".to_owned())
        } else if !limits::hardware_hash_within_bound(&device.hardware_hash) {
            Some(format!("the hardware hash is longer than {} characters of base64", limits::MAX_HARDWARE_HASH_BASE64))
        } else if decode_hardware_hash(&device.hardware_hash).is_none() {
            // Graph refuses the whole import request for one such row; refused here, it is named
            // by its line and no batch of the file is sent.
            Some("the hardware hash is not base64".to_owned())
        } else {
            None
        };
        match problem {
            Some(message) if bad_rows.len() < MAX_REPORTED_ROWS => bad_rows.push((line, message)),
            Some(_) => {}
            None => devices.push(device),
        }
    }
    if !bad_rows.is_empty() {
        return Err(CsvProblem::Rows(bad_rows));
    }
    if devices.is_empty() {
        return Err(CsvProblem::File("no devices in the file".into()));
    }
    Ok(devices)
}

/// A hardware hash's bytes from its base64 text, as Graph and the OEM upload take it: standard
/// or URL-safe alphabet, padded or not.
pub fn decode_hardware_hash(text: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let t = text.trim();
    [&STANDARD, &URL_SAFE, &STANDARD_NO_PAD, &URL_SAFE_NO_PAD].iter().find_map(|engine| engine.decode(t).ok())
}

/// How many empty lines (`\n` or `\r\n`) `bytes` starts with.
fn blank_lines_at_start(mut bytes: &[u8]) -> u64 {
    let mut lines = 0;
    loop {
        bytes = match bytes {
            [b'\n', rest @ ..] | [b'\r', b'\n', rest @ ..] => rest,
            _ => return lines,
        };
        lines += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_found_by_name_and_every_bad_row_is_named() {
        let text = "Hardware Hash,device serial number,OrderID\nAAAA,S1,tag\n\n,S2,\nBBBB,,x\r\n\r\n\n,,,\nCCCC,S4,\n";
        match read_autopilot_csv(text, None) {
            Err(CsvProblem::Rows(rows)) => assert_eq!(rows.iter().map(|r| r.0).collect::<Vec<_>>(), [4, 5]),
            other => panic!("{other:?}"),
        }
        let good = read_autopilot_csv("Hardware Hash,Device Serial Number,OrderID\nAAAA,S1,tag\nCCCC,S4,\n", Some("T"))
            .unwrap();
        assert_eq!(good.len(), 2);
        assert_eq!((good[0].line, good[0].serial_number.as_str(), good[0].group_tag.as_str()), (2, "S1", "T"));
        assert!(matches!(read_autopilot_csv("a,b\n1,2\n", None), Err(CsvProblem::File(_))));
        assert!(matches!(read_autopilot_csv("Device Serial Number,Hardware Hash\n", None), Err(CsvProblem::File(_))));
        match read_autopilot_csv("Device Serial Number,Hardware Hash\nS1,AAAA\nS2,not*base64\n", None) {
            Err(CsvProblem::Rows(rows)) => assert_eq!(rows, [(3, "the hardware hash is not base64".to_owned())]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_line_without_an_end_is_refused_at_the_bound() {
        let text =
            format!("Device Serial Number,Hardware Hash\nS1,\"{}", "A".repeat(limits::MAX_RECORD_BYTES as usize * 2));
        assert!(matches!(read_autopilot_csv(&text, None), Err(CsvProblem::File(m)) if m.contains("longer than")));
    }

    #[test]
    fn utf16_with_a_byte_order_mark_is_text() {
        let mut bytes = vec![0xFF, 0xFE];
        bytes.extend("a,b".encode_utf16().flat_map(u16::to_le_bytes));
        assert_eq!(decode_text(&bytes).as_deref(), Some("a,b"));
        assert_eq!(decode_text(&[0xEF, 0xBB, 0xBF, b'x']).as_deref(), Some("x"));
        assert_eq!(decode_text(&[0xC3]), None);
    }
}
