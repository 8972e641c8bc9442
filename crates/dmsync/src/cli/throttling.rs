//! `dmsync throttling on|off|show`: switches a running dmsync's throttling through the admin API
//! (`/_dmsync/throttling`), for a test that wants Intune's limits for a while.

use std::path::PathBuf;

use dmsync_client::AdminClient;

use super::output::print_json;
use super::{CliResult, Failure};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The dmsync server's root URL.
    #[arg(long, env = "DMSYNC_GRAPH_URL", default_value = "http://127.0.0.1:8080", global = true)]
    pub graph_url: String,
    /// The admin token (`serve --admin-token`); on loopback without one, the development token.
    #[arg(
        long,
        env = "DMSYNC_ADMIN_TOKEN",
        hide_env_values = true,
        default_value = dmsync_server::config::DEV_ADMIN_TOKEN,
        global = true
    )]
    pub admin_token: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Throttle with Graph's documented Intune limits, or with the limits of a JSON file.
    On {
        /// A limits file (the format of `serve --throttling FILE`); without it, the documented limits.
        #[arg(long)]
        limits: Option<PathBuf>,
    },
    /// Stop throttling.
    Off,
    /// Print the mode and the limits in force.
    Show,
}

pub async fn run(args: Args) -> CliResult {
    let admin = AdminClient::new(args.graph_url, args.admin_token);
    let answer = match args.command {
        Command::Show => admin.throttling().await?,
        Command::Off => admin.set_throttling(&serde_json::json!({"mode": "off"})).await?,
        Command::On { limits: None } => admin.set_throttling(&serde_json::json!({"mode": "documented"})).await?,
        Command::On { limits: Some(path) } => {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| Failure::usage(format!("reading the limits file {}: {e}", path.display())))?;
            let limits: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| Failure::usage(format!("{} is not JSON: {e}", path.display())))?;
            admin.set_throttling(&serde_json::json!({ "limits": limits })).await?
        }
    };
    print_json(&answer);
    Ok(())
}
