//! `rollcall-node doctor`: everything an installer needs to know before leaving a site, as a
//! checklist — config, models, ONNX Runtime, the database, the site configuration in force, the
//! OSDP reader, the cloud and the clock.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use rollcall_firmware_bridge::{ControlPanel, CpError, ScKey, SerialTransport};
use rollcall_models::Manifest;
use rollcall_protocol::wire::NodeIdentity;

use crate::{
    config::NodeConfig,
    store::{NodeStore, now_ms},
    template_key::TemplateKey,
    vision_setup,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    Warn,
    Fail,
    Skipped,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    pub detail: String,
}

impl Check {
    fn new(name: &'static str, status: Status, detail: impl Into<String>) -> Self {
        Self {
            name,
            status,
            detail: detail.into(),
        }
    }

    /// One line of the checklist.
    pub fn line(&self) -> String {
        let mark = match self.status {
            Status::Ok => "[ ok ]",
            Status::Warn => "[warn]",
            Status::Fail => "[FAIL]",
            Status::Skipped => "[ -- ]",
        };
        format!("{mark} {:<10} {}", self.name, self.detail)
    }
}

/// Clock skew against the cloud beyond which check-ins are flagged (the fraud rules' default).
const SKEW_FAIL: Duration = Duration::from_secs(120);
const SKEW_WARN: Duration = Duration::from_secs(5);

/// Runs every check; later checks that need an earlier one are skipped when it failed.
pub async fn run(config_path: &Path) -> Vec<Check> {
    let mut checks = Vec::new();
    let config = match NodeConfig::load(config_path) {
        Ok(c) => {
            checks.push(Check::new(
                "config",
                Status::Ok,
                format!("{}: site {}", config_path.display(), c.node.site_id),
            ));
            c
        }
        Err(e) => {
            checks.push(Check::new("config", Status::Fail, e.to_string()));
            return checks;
        }
    };
    checks.push(models(&config));
    checks.push(engine(&config).await);
    let database = database(&config).await;
    let database_ok = database.status == Status::Ok;
    checks.push(database);
    if database_ok {
        checks.push(site(&config).await);
    }
    checks.push(osdp(&config).await);
    checks.extend(cloud(&config).await);
    checks
}

fn models(config: &NodeConfig) -> Check {
    let verify = || -> Result<String, rollcall_models::Error> {
        let manifest = Manifest::embedded()?;
        let store = vision_setup::model_store(config)?;
        let mut names = vec![
            "onnxruntime",
            vision_setup::detector_model(config),
            "face-landmark",
        ];
        if config.vision.embedder_file.is_none() {
            names.push(vision_setup::DEFAULT_EMBEDDER);
        }
        if config.vision.passive_liveness {
            names.push(vision_setup::ANTISPOOF_MODEL);
        }
        for n in &names {
            store.verified(&manifest, n)?;
        }
        Ok(format!(
            "{} verified in {}",
            names.join(", "),
            store.root().display()
        ))
    };
    match verify() {
        Ok(detail) => Check::new("models", Status::Ok, detail),
        Err(e) => Check::new("models", Status::Fail, e.to_string()),
    }
}

async fn engine(config: &NodeConfig) -> Check {
    let config = config.clone();
    let t = Instant::now();
    match tokio::task::spawn_blocking(move || vision_setup::load_engine(&config)).await {
        Ok(Ok(_)) => Check::new(
            "runtime",
            Status::Ok,
            format!(
                "ONNX Runtime and the face models load and run ({} ms)",
                t.elapsed().as_millis()
            ),
        ),
        Ok(Err(e)) => Check::new("runtime", Status::Fail, e.to_string()),
        Err(e) => Check::new("runtime", Status::Fail, e.to_string()),
    }
}

