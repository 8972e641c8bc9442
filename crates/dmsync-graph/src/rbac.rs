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
