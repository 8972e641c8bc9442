//! `dmsync exchange …`: Exchange connectors and their syncs.

use dmsync_client::NewExchangeConnector;
use dmsync_client::dmsync_graph::ApiVersion;
use dmsync_client::dmsync_graph::exchange::{
    DeviceManagementExchangeConnector, DeviceManagementExchangeConnectorStatus as ConnectorStatus,
    DeviceManagementExchangeConnectorSyncType as SyncType, DeviceManagementExchangeConnectorType as ConnectorType,
};

use super::output::{OutputFormat, Progress, Table, print_json, print_list, refuse_csv};
use super::{CliResult, Exit, Failure, Session, WaitArgs};

/// Connectors exist in v1.0 and beta alike; v1.0 is the supported one.
const VERSION: ApiVersion = ApiVersion::V1;

pub type Args = super::ClientArgs<Command>;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// List, create or delete Exchange connectors.
    #[command(subcommand)]
    #[command(after_help = super::EXIT_CODES_HELP)]
    Connectors(ConnectorsCommand),
    /// Sync a connector (POST …/exchangeConnectors/{id}/sync).
    ///
    /// Exits 6 if a sync of it is already running (409), or with --wait follows that sync. With
    /// --wait it shows progress until the sync succeeds (exit 0) or the connector is disconnected
    /// (exit 8). On dmsync a connector needs a source first (PUT
    /// /_dmsync/tenants/TENANT/exchangeConnectors/ID/source, for example the sample
    /// examples/exchange/mobile-devices.csv); without one every sync fails.
    #[command(after_help = super::EXIT_CODES_HELP)]
    Sync(SyncArgs),
}

#[derive(Debug, clap::Subcommand)]
pub enum ConnectorsCommand {
    /// List the tenant's connectors, following every page.
    #[command(after_help = super::EXIT_CODES_HELP)]
    List,
    /// Create a connector.
    #[command(after_help = super::EXIT_CODES_HELP)]
    Create(CreateArgs),
    /// Delete a connector and the devices it discovered.
    #[command(after_help = super::EXIT_CODES_HELP)]
    Delete {
        /// The connector's id.
        id: String,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ConnectorKind {
    OnPremises,
    Hosted,
    ServiceToService,
    Dedicated,
}

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// The Exchange server's name.
    #[arg(long)]
    pub server_name: String,
    /// The connector type.
    #[arg(long = "type", value_enum, default_value = "on-premises")]
    pub kind: ConnectorKind,
    /// The service account's email address.
    #[arg(long)]
    pub primary_smtp_address: Option<String>,
    /// The name of the server running the connector.
    #[arg(long)]
    pub connector_server_name: Option<String>,
    /// The Exchange alias.
    #[arg(long)]
    pub exchange_alias: Option<String>,
    /// The Exchange organization.
    #[arg(long)]
    pub exchange_organization: Option<String>,
    /// The connector's version.
    #[arg(long = "connector-version")]
    pub connector_version: Option<String>,
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("kind").required(true).args(["full", "delta"])))]
pub struct SyncArgs {
    /// The connector's id.
    pub id: String,
    /// A full sync: every device, and removal of those no longer in Exchange.
    #[arg(long)]
    pub full: bool,
    /// A delta sync: only devices changed since the last sync.
    #[arg(long)]
    pub delta: bool,
    #[command(flatten)]
    pub wait: WaitArgs,
}

pub async fn run(args: Args) -> CliResult {
    let mut session = Session::connect(&args.connection).await?;
    match args.command {
        Command::Connectors(ConnectorsCommand::List) => list(&mut session).await,
        Command::Connectors(ConnectorsCommand::Create(create_args)) => create(&mut session, create_args).await,
        Command::Connectors(ConnectorsCommand::Delete { id }) => delete(&mut session, &id).await,
        Command::Sync(sync_args) => sync(&mut session, sync_args).await,
    }
}

