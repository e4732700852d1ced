//! A site's scoring policy (TOML): thresholds, weights, rules that deny outright, rules
//! switched off, and the limits the rules measure against. Validated at load; every error names
//! the key.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::reason::Code;

/// A means of transport for the impossible-travel rule: covering a distance at up to
/// `max_kmh` is possible by this mode, for distances of at least `min_distance_km`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TravelMode {
    pub name: String,
    pub max_kmh: f64,
    #[serde(default)]
    pub min_distance_km: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    /// From this score a check-in is recorded as suspicious but still allowed.
    pub monitor_at: f64,
    /// From this score a check-in goes to review.
    pub review_at: f64,
    /// From this score a check-in is denied.
    pub deny_at: f64,
    /// Weight overrides by reason code.
    pub weights: BTreeMap<String, f64>,
    /// Reason codes that deny whatever the score.
    pub deny_outright: Vec<String>,
    /// Reason codes that are not evaluated at this site.
    pub disabled: Vec<String>,

    pub max_accuracy_m: f64,
    pub max_fix_age_s: f64,
    pub max_clock_skew_s: f64,
    pub min_match_margin: f64,
    pub min_liveness: f64,
    /// Two fixes of one device this close in time must not be further apart than their accuracy
    /// and this speed explain.
    pub gps_jump_window_s: f64,
    pub gps_jump_max_kmh: f64,
    /// History older than this is not used for impossible travel.
    pub travel_window_s: f64,
    pub travel_modes: Vec<TravelMode>,
    /// This many different people on one device within `burst_window_s` is a burst.
    pub burst_people: usize,
    pub burst_window_s: f64,
    /// Perceptual hashes this close (Hamming distance) are the same frame.
    pub max_phash_distance: u32,
    /// Grace around the shift window.
    pub shift_grace_s: f64,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            monitor_at: 0.4,
            review_at: 0.6,
            deny_at: 0.8,
            weights: BTreeMap::new(),
            deny_outright: vec![
                "invalid_fix".into(),
                "liveness_low".into(),
                "replayed_frame".into(),
            ],
            disabled: Vec::new(),
            max_accuracy_m: 100.0,
            max_fix_age_s: 120.0,
            max_clock_skew_s: 120.0,
            min_match_margin: 0.05,
            min_liveness: 0.5,
            gps_jump_window_s: 300.0,
            gps_jump_max_kmh: 30.0,
            travel_window_s: 86_400.0,
            travel_modes: vec![
                TravelMode {
                    name: "walking".into(),
                    max_kmh: 7.0,
                    min_distance_km: 0.0,
                },
                TravelMode {
                    name: "road".into(),
                    max_kmh: 130.0,
                    min_distance_km: 0.0,
                },
                TravelMode {
                    name: "rail".into(),
                    max_kmh: 320.0,
                    min_distance_km: 20.0,
                },
                TravelMode {
                    name: "air".into(),
                    max_kmh: 950.0,
                    min_distance_km: 150.0,
                },
            ],
            burst_people: 3,
            burst_window_s: 600.0,
            max_phash_distance: 6,
            shift_grace_s: 900.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PolicyError {
    #[error("{file}: {message}")]
    Parse { file: String, message: String },
    #[error("{file}: key `{key}`: {reason}")]
    Invalid {
        file: String,
        key: String,
        reason: String,
    },
}

