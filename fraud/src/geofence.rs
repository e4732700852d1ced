//! Geofences: circles and polygons (with holes), accuracy-aware membership with hysteresis.
//!
//! Membership works on the signed distance from the fix to the fence's edge (positive inside):
//! with accuracy `r`, a fix is *inside* only if its whole accuracy disc is (`s ≥ r`), *outside*
//! only if the disc misses the fence (`s ≤ −r`), and *uncertain* otherwise, with the part of the
//! disc's diameter that lies inside as `overlap`. Hysteresis shifts `s`: a person whose previous
//! event was inside keeps the fence `exit_margin_m` larger; one who was not needs to be
//! `enter_margin_m` inside.
//!
//! Distances are geodesic: haversine for circles and far polygons; for a polygon near the fix,
//! its vertices are projected onto the plane tangent at the fix (equirectangular, in metres),
//! where point-to-edge distances are exact to well under 0.1% at site scale (< 50 km).

use geo::{Coord, LineString, Polygon, Winding};
use serde::{Deserialize, Serialize};

/// Mean Earth radius (IUGG), metres.
pub const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// Beyond this distance from a polygon's first vertex, the fix is outside and the tangent-plane
/// projection is not used.
const FAR_M: f64 = 200_000.0;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GeofenceError {
    #[error("latitude {0} is outside [-90, 90]")]
    Latitude(f64),
    #[error("longitude {0} is outside [-180, 180]")]
    Longitude(f64),
    #[error("radius {0} m must be positive and finite")]
    Radius(f64),
    #[error("{name} {value} m must be zero or positive and finite")]
    Margin { name: &'static str, value: f64 },
    #[error("{ring}: ring is not closed (first position {first:?}, last {last:?})")]
    Unclosed {
        ring: String,
        first: [f64; 2],
        last: [f64; 2],
    },
    #[error("{ring}: {n} positions; a closed ring needs at least 4")]
    TooFewPoints { ring: String, n: usize },
    #[error("{ring}: position {index} [{lon}, {lat}] is out of range or not a number")]
    OutOfRange {
        ring: String,
        index: usize,
        lon: f64,
        lat: f64,
    },
    #[error("{ring}: edges {a} and {b} cross (self-intersection)")]
    SelfIntersection { ring: String, a: usize, b: usize },
    #[error("{ring}: wound {found}, must be {expected} (RFC 7946 right-hand rule)")]
    Winding {
        ring: String,
        found: &'static str,
        expected: &'static str,
    },
    #[error("hole {0} is not inside the exterior ring")]
    HoleOutside(usize),
}

/// Great-circle (haversine) distance in metres between two (lat, lon) points in degrees.
pub fn distance_m(a_lat: f64, a_lon: f64, b_lat: f64, b_lon: f64) -> f64 {
    let (p1, p2) = (a_lat.to_radians(), b_lat.to_radians());
    let dp = (b_lat - a_lat).to_radians();
    let dl = (b_lon - a_lon).to_radians();
    let h = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_M * h.sqrt().min(1.0).asin()
}

fn check_lat_lon(lat: f64, lon: f64) -> Result<(), GeofenceError> {
    if !(-90.0..=90.0).contains(&lat) {
        return Err(GeofenceError::Latitude(lat));
    }
    if !(-180.0..=180.0).contains(&lon) {
        return Err(GeofenceError::Longitude(lon));
    }
    Ok(())
}

/// The area of a geofence.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    Circle {
        lat: f64,
        lon: f64,
        radius_m: f64,
    },
    /// Coordinates are (x = longitude, y = latitude) in degrees.
    Polygon(Polygon<f64>),
}

/// A named area of a site.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "GeofenceSpec", into = "GeofenceSpec")]
pub struct Geofence {
    name: String,
    shape: Shape,
    enter_margin_m: f64,
    exit_margin_m: f64,
}

/// Where a fix's accuracy disc lies relative to a geofence.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Membership {
    /// The whole accuracy disc is inside; `depth_m` from the (hysteresis-shifted) edge.
    Inside { depth_m: f64 },
    /// The disc misses the fence; `distance_m` from the (shifted) edge to the fix.
    Outside { distance_m: f64 },
    /// The disc straddles the edge; `overlap` in [0, 1] is the part inside.
    Uncertain { signed_m: f64, overlap: f64 },
}

