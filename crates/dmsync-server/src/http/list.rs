//! What every Graph collection shares: `$filter` and `$orderby` resolved against the
//! resource's fields, the opaque keyset `$skiptoken`, the absolute `@odata.nextLink`, and the
//! page size.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dmsync_core::filter::{Filter, Literal, parse_filter};
use dmsync_core::query::{Cursor, CursorId, ListQuery, SortDirection};
use dmsync_core::{StoreError, TenantId};
use dmsync_graph::ApiVersion;
use dmsync_graph::odata::context_url;
use dmsync_graph::writer::{PageWriter, Select};
use serde::Serialize;
use uuid::Uuid;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::error::ApiError;
use crate::http::context::RequestContext;
use crate::http::query::ODataQuery;
use crate::http::response::ODataBody;
use crate::resources::Version;
use crate::state::AppState;

/// Page size when the client sends no `$top`, and the largest `$top` honoured.
pub const DEFAULT_PAGE_SIZE: u32 = 100;
pub const MAX_PAGE_SIZE: u32 = 1000;

/// The options a list route honours.
pub const LIST_OPTIONS: &[&str] = &["$select", "$top", "$skiptoken", "$filter", "$orderby", "$count", "$expand"];
/// The options every plain collection's list honours ([`Collection::page`]).
pub const PAGE_OPTIONS: &[&str] = &["$select", "$top", "$skiptoken", "$filter", "$orderby", "$count"];
/// The options a single entity honours ([`Collection::entity`]).
pub const ENTITY_OPTIONS: &[&str] = &["$select"];

pub fn filter<F>(query: &ODataQuery, resolve: fn(&str) -> Option<F>) -> Result<Option<Filter<F>>, ApiError> {
    let Some(text) = query.filter.as_deref() else { return Ok(None) };
    let filter = parse_filter(text, resolve).map_err(|e| ApiError::BadRequest(e.0))?;
    fn no_booleans<F>(f: &Filter<F>) -> Result<(), ApiError> {
        match f {
            Filter::And(a, b) | Filter::Or(a, b) => no_booleans(a).and(no_booleans(b)),
            Filter::Not(a) => no_booleans(a),
            Filter::Compare { value: Literal::Bool(_), .. } => {
                Err(ApiError::BadRequest("A boolean cannot be compared with a string property in $filter.".into()))
            }
            _ => Ok(()),
        }
    }
    no_booleans(&filter)?;
    Ok(Some(filter))
}

/// `$orderby=prop [asc|desc]`: one property; the id breaks ties.
pub fn order<F>(query: &ODataQuery, resolve: fn(&str) -> Option<F>) -> Result<Option<(F, SortDirection)>, ApiError> {
    let Some(text) = query.orderby.as_deref() else { return Ok(None) };
    if text.contains(',') {
        return Err(ApiError::BadRequest("Ordering by more than one property is not supported.".into()));
    }
    let mut words = text.split_whitespace();
    let name = words.next().ok_or_else(|| ApiError::BadRequest("$orderby is empty.".into()))?;
    let field = resolve(name).ok_or_else(|| {
        ApiError::BadRequest(format!("Could not find a property named '{name}' that can be ordered by."))
    })?;
    let direction = match words.next().map(str::to_ascii_lowercase).as_deref() {
        None | Some("asc") => SortDirection::Ascending,
        Some("desc") => SortDirection::Descending,
        Some(other) => return Err(ApiError::BadRequest(format!("'{other}' is not asc or desc in $orderby."))),
    };
    if words.next().is_some() {
        return Err(ApiError::BadRequest("Syntax error in $orderby.".into()));
    }
    Ok(Some((field, direction)))
}

/// The opaque `$skiptoken`: where the last page ended, as base64url JSON.
#[derive(serde::Serialize, serde::Deserialize)]
struct SkipToken {
    #[serde(rename = "v", skip_serializing_if = "Option::is_none", default)]
    sort_value: Option<String>,
    #[serde(rename = "i")]
    id: SkipTokenId,
}

/// The last item's id: a GUID as a string, as tokens have always carried it, or a role scope
/// tag's number as a JSON number.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
enum SkipTokenId {
    Guid(Uuid),
    Number(i64),
}

