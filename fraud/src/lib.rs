//! How suspicious is a check-in, and why.
//!
//! Architecture invariant: no I/O and no clock. The node passes everything in a
//! [`CheckInContext`]; [`assess`] returns an [`Assessment`] — a score in [0, 1], a verdict and
//! the reasons behind it, each with a stable code, a weight, the measured values and a sentence
//! for a human. Same input, same output.
//!
//! This first cut covers location (accuracy-aware circular geofences, GPS accuracy, Null Island)
//! and the face match margin; the fraud issue grows it to polygons, travel, time and device rules.

mod assess;
mod geofence;
mod reason;

pub use assess::{CheckInContext, FaceEvidence, Policy, assess};
pub use geofence::{Geofence, GeofenceError, Membership, Position, distance_m};
pub use reason::{Assessment, Reason, Verdict};