impl Geofence {
    pub fn circle(
        name: impl Into<String>,
        lat: f64,
        lon: f64,
        radius_m: f64,
    ) -> Result<Self, GeofenceError> {
        check_lat_lon(lat, lon)?;
        if !(radius_m.is_finite() && radius_m > 0.0) {
            return Err(GeofenceError::Radius(radius_m));
        }
        Ok(Self {
            name: name.into(),
            shape: Shape::Circle { lat, lon, radius_m },
            enter_margin_m: 0.0,
            exit_margin_m: 0.0,
        })
    }

    /// A polygon from closed rings of `[lon, lat]` positions (GeoJSON order): the exterior
    /// counter-clockwise, holes clockwise, no self-intersections, holes inside the exterior.
    pub fn polygon(
        name: impl Into<String>,
        exterior: &[[f64; 2]],
        holes: &[Vec<[f64; 2]>],
    ) -> Result<Self, GeofenceError> {
        let outer = ring("exterior ring".into(), exterior, true)?;
        let mut inner = Vec::with_capacity(holes.len());
        for (i, h) in holes.iter().enumerate() {
            let hole = ring(format!("hole {}", i + 1), h, false)?;
            if !hole.0.iter().all(|c| point_in_ring(*c, &outer.0)) {
                return Err(GeofenceError::HoleOutside(i + 1));
            }
            inner.push(hole);
        }
        Ok(Self {
            name: name.into(),
            shape: Shape::Polygon(Polygon::new(outer, inner)),
            enter_margin_m: 0.0,
            exit_margin_m: 0.0,
        })
    }