fn encode_skiptoken(cursor: &Cursor) -> String {
    let id = match cursor.id {
        CursorId::Guid(uuid) => SkipTokenId::Guid(uuid),
        CursorId::Number(number) => SkipTokenId::Number(number),
    };
    let token = SkipToken { sort_value: cursor.sort_value.clone(), id };
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&token).expect("skiptoken serialises"))
}

fn decode_skiptoken(token: &str) -> Result<Cursor, ApiError> {
    URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| serde_json::from_slice::<SkipToken>(&b).ok())
        .map(|t| Cursor {
            sort_value: t.sort_value,
            id: match t.id {
                SkipTokenId::Guid(uuid) => CursorId::Guid(uuid),
                SkipTokenId::Number(number) => CursorId::Number(number),
            },
        })
        .ok_or_else(|| ApiError::BadRequest("The $skiptoken is not valid.".into()))
}

/// The store query for one page; asks for one extra row to learn whether another page exists.
pub fn page_query<F: Copy>(query: &ODataQuery, resolve: fn(&str) -> Option<F>) -> Result<ListQuery<F>, ApiError> {
    let page_size = query.top.unwrap_or(DEFAULT_PAGE_SIZE).min(MAX_PAGE_SIZE);
    Ok(ListQuery {
        filter: filter(query, resolve)?,
        order_by: order(query, resolve)?,
        after: query.skiptoken.as_deref().map(decode_skiptoken).transpose()?,
        limit: page_size + 1,
        // `$select` reaches the store only when every name it gives is a field the store
        // knows by name; `*` or another property reads the whole entity.
        only: query.select.as_deref().and_then(|names| names.iter().map(|n| resolve(n)).collect()),
    })
}

/// Cuts the extra row off and returns the nextLink if there is a next page. `key` gives an
/// item's id and its value of the ordering field.
pub fn finish_page<T, F: Copy>(
    items: &mut Vec<T>,
    query: &ListQuery<F>,
    ctx: &RequestContext,
    version: ApiVersion,
    set: &str,
    raw_query: Option<&str>,
    key: impl Fn(&T, Option<F>) -> (CursorId, Option<String>),
) -> Option<String> {
    let page_size = (query.limit - 1) as usize;
    let more = items.len() > page_size;
    items.truncate(page_size);
    let last = items.last().filter(|_| more)?;
    let (id, sort_value) = key(last, query.order_by.map(|(f, _)| f));
    let cursor = Cursor { sort_value, id };
    let mut next = form_urlencoded::Serializer::new(String::new());
    for (name, value) in form_urlencoded::parse(raw_query.unwrap_or("").as_bytes()) {
        if !name.eq_ignore_ascii_case("$skiptoken") {
            next.append_pair(&name, &value);
        }
    }
    next.append_pair("$skiptoken", &encode_skiptoken(&cursor));
    Some(format!("{}/{}/{set}?{}", ctx.base_url(), version.segment(), next.finish()))
}

/// `@odata.context` fragment of a collection, with `$select` as OData writes it.
pub fn collection_fragment(set: &str, select: Option<&[String]>) -> String {
    match select {
        Some(names) => format!("{set}({})", names.join(",")),
        None => set.to_owned(),
    }
}

/// `@odata.context` fragment of one entity.
pub fn entity_fragment(set: &str, select: Option<&[String]>) -> String {
    format!("{}/$entity", collection_fragment(set, select))
}

/// Refuses a `$select` naming a property the entity type does not have, as Graph does.
pub fn check_select(select: Option<&[String]>, known: &[&str], type_name: &str) -> Result<(), ApiError> {
    for name in select.unwrap_or(&[]) {
        if name != "*" && !known.iter().any(|k| k.eq_ignore_ascii_case(name)) {
            return Err(ApiError::BadRequest(format!(
                "Could not find a property named '{name}' on type 'microsoft.graph.{type_name}'."
            )));
        }
    }
    Ok(())
}

