//! The authorization table: for each Graph operation, the permissions Graph documents for
//! delegated (work or school) tokens and for application tokens. Personal Microsoft accounts
//! are refused on every Intune operation, as every Intune permission table says.
//!
//! This is the only place that knows which permission an operation needs.

use serde::{Deserialize, Serialize};

pub const SERVICE_CONFIG_READ: &str = "DeviceManagementServiceConfig.Read.All";
pub const SERVICE_CONFIG_READ_WRITE: &str = "DeviceManagementServiceConfig.ReadWrite.All";
pub const CONFIGURATION_READ: &str = "DeviceManagementConfiguration.Read.All";
pub const CONFIGURATION_READ_WRITE: &str = "DeviceManagementConfiguration.ReadWrite.All";
pub const MANAGED_DEVICES_READ: &str = "DeviceManagementManagedDevices.Read.All";
pub const MANAGED_DEVICES_READ_WRITE: &str = "DeviceManagementManagedDevices.ReadWrite.All";
pub const RBAC_READ: &str = "DeviceManagementRBAC.Read.All";
pub const RBAC_READ_WRITE: &str = "DeviceManagementRBAC.ReadWrite.All";
pub const DEVICE_READ: &str = "Device.Read.All";
pub const DEVICE_READ_WRITE: &str = "Device.ReadWrite.All";
pub const DIRECTORY_READ: &str = "Directory.Read.All";
pub const DIRECTORY_READ_WRITE: &str = "Directory.ReadWrite.All";
pub const DIRECTORY_ACCESS_AS_USER: &str = "Directory.AccessAsUser.All";
pub const GROUP_READ: &str = "Group.Read.All";
pub const GROUP_READ_WRITE: &str = "Group.ReadWrite.All";
pub const GROUP_CREATE: &str = "Group.Create";
pub const GROUP_MEMBER_READ: &str = "GroupMember.Read.All";
pub const GROUP_MEMBER_READ_WRITE: &str = "GroupMember.ReadWrite.All";

/// Every permission an application can be granted: every permission some operation of dmsync
/// asks for, but `Directory.AccessAsUser.All`, which exists only as a delegated permission.
pub const APPLICATION_PERMISSIONS: &[&str] = &[
    SERVICE_CONFIG_READ,
    SERVICE_CONFIG_READ_WRITE,
    CONFIGURATION_READ,
    CONFIGURATION_READ_WRITE,
    MANAGED_DEVICES_READ,
    MANAGED_DEVICES_READ_WRITE,
    RBAC_READ,
    RBAC_READ_WRITE,
    DEVICE_READ,
    DEVICE_READ_WRITE,
    DIRECTORY_READ,
    DIRECTORY_READ_WRITE,
    GROUP_READ,
    GROUP_READ_WRITE,
    GROUP_CREATE,
    GROUP_MEMBER_READ,
    GROUP_MEMBER_READ_WRITE,
];

/// Every permission some operation of dmsync asks for: what a user or an app can be granted.
pub const ALL_PERMISSIONS: &[&str] = &with_delegated_only();

/// [`APPLICATION_PERMISSIONS`] and then the one delegated-only permission, built at compile
/// time so that the two lists cannot drift apart.
const fn with_delegated_only() -> [&'static str; APPLICATION_PERMISSIONS.len() + 1] {
    let mut all = [DIRECTORY_ACCESS_AS_USER; APPLICATION_PERMISSIONS.len() + 1];
    let mut i = 0;
    while i < APPLICATION_PERMISSIONS.len() {
        all[i] = APPLICATION_PERMISSIONS[i];
        i += 1;
    }
    all
}

/// Which version of the documentation decides application access to the two sync actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum PermissionProfile {
    /// The original documentation: application tokens are "Not supported" for the sync actions.
    #[default]
    Original,
    /// Today's documentation: `DeviceManagementServiceConfig.ReadWrite.All` for applications too.
    Current,
}

impl std::str::FromStr for PermissionProfile {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "original" => Ok(PermissionProfile::Original),
            "current" => Ok(PermissionProfile::Current),
            other => Err(format!("unknown permission profile '{other}' (expected original or current)")),
        }
    }
}

