//! One module per Graph resource. Each owns its routes, its conversion to wire types and its
//! handlers, named after the Graph operation.

pub mod assignment_filters;
pub mod autopilot_devices;
pub mod autopilot_settings;
pub mod batch;
pub mod deployment_profiles;
pub mod devices;
pub mod directory;
pub mod exchange_connectors;
pub mod groups;
pub mod imported_devices;
pub mod managed_devices;
pub mod role_scope_tags;

use crate::http::routing::GraphRoute;

/// Every Graph route dmsync serves: the resources, and `$batch` over them.
pub fn graph_routes() -> Vec<GraphRoute> {
    let mut routes = batchable_routes();
    routes.extend(batch::routes());
    routes
}

/// The routes a request inside a `$batch` may reach: every one but `$batch` itself.
pub fn batchable_routes() -> Vec<GraphRoute> {
    let mut routes = Vec::new();
    routes.extend(autopilot_settings::routes());
    routes.extend(autopilot_devices::routes());
    routes.extend(imported_devices::routes());
    routes.extend(exchange_connectors::routes());
    routes.extend(managed_devices::routes());
    routes.extend(role_scope_tags::routes());
    routes.extend(assignment_filters::routes());
    routes.extend(devices::routes());
    routes.extend(deployment_profiles::routes());
    routes.extend(groups::routes());
    routes
}

/// The Graph version of a request, read from its (already canonical) first path segment.
pub struct Version(pub dmsync_graph::ApiVersion);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Version {
    type Rejection = crate::error::ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        let first = parts.uri.path().trim_start_matches('/').split('/').next().unwrap_or("");
        dmsync_graph::ApiVersion::from_segment(first)
            .map(Version)
            .ok_or_else(|| crate::error::ApiError::InvalidVersion(first.to_owned()))
    }
}