async fn database(config: &NodeConfig) -> Check {
    let path = config.database_path();
    let key_path = config.template_key_path();
    let embedder = config.vision.embedder.clone();
    let result = tokio::task::spawn_blocking(move || -> Result<String, String> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let key = TemplateKey::load_or_create(&key_path).map_err(|e| e.to_string())?;
        let store = NodeStore::open(&path, key).map_err(|e| e.to_string())?;
        store.health_check().map_err(|e| e.to_string())?;
        // Every template must open with this node's key.
        let templates = store.templates(&embedder).map_err(|e| e.to_string())?.len();
        let stats = store.outbox_stats().map_err(|e| e.to_string())?;
        let oldest = stats
            .oldest_pending_ms
            .map(|t| format!(", oldest {} s old", (now_ms() - t) / 1000))
            .unwrap_or_default();
        let sync = store.sync_status().map_err(|e| e.to_string())?;
        let ago = |t: i64| (now_ms() - t).max(0) / 1000;
        let last_sync = match (&sync.last_error, sync.last_error_ms, sync.last_success_ms) {
            (Some(error), Some(at), _) if sync.failing() => {
                format!("; last sync round failed {} s ago: {error}", ago(at))
            }
            (_, _, Some(at)) => format!("; last sync round ok {} s ago", ago(at)),
            _ => String::new(),
        };
        Ok(format!(
            "{}: integrity ok, writable; {templates} face templates open with {}; outbox {} pending{oldest}, {} dead letters; {} alarm/audit lines pending, {} refused{last_sync}",
            path.display(),
            key_path.display(),
            stats.pending,
            stats.dead,
            stats.records.pending,
            stats.records.dead
        ))
    })
    .await;
    match result {
        Ok(Ok(detail)) => Check::new("database", Status::Ok, detail),
        Ok(Err(e)) => Check::new("database", Status::Fail, e),
        Err(e) => Check::new("database", Status::Fail, e.to_string()),
    }
}

/// Which geofences and fraud policy the node enforces: its config file's, or the cloud's.
async fn site(config: &NodeConfig) -> Check {
    let (path, key_path) = (config.database_path(), config.template_key_path());
    let file_fences = config.geofences().len();
    let result = tokio::task::spawn_blocking(move || -> Result<Check, String> {
        let key = TemplateKey::load_or_create(&key_path).map_err(|e| e.to_string())?;
        let store = NodeStore::open(&path, key).map_err(|e| e.to_string())?;
        Ok(site_check(&store, file_fences))
    })
    .await;
    match result {
        Ok(Ok(check)) => check,
        Ok(Err(e)) => Check::new("site", Status::Fail, e),
        Err(e) => Check::new("site", Status::Fail, e.to_string()),
    }
}

/// The site check from the store's kept configuration and the config file's fence count.
fn site_check(store: &NodeStore, file_fences: usize) -> Check {
    let kept = match store.site_config() {
        Ok(k) => k,
        Err(e) => return Check::new("site", Status::Fail, e.to_string()),
    };
    let Some(c) = kept else {
        return Check::new(
            "site",
            Status::Ok,
            format!(
                "the config file's {file_fences} geofence(s) and [fraud] policy; the cloud has given no site configuration"
            ),
        );
    };
    match (
        crate::site_config::fences(&c),
        crate::site_config::policy(&c),
    ) {
        (Ok(fences), Ok(policy)) => Check::new(
            "site",
            Status::Ok,
            format!(
                "the cloud's configuration of site {} (version {}): {} geofence(s) from its outline, {} fraud policy; the config file's fences are set aside",
                c.id,
                c.updated_ms,
                fences.len(),
                if policy.is_some() {
                    "its"
                } else {
                    "the config file's"
                }
            ),
        ),
        (Err(e), _) | (_, Err(e)) => Check::new(
            "site",
            Status::Fail,
            format!(
                "{e}: the node starts on its config file's geofences and policy and asks the cloud again"
            ),
        ),
    }
}

async fn osdp(config: &NodeConfig) -> Check {
    let Some(o) = config.osdp.clone() else {
        return Check::new(
            "osdp",
            Status::Skipped,
            "no [osdp] section: no reader or turnstile configured",
        );
    };
    let result = tokio::task::spawn_blocking(move || -> Check {
        let transport = match SerialTransport::open(&o.port, o.baud) {
            Ok(t) => t,
            Err(e) => {
                return Check::new(
                    "osdp",
                    Status::Fail,
                    format!(
                        "{}: {e} (is rollcall-node running and holding the port?)",
                        o.port
                    ),
                );
            }
        };
        let mut cp = ControlPanel::new(transport, &[o.address], Duration::from_millis(200), 2);
        match cp.identify(o.address) {
            Ok((id, _)) => {
                let answers = format!(
                    "PD {} on {} answers: vendor {:06x} model {} serial {:08x}",
                    o.address, o.port, id.vendor_code, id.model, id.serial_number
                );
                match o.secure_key() {
                    None => Check::new("osdp", Status::Ok, answers),
                    Some(key) => match cp.establish_secure_channel(o.address, ScKey::Scbk(key)) {
                        Ok(()) => Check::new(
                            "osdp",
                            Status::Ok,
                            format!("{answers}; secure channel open with osdp.scbk"),
                        ),
                        Err(e) => Check::new("osdp", Status::Fail, format!("{answers}, but {e}")),
                    },
                }
            }
            Err(CpError::Timeout { .. }) => Check::new(
                "osdp",
                Status::Fail,
                format!(
                    "PD {} on {} does not answer (wiring, address, baud {}?)",
                    o.address, o.port, o.baud
                ),
            ),
            Err(e) => Check::new("osdp", Status::Fail, e.to_string()),
        }
    })
    .await;
    result.unwrap_or_else(|e| Check::new("osdp", Status::Fail, e.to_string()))
}

