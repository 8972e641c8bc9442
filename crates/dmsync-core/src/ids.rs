//! The ids that cross the store, one type per kind of thing they name, so that a connector id
//! cannot be passed where a device id is expected, nor the arguments of `(tenant, id)` swapped.
//!
//! Every id is a GUID (on the wire, in the database and in job payloads, where it keeps the
//! plain GUID form it had before it was typed). They are one generic newtype, [`Id`], told apart
//! by a marker [`IdKind`], so that their parsing, formatting, serde and binding are written once
//! instead of once per kind; the aliases below are the names the code uses.
//!
//! The one exception is [`RoleScopeTagId`]: Intune numbers a tenant's scope tags with small
//! integers, which clients see as strings ("0" is the built-in Default), so it is a number of
//! its own kind rather than an [`Id`].

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;
use std::str::FromStr;

use uuid::Uuid;

/// What an [`Id`] names. Implemented only by the uninhabited markers in [`kind`].
pub trait IdKind: 'static {
    /// The name `Debug` prints, so that a log line says which kind of id it shows.
    const NAME: &'static str;
}

/// The markers of each kind of id: types without values, used only as [`Id`]'s parameter.
pub mod kind {
    use super::IdKind;

    /// A tenant (Entra's `tid`).
    #[derive(Debug)]
    pub enum Tenant {}
    /// A `windowsAutopilotDeviceIdentity`.
    #[derive(Debug)]
    pub enum AutopilotDevice {}
    /// An `importedWindowsAutopilotDeviceIdentity`.
    #[derive(Debug)]
    pub enum ImportedDevice {}
    /// A `deviceManagementExchangeConnector`.
    #[derive(Debug)]
    pub enum Connector {}
    /// An Exchange ActiveSync device, shown as a `managedDevice`.
    #[derive(Debug)]
    pub enum EasDevice {}
    /// A row of the jobs table.
    #[derive(Debug)]
    pub enum Job {}
    /// An Entra ID `device` object, by its object id (`id`, not its `deviceId`).
    #[derive(Debug)]
    pub enum EntraDevice {}
    /// An Entra ID group.
    #[derive(Debug)]
    pub enum Group {}
    /// A `windowsAutopilotDeploymentProfile`.
    #[derive(Debug)]
    pub enum DeploymentProfile {}

    impl IdKind for Tenant {
        const NAME: &'static str = "TenantId";
    }
    impl IdKind for AutopilotDevice {
        const NAME: &'static str = "AutopilotDeviceId";
    }
    impl IdKind for ImportedDevice {
        const NAME: &'static str = "ImportedDeviceId";
    }
    impl IdKind for Connector {
        const NAME: &'static str = "ConnectorId";
    }
    impl IdKind for EasDevice {
        const NAME: &'static str = "EasDeviceId";
    }
    impl IdKind for Job {
        const NAME: &'static str = "JobId";
    }
    impl IdKind for EntraDevice {
        const NAME: &'static str = "EntraDeviceId";
    }
    impl IdKind for Group {
        const NAME: &'static str = "GroupId";
    }
    impl IdKind for DeploymentProfile {
        const NAME: &'static str = "DeploymentProfileId";
    }
}

pub type TenantId = Id<kind::Tenant>;
pub type AutopilotDeviceId = Id<kind::AutopilotDevice>;
pub type ImportedDeviceId = Id<kind::ImportedDevice>;
pub type ConnectorId = Id<kind::Connector>;
pub type EasDeviceId = Id<kind::EasDevice>;
pub type JobId = Id<kind::Job>;
pub type EntraDeviceId = Id<kind::EntraDevice>;
pub type GroupId = Id<kind::Group>;
pub type DeploymentProfileId = Id<kind::DeploymentProfile>;

/// A GUID that names a `K`. The marker is behind `fn() -> K` so that the id is `Send`, `Sync`
/// and `Copy` whatever the marker is.
pub struct Id<K: IdKind> {
    uuid: Uuid,
    kind: PhantomData<fn() -> K>,
}

// A default id would be a random one, which a `#[derive(Default)]` around it should not make
// without saying so; hence `new` without `Default`.
#[allow(clippy::new_without_default)]
impl<K: IdKind> Id<K> {
    /// A new random (version 4) id, the kind Graph hands out.
    pub fn new() -> Self {
        Self::from_uuid(Uuid::new_v4())
    }

    /// A new time-ordered (version 7) id, for rows that are written in bulk or claimed in order:
    /// ids made together are neighbours in the table's key order. To a client it is an
    /// ordinary GUID.
    pub fn now_v7() -> Self {
        Self::from_uuid(Uuid::now_v7())
    }

