//! What the benchmark programs share: the server under test as a child process, /proc
//! probes, generated workloads, wrk and our own load generator, and the Markdown report. Each program in `src/bin/` (and the
//! Autopilot benchmark in `main.rs`) prints figures; none of them is a timed test.

pub mod baseline;
pub mod callgrind;
pub mod loadgen;
pub mod probe;
pub mod report;
pub mod server;
pub mod workload;
pub mod wrk;

/// The development identities every fresh database gets (README, "Development identities").
pub mod dev {
    pub const TENANT: &str = "11111111-1111-4111-8111-111111111111";
    pub const CLIENT_ID: &str = "22222222-2222-4222-8222-222222222222";
    pub const USERNAME: &str = "admin@contoso.onmicrosoft.com";
    pub const PASSWORD: &str = "dmsync-dev-password";
    pub const ADMIN_TOKEN: &str = "dmsync-dev-admin";
}