/// An enum member's Graph spelling, through its serde form.
fn wire_name<T: serde::Serialize>(value: T) -> String {
    serde_json::to_value(value).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

fn connector_table(connectors: &[DeviceManagementExchangeConnector]) -> Table {
    let mut table = Table::new(&["ID", "SERVER", "TYPE", "STATUS", "LAST SYNC"]);
    for c in connectors {
        table.row(vec![
            c.id.clone(),
            c.server_name.clone(),
            wire_name(c.exchange_connector_type),
            wire_name(c.status),
            c.last_sync_date_time.0.map(super::output::timestamp).unwrap_or_else(|| "never".into()),
        ]);
    }
    table
}

async fn list(session: &mut Session) -> CliResult {
    let connectors = session.call(async |g| g.list_exchange_connectors(VERSION).await).await?;
    print_list(session.output, &connectors, connector_table(&connectors));
    Ok(())
}

async fn create(session: &mut Session, args: CreateArgs) -> CliResult {
    refuse_csv(session.output)?;
    let connector = NewExchangeConnector {
        server_name: Some(args.server_name),
        exchange_connector_type: Some(match args.kind {
            ConnectorKind::OnPremises => ConnectorType::OnPremises,
            ConnectorKind::Hosted => ConnectorType::Hosted,
            ConnectorKind::ServiceToService => ConnectorType::ServiceToService,
            ConnectorKind::Dedicated => ConnectorType::Dedicated,
        }),
        primary_smtp_address: args.primary_smtp_address,
        connector_server_name: args.connector_server_name,
        exchange_alias: args.exchange_alias,
        exchange_organization: args.exchange_organization,
        version: args.connector_version,
    };
    let created = session.call(async |g| g.create_exchange_connector(VERSION, &connector).await).await?;
    match session.output {
        OutputFormat::Json => print_json(&created),
        _ => print!("{}", connector_table(std::slice::from_ref(&created)).render()),
    }
    Ok(())
}

async fn delete(session: &mut Session, id: &str) -> CliResult {
    refuse_csv(session.output)?;
    session.call(async |g| g.delete_exchange_connector(VERSION, id).await).await?;
    match session.output {
        OutputFormat::Json => print_json(&serde_json::json!({ "deleted": id })),
        _ => println!("Deleted connector {id}."),
    }
    Ok(())
}

async fn sync(session: &mut Session, args: SyncArgs) -> CliResult {
    refuse_csv(session.output)?;
    let (sync_type, label) =
        if args.full { (SyncType::FullSync, "full sync") } else { (SyncType::DeltaSync, "delta sync") };
    let id = args.id.as_str();
    // The state before the request: the sync is over when lastSyncDateTime moves past it.
    let before = session.call(async |g| g.get_exchange_connector(VERSION, id).await).await?;
    let started = match session.call(async |g| g.sync_exchange_connector(VERSION, id, sync_type).await).await {
        Ok(()) => format!("{label} of {id} started"),
        Err(e) if e.status() == Some(409) && args.wait.wait => {
            format!("a sync of {id} is already running; waiting for it")
        }
        Err(e) if e.status() == Some(409) => {
            return Err(Failure::new(
                Exit::Conflict,
                format!("{}\n  (use --wait to follow the running sync)", super::describe(&e)),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    if !args.wait.wait {
        match session.output {
            OutputFormat::Json => print_json(&serde_json::json!({ "result": "started", "syncType": sync_type })),
            _ => println!("{}{}.", started[..1].to_uppercase(), &started[1..]),
        }
        return Ok(());
    }
    let mut progress = Progress::spinner(&format!("{started}: running"));
    let deadline = tokio::time::Instant::now() + args.wait.timeout;
    loop {
        tokio::time::sleep(args.wait.poll_interval).await;
        let now = session.call(async |g| g.get_exchange_connector(VERSION, id).await).await?;
        let synced = now.last_sync_date_time.0 > before.last_sync_date_time.0;
        // A failed sync leaves lastSyncDateTime alone and disconnects the connector. If it was
        // disconnected already, a new failure looks the same as a sync still running, and only
        // the timeout ends the wait.
        let failed = now.status == ConnectorStatus::Disconnected && before.status != ConnectorStatus::Disconnected;
        if synced || failed {
            let outcome = if synced { "succeeded" } else { "failed" };
            progress.finish(&format!("sync {outcome}: connector {}", wire_name(now.status)));
            match session.output {
                OutputFormat::Json => print_json(&now),
                _ => print!("{}", connector_table(std::slice::from_ref(&now)).render()),
            }
            return if synced { Ok(()) } else { Err(Failure::new(Exit::OperationFailed, disconnected(id))) };
        }
        progress.set_message(&format!("{started}: running (connector {})", wire_name(now.status)));
        if tokio::time::Instant::now() >= deadline {
            progress.finish("gave up waiting");
            return Err(Failure::new(
                Exit::TimedOut,
                format!("the sync of {id} had not finished after {}", humantime::format_duration(args.wait.timeout)),
            ));
        }
    }
}

/// Why a sync left the connector `disconnected`, and what to do. Graph does not say why a sync
/// failed, so the message names the likely cause on each server.
fn disconnected(id: &str) -> String {
    format!(
        "the sync of {id} failed: the connector is disconnected (it could not read its Exchange organization)\n  \
         on dmsync, a connector reads the source set with the admin API, and one without a source fails every sync:\n  \
         PUT /_dmsync/tenants/TENANT/exchangeConnectors/{id}/source with {{\"kind\":\"file\",\"path\":\"/absolute/path.csv\"}} \
         or {{\"kind\":\"http\",\"url\":\"…\"}} (see README.md)\n  \
         on Intune, check the Exchange connector service on its server"
    )
}
