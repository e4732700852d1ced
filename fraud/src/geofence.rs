//! Circular geofences with accuracy-aware membership on the WGS-84 sphere approximation.

use serde::{Deserialize, Serialize};

/// Mean Earth radius (IUGG), metres.
const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// A GPS fix: latitude and longitude in degrees, horizontal accuracy (68% radius) in metres.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Position {
    pub lat: f64,
    pub lon: f64,
    pub accuracy_m: f64,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GeofenceError {
    #[error("latitude {0} is outside [-90, 90]")]
    Latitude(f64),
    #[error("longitude {0} is outside [-180, 180]")]
    Longitude(f64),
    #[error("radius {0} m must be positive and finite")]
    Radius(f64),
    #[error("accuracy {0} m must be zero or positive and finite")]
    Accuracy(f64),
}

impl Position {
    /// A checked position; the only way to build one from outside input.
    pub fn new(lat: f64, lon: f64, accuracy_m: f64) -> Result<Self, GeofenceError> {
        if !(-90.0..=90.0).contains(&lat) {
            return Err(GeofenceError::Latitude(lat));
        }
        if !(-180.0..=180.0).contains(&lon) {
            return Err(GeofenceError::Longitude(lon));
        }
        if !(accuracy_m.is_finite() && accuracy_m >= 0.0) {
            return Err(GeofenceError::Accuracy(accuracy_m));
        }
        Ok(Self {
            lat,
            lon,
            accuracy_m,
        })
    }
}

/// Great-circle (haversine) distance in metres.
pub fn distance_m(a_lat: f64, a_lon: f64, b_lat: f64, b_lon: f64) -> f64 {
    let (p1, p2) = (a_lat.to_radians(), b_lat.to_radians());
    let dp = (b_lat - a_lat).to_radians();
    let dl = (b_lon - a_lon).to_radians();
    let h = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_M * h.sqrt().min(1.0).asin()
}

/// A circle around a site's entrance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Geofence {
    pub name: String,
    pub lat: f64,
    pub lon: f64,
    pub radius_m: f64,
}

/// Where a fix's accuracy disc lies relative to a geofence.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Membership {
    /// The whole accuracy disc is inside.
    Inside { distance_m: f64 },
    /// The disc misses the fence entirely.
    Outside { distance_m: f64 },
    /// The disc straddles the edge; `overlap` is the part of its radius inside, in [0, 1].
    Uncertain { distance_m: f64, overlap: f64 },
}

impl Geofence {
    pub fn new(
        name: impl Into<String>,
        lat: f64,
        lon: f64,
        radius_m: f64,
    ) -> Result<Self, GeofenceError> {
        Position::new(lat, lon, 0.0)?;
        if !(radius_m.is_finite() && radius_m > 0.0) {
            return Err(GeofenceError::Radius(radius_m));
        }
        Ok(Self {
            name: name.into(),
            lat,
            lon,
            radius_m,
        })
    }

    /// A fix is inside only if its whole accuracy disc is, outside only if the disc misses.
    pub fn membership(&self, p: &Position) -> Membership {
        let d = distance_m(self.lat, self.lon, p.lat, p.lon);
        let r = p.accuracy_m;
        if d + r <= self.radius_m {
            Membership::Inside { distance_m: d }
        } else if d - r >= self.radius_m {
            Membership::Outside { distance_m: d }
        } else {
            // Fraction of the disc's diameter along the centre line that lies inside the fence.
            let overlap = ((self.radius_m - (d - r)) / (2.0 * r)).clamp(0.0, 1.0);
            Membership::Uncertain {
                distance_m: d,
                overlap,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn haversine_known_distance() {
        // Paris (Notre-Dame) to London (Trafalgar Square): about 342 km.
        let d = distance_m(48.8530, 2.3499, 51.5080, -0.1281);
        assert!((d - 342_500.0).abs() < 2_000.0, "{d}");
        assert_eq!(distance_m(10.0, 20.0, 10.0, 20.0), 0.0);
    }

    #[test]
    fn accuracy_decides_membership() {
        let g = Geofence::new("gate", 51.5, -0.12, 100.0).expect("valid");
        let at = |metres_north: f64, acc: f64| {
            Position::new(51.5 + metres_north / 111_195.0, -0.12, acc).expect("valid")
        };
        assert!(matches!(
            g.membership(&at(10.0, 20.0)),
            Membership::Inside { .. }
        ));
        assert!(matches!(
            g.membership(&at(500.0, 20.0)),
            Membership::Outside { .. }
        ));
        let Membership::Uncertain { overlap, .. } = g.membership(&at(100.0, 50.0)) else {
            panic!("straddles the edge");
        };
        assert!((overlap - 0.5).abs() < 0.01, "{overlap}");
    }

    #[test]
    fn refuses_out_of_range_values() {
        assert_eq!(
            Position::new(91.0, 0.0, 1.0),
            Err(GeofenceError::Latitude(91.0))
        );
        assert!(Position::new(0.0, 180.5, 1.0).is_err());
        assert!(Position::new(0.0, 0.0, f64::NAN).is_err());
        assert!(Geofence::new("g", 0.0, 0.0, 0.0).is_err());
    }

    proptest! {
        #[test]
        fn distance_is_a_symmetric_non_negative_metric(
            a in -89.0f64..89.0, b in -179.0f64..179.0, c in -89.0f64..89.0, d in -179.0f64..179.0,
        ) {
            let ab = distance_m(a, b, c, d);
            let half_circumference = std::f64::consts::PI * EARTH_RADIUS_M;
            prop_assert!((0.0..=half_circumference + 1.0).contains(&ab));
            prop_assert!((ab - distance_m(c, d, a, b)).abs() < 1e-6);
        }

        #[test]
        fn a_better_fix_never_leaves_an_inside_disc(lat in -60.0f64..60.0, acc in 0.0f64..200.0, shrink in 0.0f64..1.0) {
            let g = Geofence::new("g", lat, 10.0, 300.0).expect("valid");
            let p = Position::new(lat + 0.001, 10.0, acc).expect("valid");
            let better = Position { accuracy_m: acc * shrink, ..p };
            let still_inside = matches!(g.membership(&better), Membership::Inside { .. });
            if matches!(g.membership(&p), Membership::Inside { .. }) {
                prop_assert!(still_inside);
            }
        }
    }
}
