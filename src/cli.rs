//! Command line: `serve`, `check`, `parse`, `demo`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// hookgate: vendor webhooks in, verified and deduplicated OCSF events out.
#[derive(Debug, Parser)]
#[command(name = "hookgate", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway.
    Serve {
        /// Config file (TOML).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Load and validate a config and its parsers, then exit 0 (valid) or 64 (invalid).
    Check {
        /// Config file (TOML).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Print the normalized OCSF event(s) for a raw vendor payload.
    Parse {
        /// Parser (vendor) name, e.g. `hyprwatch`.
        #[arg(long)]
        vendor: String,
        /// Extra parser definitions directory.
        #[arg(long)]
        parsers_dir: Option<PathBuf>,
        /// Request header to pretend was sent, `name: value` (e.g. `svix-id: msg_1`). Repeatable.
        #[arg(long = "header", short = 'H')]
        headers: Vec<String>,
        /// Receive time to pretend, epoch milliseconds (default: now). Makes output
        /// reproducible for golden files.
        #[arg(long)]
        received_at_ms: Option<i64>,
        /// Payload files, run in order through one parser instance (a Hoop `session.open`
        /// before its `session.close`); `-` or none reads standard input.
        files: Vec<PathBuf>,
    },
    /// Run on the embedded defaults with freshly generated demo secrets, and print a curl
    /// command that sends a signed sample event.
    Demo {
        /// Public port (admin is port + 1010).
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// Where to write normalized events (`-` = standard output).
        #[arg(long, default_value = "-")]
        output: PathBuf,
    },
}
