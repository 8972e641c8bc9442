//! Integration tests: each starts the real server on port 0 with a fresh database and drives
//! it over HTTP, through the dmsync client crate where it can and raw requests where the test is
//! about the wire itself.

mod helpers;
mod process;

mod admin;
mod admin_access;
mod app_credentials;
mod assignment_filters;
mod auth;
mod authorize;
mod autopilot_devices;
mod batch;
mod cli;
mod cli_terminal;
mod console;
mod crash;
mod deployment_profiles;
mod device_code;
mod device_create;
mod devices;
mod docs_replay;
mod errors;
mod exchange;
mod external;
mod faults;
mod groups;
mod http_limits;
mod jobs;
mod journal;
mod lifecycle;
mod openapi;
mod ops;
mod profile_assignment;
mod proxy;
mod replicas;
mod role_scope_tags;
mod script_flows;
mod seeds;
mod sign_in;
mod slow_clients;
mod snapshots;
mod sync;
mod tenants;
mod throttling;
mod tls;