/// Every Graph operation dmsync serves, named after Graph's own operation names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    GetWindowsAutopilotSettings,
    UpdateWindowsAutopilotSettings,
    SyncWindowsAutopilotSettings,
    ListWindowsAutopilotDeviceIdentities,
    GetWindowsAutopilotDeviceIdentity,
    /// `POST windowsAutopilotDeviceIdentities`, a device created directly.
    CreateWindowsAutopilotDeviceIdentity,
    /// Delete, and `deleteDevices`.
    DeleteWindowsAutopilotDeviceIdentity,
    /// `updateDeviceProperties`, `assignUserToDevice`, `unassignUserFromDevice`.
    UpdateWindowsAutopilotDeviceIdentity,
    ListImportedWindowsAutopilotDeviceIdentities,
    GetImportedWindowsAutopilotDeviceIdentity,
    /// Create, and the `import` action.
    CreateImportedWindowsAutopilotDeviceIdentity,
    DeleteImportedWindowsAutopilotDeviceIdentity,
    /// List and get.
    ReadExchangeConnectors,
    /// Create, update and delete.
    WriteExchangeConnectors,
    SyncExchangeConnector,
    /// List and get `managedDevices`.
    ReadManagedDevices,
    /// List and get `assignmentFilters`.
    ReadAssignmentFilters,
    /// List and get `roleScopeTags`.
    ReadRoleScopeTags,
    /// Create and update `roleScopeTags`.
    WriteRoleScopeTags,
    DeleteRoleScopeTag,
    /// List and get `windowsAutopilotDeploymentProfiles`, their assignments and assigned
    /// devices, and a device's `deploymentProfile`/`intendedDeploymentProfile`.
    ReadDeploymentProfiles,
    /// Create, update and delete profiles and their assignments.
    WriteDeploymentProfiles,
    /// List and get Entra `devices`.
    ReadDevices,
    DeleteDevice,
    /// List and get `groups`, and list a group's `members`.
    ReadGroups,
    CreateGroup,
    /// Update and delete a group.
    WriteGroup,
    /// `members/$ref`: add and remove.
    WriteGroupMembers,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PrincipalKind {
    Delegated,
    Application,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AccountType {
    Work,
    Personal,
}

/// What an operation accepts from each kind of principal. `None` means "Not supported".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Requirement {
    pub delegated: Option<&'static [&'static str]>,
    pub application: Option<&'static [&'static str]>,
}

const SERVICE_CONFIG_READERS: &[&str] = &[SERVICE_CONFIG_READ, SERVICE_CONFIG_READ_WRITE];
const SERVICE_CONFIG_WRITERS: &[&str] = &[SERVICE_CONFIG_READ_WRITE];
/// Autopilot device identity pages dated 2024-08 and later also list the Configuration scopes.
const DEVICE_IDENTITY_READERS: &[&str] =
    &[SERVICE_CONFIG_READ, SERVICE_CONFIG_READ_WRITE, CONFIGURATION_READ, CONFIGURATION_READ_WRITE];
const DEVICE_IDENTITY_WRITERS: &[&str] = &[SERVICE_CONFIG_READ_WRITE, CONFIGURATION_READ_WRITE];
/// Exchange connector pages list both families, least privileged first.
const CONNECTOR_READERS: &[&str] =
    &[SERVICE_CONFIG_READ, SERVICE_CONFIG_READ_WRITE, CONFIGURATION_READ, CONFIGURATION_READ_WRITE];
const CONNECTOR_WRITERS: &[&str] = &[SERVICE_CONFIG_READ_WRITE, CONFIGURATION_READ_WRITE];
const MANAGED_DEVICE_READERS: &[&str] = &[MANAGED_DEVICES_READ, MANAGED_DEVICES_READ_WRITE];
/// The assignment filter pages list the Configuration family alone.
const FILTER_READERS: &[&str] = &[CONFIGURATION_READ, CONFIGURATION_READ_WRITE];
/// The roleScopeTag pages dated 2024-08 list the Configuration scopes before the RBAC ones.
const SCOPE_TAG_READERS: &[&str] = &[CONFIGURATION_READ, CONFIGURATION_READ_WRITE, RBAC_READ, RBAC_READ_WRITE];
const SCOPE_TAG_WRITERS: &[&str] = &[CONFIGURATION_READ_WRITE, RBAC_READ_WRITE];
/// The device list and get pages: `Device.Read.All` least privileged, then the directory-wide
/// permissions.
const DEVICE_READERS: &[&str] = &[DEVICE_READ, DEVICE_READ_WRITE, DIRECTORY_READ, DIRECTORY_READ_WRITE];

