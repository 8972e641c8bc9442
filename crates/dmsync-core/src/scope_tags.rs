//! Role scope tags (`deviceManagement/roleScopeTags`, beta): the labels Intune's role-based
//! access control attaches to objects. Every tenant has the built-in `Default` tag, id 0, which
//! cannot be renamed, changed or deleted; custom tags are numbered 1, 2, … per tenant, and a
//! number is never given out twice, so a deleted tag's id never comes to name another tag.

use crate::TenantId;
use crate::ids::RoleScopeTagId;
use crate::query::ListQuery;

/// The built-in tag's name, in every tenant.
pub const DEFAULT_TAG_NAME: &str = "Default";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleScopeTag {
    pub tenant_id: TenantId,
    pub id: RoleScopeTagId,
    pub display_name: String,
    pub description: String,
}

impl RoleScopeTag {
    /// `isBuiltIn`: only the `Default` tag is.
    pub fn is_built_in(&self) -> bool {
        self.id == RoleScopeTagId::DEFAULT
    }
}

/// The client-writable properties of a tag; `None` leaves one as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleScopeTagChanges {
    pub display_name: Option<String>,
    pub description: Option<String>,
}

impl RoleScopeTagChanges {
    /// Whether applying these changes to `tag` would change anything.
    pub fn would_change(&self, tag: &RoleScopeTag) -> bool {
        self.display_name.as_ref().is_some_and(|name| *name != tag.display_name)
            || self.description.as_ref().is_some_and(|description| *description != tag.description)
    }
}

/// Why a write to a tag was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleScopeTagRefusal {
    NotFound,
    /// The `Default` tag cannot be renamed, changed or deleted.
    BuiltIn,
    /// Another tag of the tenant has this display name, ignoring case.
    DuplicateName,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RoleScopeTagField {
    Id,
    DisplayName,
    Description,
}

pub type RoleScopeTagQuery = ListQuery<RoleScopeTagField>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_different_value_is_a_change() {
        let tag = RoleScopeTag {
            tenant_id: TenantId::new(),
            id: RoleScopeTagId::DEFAULT,
            display_name: DEFAULT_TAG_NAME.into(),
            description: String::new(),
        };
        assert!(tag.is_built_in());
        assert!(!RoleScopeTagChanges::default().would_change(&tag));
        let same = RoleScopeTagChanges { display_name: Some("Default".into()), description: Some(String::new()) };
        assert!(!same.would_change(&tag));
        assert!(RoleScopeTagChanges { display_name: Some("default".into()), ..Default::default() }.would_change(&tag));
        assert!(RoleScopeTagChanges { description: Some("x".into()), ..Default::default() }.would_change(&tag));
    }
}