    pub const fn from_uuid(uuid: Uuid) -> Self {
        Id { uuid, kind: PhantomData }
    }

    pub const fn as_uuid(&self) -> Uuid {
        self.uuid
    }
}

impl<K: IdKind> From<Id<K>> for Uuid {
    fn from(id: Id<K>) -> Uuid {
        id.uuid
    }
}

// The derives would require the marker itself to be `Clone`, `Eq` and so on, so these few are
// written out; each only forwards to the GUID.
impl<K: IdKind> Clone for Id<K> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<K: IdKind> Copy for Id<K> {}

impl<K: IdKind> PartialEq for Id<K> {
    fn eq(&self, other: &Self) -> bool {
        self.uuid == other.uuid
    }
}

impl<K: IdKind> Eq for Id<K> {}

impl<K: IdKind> PartialOrd for Id<K> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<K: IdKind> Ord for Id<K> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.uuid.cmp(&other.uuid)
    }
}

impl<K: IdKind> Hash for Id<K> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.uuid.hash(state);
    }
}

impl<K: IdKind> fmt::Debug for Id<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({})", K::NAME, self.uuid)
    }
}

/// The lowercase hyphenated GUID, as Graph writes ids.
impl<K: IdKind> fmt::Display for Id<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.uuid, f)
    }
}

/// Any form of GUID `Uuid` parses (hyphenated, simple, braced, URN).
impl<K: IdKind> FromStr for Id<K> {
    type Err = uuid::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self::from_uuid)
    }
}

impl<K: IdKind> serde::Serialize for Id<K> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.uuid.serialize(serializer)
    }
}

impl<'de, K: IdKind> serde::Deserialize<'de> for Id<K> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Uuid::deserialize(deserializer).map(Self::from_uuid)
    }
}

/// A `roleScopeTag`'s id: a small integer, per tenant, written as a decimal string on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RoleScopeTagId(u32);

impl RoleScopeTagId {
    /// The built-in `Default` tag every tenant has.
    pub const DEFAULT: RoleScopeTagId = RoleScopeTagId(0);

    pub const fn new(number: u32) -> Self {
        RoleScopeTagId(number)
    }

    pub const fn number(self) -> u32 {
        self.0
    }
}

impl fmt::Display for RoleScopeTagId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// Only the form Intune writes: decimal digits without a sign or a leading zero, so that one
/// tag has one path and `+1` or `01` name nothing.
impl FromStr for RoleScopeTagId {
    type Err = InvalidRoleScopeTagId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let canonical = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
        match s.parse() {
            Ok(number) if canonical => Ok(RoleScopeTagId(number)),
            _ => Err(InvalidRoleScopeTagId),
        }
    }
}

/// A string that is not a scope tag's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidRoleScopeTagId;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_reads_writes_and_serialises_as_its_plain_guid() {
        let text = "0d5c3f59-3a57-4c8e-9d6b-1f2e3a4b5c6d";
        let id: ConnectorId = text.parse().unwrap();
        assert_eq!(id.to_string(), text);
        assert_eq!(format!("{id:?}"), format!("ConnectorId({text})"));
        assert_eq!(serde_json::to_string(&id).unwrap(), format!("\"{text}\""));
        assert_eq!(serde_json::from_str::<ConnectorId>(&format!("\"{text}\"")).unwrap(), id);
        assert_eq!(Uuid::from(id), Uuid::parse_str(text).unwrap());
        // Graph accepts an id in upper case; it names the same item.
        assert_eq!(text.to_uppercase().parse::<ConnectorId>().unwrap(), id);
        assert!("not-a-guid".parse::<ConnectorId>().is_err());
    }

    #[test]
    fn a_scope_tag_id_is_a_canonical_decimal_number() {
        assert_eq!("0".parse(), Ok(RoleScopeTagId::DEFAULT));
        assert_eq!("17".parse::<RoleScopeTagId>().map(RoleScopeTagId::number), Ok(17));
        assert_eq!(RoleScopeTagId::new(42).to_string(), "42");
        for bad in ["", "01", "+1", "-1", "1.0", " 1", "4294967296", "0d5c3f59-3a57-4c8e-9d6b-1f2e3a4b5c6d"] {
            assert!(bad.parse::<RoleScopeTagId>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn new_ids_are_distinct_and_v7_ids_grow() {
        assert_ne!(JobId::new(), JobId::new());
        let (first, second) = (JobId::now_v7(), JobId::now_v7());
        assert!(first < second);
        assert_eq!(first.as_uuid().get_version_num(), 7);
    }
}
