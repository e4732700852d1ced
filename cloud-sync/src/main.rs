//! `rollcall-cloud`: thin binary over the library's server.

use std::{net::SocketAddr, num::NonZeroU32, path::PathBuf};

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
    /// Serve the API until SIGTERM or Ctrl-C.
    Serve {
        /// A SQLite file (created if missing), or a PostgreSQL URL `postgres://ROLE@HOST/DB`
        /// for several replicas on one database (ROLE must not bypass row-level security).
        #[arg(
            long,
            env = "ROLLCALL_CLOUD_DB",
            default_value = "rollcall-cloud.sqlite"
        )]
        db: String,
        /// PostgreSQL only: a URL for the role that owns the schema and runs migrations at
        /// start-up (then granting `--db`'s role what it needs); default: `--db`'s role.
        #[arg(long, env = "ROLLCALL_CLOUD_DB_MIGRATE_URL", hide_env_values = true)]
        db_migrate_url: Option<String>,
        #[arg(long, env = "ROLLCALL_CLOUD_LISTEN", default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Bearer token of the bootstrap administrator (at least 16 characters).
        #[arg(long, env = "ROLLCALL_CLOUD_ADMIN_TOKEN", hide_env_values = true)]
        admin_token: String,
        /// A bearer token (at least 16 characters) that reads `/metrics` and nothing else, for
        /// Prometheus' `authorization` setting; without it only --admin-token reads them.
        /// `/healthz` needs none.
        #[arg(long, env = "ROLLCALL_CLOUD_METRICS_TOKEN", hide_env_values = true)]
        metrics_token: Option<String>,
        /// Tenant slug this server hosts.
        #[arg(long, env = "ROLLCALL_CLOUD_TENANT", default_value = "default")]
        tenant: String,
        /// Base domain of tenant hosts: with `rollcall.example`, requests to
        /// `acme.rollcall.example` are tenant `acme`'s (and a credential of another tenant is
        /// refused there).
        #[arg(long, env = "ROLLCALL_CLOUD_BASE_DOMAIN")]
        base_domain: Option<String>,
        /// Requests a minute per user (or node credential) of a tenant.
        #[arg(long, env = "ROLLCALL_CLOUD_RATE_USER", default_value_t = NonZeroU32::new(600).unwrap_or(NonZeroU32::MIN))]
        rate_limit_user: NonZeroU32,
        /// Requests a minute per tenant, all its users together.
        #[arg(long, env = "ROLLCALL_CLOUD_RATE_TENANT", default_value_t = NonZeroU32::new(6000).unwrap_or(NonZeroU32::MIN))]
        rate_limit_tenant: NonZeroU32,
        /// Login attempts a minute per tenant and client address.
        #[arg(long, env = "ROLLCALL_CLOUD_RATE_LOGIN", default_value_t = NonZeroU32::new(10).unwrap_or(NonZeroU32::MIN))]
        rate_limit_login: NonZeroU32,
        /// Login attempts a minute from one client address, whatever tenants they name.
        #[arg(long, env = "ROLLCALL_CLOUD_RATE_LOGIN_ADDRESS", default_value_t = NonZeroU32::new(30).unwrap_or(NonZeroU32::MIN))]
        rate_limit_login_address: NonZeroU32,
        /// Login attempts a minute to this replica, from everywhere together.
        #[arg(long, env = "ROLLCALL_CLOUD_RATE_LOGIN_GLOBAL", default_value_t = NonZeroU32::new(600).unwrap_or(NonZeroU32::MIN))]
        rate_limit_login_global: NonZeroU32,
        /// Password hashes (Argon2id, 19 MiB each) computed at once; default: one per core.
        /// A login finding them all busy waits up to --login-hash-wait-ms, then gets 503.
        #[arg(long, env = "ROLLCALL_CLOUD_LOGIN_HASHES")]
        login_hashes: Option<NonZeroU32>,
        /// How long a login waits for a free password hasher, in milliseconds.
        #[arg(long, env = "ROLLCALL_CLOUD_LOGIN_HASH_WAIT_MS", default_value_t = 2_000, value_parser = clap::value_parser!(u64).range(0..=60_000))]
        login_hash_wait_ms: u64,
        /// The master key that seals face templates (64 hex characters; the file must be
        /// readable by its owner only). With SQLite it defaults to `<db>.master-key` and is
        /// made on first start; with PostgreSQL it is required and must exist (every replica
        /// needs the same key). Back it up apart from the database.
        #[arg(long, env = "ROLLCALL_CLOUD_MASTER_KEY_FILE")]
        master_key_file: Option<PathBuf>,
        /// Connections open at once; one over it is closed at once.
        #[arg(long, env = "ROLLCALL_CLOUD_MAX_CONNECTIONS", default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
        max_connections: u64,
        /// How long a client has to send a request's head, in milliseconds; also how long an
        /// idle keep-alive connection stays open.
        #[arg(long, env = "ROLLCALL_CLOUD_HEADER_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(100..=600_000))]
        header_timeout_ms: u64,
        /// How long a request may take, body included, before it is answered 408, in
        /// milliseconds.
        #[arg(long, env = "ROLLCALL_CLOUD_REQUEST_TIMEOUT_MS", default_value_t = 60_000, value_parser = clap::value_parser!(u64).range(100..=3_600_000))]
        request_timeout_ms: u64,
        /// Write the bound address here once listening (for port 0).
        #[arg(long)]
        addr_file: Option<PathBuf>,
        /// Jobs of the `default` queue this replica runs at once.
        #[arg(long, env = "ROLLCALL_CLOUD_JOB_CONCURRENCY", default_value_t = NonZeroU32::new(4).unwrap_or(NonZeroU32::MIN))]
        job_concurrency: NonZeroU32,
        /// Jobs of one tenant running at once in one queue, all replicas together.
        #[arg(long, env = "ROLLCALL_CLOUD_JOB_TENANT_CAP", default_value_t = NonZeroU32::new(2).unwrap_or(NonZeroU32::MIN))]
        job_tenant_cap: NonZeroU32,
        /// A job's lease, in milliseconds: a replica that stops renewing it (killed, stalled)
        /// loses the job to another after this long.
        #[arg(long, env = "ROLLCALL_CLOUD_JOB_LEASE_MS", default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(300..=3_600_000))]
        job_lease_ms: u64,
        /// How often an idle queue looks for work it was not woken for, in milliseconds.
        #[arg(long, env = "ROLLCALL_CLOUD_JOB_POLL_MS", default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(10..=60_000))]
        job_poll_ms: u64,
        /// The SMTP server notifications are mailed through: smtp://host:25,
        /// smtp://user:password@host:587?tls=required (STARTTLS), smtps://user:password@host:465.
        /// Without it mail is not sent (the inbox still works).
        #[arg(long, env = "ROLLCALL_CLOUD_SMTP_URL", hide_env_values = true)]
        smtp_url: Option<String>,
        /// A PEM file of the private CA that signed the SMTP server's certificate (trusted
        /// beside the system's; with smtps:// or ?tls=required).
        #[arg(long, env = "ROLLCALL_CLOUD_SMTP_CA_FILE")]
        smtp_ca_file: Option<PathBuf>,
        /// The sender of notification mail, such as `rollcall <alerts@example.com>`.
        #[arg(
            long,
            env = "ROLLCALL_CLOUD_MAIL_FROM",
            default_value = "rollcall <rollcall@localhost>"
        )]
        mail_from: String,
        /// Mail jobs running at once in this replica.
        #[arg(long, env = "ROLLCALL_CLOUD_MAIL_CONCURRENCY", default_value_t = NonZeroU32::new(2).unwrap_or(NonZeroU32::MIN))]
        mail_concurrency: NonZeroU32,
    },
}

