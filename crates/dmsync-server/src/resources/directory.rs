//! What the Entra directory collections (`devices`, `groups`) share: Entra's advanced queries.
//! `$count=true` and `$search` need `ConsistencyLevel: eventual`, with Entra's own 400 without
//! it; a `$search` of one `"property:text"` clause becomes a `$filter` clause.

use std::borrow::Cow;

use axum::http::HeaderMap;

use crate::error::ApiError;
use crate::http::list::PageRequest;

/// How a searchable property matches the text of a `$search` clause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchMatch {
    /// The property starts with the text (Entra searches the words of a name; the names
    /// Autopilot writes are one word).
    Prefix,
    /// The property is the text.
    Whole,
}

/// Whether the request opted in to Entra's advanced queries. Entra takes the value only as
/// `eventual`, ignoring its case.
fn eventual(headers: &HeaderMap) -> bool {
    headers.get("consistencylevel").and_then(|v| v.to_str().ok()).is_some_and(|v| v.eq_ignore_ascii_case("eventual"))
}

/// Entra's refusal of `$search` without `ConsistencyLevel: eventual`.
const SEARCH_NEEDS_EVENTUAL: ApiError = ApiError::DirectoryBadRequest {
    code: "Request_UnsupportedQuery",
    message: Cow::Borrowed(
        "Request with $search query parameter only works through MSGraph with a special request header: 'ConsistencyLevel: eventual'",
    ),
};

/// Entra's refusal of `$count=true` without `ConsistencyLevel: eventual`.
const COUNT_NEEDS_EVENTUAL: ApiError = ApiError::DirectoryBadRequest {
    code: "Request_BadRequest",
    message: Cow::Borrowed("$count is not currently supported."),
};

/// The refusal of a `$search` this server does not understand.
fn unsupported_search(searchable: &[(&str, SearchMatch)]) -> ApiError {
    let names: Vec<String> = searchable.iter().map(|(name, _)| format!("\"{name}:…\"")).collect();
    ApiError::DirectoryBadRequest {
        code: "Request_UnsupportedQuery",
        message: Cow::Owned(format!("Unsupported query: $search takes {} here.", names.join(" or "))),
    }
}

/// The `$filter` text that stands for a `$search` of one clause, `"property:text"` in double
/// quotes, on one of the `searchable` properties.
fn search_filter(search: &str, searchable: &[(&str, SearchMatch)]) -> Result<String, ApiError> {
    let unsupported = || unsupported_search(searchable);
    let clause = search.trim().strip_prefix('"').and_then(|s| s.strip_suffix('"')).ok_or_else(unsupported)?;
    let (property, text) = clause.split_once(':').ok_or_else(unsupported)?;
    let literal = text.replace('\'', "''");
    let (name, matching) =
        searchable.iter().find(|(name, _)| name.eq_ignore_ascii_case(property.trim())).ok_or_else(unsupported)?;
    Ok(match matching {
        SearchMatch::Prefix => format!("startswith({name},'{literal}')"),
        SearchMatch::Whole => format!("{name} eq '{literal}'"),
    })
}

/// Applies Entra's advanced-query rules to a list request: refuses `$search` and `$count=true`
/// without `ConsistencyLevel: eventual`, and folds a `$search` into the filter.
///
/// Called before the page cache is asked: the page a URL names never depends on the header,
/// because without it that URL is always this error, and errors are never kept.
pub fn advanced_query(
    request: &mut PageRequest,
    headers: &HeaderMap,
    searchable: &[(&str, SearchMatch)],
) -> Result<(), ApiError> {
    if !eventual(headers) {
        if request.query.search.is_some() {
            return Err(SEARCH_NEEDS_EVENTUAL);
        }
        if request.query.count == Some(true) {
            return Err(COUNT_NEEDS_EVENTUAL);
        }
    }
    let query = &mut request.query;
    if let Some(search) = query.search.take() {
        let clause = search_filter(&search, searchable)?;
        query.filter = Some(match query.filter.take() {
            Some(filter) => format!("({filter}) and {clause}"),
            None => clause,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_search_clause_becomes_a_filter() {
        let searchable = [("displayName", SearchMatch::Prefix), ("deviceId", SearchMatch::Whole)];
        assert_eq!(search_filter("\"displayName:PC-'1\"", &searchable).unwrap(), "startswith(displayName,'PC-''1')");
        assert_eq!(search_filter("\"DEVICEID:abc\"", &searchable).unwrap(), "deviceId eq 'abc'");
        for refused in ["displayName:x", "\"model:x\"", "\"nothing\""] {
            assert!(search_filter(refused, &searchable).is_err(), "{refused}");
        }
    }
}
