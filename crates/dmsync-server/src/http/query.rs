//! OData system query options. Names are matched case-insensitively and percent-decoded, so
//! `$top`, `%24top` and `$TOP` are the same option; values are percent-decoded too.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::error::ApiError;

/// The options dmsync understands. Which ones a handler honours is up to the handler; an
/// option it does not support must be refused with [`ODataQuery::refuse_unsupported`].
#[derive(Debug, Default, Clone)]
pub struct ODataQuery {
    pub select: Option<Vec<String>>,
    pub top: Option<u32>,
    pub skiptoken: Option<String>,
    pub count: Option<bool>,
    pub filter: Option<String>,
    pub orderby: Option<String>,
    pub expand: Option<Vec<String>>,
    pub skip: Option<String>,
    pub search: Option<String>,
}

/// The longest value of a system query option, in bytes after percent-decoding. The longest
/// real one is a `$filter` (which has the same bound of its own) or a `$skiptoken` (a sort value
/// and an id); the URI itself may be longer, so each option is bounded on its own.
pub const MAX_QUERY_OPTION_LENGTH: usize = 4096;

fn split_list(value: &str) -> Vec<String> {
    value.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect()
}

impl ODataQuery {
    pub fn parse(raw: Option<&str>) -> Result<ODataQuery, ApiError> {
        let mut q = ODataQuery::default();
        let Some(raw) = raw else { return Ok(q) };
        for (name, value) in form_urlencoded::parse(raw.as_bytes()) {
            let lower = name.to_ascii_lowercase();
            let Some(option) = lower.strip_prefix('$') else {
                // Graph ignores custom query parameters.
                continue;
            };
            if value.len() > MAX_QUERY_OPTION_LENGTH {
                return Err(ApiError::BadRequest(format!(
                    "The value of query option '${option}' is longer than {MAX_QUERY_OPTION_LENGTH} characters."
                )));
            }
            match option {
                "select" => q.select = Some(split_list(&value)),
                "expand" => q.expand = Some(split_list(&value)),
                "top" => {
                    q.top = Some(value.trim().parse::<u32>().map_err(|_| {
                        ApiError::BadRequest(format!("Invalid value '{value}' for query option '$top'."))
                    })?)
                }
                "skiptoken" => q.skiptoken = Some(value.into_owned()),
                "count" => {
                    q.count = Some(match value.to_ascii_lowercase().as_str() {
                        "true" => true,
                        "false" => false,
                        _ => {
                            return Err(ApiError::BadRequest(format!(
                                "Invalid value '{value}' for query option '$count'."
                            )));
                        }
                    })
                }
                "filter" => q.filter = Some(value.into_owned()),
                "orderby" => q.orderby = Some(value.into_owned()),
                "skip" => q.skip = Some(value.into_owned()),
                "search" => q.search = Some(value.into_owned()),
                other => {
                    return Err(ApiError::BadRequest(format!("Query option '${other}' is not supported.")));
                }
            }
        }
        Ok(q)
    }

    /// Refuses options the resource does not support, naming the first one.
    pub fn refuse_unsupported(&self, supported: &[&str]) -> Result<(), ApiError> {
        let present = [
            ("$select", self.select.is_some()),
            ("$top", self.top.is_some()),
            ("$skiptoken", self.skiptoken.is_some()),
            ("$count", self.count.is_some()),
            ("$filter", self.filter.is_some()),
            ("$orderby", self.orderby.is_some()),
            ("$expand", self.expand.is_some()),
            ("$skip", self.skip.is_some()),
            ("$search", self.search.is_some()),
        ];
        for (name, is_present) in present {
            if is_present && !supported.contains(&name) {
                return Err(ApiError::BadRequest(format!("Query option '{name}' is not supported for this resource.")));
            }
        }
        Ok(())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ODataQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        ODataQuery::parse(parts.uri.query())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn decodes_names_and_values_either_way() {
        let q =
            ODataQuery::parse(Some("%24select=id,serialNumber&$TOP=5&$filter=contains%28serialNumber%2C%27SN1%27%29"))
                .unwrap();
        assert_eq!(q.select.unwrap(), vec!["id", "serialNumber"]);
        assert_eq!(q.top, Some(5));
        assert_eq!(q.filter.as_deref(), Some("contains(serialNumber,'SN1')"));
    }

    #[test]
    fn refuses_bad_values_and_unknown_options() {
        assert!(ODataQuery::parse(Some("$top=-1")).is_err());
        assert!(ODataQuery::parse(Some("$count=maybe")).is_err());
        assert!(ODataQuery::parse(Some("$frobnicate=1")).is_err());
        assert!(ODataQuery::parse(Some("api-version=2")).is_ok());
    }

    #[test]
    fn every_option_value_is_bounded() {
        for option in ["$select", "$expand", "$top", "$skiptoken", "$count", "$filter", "$orderby", "$skip", "$search"]
        {
            let long = format!("{option}={}", "a".repeat(MAX_QUERY_OPTION_LENGTH + 1));
            let error = ODataQuery::parse(Some(&long)).unwrap_err();
            assert!(matches!(&error, ApiError::BadRequest(m) if m.contains("longer than")), "{option}: {error}");
        }
        // Percent-encoding does not count against the bound; the decoded value does.
        let encoded = format!("$filter={}", "%28".repeat(MAX_QUERY_OPTION_LENGTH));
        assert!(ODataQuery::parse(Some(&encoded)).is_ok());
    }

    /// Query strings built from the options' names, separators and escapes.
    fn query_soup() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("$select="),
            Just("%24top="),
            Just("$TOP="),
            Just("$skiptoken="),
            Just("$count="),
            Just("$filter="),
            Just("$orderby="),
            Just("$expand="),
            Just("$frob="),
            Just("&"),
            Just("="),
            Just(","),
            Just("%"),
            Just("%2"),
            Just("%28"),
            Just("%FF"),
            Just("+"),
            Just("id"),
            Just("true"),
            Just("5"),
            Just("-1"),
            Just("99999999999"),
            Just("("),
            Just("'"),
        ];
        proptest::collection::vec(piece, 0..300).prop_map(|pieces| pieces.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

        /// Any query string is parsed or refused with a 400, and what is parsed respects the bound.
        #[test]
        fn random_query_strings_never_panic(raw in query_soup()) {
            match ODataQuery::parse(Some(&raw)) {
                Ok(q) => {
                    for value in [&q.skiptoken, &q.filter, &q.orderby, &q.skip, &q.search].into_iter().flatten() {
                        prop_assert!(value.len() <= MAX_QUERY_OPTION_LENGTH);
                    }
                }
                Err(e) => prop_assert!(matches!(e, ApiError::BadRequest(_))),
            }
        }

        /// Long and deeply nested values, up to 100,000 brackets, are refused by length.
        #[test]
        fn long_nested_values_are_refused(
            option in prop_oneof![Just("$filter"), Just("$orderby"), Just("$select"), Just("$skiptoken"), Just("$expand")],
            depth in prop_oneof![Just(100_000usize), (MAX_QUERY_OPTION_LENGTH / 2 + 1)..20_000usize],
        ) {
            let raw = format!("{option}={}x{}", "(".repeat(depth), ")".repeat(depth));
            prop_assert!(ODataQuery::parse(Some(&raw)).is_err());
        }

        #[test]
        fn arbitrary_query_strings_never_panic(raw in any::<String>()) {
            let _ = ODataQuery::parse(Some(&raw));
        }
    }
}
