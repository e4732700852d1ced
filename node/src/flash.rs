//! `rollcall-node flash`: installs a config bundle signed by the tenant's key in the cloud.
//!
//! The running config is the trust anchor: its `node.bundle_public_key` and `node.tenant` decide
//! which bundles are accepted, and its `node.site_id` which site. A bundle must also be newer
//! (serial) than the last one flashed, and its config must be valid and keep the node able to
//! take the next bundle. The file is replaced atomically; the previous config and bundle are
//! kept beside it (`.prev`) for `flash --rollback`; the running daemon is told to reload
//! (SIGHUP, through the pid file in its data directory).

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use rollcall_protocol::bundle::{BundleError, ConfigBundle, MAX_BUNDLE_BYTES, parse_public_key};

use crate::config::{ConfigError, NodeConfig};

#[derive(Debug, thiserror::Error)]
pub enum FlashError {
    #[error(transparent)]
    Current(ConfigError),
    #[error(
        "{0}: node.tenant and node.bundle_public_key are not set, so this node accepts no bundle (set them from the cloud's GET /api/v1/signing-key)"
    )]
    NoTrust(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Bundle {
        path: PathBuf,
        #[source]
        source: BundleError,
    },
    #[error("the bundle is for tenant `{bundle}`, this node belongs to `{node}`")]
    Tenant { bundle: String, node: String },
    #[error("the bundle is for site `{bundle}`, this node guards `{node}`")]
    Site { bundle: String, node: String },
    #[error(
        "the bundle is serial {bundle}, not newer than serial {current} flashed already (an old bundle replayed?)"
    )]
    Older { bundle: u64, current: u64 },
    #[error("the bundle's config is invalid: {0}")]
    NewConfig(ConfigError),
    #[error(
        "the bundle's config {0}: the node would stop being this site's or stop accepting bundles"
    )]
    Unsafe(String),
    #[error("nothing to roll back to: {0} does not exist")]
    NoPrevious(PathBuf),
}

/// What a flash or rollback did.
#[derive(Debug, Clone, PartialEq)]
pub struct Flashed {
    /// The serial now in force (`None`: a config that came from no bundle).
    pub serial: Option<u64>,
    pub previous_serial: Option<u64>,
    /// The pid of the running daemon that was told to reload, if one runs.
    pub reloaded: Option<u32>,
}

/// The last flashed bundle, kept beside the config.
fn record_path(config: &Path) -> PathBuf {
    suffixed(config, ".bundle")
}

fn suffixed(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> FlashError + '_ {
    move |source| FlashError::Io {
        path: path.to_owned(),
        source,
    }
}

fn read_record(path: &Path) -> Result<Option<ConfigBundle>, FlashError> {
    match std::fs::read(path) {
        Ok(bytes) => ConfigBundle::parse(&bytes)
            .map(Some)
            .map_err(|source| FlashError::Bundle {
                path: path.to_owned(),
                source,
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(path)(e)),
    }
}

/// Writes `bytes` to `path` so that a crash leaves either the old or the new file whole.
fn atomic_write(path: &Path, bytes: &[u8]) -> Result<(), FlashError> {
    let tmp = suffixed(path, ".new");
    let mut file = std::fs::File::create(&tmp).map_err(io(&tmp))?;
    file.write_all(bytes).map_err(io(&tmp))?;
    file.sync_all().map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io(dir))?;
    }
    Ok(())
}

/// Copies `path` to `to` (atomically), or removes `to` when `path` does not exist.
fn keep_copy(path: &Path, to: &Path) -> Result<(), FlashError> {
    match std::fs::read(path) {
        Ok(bytes) => atomic_write(to, &bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => match std::fs::remove_file(to) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(to)(e)),
            _ => Ok(()),
        },
        Err(e) => Err(io(path)(e)),
    }
}

