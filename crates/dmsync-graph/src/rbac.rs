//! Intune role-based access control: `roleScopeTag` (beta).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct RoleScopeTag {
    /// Intune's small integer, as a string: `"0"` is the built-in `Default` tag.
    pub id: String,
    pub description: String,
    pub display_name: String,
    pub is_built_in: bool,
}

/// A tag as clients send it (create and PATCH). `id` and `isBuiltIn` belong to the server: they
/// are accepted, as the docs' own examples send them, and ignored.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoleScopeTagInput {
    #[serde(rename = "@odata.type", default)]
    pub odata_type: Option<String>,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub is_built_in: Option<bool>,
}

/// `deviceAndAppManagementAssignmentFilter` (beta): an Intune assignment filter. dmsync keeps
/// none (docs/GRAPH-COMPAT.md, "Assignment filters"); the type describes what a list would hold.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct AssignmentFilter {
    pub id: String,
    pub created_date_time: String,
    pub last_modified_date_time: String,
    pub display_name: String,
    pub description: String,
    pub platform: String,
    pub rule: String,
    pub role_scope_tags: Vec<String>,
    pub assignment_filter_management_type: String,
}
