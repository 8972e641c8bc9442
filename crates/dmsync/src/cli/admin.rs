//! The admin API's commands for test suites, `dmsync reset` and `dmsync snapshot …`, through
//! `dmsync-client`'s admin client like everything else the CLI does.

use dmsync_client::AdminClient;
use serde_json::Value;

use super::output::{OutputFormat, Table, print_json, print_list};
use super::{CliResult, Failure};

/// Where the admin API is and its token. Each flag has a `DMSYNC_*` variable; the flag wins.
#[derive(Debug, Clone, clap::Args)]
pub struct AdminConnection {
    /// The dmsync server.
    #[arg(long, env = "DMSYNC_GRAPH_URL", default_value = "http://127.0.0.1:8080", global = true)]
    pub graph_url: String,
    /// The admin token (`serve --admin-token`). Without it, the development token, which a
    /// server without --admin-token accepts on loopback.
    #[arg(long, env = "DMSYNC_ADMIN_TOKEN", hide_env_values = true, global = true)]
    pub admin_token: Option<String>,
    /// Output: a table (for people) or json (for scripts).
    #[arg(long, short = 'o', env = "DMSYNC_OUTPUT", value_enum, default_value = "table", global = true)]
    pub output: OutputFormat,
}

impl AdminConnection {
    fn client(&self) -> AdminClient {
        let token = self.admin_token.as_deref().unwrap_or(dmsync_server::config::DEV_ADMIN_TOKEN);
        AdminClient::new(self.graph_url.trim_end_matches('/'), token)
    }
}

#[derive(Debug, clap::Args)]
pub struct ResetArgs {
    #[command(flatten)]
    pub connection: AdminConnection,
    /// Empty only this tenant (its id); without it every tenant is removed and the development
    /// identities are recreated. The signing keys, the CA and the clock are kept either way.
    #[arg(long)]
    pub tenant: Option<String>,
}

/// `dmsync reset`.
pub async fn reset(args: ResetArgs) -> CliResult {
    if let Some(tenant) = &args.tenant {
        tenant
            .parse::<dmsync_core::TenantId>()
            .map_err(|_| Failure::usage(format!("--tenant {tenant:?} is not a tenant id (a GUID)")))?;
    }
    args.connection.client().reset(args.tenant.as_deref()).await?;
    match &args.tenant {
        Some(tenant) => eprintln!("tenant {tenant} is empty"),
        None => eprintln!("every tenant was removed; the development tenant is back, empty"),
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct SnapshotArgs {
    #[command(flatten)]
    pub connection: AdminConnection,
    #[command(subcommand)]
    pub command: SnapshotCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum SnapshotCommand {
    /// Take a snapshot of the whole state under NAME (letters, digits, - and _).
    Create { name: String },
    /// List the snapshots.
    List,
    /// Replace the whole state with the snapshot's.
    Restore { name: String },
    /// Delete a snapshot.
    Delete { name: String },
}

/// `dmsync snapshot …`.
pub async fn snapshot(args: SnapshotArgs) -> CliResult {
    if let SnapshotCommand::Create { name } | SnapshotCommand::Restore { name } | SnapshotCommand::Delete { name } =
        &args.command
    {
        dmsync_core::snapshots::SnapshotName::parse(name)
            .map_err(|e| Failure::usage(format!("snapshot name {name:?}: {e}")))?;
    }
    let client = args.connection.client();
    let format = args.connection.output;
    match args.command {
        SnapshotCommand::Create { name } => {
            let snapshot = client.create_snapshot(&name).await?;
            match format {
                OutputFormat::Json => print_json(&snapshot),
                _ => eprintln!("snapshot {name} taken"),
            }
        }
        SnapshotCommand::List => {
            let snapshots = client.snapshots().await?;
            let mut table = Table::new(&["NAME", "CREATED"]);
            let text = |v: &Value, key: &str| v[key].as_str().unwrap_or_default().to_owned();
            for snapshot in &snapshots {
                table.row(vec![text(snapshot, "name"), text(snapshot, "createdDateTime")]);
            }
            print_list(format, &snapshots, table);
        }
        SnapshotCommand::Restore { name } => {
            client.restore_snapshot(&name).await?;
            eprintln!("snapshot {name} restored");
        }
        SnapshotCommand::Delete { name } => {
            client.delete_snapshot(&name).await?;
            eprintln!("snapshot {name} deleted");
        }
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct SeedArgs {
    #[command(flatten)]
    pub connection: AdminConnection,
    /// A seed file (JSON, or YAML if named .yaml or .yml): {"tenants": [{"tenantId", "domain", "users", "applications",
    /// "registrations", "autopilotDevices", "roleScopeTags", "groups", "deploymentProfiles"}]};
    /// see docs/TESTING-WITH-DMSYNC.md.
    #[arg(required_unless_present = "intunecd", conflicts_with = "intunecd")]
    pub file: Option<std::path::PathBuf>,
    /// An IntuneCD backup folder (IntuneCD-startbackup -o json): its Autopilot devices, Windows
    /// Autopilot deployment profiles with their assignments, and role scope tags.
    #[arg(long, value_name = "DIR")]
    pub intunecd: Option<std::path::PathBuf>,
    /// The tenant an IntuneCD backup goes to (default: the development tenant).
    #[arg(long, requires = "intunecd")]
    pub tenant: Option<String>,
}

/// `dmsync seed`: applies a seed to a running dmsync and prints what it cannot be asked
/// afterwards, each application's id and secret.
pub async fn seed(args: SeedArgs) -> CliResult {
    let seed = match (&args.file, &args.intunecd) {
        (Some(file), _) => super::seed::read_seed_file(file),
        (None, Some(dir)) => super::seed::read_intunecd(dir, args.tenant.clone()),
        (None, None) => Err("give a seed file or --intunecd DIR".into()),
    }
    .map_err(Failure::usage)?;
    let graph = dmsync_client::GraphClient::new(args.connection.graph_url.trim_end_matches('/'));
    let report = super::seed::apply(&args.connection.client(), &graph, &seed)
        .await
        .map_err(|message| Failure::new(super::Exit::Error, message))?;
    match args.connection.output {
        OutputFormat::Json => print_json(&report),
        _ => {
            for app in &report.applications {
                println!("application {} appId {} secret {}", app["displayName"], app["appId"], app["secretText"]);
            }
            eprintln!("seeded");
        }
    }
    Ok(())
}
