//! How suspicious is a check-in, and why.
//!
//! Architecture invariant: no I/O and no clock. The node passes everything in a
//! [`CheckInContext`] — the claimed fix, clocks, device facts, the face result, the credential,
//! the person's and the device's recent events, the shift — and [`assess`] returns an
//! [`Assessment`]: a score in [0, 1] that is the sum of its reasons' weights (capped at 1), a
//! verdict, and every reason with a stable code, its weight, the measured values and a sentence
//! for a supervisor. Same input, same output, whatever the order of the history.
//!
//! Rules live in [`rules`] by subject (location, time, device, identity); geofences (circles
//! and polygons with holes, accuracy-aware, with hysteresis) in [`geofence`], their GeoJSON
//! import in [`geojson`], and the per-site scoring policy in [`policy`].

mod assess;
mod context;
pub mod geofence;
pub mod geojson;
pub mod policy;
mod reason;
pub mod rules;

pub use assess::assess;
pub use context::{
    Attestation, CheckInContext, Credential, Device, FaceResult, Fix, PastEvent, Shift,
};
pub use geofence::{Geofence, GeofenceError, Membership, Shape, distance_m};
pub use policy::{Policy, PolicyError, TravelMode};
pub use reason::{Assessment, Code, Reason, Verdict};
