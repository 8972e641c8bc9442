//! Graph's HTTP conventions, shared by every resource: request ids and error rendering,
//! case-insensitive routing with Graph's unknown-segment errors, query options, bodies, and
//! JSON responses.

pub mod body;
pub mod context;
pub mod host;
pub mod list;
pub mod openapi;
pub mod page_cache;
pub mod pipeline;
pub mod query;
pub mod response;
pub mod routing;
