//! `node.toml`: one typed struct, loaded once, validated with messages that name the file, the
//! key and the reason.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

use rollcall_fraud::{Geofence, Policy};
use rollcall_protocol::ids::{ModelName, SiteId};
use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: {message}")]
    Parse { file: String, message: String },
    #[error("{file}: key `{key}`: {reason}")]
    Invalid {
        file: String,
        key: String,
        reason: String,
    },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    pub node: NodeSection,
    pub http: HttpSection,
    #[serde(default)]
    pub cloud: Option<CloudSection>,
    #[serde(default)]
    pub vision: VisionSection,
    #[serde(default)]
    pub fraud: Policy,
    #[serde(default, rename = "geofence")]
    pub geofences: Vec<GeofenceEntry>,
    /// The OSDP bus of the reader and turnstile; without it no relay is driven.
    #[serde(default)]
    pub osdp: Option<OsdpSection>,
    #[serde(default)]
    pub kiosk: Option<KioskSection>,
    #[serde(default)]
    pub privacy: PrivacySection,
    /// Polygons read from `node.geofence_file` by [`NodeConfig::load`].
    #[serde(skip)]
    pub polygon_geofences: Vec<Geofence>,
}

/// Which check-in frames the node keeps (sealed with the node's key, for review).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeepFrames {
    /// None: only each frame's sha256 is stored (to recognise replays).
    #[default]
    None,
    /// Frames of denied and review check-ins, for a supervisor to look at.
    Denied,
    /// Every frame.
    All,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrivacySection {
    #[serde(default)]
    pub keep_frames: KeepFrames,
    /// How long a kept frame stays before it is deleted.
    #[serde(default = "default_frame_ttl_hours")]
    pub frame_ttl_hours: u32,
}

impl Default for PrivacySection {
    fn default() -> Self {
        Self {
            keep_frames: KeepFrames::None,
            frame_ttl_hours: default_frame_ttl_hours(),
        }
    }
}

fn default_frame_ttl_hours() -> u32 {
    72
}

/// A fixed kiosk: where it stands, used for check-ins that come without a GPS fix.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KioskSection {
    pub lat: f64,
    pub lon: f64,
    #[serde(default = "default_kiosk_accuracy")]
    pub accuracy_m: f64,
}