/// The group list, get and list-members pages: `GroupMember.Read.All` least privileged, then the
/// group-wide and directory-wide permissions.
const GROUP_READERS: &[&str] =
    &[GROUP_MEMBER_READ, GROUP_READ, DIRECTORY_READ, GROUP_MEMBER_READ_WRITE, GROUP_READ_WRITE, DIRECTORY_READ_WRITE];
/// The group update and delete pages.
const GROUP_WRITERS: &[&str] = &[GROUP_READ_WRITE, DIRECTORY_READ_WRITE];
/// The create page: applications may also hold `Group.Create`.
const GROUP_CREATORS: &[&str] = &[GROUP_CREATE, GROUP_READ_WRITE, DIRECTORY_READ_WRITE];
/// The add and remove member pages.
const GROUP_MEMBER_WRITERS: &[&str] = &[GROUP_MEMBER_READ_WRITE, GROUP_READ_WRITE, DIRECTORY_READ_WRITE];

impl Operation {
    pub fn requirement(self, profile: PermissionProfile) -> Requirement {
        use Operation::*;
        let both = |p: &'static [&'static str]| Requirement { delegated: Some(p), application: Some(p) };
        match self {
            GetWindowsAutopilotSettings => both(SERVICE_CONFIG_READERS),
            UpdateWindowsAutopilotSettings => both(SERVICE_CONFIG_WRITERS),
            SyncWindowsAutopilotSettings => match profile {
                PermissionProfile::Original => {
                    Requirement { delegated: Some(SERVICE_CONFIG_WRITERS), application: None }
                }
                PermissionProfile::Current => both(SERVICE_CONFIG_WRITERS),
            },
            ListWindowsAutopilotDeviceIdentities | GetWindowsAutopilotDeviceIdentity => both(DEVICE_IDENTITY_READERS),
            // The deleteDevices page asks only for Read permissions, surely a docs error for a
            // destructive action; dmsync requires ReadWrite (docs/GRAPH-COMPAT.md).
            DeleteWindowsAutopilotDeviceIdentity | UpdateWindowsAutopilotDeviceIdentity => {
                both(DEVICE_IDENTITY_WRITERS)
            }
            // The create page lists only DeviceManagementServiceConfig.ReadWrite.All.
            CreateWindowsAutopilotDeviceIdentity => both(SERVICE_CONFIG_WRITERS),
            ListImportedWindowsAutopilotDeviceIdentities | GetImportedWindowsAutopilotDeviceIdentity => {
                both(SERVICE_CONFIG_READERS)
            }
            CreateImportedWindowsAutopilotDeviceIdentity | DeleteImportedWindowsAutopilotDeviceIdentity => {
                both(SERVICE_CONFIG_WRITERS)
            }
            ReadExchangeConnectors => both(CONNECTOR_READERS),
            WriteExchangeConnectors => both(CONNECTOR_WRITERS),
            // The second of "the two sync actions": app tokens only in the current profile.
            SyncExchangeConnector => match profile {
                PermissionProfile::Original => Requirement { delegated: Some(CONNECTOR_WRITERS), application: None },
                PermissionProfile::Current => both(CONNECTOR_WRITERS),
            },
            ReadManagedDevices => both(MANAGED_DEVICE_READERS),
            ReadAssignmentFilters => both(FILTER_READERS),
            ReadRoleScopeTags => both(SCOPE_TAG_READERS),
            WriteRoleScopeTags => both(SCOPE_TAG_WRITERS),
            // The revision of the delete page at hand is older than the others and lists only
            // the RBAC permission, for delegated tokens alone; dmsync holds delete to what the
            // create and update pages list, as a delete is no more privileged than an update.
            DeleteRoleScopeTag => both(SCOPE_TAG_WRITERS),
            // The profile pages dated 2024-08 list both families, as the device identity pages do.
            ReadDeploymentProfiles => both(DEVICE_IDENTITY_READERS),
            WriteDeploymentProfiles => both(DEVICE_IDENTITY_WRITERS),
            ReadDevices => both(DEVICE_READERS),
            // The delete page: `Directory.AccessAsUser.All` for a user, `Device.ReadWrite.All`
            // for an application, nothing higher for either.
            DeleteDevice => {
                Requirement { delegated: Some(&[DIRECTORY_ACCESS_AS_USER]), application: Some(&[DEVICE_READ_WRITE]) }
            }
            ReadGroups => both(GROUP_READERS),
            // `Group.Create` is an application permission only.
            CreateGroup => Requirement { delegated: Some(GROUP_WRITERS), application: Some(GROUP_CREATORS) },
            WriteGroup => both(GROUP_WRITERS),
            // The pages add that a device member also needs `Device.ReadWrite.All`; dmsync asks
            // only for one of these (docs/GRAPH-COMPAT.md, "Groups").
            WriteGroupMembers => both(GROUP_MEMBER_WRITERS),
        }
    }
}

