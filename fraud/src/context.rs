//! Everything the node knows about a check-in attempt, passed in whole (the crate does no I/O).

use serde::{Deserialize, Serialize};

use crate::geofence::Geofence;

/// A GPS fix as the device reported it. Numbers are taken as they came: [`crate::assess`]
/// reports `invalid_fix` for NaN, infinities or out-of-range values instead of failing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fix {
    pub lat: f64,
    pub lon: f64,
    /// Horizontal accuracy (68% radius), metres.
    pub accuracy_m: f64,
    /// GPS time of the fix, ms since the Unix epoch.
    #[serde(default)]
    pub fix_time_ms: Option<i64>,
    /// The OS reports the fix as coming from a mock provider.
    #[serde(default)]
    pub mock: bool,
    #[serde(default)]
    pub satellites: Option<u8>,
    #[serde(default)]
    pub provider: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Attestation {
    Passed,
    Failed,
}

/// The device the check-in came from (a kiosk, or a guard's phone).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Device {
    pub id: String,
    pub os: Option<String>,
    pub rooted: bool,
    pub emulator: bool,
    pub attestation: Option<Attestation>,
    /// The device's own clock at submission, ms since the Unix epoch.
    pub time_ms: Option<i64>,
}

/// What the face pipeline found.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FaceResult {
    /// The person the face matched, if any.
    pub person_id: Option<String>,
    pub similarity: Option<f64>,
    /// Best similarity minus the second-best person's.
    pub margin: Option<f64>,
    pub liveness: Option<f64>,
    pub faces_in_frame: u32,
    /// Exact hash of the frame (e.g. sha256 hex).
    pub frame_hash: Option<String>,
    /// 64-bit perceptual hash of the frame, for near-duplicates.
    pub perceptual_hash: Option<u64>,
}

/// How the person identified themselves.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Credential {
    #[default]
    Face,
    /// A card alone, of this person.
    Card { person_id: String },
    /// A card of this person, and a face.
    CardAndFace { person_id: String },
}

/// An earlier event of the same person or at the same device.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PastEvent {
    /// Node clock at that event, ms.
    pub at_ms: i64,
    pub person_id: Option<String>,
    pub device_id: Option<String>,
    pub device_time_ms: Option<i64>,
    /// Position and accuracy, if a fix came with it.
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub accuracy_m: Option<f64>,
    pub frame_hash: Option<String>,
    pub perceptual_hash: Option<u64>,
    /// Names of the geofences that event was inside (for hysteresis).
    pub inside: Vec<String>,
}

impl PastEvent {
    /// The event's fix, if complete and finite.
    pub(crate) fn fix(&self) -> Option<(f64, f64, f64)> {
        match (self.lat, self.lon, self.accuracy_m) {
            (Some(lat), Some(lon), Some(acc))
                if lat.is_finite() && lon.is_finite() && acc.is_finite() =>
            {
                Some((lat, lon, acc.max(0.0)))
            }
            _ => None,
        }
    }
}

/// The person's shift: check-ins are expected in [start, end], grace included by the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shift {
    pub start_ms: i64,
    pub end_ms: i64,
}

/// Everything [`crate::assess`] looks at.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CheckInContext {
    /// Node clock at the decision, ms since the Unix epoch.
    pub at_ms: i64,
    pub fix: Option<Fix>,
    pub device: Device,
    /// Last known (server clock − node clock) from sync, ms.
    pub server_offset_ms: Option<i64>,
    pub face: Option<FaceResult>,
    pub credential: Credential,
    /// Whom the decision is about (the face match, or the card holder).
    pub person_id: Option<String>,
    /// The person's recent events, any order.
    pub history: Vec<PastEvent>,
    /// Recent events on this device, of anyone, any order.
    pub device_history: Vec<PastEvent>,
    pub shift: Option<Shift>,
    pub geofences: Vec<Geofence>,
}