impl Policy {
    /// Parses and validates a policy TOML; `file` names it in errors.
    pub fn from_toml(file: &str, text: &str) -> Result<Self, PolicyError> {
        let policy: Policy = toml::from_str(text).map_err(|e| PolicyError::Parse {
            file: file.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        policy
            .validate()
            .map_err(|(key, reason)| PolicyError::Invalid {
                file: file.to_owned(),
                key,
                reason,
            })?;
        Ok(policy)
    }

    /// Checks the values; on error returns `(key, reason)` (the key relative to this table).
    pub fn validate(&self) -> Result<(), (String, String)> {
        let bad = |key: &str, reason: String| Err((key.to_owned(), reason));
        if !(0.0 < self.monitor_at
            && self.monitor_at <= self.review_at
            && self.review_at <= self.deny_at
            && self.deny_at <= 1.0)
        {
            return bad(
                "deny_at",
                format!(
                    "need 0 < monitor_at <= review_at <= deny_at <= 1, got {} / {} / {}",
                    self.monitor_at, self.review_at, self.deny_at
                ),
            );
        }
        for (code, w) in &self.weights {
            if Code::parse(code).is_none() {
                return bad(&format!("weights.{code}"), unknown(code));
            }
            if !(0.0..=1.0).contains(w) {
                return bad(
                    &format!("weights.{code}"),
                    format!("must be in [0, 1], got {w}"),
                );
            }
        }
        for (key, list) in [
            ("deny_outright", &self.deny_outright),
            ("disabled", &self.disabled),
        ] {
            if let Some(code) = list.iter().find(|c| Code::parse(c).is_none()) {
                return bad(key, unknown(code));
            }
        }
        for (key, v) in [
            ("max_accuracy_m", self.max_accuracy_m),
            ("max_fix_age_s", self.max_fix_age_s),
            ("max_clock_skew_s", self.max_clock_skew_s),
            ("gps_jump_window_s", self.gps_jump_window_s),
            ("gps_jump_max_kmh", self.gps_jump_max_kmh),
            ("travel_window_s", self.travel_window_s),
            ("burst_window_s", self.burst_window_s),
            ("shift_grace_s", self.shift_grace_s),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return bad(key, format!("must be a positive number, got {v}"));
            }
        }
        for (key, v) in [
            ("min_match_margin", self.min_match_margin),
            ("min_liveness", self.min_liveness),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return bad(key, format!("must be in [0, 1], got {v}"));
            }
        }
        if self.travel_modes.is_empty() {
            return bad("travel_modes", "at least one mode is needed".into());
        }
        for (i, m) in self.travel_modes.iter().enumerate() {
            if !(m.max_kmh.is_finite()
                && m.max_kmh > 0.0
                && m.min_distance_km.is_finite()
                && m.min_distance_km >= 0.0)
            {
                return bad(
                    &format!("travel_modes[{i}] ({})", m.name),
                    "max_kmh must be positive and min_distance_km zero or positive".into(),
                );
            }
        }
        if self.burst_people < 2 {
            return bad(
                "burst_people",
                format!("must be at least 2, got {}", self.burst_people),
            );
        }
        Ok(())
    }

    /// The weight of a code at this site.
    pub fn weight(&self, code: Code) -> f64 {
        self.weights
            .get(code.as_str())
            .copied()
            .unwrap_or_else(|| code.default_weight())
    }

    pub fn is_disabled(&self, code: Code) -> bool {
        self.disabled.iter().any(|c| c == code.as_str())
    }

    pub fn denies_outright(&self, code: Code) -> bool {
        self.deny_outright.iter().any(|c| c == code.as_str())
    }
}

fn unknown(code: &str) -> String {
    let known: Vec<_> = Code::ALL.iter().map(|c| c.as_str()).collect();
    format!("unknown reason code `{code}` (known: {})", known.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_a_policy_file_overrides_them() {
        assert!(Policy::default().validate().is_ok());
        let p = Policy::from_toml(
            "site.toml",
            "review_at = 0.5\ndisabled = [\"new_device\"]\n[weights]\noutside_geofence = 1.0\n",
        )
        .expect("valid");
        assert_eq!(p.review_at, 0.5);
        assert_eq!(p.weight(Code::OutsideGeofence), 1.0);
        assert_eq!(p.weight(Code::GpsJump), Code::GpsJump.default_weight());
        assert!(p.is_disabled(Code::NewDevice));
        assert!(p.denies_outright(Code::LivenessLow));
    }

    #[test]
    fn errors_name_file_key_and_reason() {
        let e = |t: &str| {
            Policy::from_toml("site.toml", t)
                .expect_err("invalid")
                .to_string()
        };
        assert!(
            e("[weights]\nteleport = 0.5")
                .starts_with("site.toml: key `weights.teleport`: unknown reason code")
        );
        assert!(e("[weights]\ngps_jump = 2.0").contains("must be in [0, 1], got 2"));
        assert!(e("review_at = 0.9\ndeny_at = 0.8").contains("key `deny_at`"));
        assert!(e("disabled = [\"x\"]").contains("key `disabled`"));
        assert!(e("max_accuracy_m = -1").contains("key `max_accuracy_m`"));
        assert!(e("burst_people = 1").contains("key `burst_people`"));
        assert!(e("colour = 1").starts_with("site.toml: "));
    }
}
