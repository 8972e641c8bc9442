//! Windows Autopilot deployment profiles (`windowsAutopilotDeploymentProfiles`, beta) and their
//! assignments to groups: the settings a device receives at deployment, and which devices
//! receive them. The rules clients code around live here: at most
//! [`MAX_PROFILES_PER_TENANT`] profiles, one profile assigned to All Devices, no delete while
//! assignments remain, and the device name template's form.

use crate::TenantId;
use crate::ids::{DeploymentProfileId, GroupId, RoleScopeTagId};
use crate::query::ListQuery;
use time::OffsetDateTime;

/// "You can create up to 350 profiles per tenant" (memdocs, `autopilot/profiles.md`).
pub const MAX_PROFILES_PER_TENANT: u64 = 350;

/// The longest display name the resource page allows.
pub const MAX_DISPLAY_NAME_CHARS: usize = 200;
/// The longest description the resource page allows.
pub const MAX_DESCRIPTION_CHARS: usize = 1500;
/// A generated device name is a NetBIOS name: at most 15 characters.
pub const MAX_DEVICE_NAME_CHARS: usize = 15;

/// The two derived types of the abstract `windowsAutopilotDeploymentProfile`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProfileKind {
    /// `azureADWindowsAutopilotDeploymentProfile`: Microsoft Entra join.
    AzureAd,
    /// `activeDirectoryWindowsAutopilotDeploymentProfile`: hybrid join.
    ActiveDirectory,
}

impl ProfileKind {
    /// The `kind` column's value.
    pub fn as_str(self) -> &'static str {
        match self {
            ProfileKind::AzureAd => "azureAD",
            ProfileKind::ActiveDirectory => "activeDirectory",
        }
    }

    pub fn parse(value: &str) -> Option<ProfileKind> {
        match value {
            "azureAD" => Some(ProfileKind::AzureAd),
            "activeDirectory" => Some(ProfileKind::ActiveDirectory),
            _ => None,
        }
    }
}

/// The out-of-box experience, under the current property names (`outOfBoxExperienceSetting`).
/// Enum values are kept as Graph spells them; the wire layer checks them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutOfBoxExperience {
    pub privacy_settings_hidden: bool,
    pub eula_hidden: bool,
    pub user_type: String,
    pub device_usage_type: String,
    pub keyboard_selection_page_skipped: bool,
    pub escape_link_hidden: bool,
}

impl Default for OutOfBoxExperience {
    /// The defaults the `outOfBoxExperienceSetting` page gives.
    fn default() -> Self {
        OutOfBoxExperience {
            privacy_settings_hidden: false,
            eula_hidden: false,
            user_type: "administrator".into(),
            device_usage_type: "singleUser".into(),
            keyboard_selection_page_skipped: false,
            escape_link_hidden: false,
        }
    }
}

/// `windowsEnrollmentStatusScreenSettings`, kept only when a client sent it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnrollmentStatusScreen {
    pub hide_installation_progress: bool,
    pub allow_device_use_before_profile_and_app_install_complete: bool,
    pub block_device_setup_retry_by_user: bool,
    pub allow_log_collection_on_install_failure: bool,
    pub custom_error_message: Option<String>,
    pub install_progress_timeout_in_minutes: i32,
    pub allow_device_use_on_install_failure: bool,
}

/// What a profile holds besides its id, kind, name and times: the store keeps it as one JSON
/// document (nothing queries on it), so its serde form is the `settings` column's format.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProfileSettings {
    pub description: String,
    pub locale: String,
    pub out_of_box_experience: OutOfBoxExperience,
    pub enrollment_status_screen: Option<EnrollmentStatusScreen>,
    pub hardware_hash_extraction_enabled: bool,
    pub device_name_template: String,
    pub device_type: String,
    pub preprovisioning_allowed: bool,
    pub role_scope_tag_ids: Vec<RoleScopeTagId>,
    pub management_service_app_id: String,
    pub hybrid_azure_ad_join_skip_connectivity_check: bool,
}