    /// Sets hysteresis margins (metres).
    pub fn with_margins(mut self, enter_m: f64, exit_m: f64) -> Result<Self, GeofenceError> {
        for (name, value) in [("enter_margin_m", enter_m), ("exit_margin_m", exit_m)] {
            if !(value.is_finite() && value >= 0.0) {
                return Err(GeofenceError::Margin { name, value });
            }
        }
        self.enter_margin_m = enter_m;
        self.exit_margin_m = exit_m;
        Ok(self)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn shape(&self) -> &Shape {
        &self.shape
    }

    /// Signed geodesic distance in metres from the fence's edge to (lat, lon): positive inside.
    /// Inputs must be finite and in range (the caller checks fixes first).
    pub fn signed_distance_m(&self, lat: f64, lon: f64) -> f64 {
        match &self.shape {
            Shape::Circle {
                lat: clat,
                lon: clon,
                radius_m,
            } => radius_m - distance_m(*clat, *clon, lat, lon),
            Shape::Polygon(p) => polygon_signed_distance(p, lat, lon),
        }
    }

    /// Accuracy-aware membership; `was_inside` applies hysteresis.
    pub fn membership(&self, lat: f64, lon: f64, accuracy_m: f64, was_inside: bool) -> Membership {
        let s = self.signed_distance_m(lat, lon)
            + if was_inside {
                self.exit_margin_m
            } else {
                -self.enter_margin_m
            };
        let r = accuracy_m.max(0.0);
        if s >= r {
            Membership::Inside { depth_m: s }
        } else if s <= -r {
            Membership::Outside { distance_m: -s }
        } else {
            Membership::Uncertain {
                signed_m: s,
                overlap: ((s + r) / (2.0 * r)).clamp(0.0, 1.0),
            }
        }
    }
}

/// Checks and builds one ring.
fn ring(
    name: String,
    positions: &[[f64; 2]],
    exterior: bool,
) -> Result<LineString<f64>, GeofenceError> {
    if positions.len() < 4 {
        return Err(GeofenceError::TooFewPoints {
            ring: name,
            n: positions.len(),
        });
    }
    for (index, &[lon, lat]) in positions.iter().enumerate() {
        if !(lon.is_finite()
            && lat.is_finite()
            && (-180.0..=180.0).contains(&lon)
            && (-90.0..=90.0).contains(&lat))
        {
            return Err(GeofenceError::OutOfRange {
                ring: name,
                index,
                lon,
                lat,
            });
        }
    }
    let (first, last) = (positions[0], positions[positions.len() - 1]);
    if first != last {
        return Err(GeofenceError::Unclosed {
            ring: name,
            first,
            last,
        });
    }
    let line = LineString::from(
        positions
            .iter()
            .map(|&[x, y]| Coord { x, y })
            .collect::<Vec<_>>(),
    );
    // Every pair of non-adjacent edges must be disjoint; adjacent edges share only their vertex.
    let edges: Vec<geo::Line<f64>> = line.lines().collect();
    let n = edges.len();
    for a in 0..n {
        for b in a + 1..n {
            let adjacent = b == a + 1 || (a == 0 && b == n - 1);
            let hit = geo::algorithm::line_intersection::line_intersection(edges[a], edges[b]);
            let crosses = match hit {
                None => false,
                Some(geo::LineIntersection::SinglePoint { intersection, .. }) => {
                    !adjacent || (intersection != shared_vertex(&edges[a], &edges[b]))
                }
                Some(geo::LineIntersection::Collinear { .. }) => true,
            };
            if crosses {
                return Err(GeofenceError::SelfIntersection {
                    ring: name,
                    a: a + 1,
                    b: b + 1,
                });
            }
        }
    }
    let ccw = line.is_ccw();
    if ccw != exterior {
        let (found, expected) = if ccw {
            ("counter-clockwise", "clockwise")
        } else {
            ("clockwise", "counter-clockwise")
        };
        return Err(GeofenceError::Winding {
            ring: name,
            found,
            expected,
        });
    }
    Ok(line)
}

fn shared_vertex(a: &geo::Line<f64>, b: &geo::Line<f64>) -> Coord<f64> {
    if a.end == b.start || a.end == b.end {
        a.end
    } else {
        a.start
    }
}

/// Even-odd point-in-ring test in degrees (used for hole-inside-exterior validation).
fn point_in_ring(p: Coord<f64>, ring: &[Coord<f64>]) -> bool {
    let mut inside = false;
    for w in ring.windows(2) {
        let (a, b) = (w[0], w[1]);
        if (a.y > p.y) != (b.y > p.y) && p.x < (b.x - a.x) * (p.y - a.y) / (b.y - a.y) + a.x {
            inside = !inside;
        }
    }
    inside
}

/// Signed distance from (lat, lon) to the polygon's edges, positive inside.
fn polygon_signed_distance(p: &Polygon<f64>, lat: f64, lon: f64) -> f64 {
    let first = p.exterior().0[0];
    if distance_m(lat, lon, first.y, first.x) > FAR_M {
        // Hundreds of km away: outside; the nearest vertex is close enough for reporting.
        let nearest = p
            .exterior()
            .0
            .iter()
            .map(|c| distance_m(lat, lon, c.y, c.x))
            .fold(f64::INFINITY, f64::min);
        return -nearest;
    }
    // Tangent plane at the fix: the fix is the origin, axes east and north in metres.
    let k = EARTH_RADIUS_M * std::f64::consts::PI / 180.0;
    let kx = k * lat.to_radians().cos();
    let project = |c: &Coord<f64>| {
        let mut dlon = c.x - lon;
        if dlon > 180.0 {
            dlon -= 360.0;
        } else if dlon < -180.0 {
            dlon += 360.0;
        }
        (dlon * kx, (c.y - lat) * k)
    };
    let mut inside = false;
    let mut best = f64::INFINITY;
    for ring in std::iter::once(p.exterior()).chain(p.interiors()) {
        let mut prev = project(&ring.0[0]);
        for c in &ring.0[1..] {
            let cur = project(c);
            let ((ax, ay), (bx, by)) = (prev, cur);
            if (ay > 0.0) != (by > 0.0) && 0.0 < (bx - ax) * (0.0 - ay) / (by - ay) + ax {
                inside = !inside;
            }
            // Distance from the origin to segment a–b.
            let (dx, dy) = (bx - ax, by - ay);
            let len2 = dx * dx + dy * dy;
            let t = if len2 > 0.0 {
                ((-ax * dx - ay * dy) / len2).clamp(0.0, 1.0)
            } else {
                0.0
            };
            let (px, py) = (ax + t * dx, ay + t * dy);
            best = best.min((px * px + py * py).sqrt());
            prev = cur;
        }
    }
    if inside { best } else { -best }
}

/// The serialised form (TOML/JSON): `kind = "circle"` with `lat`, `lon`, `radius_m`, or
/// `kind = "polygon"` with `exterior` and `holes` as `[lon, lat]` rings.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct GeofenceSpec {
    name: String,
    #[serde(flatten)]
    shape: ShapeSpec,
    #[serde(default)]
    enter_margin_m: f64,
    #[serde(default)]
    exit_margin_m: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum ShapeSpec {
    Circle {
        lat: f64,
        lon: f64,
        radius_m: f64,
    },
    Polygon {
        exterior: Vec<[f64; 2]>,
        #[serde(default)]
        holes: Vec<Vec<[f64; 2]>>,
    },
}

impl TryFrom<GeofenceSpec> for Geofence {
    type Error = GeofenceError;
    fn try_from(s: GeofenceSpec) -> Result<Self, GeofenceError> {
        let fence = match s.shape {
            ShapeSpec::Circle { lat, lon, radius_m } => {
                Geofence::circle(s.name, lat, lon, radius_m)?
            }
            ShapeSpec::Polygon { exterior, holes } => Geofence::polygon(s.name, &exterior, &holes)?,
        };
        fence.with_margins(s.enter_margin_m, s.exit_margin_m)
    }
}

impl From<Geofence> for GeofenceSpec {
    fn from(g: Geofence) -> Self {
        let coords = |l: &LineString<f64>| l.0.iter().map(|c| [c.x, c.y]).collect::<Vec<_>>();
        let shape = match &g.shape {
            Shape::Circle { lat, lon, radius_m } => ShapeSpec::Circle {
                lat: *lat,
                lon: *lon,
                radius_m: *radius_m,
            },
            Shape::Polygon(p) => ShapeSpec::Polygon {
                exterior: coords(p.exterior()),
                holes: p.interiors().iter().map(coords).collect(),
            },
        };
        GeofenceSpec {
            name: g.name,
            shape,
            enter_margin_m: g.enter_margin_m,
            exit_margin_m: g.exit_margin_m,
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Place de la Concorde, Paris: a ~200 m × 140 m rectangle, counter-clockwise.
    pub(crate) fn concorde() -> Geofence {
        Geofence::polygon(
            "concorde",
            &[
                [2.3200, 48.8650],
                [2.3227, 48.8650],
                [2.3227, 48.8663],
                [2.3200, 48.8663],
                [2.3200, 48.8650],
            ],
            &[],
        )
        .expect("valid polygon")
    }

    /// Metres north of (lat, lon) as a latitude.
    fn north(lat: f64, m: f64) -> f64 {
        lat + m / (EARTH_RADIUS_M * std::f64::consts::PI / 180.0)
    }

    #[test]
    fn haversine_known_distance() {
        // Notre-Dame to Trafalgar Square: about 342 km.
        let d = distance_m(48.8530, 2.3499, 51.5080, -0.1281);
        assert!((d - 342_500.0).abs() < 2_000.0, "{d}");
    }

    #[test]
    fn a_fix_30_m_outside_with_50_m_accuracy_is_uncertain_not_outside() {
        let g = concorde();
        let lat = north(48.8663, 30.0);
        let m = g.membership(lat, 2.3213, 50.0, false);
        let Membership::Uncertain { signed_m, overlap } = m else {
            panic!("{m:?}");
        };
        assert!((signed_m + 30.0).abs() < 0.5, "{signed_m}");
        assert!((overlap - 0.2).abs() < 0.01, "{overlap}");
        assert!(matches!(
            g.membership(lat, 2.3213, 10.0, false),
            Membership::Outside { .. }
        ));
        assert!(matches!(
            g.membership(48.8656, 2.3213, 10.0, false),
            Membership::Inside { .. }
        ));
    }

    #[test]
    fn holes_are_outside() {
        let g = Geofence::polygon(
            "yard",
            &[
                [0.0, 10.0],
                [0.01, 10.0],
                [0.01, 10.01],
                [0.0, 10.01],
                [0.0, 10.0],
            ],
            &[vec![
                [0.004, 10.004],
                [0.004, 10.006],
                [0.006, 10.006],
                [0.006, 10.004],
                [0.004, 10.004],
            ]],
        )
        .expect("valid");
        assert!(g.signed_distance_m(10.005, 0.005) < -100.0, "in the hole");
        assert!(g.signed_distance_m(10.002, 0.002) > 100.0, "in the yard");
    }

    #[test]
    fn hysteresis_keeps_a_person_inside_near_the_edge() {
        let g = concorde().with_margins(10.0, 25.0).expect("margins");
        let lat = north(48.8663, 5.0); // 5 m outside the edge
        assert!(matches!(
            g.membership(lat, 2.3213, 3.0, true),
            Membership::Inside { .. }
        ));
        assert!(matches!(
            g.membership(lat, 2.3213, 3.0, false),
            Membership::Outside { .. }
        ));
    }

    #[test]
    fn invalid_polygons_are_refused_with_the_reason() {
        let err = |ext: &[[f64; 2]]| {
            Geofence::polygon("x", ext, &[])
                .expect_err("invalid")
                .to_string()
        };
        assert!(err(&[[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]).contains("not closed"));
        assert!(err(&[[0.0, 0.0], [1.0, 0.0], [0.0, 0.0]]).contains("at least 4"));
        assert!(
            err(&[[0.0, 0.0], [1.0, 1.0], [1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]).contains("cross")
        );
        assert!(
            err(&[[0.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, 0.0], [0.0, 0.0]])
                .contains("wound clockwise")
        );
        assert!(err(&[[0.0, 0.0], [200.0, 0.0], [1.0, 1.0], [0.0, 0.0]]).contains("out of range"));
        assert!(Geofence::circle("c", 91.0, 0.0, 10.0).is_err());
        assert!(Geofence::circle("c", 0.0, 0.0, f64::NAN).is_err());
    }

    #[test]
    fn serde_round_trip() {
        let g = concorde().with_margins(5.0, 10.0).expect("margins");
        let json = serde_json::to_string(&g).expect("serialise");
        assert!(json.contains("\"kind\":\"polygon\""), "{json}");
        let back: Geofence = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, g);
        let bad = json.replace("2.3227", "2.3199");
        assert!(serde_json::from_str::<Geofence>(&bad).is_err());
    }

    proptest! {
        #[test]
        fn moving_deeper_inside_never_lowers_membership(d1 in 0.0f64..70.0, d2 in 0.0f64..70.0, acc in 0.0f64..100.0) {
            // Both points on the line from the north edge towards the centre.
            let g = concorde();
            let (near, deep) = if d1 < d2 { (d1, d2) } else { (d2, d1) };
            let s_near = g.signed_distance_m(north(48.8663, -near), 2.3213);
            let s_deep = g.signed_distance_m(north(48.8663, -deep), 2.3213);
            prop_assert!(s_deep >= s_near - 1e-6);
            let rank = |m: Membership| match m {
                Membership::Outside { .. } => 0.0,
                Membership::Uncertain { overlap, .. } => overlap,
                Membership::Inside { .. } => 2.0,
            };
            let m_near = g.membership(north(48.8663, -near), 2.3213, acc, false);
            let m_deep = g.membership(north(48.8663, -deep), 2.3213, acc, false);
            prop_assert!(rank(m_deep) >= rank(m_near) - 1e-9);
        }

        #[test]
        fn better_accuracy_keeps_an_inside_fix_inside(lat in 48.8651f64..48.8662, lon in 2.3201f64..2.3226, acc in 0.0f64..80.0, shrink in 0.0f64..1.0) {
            let g = concorde();
            let inside_before = matches!(g.membership(lat, lon, acc, false), Membership::Inside { .. });
            let inside_after = matches!(g.membership(lat, lon, acc * shrink, false), Membership::Inside { .. });
            prop_assert!(!inside_before || inside_after);
        }

        #[test]
        fn polygon_distance_agrees_with_haversine_at_site_scale(dn in -2000.0f64..2000.0) {
            // Straight north of the north edge's midpoint, the distance to the edge is |dn|.
            let g = concorde();
            let s = g.signed_distance_m(north(48.8663, dn), 2.3213);
            if dn > 0.0 {
                prop_assert!((s + dn).abs() < dn.abs() * 1e-3 + 0.05, "{} vs {}", s, dn);
            }
        }
    }
}
