//! Graph's `Edm.DateTimeOffset` as it goes on the wire.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

/// The value Graph sends for a non-nullable timestamp that was never set.
pub const MIN_VALUE: &str = "0001-01-01T00:00:00Z";

/// The length of a set timestamp on the wire, `2026-07-23T11:23:15.0768271Z`.
const WIRE_LEN: usize = 28;

/// A timestamp in Graph's wire format: UTC, `Z`, and exactly seven fractional digits
/// (`2026-07-23T11:23:15.0768271Z`). `None` is the .NET minimum value, which Graph writes as
/// `0001-01-01T00:00:00Z` (no fraction) for non-nullable timestamps that were never set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GraphDateTime(pub Option<OffsetDateTime>);

impl GraphDateTime {
    pub const NEVER: GraphDateTime = GraphDateTime(None);

    pub fn format(&self) -> String {
        let mut buffer = [0u8; WIRE_LEN];
        match self.write(&mut buffer) {
            Some(text) => text.to_owned(),
            None => self.format_any_year(),
        }
    }

    /// The wire form of a year that four digits do not hold (not a time Graph or dmsync
    /// produces, but one a client may send).
    fn format_any_year(&self) -> String {
        let t = self.0.unwrap_or(OffsetDateTime::UNIX_EPOCH).to_offset(UtcOffset::UTC);
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:07}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.nanosecond() / 100
        )
    }

    /// Writes the wire form into `buffer` and returns it, or `None` for a year outside
    /// 0–9999. A page carries several timestamps a device, so they are written digit by digit
    /// without allocating.
    fn write<'b>(&self, buffer: &'b mut [u8; WIRE_LEN]) -> Option<&'b str> {
        let Some(t) = self.0 else { return Some(MIN_VALUE) };
        let t = t.to_offset(UtcOffset::UTC);
        let year = t.year();
        if !(0..=9999).contains(&year) {
            return None;
        }
        // Graph keeps 100 ns ticks; truncate nanoseconds to seven digits.
        let fields: [(u32, usize, u8); 7] = [
            (year as u32, 4, b'-'),
            (u32::from(u8::from(t.month())), 2, b'-'),
            (u32::from(t.day()), 2, b'T'),
            (u32::from(t.hour()), 2, b':'),
            (u32::from(t.minute()), 2, b':'),
            (u32::from(t.second()), 2, b'.'),
            (t.nanosecond() / 100, 7, b'Z'),
        ];
        let mut at = 0;
        for (mut value, width, separator) in fields {
            for i in (0..width).rev() {
                buffer[at + i] = b'0' + (value % 10) as u8;
                value /= 10;
            }
            buffer[at + width] = separator;
            at += width + 1;
        }
        Some(std::str::from_utf8(&buffer[..at]).expect("ASCII digits"))
    }

    /// Parses any RFC 3339 timestamp (1 to 9 fractional digits, `Z` or an offset) and the
    /// .NET minimum value.
    pub fn parse(s: &str) -> Option<GraphDateTime> {
        if s.starts_with("0001-01-01T00:00:00") {
            return Some(GraphDateTime(None));
        }
        OffsetDateTime::parse(s, &Rfc3339).ok().map(|t| GraphDateTime(Some(t)))
    }
}

impl From<Option<OffsetDateTime>> for GraphDateTime {
    fn from(value: Option<OffsetDateTime>) -> Self {
        GraphDateTime(value)
    }
}

impl From<OffsetDateTime> for GraphDateTime {
    fn from(value: OffsetDateTime) -> Self {
        GraphDateTime(Some(value))
    }
}

impl Serialize for GraphDateTime {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut buffer = [0u8; WIRE_LEN];
        match self.write(&mut buffer) {
            Some(text) => serializer.serialize_str(text),
            None => serializer.serialize_str(&self.format_any_year()),
        }
    }
}

impl<'de> Deserialize<'de> for GraphDateTime {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        GraphDateTime::parse(&s).ok_or_else(|| serde::de::Error::custom(format!("'{s}' is not a valid DateTimeOffset")))
    }
}

/// The `date` of an error's `innerError`: ISO 8601 without offset or fraction, as Graph writes it.
pub fn inner_error_date(t: OffsetDateTime) -> String {
    // Digits by hand: every error body carries one, and `format!` with six padded integers
    // cost more than the rest of a 429's date handling together.
    let t = t.to_offset(UtcOffset::UTC);
    let mut out = String::with_capacity(19);
    let two = |out: &mut String, n: u8| {
        out.push(char::from(b'0' + n / 10));
        out.push(char::from(b'0' + n % 10));
    };
    let year = t.year();
    if (0..=9999).contains(&year) {
        two(&mut out, (year / 100) as u8);
        two(&mut out, (year % 100) as u8);
    } else {
        out.push_str(&format!("{year:04}"));
    }
    for (separator, n) in
        [('-', u8::from(t.month())), ('-', t.day()), ('T', t.hour()), (':', t.minute()), (':', t.second())]
    {
        out.push(separator);
        two(&mut out, n);
    }
    out
}

/// A timestamp is a string on the wire, "never" included (`0001-01-01T00:00:00Z`).
#[cfg(feature = "schema")]
impl schemars::JsonSchema for GraphDateTime {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "GraphDateTime".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string", "format": "date-time" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn formats_seven_fraction_digits_in_utc() {
        let t = datetime!(2026-07-23 13:23:15.076827123 +02:00);
        assert_eq!(GraphDateTime(Some(t)).format(), "2026-07-23T11:23:15.0768271Z");
        let whole = datetime!(2026-01-02 03:04:05 UTC);
        assert_eq!(GraphDateTime(Some(whole)).format(), "2026-01-02T03:04:05.0000000Z");
    }

    #[test]
    fn formats_every_field_padded_and_years_beyond_four_digits() {
        let t = datetime!(0005-01-02 03:04:05.000_000_7 UTC);
        assert_eq!(GraphDateTime(Some(t)).format(), "0005-01-02T03:04:05.0000007Z");
        let late = datetime!(9999-12-31 23:59:59.999_999_999 UTC);
        assert_eq!(serde_json::to_string(&GraphDateTime(Some(late))).unwrap(), "\"9999-12-31T23:59:59.9999999Z\"");
        let far = OffsetDateTime::from_unix_timestamp(-62_198_755_200).unwrap();
        assert_eq!(GraphDateTime(Some(far)).format(), format!("{:04}-01-01T00:00:00.0000000Z", far.year()));
    }

    #[test]
    fn never_is_the_dotnet_minimum() {
        assert_eq!(GraphDateTime::NEVER.format(), "0001-01-01T00:00:00Z");
        assert_eq!(GraphDateTime::parse("0001-01-01T00:00:00Z"), Some(GraphDateTime::NEVER));
    }

    #[test]
    fn parses_what_it_formats_and_offsets() {
        let t = GraphDateTime::parse("2026-07-23T11:23:15.0768271Z").unwrap();
        assert_eq!(t.format(), "2026-07-23T11:23:15.0768271Z");
        let offset = GraphDateTime::parse("2017-01-01T00:02:49.3205976-08:00").unwrap();
        assert_eq!(offset.format(), "2017-01-01T08:02:49.3205976Z");
        assert!(GraphDateTime::parse("yesterday").is_none());
    }

    #[test]
    fn inner_error_date_has_no_fraction_or_zone() {
        assert_eq!(inner_error_date(datetime!(2022-08-30 17:17:03.9 UTC)), "2022-08-30T17:17:03");
        assert_eq!(inner_error_date(datetime!(0005-01-02 03:04:05 +01:00)), "0005-01-02T02:04:05");
    }
}