/// Verifies `bundle_path` against the config at `config_path` and installs it.
pub fn flash(config_path: &Path, bundle_path: &Path) -> Result<Flashed, FlashError> {
    let current = NodeConfig::load(config_path).map_err(FlashError::Current)?;
    let (Some(tenant), Some(key)) = (&current.node.tenant, &current.node.bundle_public_key) else {
        return Err(FlashError::NoTrust(config_path.to_owned()));
    };
    let bundle_error = |source| FlashError::Bundle {
        path: bundle_path.to_owned(),
        source,
    };
    let key = parse_public_key(key).map_err(bundle_error)?;
    let size = std::fs::metadata(bundle_path)
        .map_err(io(bundle_path))?
        .len();
    if size > MAX_BUNDLE_BYTES as u64 {
        return Err(bundle_error(BundleError::Malformed(format!(
            "{size} bytes, more than {MAX_BUNDLE_BYTES}"
        ))));
    }
    let bytes = std::fs::read(bundle_path).map_err(io(bundle_path))?;
    let bundle = ConfigBundle::parse(&bytes).map_err(bundle_error)?;
    bundle.verify(&key).map_err(bundle_error)?;
    if &bundle.tenant != tenant {
        return Err(FlashError::Tenant {
            bundle: bundle.tenant,
            node: tenant.clone(),
        });
    }
    if bundle.site_id != current.node.site_id {
        return Err(FlashError::Site {
            bundle: bundle.site_id,
            node: current.node.site_id,
        });
    }
    let record = record_path(config_path);
    let previous_serial = read_record(&record)?.map(|b| b.serial);
    if let Some(current) = previous_serial.filter(|s| bundle.serial <= *s) {
        return Err(FlashError::Older {
            bundle: bundle.serial,
            current,
        });
    }
    let new = NodeConfig::parse(&config_path.display().to_string(), &bundle.config_toml)
        .map_err(FlashError::NewConfig)?;
    if new.node.site_id != bundle.site_id {
        return Err(FlashError::Unsafe(format!(
            "sets node.site_id = `{}`",
            new.node.site_id
        )));
    }
    if new.node.tenant.as_deref() != Some(bundle.tenant.as_str())
        || new.node.bundle_public_key.is_none()
    {
        return Err(FlashError::Unsafe(
            "does not keep node.tenant and node.bundle_public_key".into(),
        ));
    }

    keep_copy(config_path, &suffixed(config_path, ".prev"))?;
    keep_copy(&record, &suffixed(&record, ".prev"))?;
    atomic_write(config_path, bundle.config_toml.as_bytes())?;
    atomic_write(&record, &bytes)?;
    tracing::info!(serial = bundle.serial, site = %bundle.site_id, "config bundle flashed");
    Ok(Flashed {
        serial: Some(bundle.serial),
        previous_serial,
        reloaded: signal_reload(&current),
    })
}

/// Puts back the config (and bundle record) that the last flash replaced.
pub fn rollback(config_path: &Path) -> Result<Flashed, FlashError> {
    let prev = suffixed(config_path, ".prev");
    let text = std::fs::read_to_string(&prev).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => FlashError::NoPrevious(prev.clone()),
        _ => io(&prev)(e),
    })?;
    NodeConfig::parse(&config_path.display().to_string(), &text).map_err(FlashError::NewConfig)?;
    // The daemon runs on the config being replaced: its data directory has the pid file.
    let running = NodeConfig::load(config_path).ok();
    let record = record_path(config_path);
    let previous_serial = read_record(&record)?.map(|b| b.serial);
    let record_prev = suffixed(&record, ".prev");
    let serial = read_record(&record_prev)?.map(|b| b.serial);
    atomic_write(config_path, text.as_bytes())?;
    keep_copy(&record_prev, &record)?;
    for gone in [&prev, &record_prev] {
        match std::fs::remove_file(gone) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(gone)(e)),
            _ => {}
        }
    }
    tracing::info!(?serial, "config rolled back");
    Ok(Flashed {
        serial,
        previous_serial,
        reloaded: running.as_ref().and_then(signal_reload),
    })
}

/// The daemon's pid file, in its data directory.
pub fn pid_path(config: &NodeConfig) -> PathBuf {
    config.node.data_dir.join("rollcall-node.pid")
}

/// Tells the daemon running on `config` (if any) to reload: `kill -HUP` to its pid file's pid.
fn signal_reload(config: &NodeConfig) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(pid_path(config))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    if !Path::new(&format!("/proc/{pid}")).exists() {
        return None;
    }
    let sent = std::process::Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .is_ok_and(|s| s.success());
    sent.then_some(pid)
}
