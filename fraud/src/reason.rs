use serde::{Deserialize, Serialize};

/// What the node should do with a check-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Allow,
    Review,
    Deny,
}

macro_rules! codes {
    ($($variant:ident = $code:literal, $weight:literal, $doc:literal;)+) => {
        /// Stable reason codes. The string form is what is stored, synced and shown.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum Code {
            $(#[doc = $doc] $variant,)+
        }

        impl Code {
            pub const ALL: &'static [Code] = &[$(Code::$variant,)+];

            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $code,)+ }
            }

            /// The weight a reason of this code carries unless the site's policy says otherwise.
            pub fn default_weight(self) -> f64 {
                match self { $(Code::$variant => $weight,)+ }
            }

            pub fn parse(s: &str) -> Option<Code> {
                match s { $($code => Some(Code::$variant),)+ _ => None }
            }
        }
    };
}

codes! {
    InvalidFix = "invalid_fix", 1.0, "The fix has non-finite or out-of-range numbers.";
    NullIsland = "null_island", 0.9, "The fix is at 0°,0°: a default of broken or faked GPS.";
    LowGpsAccuracy = "low_gps_accuracy", 0.3, "The fix's accuracy is worse than the site allows.";
    StaleFix = "stale_fix", 0.3, "The fix is older than the site allows at submission.";
    MockLocation = "mock_location", 0.9, "The device reports a mock location provider.";
    NoPosition = "no_position", 0.5, "No fix was sent although the site has geofences.";
    OutsideGeofence = "outside_geofence", 0.8, "The whole accuracy disc is outside every geofence.";
    GeofenceUncertain = "geofence_uncertain", 0.4, "The accuracy disc straddles a geofence edge (weighted by the part outside).";
    GpsJump = "gps_jump", 0.4, "Consecutive fixes of one device are further apart than their accuracy and time explain.";
    ImpossibleTravel = "impossible_travel", 0.8, "No allowed means of transport covers the distance from the person's previous event in time.";
    ClockSkew = "clock_skew", 0.4, "Node, GPS, device or server clocks disagree by more than the site allows.";
    DeviceTimeRewind = "device_time_rewind", 0.5, "The device's clock went backwards since its previous event.";
    OutsideShift = "outside_shift", 0.3, "The check-in is outside the person's shift, grace included.";
    NewDevice = "new_device", 0.15, "The person has not used this device before.";
    RootedDevice = "rooted_device", 0.3, "The device is rooted or jailbroken.";
    Emulator = "emulator", 0.6, "The device is an emulator.";
    AttestationFailed = "attestation_failed", 0.6, "The app integrity attestation failed.";
    LowMatchMargin = "low_match_margin", 0.3, "The best match barely leads the second-best person.";
    LivenessLow = "liveness_low", 1.0, "The liveness score is below the site's minimum.";
    MultipleFaces = "multiple_faces", 0.3, "More than one face is in the frame.";
    ReplayedFrame = "replayed_frame", 0.9, "The same (or a near-identical) frame was seen before.";
    BuddyPunchSuspected = "buddy_punch_suspected", 0.7, "The card and the face do not belong to the same person.";
    SharedDeviceBurst = "shared_device_burst", 0.5, "One device checked in many different people within minutes.";
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One reason behind a score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reason {
    pub code: Code,
    /// This reason's part of the score.
    pub weight: f64,
    /// The measured values behind it, as `name → value`.
    pub values: Vec<(String, f64)>,
    /// A sentence a supervisor can read.
    pub text: String,
}

/// The outcome of [`crate::assess`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assessment {
    /// 0 = nothing suspicious, 1 = certainly fraudulent: the sum of the reasons' weights,
    /// capped at 1.
    pub score: f64,
    pub verdict: Verdict,
    /// Highest weight first; ties by code.
    pub reasons: Vec<Reason>,
    /// A code from the policy's `deny_outright` list, if one decided the verdict.
    pub denied_outright_by: Option<Code>,
}

impl Assessment {
    pub fn codes(&self) -> Vec<Code> {
        self.reasons.iter().map(|r| r.code).collect()
    }

    /// The score explained as the sum of its parts, e.g. `0.80 = outside_geofence 0.80`.
    pub fn explain(&self) -> String {
        if self.reasons.is_empty() {
            return "0.00 (no reasons)".into();
        }
        let parts: Vec<String> = self
            .reasons
            .iter()
            .map(|r| format!("{} {:.2}", r.code, r.weight))
            .collect();
        let sum: f64 = self.reasons.iter().map(|r| r.weight).sum();
        let capped = if sum > 1.0 { " (capped at 1)" } else { "" };
        format!("{:.2} = {}{capped}", self.score, parts.join(" + "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_through_their_strings_and_serde() {
        for &c in Code::ALL {
            assert_eq!(Code::parse(c.as_str()), Some(c));
            let json = serde_json::to_string(&c).expect("serialise");
            assert_eq!(json, format!("\"{}\"", c.as_str()));
            assert!((0.0..=1.0).contains(&c.default_weight()));
        }
        assert_eq!(Code::ALL.len(), 23);
        assert_eq!(Code::parse("nope"), None);
    }
}
