//! A page of a collection: filter, order, keyset cursor and size. Shared by every resource that
//! lists, each with its own enum of filterable fields.

use uuid::Uuid;

use crate::filter::Filter;
use crate::ids::{Id, IdKind, RoleScopeTagId};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortDirection {
    Ascending,
    Descending,
}

/// An item's key in the keyset order: a GUID for most collections, a number for role scope
/// tags, whose ids are Intune's small integers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CursorId {
    Guid(Uuid),
    Number(i64),
}

impl From<Uuid> for CursorId {
    fn from(id: Uuid) -> CursorId {
        CursorId::Guid(id)
    }
}

impl<K: IdKind> From<Id<K>> for CursorId {
    fn from(id: Id<K>) -> CursorId {
        CursorId::Guid(id.as_uuid())
    }
}

impl From<RoleScopeTagId> for CursorId {
    fn from(id: RoleScopeTagId) -> CursorId {
        CursorId::Number(id.number().into())
    }
}

/// Where the previous page ended: the sort value of its last item (when ordered by a property)
/// and that item's id, which breaks ties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub sort_value: Option<String>,
    pub id: CursorId,
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