impl Default for ProfileSettings {
    /// The defaults the resource page gives: `os-default` locale, a `windowsPc`, the Default
    /// scope tag.
    fn default() -> Self {
        ProfileSettings {
            description: String::new(),
            locale: "os-default".into(),
            out_of_box_experience: OutOfBoxExperience::default(),
            enrollment_status_screen: None,
            hardware_hash_extraction_enabled: false,
            device_name_template: String::new(),
            device_type: "windowsPc".into(),
            preprovisioning_allowed: false,
            role_scope_tag_ids: vec![RoleScopeTagId::DEFAULT],
            management_service_app_id: String::new(),
            hybrid_azure_ad_join_skip_connectivity_check: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentProfile {
    pub tenant_id: TenantId,
    pub id: DeploymentProfileId,
    pub kind: ProfileKind,
    pub display_name: String,
    pub settings: ProfileSettings,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// A new profile, or a profile's new state (PATCH merges into the stored one first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileContent {
    pub kind: ProfileKind,
    pub display_name: String,
    pub settings: ProfileSettings,
}

/// Whom an assignment targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AssignmentTarget {
    /// `groupAssignmentTarget`.
    Group(GroupId),
    /// `exclusionGroupAssignmentTarget`.
    ExclusionGroup(GroupId),
    /// `allDevicesAssignmentTarget`.
    AllDevices,
}

impl AssignmentTarget {
    /// The `target_kind` column's value.
    pub fn kind_str(self) -> &'static str {
        match self {
            AssignmentTarget::Group(_) => "group",
            AssignmentTarget::ExclusionGroup(_) => "exclusionGroup",
            AssignmentTarget::AllDevices => "allDevices",
        }
    }

    pub fn group_id(self) -> Option<GroupId> {
        match self {
            AssignmentTarget::Group(group) | AssignmentTarget::ExclusionGroup(group) => Some(group),
            AssignmentTarget::AllDevices => None,
        }
    }

    /// The target a stored row describes.
    pub fn from_parts(kind: &str, group: Option<GroupId>) -> Option<AssignmentTarget> {
        match (kind, group) {
            ("group", Some(group)) => Some(AssignmentTarget::Group(group)),
            ("exclusionGroup", Some(group)) => Some(AssignmentTarget::ExclusionGroup(group)),
            ("allDevices", None) => Some(AssignmentTarget::AllDevices),
            _ => None,
        }
    }
}

/// The id Intune gives an assignment, which clients build and parse themselves
/// (`Set-AutopilotProfileAssignedGroup`, `Remove-AutopilotProfileAssignments`):
/// `{profileId}_{groupId}_0`. An All Devices target has no group; its id takes the nil GUID's
/// place, `{profileId}_00000000-0000-0000-0000-000000000000_0`, dmsync's choice.
pub fn assignment_id(profile: DeploymentProfileId, target: AssignmentTarget) -> String {
    let group = target.group_id().map(|g| g.as_uuid()).unwrap_or_default();
    format!("{profile}_{group}_0")
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileAssignment {
    pub tenant_id: TenantId,
    pub profile_id: DeploymentProfileId,
    pub id: String,
    pub target: AssignmentTarget,
    pub created_at: OffsetDateTime,
}

/// Why a write to a profile or an assignment was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProfileRefusal {
    /// No such profile (or assignment) in the tenant.
    NotFound,
    /// The tenant has [`MAX_PROFILES_PER_TENANT`] profiles already.
    TooManyProfiles,
    /// The profile still has assignments; they must be deleted first.
    HasAssignments,
    /// Another profile of the tenant is assigned to All Devices; its display name.
    AllDevicesTaken(String),
    /// The profile already has an assignment with this id.
    DuplicateAssignment,
}

/// What a device's profile columns name: the profile it is intended to get and the one it got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceProfiles {
    pub intended: Option<DeploymentProfileId>,
    pub assigned: Option<DeploymentProfileId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProfileField {
    Id,
    DisplayName,
}

pub type ProfileQuery = ListQuery<ProfileField>;

/// Why a device name template is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameTemplateProblem {
    /// The names it makes can be longer than 15 characters.
    TooLong,
    /// A character other than a letter, a digit or a hyphen outside the macros.
    InvalidCharacter(char),
    /// A `%…%` that is neither `%SERIAL%` nor `%RAND:x%` with x from 1 to 15.
    UnknownMacro(String),
    /// Both macros, or one twice: the template takes the serial number or a random number.
    SeveralMacros,
    /// It would make names of digits only.
    OnlyDigits,
}

impl NameTemplateProblem {
    pub fn reason(&self) -> String {
        match self {
            NameTemplateProblem::TooLong => {
                format!("the names it generates must be {MAX_DEVICE_NAME_CHARS} characters or less")
            }
            NameTemplateProblem::InvalidCharacter(c) => {
                format!("'{c}' is not allowed; names can contain letters, numbers and hyphens")
            }
            NameTemplateProblem::UnknownMacro(m) => {
                format!("'{m}' is not a macro; use %SERIAL% or %RAND:x% with x the number of digits")
            }
            NameTemplateProblem::SeveralMacros => "use either %SERIAL% or one %RAND:x%, not both".into(),
            NameTemplateProblem::OnlyDigits => "names must not contain only numbers".into(),
        }
    }
}