fn default_kiosk_accuracy() -> f64 {
    5.0
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OsdpSection {
    /// Serial device of the RS-485 adapter, e.g. `/dev/ttyUSB0`.
    pub port: String,
    #[serde(default = "default_baud")]
    pub baud: u32,
    /// OSDP address of the reader/turnstile controller (0–126).
    pub address: u8,
    /// More readers on the same line (e.g. the exit side), by address: their cards start
    /// card + face check-ins too, and their alarms are recorded; the relay stays on `address`.
    #[serde(default)]
    pub readers: Vec<u8>,
    /// Which output of that PD drives the turnstile relay.
    #[serde(default)]
    pub turnstile_output: u8,
    /// How long the relay stays on for one passage.
    #[serde(default = "default_pulse_ms")]
    pub pulse_ms: u64,
    /// `required`: the PD is only used inside an OSDP secure channel opened with `scbk`;
    /// `off` (default): plain OSDP.
    #[serde(default)]
    pub secure_channel: SecureChannelMode,
    /// The PD's secure channel base key, 32 hex digits (keep this file private).
    #[serde(default)]
    pub scbk: Option<String>,
    /// The PD input wired to the door contact (active = open); enables door-forced and
    /// held-open alarms.
    #[serde(default)]
    pub door_contact_input: Option<u8>,
    /// After a grant, how long the door may be opened for that passage.
    #[serde(default = "default_grant_window_s")]
    pub grant_window_s: u64,
    /// How long the door may stay open.
    #[serde(default = "default_held_open_s")]
    pub held_open_s: u64,
    /// After a card is read, how long its holder has to show their face at the kiosk (the
    /// check-in is then card + face: the face must be the holder's).
    #[serde(default = "default_card_window_s")]
    pub card_window_s: u64,
    /// Every check-in needs a card first; a face alone is denied `card_required`.
    #[serde(default)]
    pub require_card: bool,
}

fn default_card_window_s() -> u64 {
    15
}

fn default_grant_window_s() -> u64 {
    10
}

fn default_held_open_s() -> u64 {
    30
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SecureChannelMode {
    #[default]
    Off,
    Required,
}

impl OsdpSection {
    /// The key the bus must use, when the secure channel is required (validated at load).
    pub fn secure_key(&self) -> Option<[u8; 16]> {
        match self.secure_channel {
            SecureChannelMode::Off => None,
            SecureChannelMode::Required => self
                .scbk
                .as_deref()
                .and_then(|h| hex::decode(h).ok())
                .and_then(|k| k.try_into().ok()),
        }
    }
}

fn default_baud() -> u32 {
    9600
}

fn default_pulse_ms() -> u64 {
    1500
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSection {
    pub site_id: String,
    /// Directory of the node's SQLite database; relative paths are relative to the config file.
    pub data_dir: PathBuf,
    /// The key that seals face templates; `<data_dir>/template.key` when absent (created at
    /// first start). Relative paths are relative to the config file.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Days an event is kept on the node once the cloud has it (or, standalone, at all);
    /// events the cloud has not acknowledged are never deleted. 0 keeps everything.
    #[serde(default = "default_retention_days")]
    pub retention_days: u32,
    /// A GeoJSON file (RFC 7946 Polygon/MultiPolygon, Feature or FeatureCollection) of the
    /// site's outline, in addition to the `[[geofence]]` circles; relative to the config file.
    #[serde(default)]
    pub geofence_file: Option<PathBuf>,
    /// The tenant this node belongs to (its slug in the cloud); needed to accept config
    /// bundles.
    #[serde(default)]
    pub tenant: Option<String>,
    /// The tenant's Ed25519 public key (64 hex digits, from the cloud's
    /// `GET /api/v1/signing-key`): `rollcall-node flash` accepts only bundles it signed.
    #[serde(default)]
    pub bundle_public_key: Option<String>,
}

fn default_retention_days() -> u32 {
    90
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSection {
    pub listen: SocketAddr,
    /// Bearer token for enrolment and administration endpoints.
    pub admin_token: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudSection {
    pub url: String,
    pub node_token: String,
    #[serde(default = "default_sync_interval_ms")]
    pub sync_interval_ms: u64,
    /// PEM file of the CA(s) that sign the cloud's HTTPS certificate (a private PKI, an
    /// air-gapped site): when set, the node trusts only them; otherwise the system's roots.
    /// Relative to the config file.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// The certificates of `ca_file`, read and checked by [`NodeConfig::load`]; empty without
    /// one.
    #[serde(skip)]
    pub ca_roots: Vec<reqwest::Certificate>,
}

fn default_sync_interval_ms() -> u64 {
    2000
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DetectorChoice {
    ShortRange,
    FullRange,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VisionSection {
    pub detector: DetectorChoice,
    /// Cosine similarity from which the best enrolled person counts as a match.
    pub match_threshold: f32,
    /// The best person must lead the second by this much, or the match is ambiguous.
    pub min_margin: f32,
    /// Keep a granted check-in's face as a new template (up to five per person) when it is a
    /// clear match (at least `learn_min_similarity`) that adds something (below
    /// `learn_max_similarity` to every template the person has): the gallery follows slow
    /// changes of appearance.
    pub learn_templates: bool,
    pub learn_min_similarity: f32,
    pub learn_max_similarity: f32,
    /// Run the passive anti-spoofing model on the face of every check-in; its liveness goes to
    /// the fraud rules (`fraud.min_liveness`, reason `liveness_low`).
    pub passive_liveness: bool,
    /// From this many face templates on, 1:N search proposes candidates from an HNSW graph
    /// (built at start or when enrolments reach the size) instead of scanning every template.
    pub graph_from: usize,
    /// The face embedder's name: templates are stored under it, so faces embedded by different
    /// models are never compared. Without `embedder_file`, a manifest model (`mobilefacenet`).
    pub embedder: String,
    /// An ONNX embedder of your own (NCHW RGB 112×112 in, one vector per face out) in place of
    /// the manifest's; relative to the config file. Needs its own `embedder` name.
    pub embedder_file: Option<PathBuf>,
    /// Its pixel normalisation: `(value − embedder_mean) × embedder_scale`.
    pub embedder_mean: f32,
    pub embedder_scale: f32,
    pub intra_threads: usize,
    /// Model cache; `$ROLLCALL_HOME` or `~/.local/share/rollcall` when absent.
    pub models_dir: Option<PathBuf>,
}

/// Whether check-ins run the passive anti-spoofing model unless the config says otherwise.
const PASSIVE_LIVENESS_DEFAULT: bool = false;

impl Default for VisionSection {
    fn default() -> Self {
        Self {
            detector: DetectorChoice::ShortRange,
            // MODELS.md feasibility run: 99.3% genuine accepted, 0.36% impostors at 0.5.
            match_threshold: 0.5,
            min_margin: 0.02,
            learn_templates: false,
            learn_min_similarity: 0.65,
            learn_max_similarity: 0.9,
            passive_liveness: PASSIVE_LIVENESS_DEFAULT,
            graph_from: rollcall_vision::AnnParams::default().min_templates,
            embedder: crate::vision_setup::DEFAULT_EMBEDDER.into(),
            embedder_file: None,
            embedder_mean: rollcall_vision::EmbedderInput::default().mean,
            embedder_scale: rollcall_vision::EmbedderInput::default().scale,
            intra_threads: 1,
            models_dir: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeofenceEntry {
    pub name: String,
    pub lat: f64,
    pub lon: f64,
    pub radius_m: f64,
}

impl NodeConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: file.clone(),
            source,
        })?;
        let mut config = Self::parse(&file, &text)?;
        let base = path.parent().unwrap_or(Path::new("."));
        if config.node.data_dir.is_relative() {
            config.node.data_dir = base.join(&config.node.data_dir);
        }
        if let Some(k) = &config.node.key_file
            && k.is_relative()
        {
            config.node.key_file = Some(base.join(k));
        }
        // A file the config names, beside the config when relative, and the error about it.
        let named = |key: &'static str, at: &Path| {
            let at = if at.is_relative() {
                base.join(at)
            } else {
                at.to_path_buf()
            };
            let (file, shown) = (file.clone(), at.display().to_string());
            let invalid = move |reason: String| ConfigError::Invalid {
                file: file.clone(),
                key: key.into(),
                reason: format!("{shown}: {reason}"),
            };
            (at, invalid)
        };
        if let Some(g) = &config.node.geofence_file {
            let (g, invalid) = named("node.geofence_file", g);
            let text = std::fs::read_to_string(&g).map_err(|e| invalid(e.to_string()))?;
            config.polygon_geofences =
                rollcall_fraud::geojson::parse(&text).map_err(|e| invalid(e.to_string()))?;
            config.node.geofence_file = Some(g);
        }
        if let Some(e) = &config.vision.embedder_file {
            let (e, invalid) = named("vision.embedder_file", e);
            if !e.is_file() {
                return Err(invalid("no such file".into()));
            }
            config.vision.embedder_file = Some(e);
        }
        if let Some(cloud) = &mut config.cloud
            && let Some(ca) = &cloud.ca_file
        {
            let (ca, invalid) = named("cloud.ca_file", ca);
            let pem = std::fs::read(&ca).map_err(|e| invalid(e.to_string()))?;
            cloud.ca_roots = crate::cloud_http::certificates(&pem).map_err(&invalid)?;
            cloud.ca_file = Some(ca);
        }
        Ok(config)
    }

    /// Parses and validates; `file` names the source in messages.
    pub fn parse(file: &str, text: &str) -> Result<Self, ConfigError> {
        let config: NodeConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            file: file.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        config.validate(file)?;
        Ok(config)
    }

    fn validate(&self, file: &str) -> Result<(), ConfigError> {
        let bad = |key: &str, reason: String| ConfigError::Invalid {
            file: file.to_owned(),
            key: key.to_owned(),
            reason,
        };
        let site = &self.node.site_id;
        if !SiteId::is_valid(site) {
            return Err(bad(
                "node.site_id",
                format!("must be {}, got `{site}`", SiteId::RULE),
            ));
        }
        if self.node.retention_days > 3650 {
            return Err(bad(
                "node.retention_days",
                format!(
                    "must be at most 3650 (ten years; 0 keeps everything), got {}",
                    self.node.retention_days
                ),
            ));
        }
        if let Some(key) = &self.node.bundle_public_key
            && let Err(e) = rollcall_protocol::bundle::parse_public_key(key)
        {
            return Err(bad("node.bundle_public_key", e.to_string()));
        }
        if self.node.bundle_public_key.is_some() != self.node.tenant.is_some() {
            return Err(bad(
                "node.tenant",
                "node.tenant and node.bundle_public_key go together: set both to accept config bundles, or neither".into(),
            ));
        }
        if !(1..=2160).contains(&self.privacy.frame_ttl_hours) {
            return Err(bad(
                "privacy.frame_ttl_hours",
                format!(
                    "must be between 1 and 2160 (90 days), got {}",
                    self.privacy.frame_ttl_hours
                ),
            ));
        }
        if self.http.admin_token.len() < 16 {
            return Err(bad(
                "http.admin_token",
                "must be at least 16 characters".into(),
            ));
        }
        if let Some(cloud) = &self.cloud {
            if !(cloud.url.starts_with("http://") || cloud.url.starts_with("https://")) {
                return Err(bad(
                    "cloud.url",
                    format!("must start with http:// or https://, got `{}`", cloud.url),
                ));
            }
            if cloud.node_token.is_empty() {
                return Err(bad("cloud.node_token", "must not be empty".into()));
            }
            if !(100..=3_600_000).contains(&cloud.sync_interval_ms) {
                return Err(bad(
                    "cloud.sync_interval_ms",
                    format!(
                        "must be between 100 and 3600000, got {}",
                        cloud.sync_interval_ms
                    ),
                ));
            }
        }
        let t = self.vision.match_threshold;
        if !(t > 0.0 && t < 1.0) {
            return Err(bad(
                "vision.match_threshold",
                format!("must be between 0 and 1 (exclusive), got {t}"),
            ));
        }
        let (lo, hi) = (
            self.vision.learn_min_similarity,
            self.vision.learn_max_similarity,
        );
        if !(self.vision.match_threshold <= lo && lo < hi && hi <= 1.0) {
            return Err(bad(
                "vision.learn_min_similarity",
                format!(
                    "need match_threshold <= learn_min_similarity < learn_max_similarity <= 1, got {} <= {lo} < {hi}",
                    self.vision.match_threshold
                ),
            ));
        }
        let m = self.vision.min_margin;
        if !(0.0..1.0).contains(&m) {
            return Err(bad(
                "vision.min_margin",
                format!("must be at least 0 and below 1, got {m}"),
            ));
        }
        let name = &self.vision.embedder;
        // The cloud keeps pushed templates under the same name and refuses any other form.
        if !ModelName::is_valid(name) {
            return Err(bad(
                "vision.embedder",
                format!("must be {}, got {name:?}", ModelName::RULE),
            ));
        }
        match &self.vision.embedder_file {
            None if name != crate::vision_setup::DEFAULT_EMBEDDER => {
                return Err(bad(
                    "vision.embedder",
                    format!(
                        "`{name}` is not a model this release fetches (`{}`); a model of your own needs vision.embedder_file",
                        crate::vision_setup::DEFAULT_EMBEDDER
                    ),
                ));
            }
            Some(_) if name == crate::vision_setup::DEFAULT_EMBEDDER => {
                return Err(bad(
                    "vision.embedder",
                    "name your own embedder_file's model: its templates must not mix with the manifest model's".into(),
                ));
            }
            _ => {}
        }
        let (mean, scale) = (self.vision.embedder_mean, self.vision.embedder_scale);
        if !(scale.is_finite() && scale > 0.0 && mean.is_finite()) {
            return Err(bad(
                "vision.embedder_scale",
                format!("mean must be finite and scale finite and above 0, got {mean} and {scale}"),
            ));
        }
        if self.vision.graph_from == 0 {
            return Err(bad(
                "vision.graph_from",
                "must be at least 1 (a number of templates)".into(),
            ));
        }
        if !(1..=64).contains(&self.vision.intra_threads) {
            return Err(bad(
                "vision.intra_threads",
                format!(
                    "must be between 1 and 64, got {}",
                    self.vision.intra_threads
                ),
            ));
        }
        self.fraud
            .validate()
            .map_err(|(key, reason)| bad(&format!("fraud.{key}"), reason))?;
        if let Some(o) = &self.osdp {
            if o.port.is_empty() {
                return Err(bad("osdp.port", "must name a serial device".into()));
            }
            if ![9600, 19200, 38400, 57600, 115_200, 230_400].contains(&o.baud) {
                return Err(bad(
                    "osdp.baud",
                    format!(
                        "must be one of 9600, 19200, 38400, 57600, 115200, 230400; got {}",
                        o.baud
                    ),
                ));
            }
            let mut seen = std::collections::BTreeSet::from([o.address]);
            if let Some(bad_pd) = o.readers.iter().find(|a| **a > 126 || !seen.insert(**a)) {
                return Err(bad(
                    "osdp.readers",
                    format!(
                        "address {bad_pd} is repeated or not 0-126 (each PD on the line needs its own)"
                    ),
                ));
            }
            if o.address > 126 {
                return Err(bad(
                    "osdp.address",
                    format!("must be 0-126 (127 is broadcast), got {}", o.address),
                ));
            }
            let key_ok = o
                .scbk
                .as_deref()
                .is_some_and(|h| h.len() == 32 && hex::decode(h).is_ok());
            if o.scbk.is_some() && !key_ok {
                return Err(bad(
                    "osdp.scbk",
                    "must be 32 hex digits (a 16-byte key)".into(),
                ));
            }
            if o.secure_channel == SecureChannelMode::Required && o.scbk.is_none() {
                return Err(bad(
                    "osdp.scbk",
                    "secure_channel = \"required\" needs the PD's key here".into(),
                ));
            }
            if !(1..=600).contains(&o.grant_window_s) || !(1..=3600).contains(&o.held_open_s) {
                return Err(bad(
                    "osdp.grant_window_s",
                    format!(
                        "grant_window_s must be 1-600 and held_open_s 1-3600, got {} and {}",
                        o.grant_window_s, o.held_open_s
                    ),
                ));
            }
            if !(1..=300).contains(&o.card_window_s) {
                return Err(bad(
                    "osdp.card_window_s",
                    format!("must be between 1 and 300 seconds, got {}", o.card_window_s),
                ));
            }
            if !(100..=60_000).contains(&o.pulse_ms) {
                return Err(bad(
                    "osdp.pulse_ms",
                    format!("must be between 100 and 60000, got {}", o.pulse_ms),
                ));
            }
        }
        if let Some(k) = &self.kiosk {
            if !(-90.0..=90.0).contains(&k.lat) || !(-180.0..=180.0).contains(&k.lon) {
                return Err(bad(
                    "kiosk",
                    format!("lat/lon {}, {} are not a position", k.lat, k.lon),
                ));
            }
            if !(k.accuracy_m.is_finite() && k.accuracy_m >= 0.0) {
                return Err(bad("kiosk.accuracy_m", "must be zero or positive".into()));
            }
        }
        for (i, g) in self.geofences.iter().enumerate() {
            Geofence::circle(&g.name, g.lat, g.lon, g.radius_m)
                .map_err(|e| bad(&format!("geofence[{i}] ({})", g.name), e.to_string()))?;
        }
        Ok(())
    }

    /// The `[[geofence]]` circles and the polygons of `node.geofence_file`.
    pub fn geofences(&self) -> Vec<Geofence> {
        self.geofences
            .iter()
            .filter_map(|g| Geofence::circle(&g.name, g.lat, g.lon, g.radius_m).ok())
            .chain(self.polygon_geofences.iter().cloned())
            .collect()
    }

    pub fn template_key_path(&self) -> PathBuf {
        self.node
            .key_file
            .clone()
            .unwrap_or_else(|| self.node.data_dir.join("template.key"))
    }

    pub fn database_path(&self) -> PathBuf {
        self.node.data_dir.join("node.sqlite")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = include_str!("../node.sample.toml");

    #[test]
    fn the_sample_config_loads() {
        let c = NodeConfig::parse("node.sample.toml", SAMPLE).expect("sample is valid");
        assert_eq!(c.node.site_id, "hq");
        assert_eq!(c.geofences().len(), 1);
        assert!(c.cloud.is_some());
    }

    fn error_of(text: &str) -> String {
        NodeConfig::parse("node.toml", text)
            .expect_err("invalid")
            .to_string()
    }

    #[test]
    fn a_geojson_outline_adds_polygon_geofences_and_a_bad_one_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let outline = r#"{"type": "Feature", "properties": {"name": "yard"},
            "geometry": {"type": "Polygon", "coordinates": [[[2.29, 48.85], [2.30, 48.85], [2.30, 48.86], [2.29, 48.86], [2.29, 48.85]]]}}"#;
        std::fs::write(dir.path().join("site.geojson"), outline).expect("write");
        let config = dir.path().join("node.toml");
        std::fs::write(
            &config,
            SAMPLE.replace("[node]\n", "[node]\ngeofence_file = \"site.geojson\"\n"),
        )
        .expect("write");
        let c = NodeConfig::load(&config).expect("loads");
        let names: Vec<_> = c.geofences().iter().map(|g| g.name().to_owned()).collect();
        assert_eq!(names, ["main-gate", "yard"]);

        std::fs::write(
            dir.path().join("site.geojson"),
            r#"{"type": "Polygon", "coordinates": [[[0, 0], [1, 1]]]}"#,
        )
        .expect("write");
        let e = NodeConfig::load(&config)
            .expect_err("a ring of two points")
            .to_string();
        assert!(
            e.contains("`node.geofence_file`") && e.contains("site.geojson"),
            "{e}"
        );
        std::fs::remove_file(dir.path().join("site.geojson")).expect("rm");
        let e = NodeConfig::load(&config).expect_err("missing").to_string();
        assert!(e.contains("`node.geofence_file`"), "{e}");
    }

    #[test]
    fn errors_name_the_file_the_key_and_the_reason() {
        let e = error_of(&SAMPLE.replace("site_id = \"hq\"", "site_id = \"HQ!\""));
        assert!(
            e.starts_with("node.toml: key `node.site_id`: must be"),
            "{e}"
        );
        let e = error_of(&SAMPLE.replace("match_threshold = 0.5", "match_threshold = 1.5"));
        assert!(
            e.contains("`vision.match_threshold`") && e.contains("1.5"),
            "{e}"
        );
        let e =
            error_of(&SAMPLE.replace("learn_max_similarity = 0.9", "learn_max_similarity = 0.6"));
        assert!(
            e.contains("`vision.learn_min_similarity`") && e.contains("0.65 < 0.6"),
            "{e}"
        );
        let e = error_of(&SAMPLE.replace("retention_days = 90", "retention_days = 99999"));
        assert!(
            e.contains("`node.retention_days`") && e.contains("99999"),
            "{e}"
        );
        let e = error_of(&SAMPLE.replace("radius_m = 150.0", "radius_m = -1.0"));
        assert!(
            e.contains("geofence[0] (main-gate)") && e.contains("radius"),
            "{e}"
        );
        let e = error_of(&SAMPLE.replace("review_at = 0.6", "review_at = 0.9"));
        assert!(e.contains("key `fraud.deny_at`"), "{e}");
        let e = error_of(&SAMPLE.replace("[fraud]", "[fraud]\ndisabled = [\"teleport\"]"));
        assert!(
            e.contains("key `fraud.disabled`") && e.contains("teleport"),
            "{e}"
        );
        let vision = |lines: &str| SAMPLE.replace("[vision]\n", &format!("[vision]\n{lines}"));
        let e = error_of(&vision("embedder = \"arcface\"\n"));
        assert!(
            e.contains("`vision.embedder`") && e.contains("vision.embedder_file"),
            "{e}"
        );
        let e = error_of(&vision("embedder_file = \"x.onnx\"\n"));
        assert!(e.contains("must not mix"), "{e}");
        for bad_name in ["a b", "Site-MFN", "-mfn", ""] {
            let e = error_of(&vision(&format!("embedder = \"{bad_name}\"\n")));
            assert!(
                e.contains("`vision.embedder`") && e.contains(&format!("{bad_name:?}")),
                "{e}"
            );
        }
        let e = error_of(&vision("embedder_scale = 0.0\n"));
        assert!(e.contains("`vision.embedder_scale`"), "{e}");
        let e = error_of(&SAMPLE.replace("graph_from = 1000000", "graph_from = 0"));
        assert!(e.contains("`vision.graph_from`"), "{e}");
        let osdp = "\n[osdp]\nport = \"/dev/ttyUSB0\"\naddress = 1\n";
        let c = NodeConfig::parse("node.toml", &format!("{SAMPLE}{osdp}")).expect("valid osdp");
        assert_eq!(
            c.osdp.as_ref().map(|o| (o.baud, o.pulse_ms)),
            Some((9600, 1500))
        );
        let e = error_of(&format!(
            "{SAMPLE}{}",
            osdp.replace("address = 1", "address = 127")
        ));
        assert!(
            e.contains("`osdp.address`") && e.contains("broadcast"),
            "{e}"
        );
        let e = error_of(&format!("{SAMPLE}{osdp}secure_channel = \"required\"\n"));
        assert!(
            e.contains("`osdp.scbk`") && e.contains("needs the PD's key"),
            "{e}"
        );
        let e = error_of(&format!("{SAMPLE}{osdp}scbk = \"abc\"\n"));
        assert!(e.contains("32 hex digits"), "{e}");
        let c = NodeConfig::parse(
            "node.toml",
            &format!("{SAMPLE}{osdp}secure_channel = \"required\"\nscbk = \"000102030405060708090a0b0c0d0e0f\"\n"),
        )
        .expect("valid");
        assert_eq!(c.osdp.and_then(|o| o.secure_key()).map(|k| k[15]), Some(15));
        let e = error_of(&SAMPLE.replace(
            "[node]\n",
            "[node]\ntenant = \"acme\"\nbundle_public_key = \"abcd\"\n",
        ));
        assert!(
            e.contains("`node.bundle_public_key`") && e.contains("Ed25519"),
            "{e}"
        );
        let e = error_of(&SAMPLE.replace("[node]\n", "[node]\ntenant = \"acme\"\n"));
        assert!(
            e.contains("`node.tenant`") && e.contains("go together"),
            "{e}"
        );
        let e = error_of(&format!(
            "{SAMPLE}\n[privacy]\nkeep_frames = \"denied\"\nframe_ttl_hours = 0\n"
        ));
        assert!(
            e.contains("`privacy.frame_ttl_hours`") && e.contains("got 0"),
            "{e}"
        );
        let e = error_of(&format!("{SAMPLE}\n[privacy]\nkeep_frames = \"some\"\n"));
        assert!(e.contains("keep_frames") || e.contains("some"), "{e}");
        let e = error_of(&format!("{SAMPLE}{osdp}card_window_s = 0\n"));
        assert!(
            e.contains("`osdp.card_window_s`") && e.contains("got 0"),
            "{e}"
        );
        let c = NodeConfig::parse("node.toml", &format!("{SAMPLE}{osdp}require_card = true\n"))
            .expect("valid");
        assert_eq!(
            c.osdp.map(|o| (o.require_card, o.card_window_s)),
            Some((true, 15))
        );
        let e = error_of(&format!("{SAMPLE}{osdp}readers = [2, 1]\n"));
        assert!(
            e.contains("`osdp.readers`") && e.contains("address 1"),
            "{e}"
        );
        let c = NodeConfig::parse("node.toml", &format!("{SAMPLE}{osdp}readers = [2, 3]\n"))
            .expect("valid");
        assert_eq!(c.osdp.map(|o| o.readers), Some(vec![2, 3]));
        let e = error_of(&format!("{SAMPLE}{osdp}baud = 1234\n"));
        assert!(e.contains("`osdp.baud`"), "{e}");
        let e = error_of(&SAMPLE.replace("lat = 48.8584", "lat = 148.8584"));
        assert!(e.contains("latitude 148.8584"), "{e}");
        let e = error_of(&SAMPLE.replace("[vision]", "[vision]\ncolour = \"red\""));
        assert!(e.starts_with("node.toml: ") && e.contains("colour"), "{e}");
        let e = error_of(&SAMPLE.replace("listen = \"127.0.0.1:8090\"", "listen = \"nowhere\""));
        assert!(e.contains("listen"), "{e}");
        let e = error_of(&SAMPLE.replace("http://127.0.0.1:8080", "ftp://x"));
        assert!(e.contains("`cloud.url`"), "{e}");
    }
}
