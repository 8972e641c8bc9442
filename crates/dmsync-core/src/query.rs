//! A page of a collection: filter, order, keyset cursor and size. Shared by every resource that
//! lists, each with its own enum of filterable fields.

use uuid::Uuid;

use crate::filter::Filter;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortDirection {
    Ascending,
    Descending,
}

/// Where the previous page ended: the sort value of its last item (when ordered by a property)
/// and that item's id, which breaks ties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub sort_value: Option<String>,
    pub id: Uuid,
}

/// One keyset-paged page, so that a page costs the same at any depth.
#[derive(Debug, Clone, PartialEq)]
pub struct ListQuery<F> {
    pub filter: Option<Filter<F>>,
    pub order_by: Option<(F, SortDirection)>,
    pub after: Option<Cursor>,
    pub limit: u32,
    /// The only fields the caller reads (from `$select`), when it named fields of `F` alone;
    /// `None` reads every field. A store may then leave the other fields empty.
    pub only: Option<Vec<F>>,
}

impl<F> ListQuery<F> {
    pub fn first(limit: u32) -> ListQuery<F> {
        ListQuery { filter: None, order_by: None, after: None, limit, only: None }
    }
}