/// What a plain collection tells the list and get handlers it shares with the others: its
/// entity set, entity type and properties, how `$filter`/`$orderby` names resolve to its
/// fields, each item's keyset value, and the item's wire type (written with `$select` applied).
pub struct Collection<T, F, W> {
    pub set: &'static str,
    pub type_name: &'static str,
    pub properties: &'static [&'static str],
    pub field: fn(&str) -> Option<F>,
    pub id: fn(&T) -> CursorId,
    pub sort_value: fn(&T, F) -> String,
    pub wire: fn(&T) -> W,
}

/// What a list handler reads from its request besides the caller: the version, the OData
/// options (which a handler may amend, as `devices` folds `$search` into the filter), the request
/// context, and the query string as sent, which the nextLink carries on.
pub struct PageRequest {
    pub version: ApiVersion,
    pub query: ODataQuery,
    pub ctx: RequestContext,
    raw_query: Option<String>,
}

impl PageRequest {
    /// The query string as the client sent it, which a nextLink carries on.
    pub fn raw_query(&self) -> Option<&str> {
        self.raw_query.as_deref()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for PageRequest {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Version(version) = Version::from_request_parts(parts, state).await?;
        let query = ODataQuery::from_request_parts(parts, state).await?;
        let ctx = parts
            .extensions
            .get::<RequestContext>()
            .cloned()
            .ok_or_else(|| ApiError::Internal("the request context layer did not run".into()))?;
        Ok(PageRequest { version, query, ctx, raw_query: parts.uri.query().map(str::to_owned) })
    }
}

impl<T, F: Copy, W: Serialize> Collection<T, F, W> {
    /// One page of `tenant`'s collection with the options every collection honours (`$select`,
    /// `$top`, `$skiptoken`, `$filter`, `$orderby`, `$count`): `list` reads the page and
    /// `count` (only for `$count=true`) counts what the filter matches. Through the page cache:
    /// a page read again before any write is the bytes written the first time.
    pub async fn page(
        &self,
        state: &AppState,
        tenant: TenantId,
        request: &PageRequest,
        list: impl AsyncFnOnce(&ListQuery<F>) -> Result<Vec<T>, StoreError>,
        count: impl AsyncFnOnce(Option<&Filter<F>>) -> Result<u64, StoreError>,
    ) -> Result<ODataBody, ApiError> {
        let PageRequest { version, query, ctx, raw_query } = request;
        let (version, query, raw_query) = (*version, query, raw_query.as_deref());
        let page = state.cached_page(tenant, ctx.url(), async || {
            query.refuse_unsupported(PAGE_OPTIONS)?;
            let select = query.select.as_deref();
            check_select(select, self.properties, self.type_name)?;
            let page = page_query(query, self.field)?;
            let mut items = list(&page).await?;
            let next = finish_page(&mut items, &page, ctx, version, self.set, raw_query, |item, field| {
                ((self.id)(item), field.map(|f| (self.sort_value)(item, f)))
            });
            let count = match query.count {
                Some(true) => Some(count(page.filter.as_ref()).await?),
                _ => None,
            };
            let context = context_url(version, &collection_fragment(self.set, select));
            let mut body = PageWriter::new(&context, count, next.as_deref());
            for item in &items {
                body.push(&(self.wire)(item), Select::new(select), &[])?;
            }
            Ok(ODataBody::ok(body.finish()))
        });
        page.await
    }

    /// One item by its id in the path, with `$select`: an id that does not parse (not a GUID,
    /// or not a scope tag's number), or that names no item of the caller's tenant, is the same
    /// 404.
    pub async fn entity<I: std::str::FromStr>(
        &self,
        query: &ODataQuery,
        version: ApiVersion,
        id: &str,
        get: impl AsyncFnOnce(I) -> Result<Option<T>, StoreError>,
    ) -> Result<ODataBody, ApiError> {
        query.refuse_unsupported(ENTITY_OPTIONS)?;
        let select = query.select.as_deref();
        check_select(select, self.properties, self.type_name)?;
        let id: I = id.parse().map_err(|_| ApiError::NotFound)?;
        let item = get(id).await?.ok_or(ApiError::NotFound)?;
        let context = context_url(version, &entity_fragment(self.set, select));
        ODataBody::entity(axum::http::StatusCode::OK, &context, &(self.wire)(&item), Select::new(select), &[])
    }
}
