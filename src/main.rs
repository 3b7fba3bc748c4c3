//! The `ferroflow` binary: parse the command line, set up logging, run.

use clap::{Parser, Subcommand};
use ferroflow::config::{Config, ServerArgs};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "ferroflow",
    version,
    about = "An MLflow-compatible tracking server"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the tracking server
    Server(ServerArgs),
    /// Database maintenance
    Db {
        #[command(subcommand)]
        command: DbCommand,
    },
}

#[derive(Subcommand)]
enum DbCommand {
    /// Apply migrations to the backend store and exit
    Upgrade(ServerArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    match Cli::parse().command {
        Command::Server(args) => ferroflow::app::serve(Config::load(&args)?).await,
        Command::Db {
            command: DbCommand::Upgrade(args),
        } => {
            let config = Config::load(&args)?;
            ferroflow::store::upgrade(&config.backend_store_uri).await?;
            tracing::info!("database is at the latest schema");
            Ok(())
        }
    }
}