/// Checks a device name template against the rules memdocs gives (`autopilot/profiles.md`,
/// "Apply device name template"): 15 characters or less, letters, numbers and hyphens, not all
/// numbers, `%SERIAL%` for the serial number or `%RAND:x%` for x random digits. An empty
/// template names nothing and is accepted. `%SERIAL%` counts as one character: Windows cuts the
/// serial number so that the name fits, so only the text around it can be too long. Macros are
/// matched ignoring case.
pub fn check_device_name_template(template: &str) -> Result<(), NameTemplateProblem> {
    let mut length = 0usize;
    let mut macros = 0;
    let mut has_letter_or_hyphen = false;
    let mut has_serial = false;
    let mut rest = template;
    while let Some(c) = rest.chars().next() {
        if c == '%' {
            let after = &rest[1..];
            let end = after.find('%').ok_or_else(|| NameTemplateProblem::UnknownMacro(rest.to_owned()))?;
            let name = &after[..end];
            let whole = &rest[..end + 2];
            if name.eq_ignore_ascii_case("SERIAL") {
                length += 1;
                has_serial = true;
            } else if let Some(count) = name.get(..5).filter(|p| p.eq_ignore_ascii_case("RAND:")).map(|_| &name[5..]) {
                let digits: usize = count
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_DEVICE_NAME_CHARS).contains(n))
                    .ok_or_else(|| NameTemplateProblem::UnknownMacro(whole.to_owned()))?;
                length += digits;
            } else {
                return Err(NameTemplateProblem::UnknownMacro(whole.to_owned()));
            }
            macros += 1;
            rest = &rest[end + 2..];
            continue;
        }
        if !(c.is_ascii_alphanumeric() || c == '-') {
            return Err(NameTemplateProblem::InvalidCharacter(c));
        }
        has_letter_or_hyphen |= !c.is_ascii_digit();
        length += 1;
        rest = &rest[c.len_utf8()..];
    }
    if macros > 1 {
        return Err(NameTemplateProblem::SeveralMacros);
    }
    if length > MAX_DEVICE_NAME_CHARS {
        return Err(NameTemplateProblem::TooLong);
    }
    if !template.is_empty() && !has_letter_or_hyphen && !has_serial {
        return Err(NameTemplateProblem::OnlyDigits);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_name_templates_follow_the_documented_rules() {
        for good in ["", "CONTOSO-%SERIAL%", "PC-%RAND:5%", "%serial%", "Sales%RAND:10%", "A23456789012345"] {
            assert_eq!(check_device_name_template(good), Ok(()), "{good}");
        }
        assert_eq!(check_device_name_template("A234567890123456"), Err(NameTemplateProblem::TooLong));
        assert_eq!(check_device_name_template("CONTOSO-%RAND:8%"), Err(NameTemplateProblem::TooLong));
        assert_eq!(check_device_name_template("PC 1"), Err(NameTemplateProblem::InvalidCharacter(' ')));
        assert_eq!(check_device_name_template("PC_1"), Err(NameTemplateProblem::InvalidCharacter('_')));
        assert_eq!(check_device_name_template("123"), Err(NameTemplateProblem::OnlyDigits));
        assert_eq!(check_device_name_template("%RAND:4%"), Err(NameTemplateProblem::OnlyDigits));
        assert!(matches!(check_device_name_template("PC-%NAME%"), Err(NameTemplateProblem::UnknownMacro(_))));
        assert!(matches!(check_device_name_template("PC-%RAND:0%"), Err(NameTemplateProblem::UnknownMacro(_))));
        assert!(matches!(check_device_name_template("PC-%SERIAL"), Err(NameTemplateProblem::UnknownMacro(_))));
        assert_eq!(check_device_name_template("%SERIAL%%RAND:2%"), Err(NameTemplateProblem::SeveralMacros));
    }

    #[test]
    fn assignment_ids_have_the_shape_clients_parse() {
        let profile: DeploymentProfileId = "11111111-1111-4111-8111-111111111111".parse().unwrap();
        let group: GroupId = "22222222-2222-4222-8222-222222222222".parse().unwrap();
        assert_eq!(
            assignment_id(profile, AssignmentTarget::Group(group)),
            "11111111-1111-4111-8111-111111111111_22222222-2222-4222-8222-222222222222_0"
        );
        assert_eq!(
            assignment_id(profile, AssignmentTarget::AllDevices),
            "11111111-1111-4111-8111-111111111111_00000000-0000-0000-0000-000000000000_0"
        );
    }
}