async fn cloud(config: &NodeConfig) -> Vec<Check> {
    let Some(cloud) = &config.cloud else {
        return vec![Check::new(
            "cloud",
            Status::Skipped,
            "no [cloud] section: standalone",
        )];
    };
    let client = match crate::cloud_http::client(cloud, Duration::from_secs(10)) {
        Ok(c) => c,
        Err(e) => return vec![Check::new("cloud", Status::Fail, e.to_string())],
    };
    let url = format!("{}/api/v1/sync/whoami", cloud.url.trim_end_matches('/'));
    let sent = now_ms();
    let response = match client.get(&url).bearer_auth(&cloud.node_token).send().await {
        Ok(r) => r,
        Err(e) => {
            return vec![Check::new(
                "cloud",
                Status::Fail,
                format!(
                    "{} unreachable: {}",
                    cloud.url,
                    crate::cloud_http::describe(&e)
                ),
            )];
        }
    };
    let received = now_ms();
    if response.status() == reqwest::StatusCode::UNAUTHORIZED {
        return vec![Check::new(
            "cloud",
            Status::Fail,
            format!(
                "{} rejected the node credentials (cloud.node_token): revoked or mistyped",
                cloud.url
            ),
        )];
    }
    let identity: NodeIdentity = match response.error_for_status() {
        Ok(r) => match r.json().await {
            Ok(i) => i,
            Err(e) => {
                return vec![Check::new(
                    "cloud",
                    Status::Fail,
                    format!("unexpected answer: {e}"),
                )];
            }
        },
        Err(e) => return vec![Check::new("cloud", Status::Fail, e.to_string())],
    };
    let mut checks = Vec::new();
    if identity.site_id == config.node.site_id {
        checks.push(Check::new(
            "cloud",
            Status::Ok,
            format!(
                "{} knows this node as {} (tenant {}, site {})",
                cloud.url, identity.node_id, identity.tenant, identity.site_id
            ),
        ));
    } else {
        checks.push(Check::new(
            "cloud",
            Status::Fail,
            format!(
                "the credentials belong to site {}, but node.site_id is {}: events would be rejected",
                identity.site_id, config.node.site_id
            ),
        ));
    }
    // The server's clock at the midpoint of the request.
    let skew_ms = (identity.server_time_ms - (sent + received) / 2).abs();
    let skew = Duration::from_millis(skew_ms as u64);
    let status = if skew > SKEW_FAIL {
        Status::Fail
    } else if skew > SKEW_WARN {
        Status::Warn
    } else {
        Status::Ok
    };
    checks.push(Check::new(
        "clock",
        status,
        format!(
            "{:.1} s from the cloud's clock (request took {} ms)",
            skew_ms as f64 / 1000.0,
            received - sent
        ),
    ));
    checks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests_support::store;
    use rollcall_protocol::wire::SiteConfig;

    #[test]
    fn the_site_check_says_whose_fences_and_policy_are_in_force() {
        let (_dir, mut s) = store();
        let c = site_check(&s, 2);
        assert_eq!(c.status, Status::Ok);
        assert!(
            c.detail.contains("config file's 2 geofence(s)"),
            "{}",
            c.detail
        );
        let mut kept = SiteConfig {
            id: "hq".into(),
            name: "HQ".into(),
            geofence_geojson: r#"{"type":"Polygon","coordinates":[[[2.29,48.85],[2.30,48.85],[2.30,48.86],[2.29,48.85]]]}"#.into(),
            fraud_policy_json: Some(r#"{"deny_at": 0.7}"#.into()),
            updated_ms: 42,
        };
        s.set_site_config(Some(&kept)).expect("kept");
        let c = site_check(&s, 2);
        assert_eq!(c.status, Status::Ok);
        assert!(
            c.detail.contains("version 42")
                && c.detail.contains("1 geofence(s)")
                && c.detail.contains("its fraud policy"),
            "{}",
            c.detail
        );
        kept.fraud_policy_json = Some(r#"{"deny_at": 3}"#.into());
        s.set_site_config(Some(&kept)).expect("kept");
        let c = site_check(&s, 2);
        assert_eq!(c.status, Status::Fail);
        assert!(c.detail.contains("deny_at"), "{}", c.detail);
    }
}
