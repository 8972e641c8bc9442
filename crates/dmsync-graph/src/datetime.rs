//! Graph's `Edm.DateTimeOffset` as it goes on the wire.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

/// The value Graph sends for a non-nullable timestamp that was never set.
pub const MIN_VALUE: &str = "0001-01-01T00:00:00Z";

/// A timestamp in Graph's wire format: UTC, `Z`, and exactly seven fractional digits
/// (`2026-07-23T11:23:15.0768271Z`). `None` is the .NET minimum value, which Graph writes as
/// `0001-01-01T00:00:00Z` (no fraction) for non-nullable timestamps that were never set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GraphDateTime(pub Option<OffsetDateTime>);

impl GraphDateTime {
    pub const NEVER: GraphDateTime = GraphDateTime(None);

    pub fn format(&self) -> String {
        match self.0 {
            None => MIN_VALUE.to_owned(),
            Some(t) => {
                let t = t.to_offset(UtcOffset::UTC);
                // Graph keeps 100 ns ticks; truncate nanoseconds to seven digits.
                let ticks = t.nanosecond() / 100;
                format!(
                    "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:07}Z",
                    t.year(),
                    u8::from(t.month()),
                    t.day(),
                    t.hour(),
                    t.minute(),
                    t.second(),
                    ticks
                )
            }
        }
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
        serializer.serialize_str(&self.format())
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
