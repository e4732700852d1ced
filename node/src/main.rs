//! `rollcall-node`: thin binary over the library.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use rollcall_node::NodeConfig;

#[derive(Parser)]
#[command(name = "rollcall-node", version, about = "rollcall site daemon")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

/// The node's config file.
#[derive(clap::Args)]
struct ConfigPath {
    #[arg(
        long,
        short,
        env = "ROLLCALL_NODE_CONFIG",
        default_value = "/etc/rollcall/node.toml"
    )]
    config: PathBuf,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the node: kiosk API, check-in pipeline, sync.
    Run {
        #[command(flatten)]
        config: ConfigPath,
        /// Write the bound address here once listening (for port 0).
        #[arg(long)]
        addr_file: Option<PathBuf>,
    },
    /// Check everything an installer needs: config, models, runtime, database, reader, cloud, clock.
    Doctor {
        #[command(flatten)]
        config: ConfigPath,
    },
    /// Install a config bundle signed by the tenant in the cloud (verified against this node's
    /// `node.bundle_public_key`, tenant and site; newer than the last one), keeping the previous
    /// config for `--rollback`; a running node reloads.
    Flash {
        #[command(flatten)]
        config: ConfigPath,
        /// The bundle file (`POST /api/v1/config-bundles` on the cloud).
        bundle: Option<PathBuf>,
        /// Put back the config the last flash replaced.
        #[arg(long, conflicts_with = "bundle")]
        rollback: bool,
    },
    /// Configuration tools.
    Config {
        #[command(subcommand)]
        command: ConfigCmd,
    },
    /// Installer tools for the OSDP reader/turnstile bus.
    Osdp {
        /// Serial device of the RS-485 adapter.
        #[arg(long)]
        port: String,
        #[arg(long, default_value_t = 9600)]
        baud: u32,
        #[command(subcommand)]
        command: OsdpCmd,
    },
}

#[derive(Subcommand)]
enum OsdpCmd {
    /// Find the PDs on the port and print their identity and capabilities.
    Scan {
        /// Addresses to try, e.g. `0-126` or `1,2,5-9`.
        #[arg(long, default_value = "0-126")]
        addresses: String,
    },
    /// Print live events of a PD (cards, keypad, online/offline) until Ctrl-C.
    Watch {
        #[arg(long)]
        address: u8,
    },
    /// Pulse an output (test the turnstile relay).
    Pulse {
        #[arg(long)]
        address: u8,
        #[arg(long, default_value_t = 0)]
        output: u8,
        #[arg(long, default_value_t = 1500)]
        ms: u64,
    },
}

#[derive(Subcommand)]
enum ConfigCmd {
    /// Validate a config file and print what it sets up.
    Check { file: PathBuf },
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn main() -> anyhow::Result<()> {
    rollcall_service::logging::init();
    match Cli::parse().command {
        Cmd::Run { config, addr_file } => {
            let path = config.config;
            let mut config = NodeConfig::load(&path)?;
            let runtime = runtime()?;
            loop {
                match runtime.block_on(rollcall_node::run(config.clone(), addr_file.clone()))? {
                    rollcall_node::Exit::Stop => return Ok(()),
                    rollcall_node::Exit::Reload => match NodeConfig::load(&path) {
                        Ok(new) => config = new,
                        Err(e) => tracing::error!(
                            error = %e,
                            "the config file is invalid now: running on with the one loaded before"
                        ),
                    },
                }
            }
        }
        Cmd::Flash {
            config,
            bundle,
            rollback,
        } => {
            let done = match (bundle, rollback) {
                (Some(bundle), false) => rollcall_node::flash::flash(&config.config, &bundle)?,
                (None, true) => rollcall_node::flash::rollback(&config.config)?,
                _ => anyhow::bail!("give a BUNDLE file, or --rollback"),
            };
            let serial = |s: Option<u64>| s.map_or("none".to_owned(), |s| s.to_string());
            println!(
                "{}: {} bundle serial {} (was {})",
                config.config.display(),
                if rollback {
                    "rolled back to"
                } else {
                    "flashed"
                },
                serial(done.serial),
                serial(done.previous_serial)
            );
            match done.reloaded {
                Some(pid) => println!("the running node (pid {pid}) is reloading its config"),
                None => println!("no running node found: the config applies at its next start"),
            }
            Ok(())
        }
        Cmd::Doctor { config } => {
            let checks = runtime()?.block_on(rollcall_node::doctor::run(&config.config));
            for c in &checks {
                println!("{}", c.line());
            }
            let failed = checks
                .iter()
                .filter(|c| c.status == rollcall_node::doctor::Status::Fail)
                .count();
            anyhow::ensure!(failed == 0, "{failed} check(s) failed");
            println!("all checks passed");
            Ok(())
        }
        Cmd::Osdp {
            port,
            baud,
            command,
        } => {
            use rollcall_node::osdp_tools;
            let mut out = std::io::stdout();
            match command {
                OsdpCmd::Scan { addresses } => {
                    let found = osdp_tools::scan(
                        &port,
                        baud,
                        &osdp_tools::parse_addresses(&addresses)?,
                        &mut out,
                    )?;
                    anyhow::ensure!(found > 0, "no PD answered on {port}");
                }
                OsdpCmd::Pulse {
                    address,
                    output,
                    ms,
                } => {
                    osdp_tools::pulse(
                        &port,
                        baud,
                        address,
                        output,
                        std::time::Duration::from_millis(ms),
                        &mut out,
                    )?;
                }
                OsdpCmd::Watch { address } => {
                    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
                    let flag = stop.clone();
                    ctrlc::set_handler(move || {
                        flag.store(true, std::sync::atomic::Ordering::SeqCst)
                    })
                    .context("installing the Ctrl-C handler")?;
                    osdp_tools::watch(&port, baud, address, &mut out, || {
                        stop.load(std::sync::atomic::Ordering::SeqCst)
                    })?;
                }
            }
            Ok(())
        }
        Cmd::Config {
            command: ConfigCmd::Check { file },
        } => {
            let c = NodeConfig::load(&file)?;
            println!("{}: ok", file.display());
            println!("  site            {}", c.node.site_id);
            println!("  database        {}", c.database_path().display());
            println!("  listen          http://{}", c.http.listen);
            match &c.cloud {
                Some(cloud) => println!(
                    "  cloud           {} (every {} ms)",
                    cloud.url, cloud.sync_interval_ms
                ),
                None => println!("  cloud           none (standalone)"),
            }
            println!("  match threshold {}", c.vision.match_threshold);
            println!("  geofences       {}", c.geofences().len());
            Ok(())
        }
    }
}