fn main() -> anyhow::Result<()> {
    rollcall_service::logging::init();
    match Cli::parse().command {
        Cmd::Serve {
            db,
            db_migrate_url,
            listen,
            admin_token,
            metrics_token,
            tenant,
            base_domain,
            rate_limit_user,
            rate_limit_tenant,
            rate_limit_login,
            rate_limit_login_address,
            rate_limit_login_global,
            login_hashes,
            login_hash_wait_ms,
            max_connections,
            header_timeout_ms,
            request_timeout_ms,
            master_key_file,
            addr_file,
            job_concurrency,
            job_tenant_cap,
            job_lease_ms,
            job_poll_ms,
            smtp_url,
            smtp_ca_file,
            mail_from,
            mail_concurrency,
        } => {
            let base_domain = base_domain.map(|d| d.to_ascii_lowercase());
            if let Some(d) = &base_domain
                && (!rollcall_cloud::server::valid_hostname(d) || !d.contains('.'))
            {
                bail!("--base-domain must be a host name such as rollcall.example, got `{d}`");
            }
            if admin_token.len() < 16 {
                bail!("--admin-token (ROLLCALL_CLOUD_ADMIN_TOKEN) must be at least 16 characters");
            }
            if metrics_token.as_ref().is_some_and(|t| t.len() < 16) {
                bail!(
                    "--metrics-token (ROLLCALL_CLOUD_METRICS_TOKEN) must be at least 16 characters"
                );
            }
            if !rollcall_cloud::server::tenants::resolve::valid_slug(&tenant) {
                bail!(
                    "--tenant must be a slug of 2-63 characters of a-z, 0-9 and - (not at either end), got `{tenant}`"
                );
            }
            let database = rollcall_cloud::server::Backend::parse(&db, db_migrate_url);
            if matches!(database, rollcall_cloud::server::Backend::Sqlite(_)) && db.contains("://")
            {
                bail!("--db `{db}`: not a file path, and the only URL scheme known is postgres://");
            }
            let sqlite = matches!(database, rollcall_cloud::server::Backend::Sqlite(_));
            let (master_key_file, create_master_key) = match (master_key_file, sqlite) {
                (Some(f), _) => (f, sqlite),
                (None, true) => (PathBuf::from(format!("{db}.master-key")), true),
                (None, false) => bail!(
                    "--master-key-file (ROLLCALL_CLOUD_MASTER_KEY_FILE) is required with PostgreSQL: \
                     every replica must use the same key file (make one with `openssl rand -hex 32 > FILE; chmod 600 FILE`)"
                ),
            };
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            // The SMTP connection pool lives on the runtime.
            let mailer = {
                let _on_runtime = runtime.enter();
                let ca = smtp_ca_file
                    .map(|f| {
                        std::fs::read(&f).with_context(|| {
                            format!("--smtp-ca-file {}: cannot be read", f.display())
                        })
                    })
                    .transpose()?;
                smtp_url
                    .map(|url| {
                        rollcall_cloud::server::notifications::mail::Mailer::new(
                            &url,
                            &mail_from,
                            ca.as_deref(),
                        )
                    })
                    .transpose()?
                    .map(std::sync::Arc::new)
            };
            match &mailer {
                Some(m) => {
                    tracing::info!(server = %m.server, "notifications are mailed through {}", m.server)
                }
                None => {
                    tracing::warn!("mail is off (no --smtp-url): notifications stay in the inbox")
                }
            }
            let config = rollcall_cloud::server::Config {
                database,
                listen,
                admin_token,
                metrics_token,
                tenant,
                base_domain,
                rate_limits: rollcall_cloud::server::http::rate_limit::RateConfig {
                    per_user: rate_limit_user,
                    per_tenant: rate_limit_tenant,
                    logins: rate_limit_login,
                    logins_per_address: rate_limit_login_address,
                    logins_global: rate_limit_login_global,
                },
                hashing: rollcall_cloud::server::auth::hashers::HashConfig {
                    at_once: login_hashes.unwrap_or(
                        rollcall_cloud::server::auth::hashers::HashConfig::default().at_once,
                    ),
                    wait: std::time::Duration::from_millis(login_hash_wait_ms),
                },
                connections: rollcall_service::serve::ConnLimits {
                    max_connections: usize::try_from(max_connections).unwrap_or(usize::MAX),
                    header_timeout: std::time::Duration::from_millis(header_timeout_ms),
                    request_timeout: std::time::Duration::from_millis(request_timeout_ms),
                },
                master_key_file,
                create_master_key,
                addr_file,
                jobs: jobs_config(
                    job_concurrency,
                    job_tenant_cap,
                    job_lease_ms,
                    job_poll_ms,
                    mail_concurrency,
                ),
                job_kinds: rollcall_cloud::server::jobs::kinds::registry_with(mailer),
            };
            runtime.block_on(rollcall_cloud::server::serve(config))?;
            Ok(())
        }
    }
}

/// The workers' settings from the command line: the lease is checked for expiry as often as
/// it is renewed (every third of it).
fn jobs_config(
    concurrency: NonZeroU32,
    tenant_cap: NonZeroU32,
    lease_ms: u64,
    poll_ms: u64,
    mail_concurrency: NonZeroU32,
) -> rollcall_cloud::server::jobs::runner::JobsConfig {
    use rollcall_cloud::server::jobs::runner::{JobsConfig, QueueConfig};
    let lease = std::time::Duration::from_millis(lease_ms);
    let defaults = JobsConfig::default();
    JobsConfig {
        queues: vec![
            QueueConfig {
                name: "default".into(),
                concurrency: concurrency.get(),
            },
            QueueConfig {
                name: "maintenance".into(),
                concurrency: 1,
            },
            QueueConfig {
                name: rollcall_cloud::server::notifications::jobs::QUEUE.into(),
                concurrency: mail_concurrency.get(),
            },
        ],
        tenant_cap: tenant_cap.get(),
        poll: std::time::Duration::from_millis(poll_ms),
        lease,
        rescue_every: lease / 3,
        ..defaults
    }
}
