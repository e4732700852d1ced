use serde::{Deserialize, Serialize};

/// What the node should do with a check-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Allow,
    Review,
    Deny,
}

/// One reason that raised (or explained) the score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reason {
    /// Stable machine-readable code, e.g. `outside_geofence`.
    pub code: String,
    /// Contribution to the score, in [0, 1].
    pub weight: f64,
    /// The measured values behind it, as `name → value`.
    pub values: Vec<(String, f64)>,
    /// A sentence a supervisor can read.
    pub text: String,
}

/// The outcome of [`crate::assess`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assessment {
    /// 0 = nothing suspicious, 1 = certainly fraudulent.
    pub score: f64,
    pub verdict: Verdict,
    pub reasons: Vec<Reason>,
}
