//! `rollcall-cloud`: thin binary over the library's server.

use std::{net::SocketAddr, path::PathBuf};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "rollcall-cloud", version, about = "rollcall central server")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve the API on an embedded SQLite database until SIGTERM or Ctrl-C.
    Serve {
        /// SQLite database file (created if missing).
        #[arg(
            long,
            env = "ROLLCALL_CLOUD_DB",
            default_value = "rollcall-cloud.sqlite"
        )]
        db: PathBuf,
        #[arg(long, env = "ROLLCALL_CLOUD_LISTEN", default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Bearer token of the bootstrap administrator (at least 16 characters).
        #[arg(long, env = "ROLLCALL_CLOUD_ADMIN_TOKEN", hide_env_values = true)]
        admin_token: String,
        /// Tenant slug this server hosts.
        #[arg(long, env = "ROLLCALL_CLOUD_TENANT", default_value = "default")]
        tenant: String,
        /// Write the bound address here once listening (for port 0).
        #[arg(long)]
        addr_file: Option<PathBuf>,
    },
}

fn main() -> anyhow::Result<()> {
    rollcall_cloud::logging::init();
    match Cli::parse().command {
        Cmd::Serve {
            db,
            listen,
            admin_token,
            tenant,
            addr_file,
        } => {
            if admin_token.len() < 16 {
                bail!("--admin-token (ROLLCALL_CLOUD_ADMIN_TOKEN) must be at least 16 characters");
            }
            if tenant.is_empty()
                || !tenant
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            {
                bail!("--tenant must be a slug of a-z, 0-9 and -, got `{tenant}`");
            }
            let config = rollcall_cloud::server::Config {
                database: db,
                listen,
                admin_token,
                tenant,
                addr_file,
            };
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?
                .block_on(rollcall_cloud::server::serve(config))?;
            Ok(())
        }
    }
}
