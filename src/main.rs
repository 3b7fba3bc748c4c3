//! The `ferroflow` binary: parse the command line, set up logging, run.

use clap::{Parser, Subcommand};
use ferroflow::cli::{ExecArgs, GcArgs, KeyCommand, UiCommand, WorkspaceCommand};
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
    /// Log lines as text, or as one JSON object each (for log shippers)
    #[arg(long, global = true, value_enum, env = "FERROFLOW_LOG_FORMAT", default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the tracking server
    Server(ServerArgs),
    /// The effective configuration (defaults, file, environment, flags)
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Database maintenance
    Db {
        #[command(subcommand)]
        command: DbCommand,
    },
    /// Manage workspaces in the backend store; print a workspace's tracking
    /// URI or cluster init script
    Workspace {
        #[command(subcommand)]
        command: WorkspaceCommand,
    },
    /// Create and revoke API keys directly in the backend store
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Permanently remove runs, logged models and experiments deleted longer
    /// ago than --older-than, with their artifacts (like `mlflow gc`)
    Gc(GcArgs),
    /// MLflow's web UI bundle
    Ui {
        #[command(subcommand)]
        command: UiCommand,
    },
    /// Run a command with a workspace's tracking URI and credentials in its
    /// environment: ferroflow exec --workspace WS --url URL -- python train.py
    Exec(ExecArgs),
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print it as TOML, passwords in URIs masked; takes `server`'s flags
    Print(ServerArgs),
}

#[derive(Subcommand)]
enum DbCommand {
    /// Apply migrations to the backend store and exit
    Upgrade(ServerArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Logs go to stderr: stdout carries the output of CLI subcommands.
    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        );
    match cli.log_format {
        LogFormat::Text => logs.init(),
        // The request span (its id) is in each line's `span` field.
        LogFormat::Json => logs.json().with_span_list(false).init(),
    }
    match cli.command {
        Command::Server(args) => ferroflow::app::serve(Config::load(&args)?).await,
        Command::Config {
            command: ConfigCommand::Print(args),
        } => print_or_exit(Config::load(&args).and_then(|config| config.to_redacted_toml())),
        Command::Db {
            command: DbCommand::Upgrade(args),
        } => {
            let config = Config::load(&args)?;
            ferroflow::store::upgrade(&config.backend_store_uri).await?;
            tracing::info!("database is at the latest schema");
            Ok(())
        }
        Command::Workspace { command } => print_or_exit(command.run().await),
        Command::Key { command } => print_or_exit(command.run().await),
        Command::Ui { command } => print_or_exit(command.run().await),
        Command::Gc(args) => print_or_exit(args.run().await),
        Command::Exec(args) => {
            let Err(err) = args.run().await;
            print_or_exit(Err(err))
        }
    }
}

/// An operator command's output on stdout, or its error as one line (no
/// backtrace) and exit code 1.
fn print_or_exit(result: anyhow::Result<String>) -> anyhow::Result<()> {
    match result {
        Ok(output) => {
            println!("{output}");
            Ok(())
        }
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::exit(1)
        }
    }
}