/// Why a principal may not perform an operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    PersonalAccount,
    /// The principal kind is "Not supported" for this operation in this profile.
    KindNotSupported(PrincipalKind),
    /// None of these permissions was granted.
    MissingPermission {
        accepted: &'static [&'static str],
    },
}

/// Decides whether a principal holding `granted` may perform `op`.
pub fn authorize(
    op: Operation,
    profile: PermissionProfile,
    kind: PrincipalKind,
    account: AccountType,
    granted: &[String],
) -> Result<(), Denial> {
    if account == AccountType::Personal {
        return Err(Denial::PersonalAccount);
    }
    let req = op.requirement(profile);
    let accepted = match kind {
        PrincipalKind::Delegated => req.delegated,
        PrincipalKind::Application => req.application,
    }
    .ok_or(Denial::KindNotSupported(kind))?;
    // Graph compares permission names case-insensitively.
    if granted.iter().any(|g| accepted.iter().any(|a| a.eq_ignore_ascii_case(g))) {
        Ok(())
    } else {
        Err(Denial::MissingPermission { accepted })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applications_can_hold_every_permission_but_the_delegated_only_one() {
        assert_eq!(&ALL_PERMISSIONS[..APPLICATION_PERMISSIONS.len()], APPLICATION_PERMISSIONS);
        assert_eq!(ALL_PERMISSIONS.last(), Some(&DIRECTORY_ACCESS_AS_USER));
    }

    fn perms(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn original_profile_refuses_apps_for_sync_but_current_allows_them() {
        let rw = perms(&[SERVICE_CONFIG_READ_WRITE]);
        let op = Operation::SyncWindowsAutopilotSettings;
        assert_eq!(
            authorize(op, PermissionProfile::Original, PrincipalKind::Application, AccountType::Work, &rw),
            Err(Denial::KindNotSupported(PrincipalKind::Application))
        );
        assert_eq!(
            authorize(op, PermissionProfile::Current, PrincipalKind::Application, AccountType::Work, &rw),
            Ok(())
        );
        assert_eq!(
            authorize(op, PermissionProfile::Original, PrincipalKind::Delegated, AccountType::Work, &rw),
            Ok(())
        );
    }

    #[test]
    fn read_permission_cannot_sync_and_personal_accounts_never_pass() {
        let read = perms(&[SERVICE_CONFIG_READ]);
        assert!(matches!(
            authorize(
                Operation::SyncWindowsAutopilotSettings,
                PermissionProfile::Current,
                PrincipalKind::Delegated,
                AccountType::Work,
                &read
            ),
            Err(Denial::MissingPermission { .. })
        ));
        assert_eq!(
            authorize(
                Operation::GetWindowsAutopilotSettings,
                PermissionProfile::Current,
                PrincipalKind::Delegated,
                AccountType::Work,
                &read
            ),
            Ok(())
        );
        let rw = perms(&[SERVICE_CONFIG_READ_WRITE]);
        assert_eq!(
            authorize(
                Operation::GetWindowsAutopilotSettings,
                PermissionProfile::Current,
                PrincipalKind::Delegated,
                AccountType::Personal,
                &rw
            ),
            Err(Denial::PersonalAccount)
        );
    }
}
