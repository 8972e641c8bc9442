//! Resetting the state and taking snapshots of it: what a test suite does between tests. The
//! signing keys, the local certificate authority and the Clock are never part of either, so
//! tokens, trusted certificates and time stay valid across a reset or a restore.

use std::fmt;

use time::OffsetDateTime;

use crate::TenantId;

/// What a reset empties.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetScope {
    /// Every tenant is removed, as on a new database; the server recreates the development
    /// identities.
    All,
    /// The tenant's data, users and applications are removed; the tenant itself stays.
    Tenant(TenantId),
}

/// The name of a snapshot: what a client may call it, which is also safe as a file name and
/// inside a database identifier (letters, digits, `-` and `_`, up to [`SnapshotName::MAX_LEN`]).
/// A name with a path separator or a dot cannot be built, so no name reaches outside the
/// snapshots' directory.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SnapshotName(String);

/// Why a snapshot name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotNameError {
    #[error("a snapshot name must not be empty")]
    Empty,
    #[error("a snapshot name is at most {} characters", SnapshotName::MAX_LEN)]
    TooLong,
    #[error("a snapshot name may hold only letters, digits, '-' and '_'")]
    Character,
}

impl SnapshotName {
    /// Short enough that PostgreSQL's schema name for it (a prefix and the name's hex) stays
    /// within its 63-byte identifiers.
    pub const MAX_LEN: usize = 24;

    pub fn parse(name: &str) -> Result<SnapshotName, SnapshotNameError> {
        if name.is_empty() {
            return Err(SnapshotNameError::Empty);
        }
        if name.len() > Self::MAX_LEN {
            return Err(SnapshotNameError::TooLong);
        }
        if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err(SnapshotNameError::Character);
        }
        Ok(SnapshotName(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SnapshotName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A stored snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub name: SnapshotName,
    /// When it was taken, on the Clock.
    pub created: OffsetDateTime,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_could_leave_the_directory_or_an_identifier_are_refused() {
        for (name, error) in [
            ("", SnapshotNameError::Empty),
            ("../etc", SnapshotNameError::Character),
            ("a/b", SnapshotNameError::Character),
            ("a.b", SnapshotNameError::Character),
            ("a\\b", SnapshotNameError::Character),
            ("é", SnapshotNameError::Character),
            ("a b", SnapshotNameError::Character),
            (&"x".repeat(SnapshotName::MAX_LEN + 1), SnapshotNameError::TooLong),
        ] {
            assert_eq!(SnapshotName::parse(name), Err(error), "{name:?}");
        }
        for name in ["before-import", "Test_1", &"x".repeat(SnapshotName::MAX_LEN)] {
            assert_eq!(SnapshotName::parse(name).unwrap().as_str(), name);
        }
    }
}
