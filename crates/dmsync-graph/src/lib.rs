//! Microsoft Graph wire types for dmsync.
//!
//! Everything that has a Graph spelling lives here and only here: camelCase property names,
//! `@odata.*` annotations, enum member names (with Graph's own typos), the 7-digit timestamp
//! format and the error bodies. This crate knows nothing of the domain or of storage; the server
//! converts domain values into these types at the edge.

pub mod autopilot;
pub mod batch;
pub mod bounded;
pub mod datetime;
pub mod deployment_profiles;
pub mod directory;
pub mod error;
pub mod exchange;
pub mod json;
pub mod managed_device;
pub mod odata;
pub mod rbac;
pub mod writer;

pub use datetime::GraphDateTime;
pub use error::{ErrorDetail, GraphErrorBody, InnerError, IntuneErrorMessage, MainError};

/// The two Graph versions dmsync serves. Resources differ per version (for example
/// `windowsAutopilotSettings` exists only in beta), so routing and serialisation both need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApiVersion {
    V1,
    Beta,
}

impl ApiVersion {
    /// The path segment as Graph writes it.
    pub fn segment(self) -> &'static str {
        match self {
            ApiVersion::V1 => "v1.0",
            ApiVersion::Beta => "beta",
        }
    }

    /// Parses a version segment case-insensitively, as Graph does.
    pub fn from_segment(segment: &str) -> Option<Self> {
        if segment.eq_ignore_ascii_case("v1.0") {
            Some(ApiVersion::V1)
        } else if segment.eq_ignore_ascii_case("beta") {
            Some(ApiVersion::Beta)
        } else {
            None
        }
    }
}
