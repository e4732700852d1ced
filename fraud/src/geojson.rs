//! Site polygons from GeoJSON (RFC 7946): a `Polygon`, a `MultiPolygon`, a `Feature` of either,
//! or a `FeatureCollection`. Each polygon becomes a [`Geofence`], named from the feature's
//! `properties.name` (or `<name>#<n>` for the parts of a multipolygon, or `polygon-<n>`).
//! Validation errors say which feature and ring are wrong and why.

use serde_json::Value;

use crate::geofence::{Geofence, GeofenceError};

#[derive(Debug, thiserror::Error)]
pub enum GeoJsonError {
    #[error("not JSON: {0}")]
    Json(String),
    #[error("{at}: {reason}")]
    Shape { at: String, reason: String },
    #[error("{at}: {source}")]
    Geofence {
        at: String,
        #[source]
        source: GeofenceError,
    },
    #[error("no polygon found")]
    Empty,
}

/// Parses GeoJSON text into geofences.
pub fn parse(text: &str) -> Result<Vec<Geofence>, GeoJsonError> {
    let value: Value = serde_json::from_str(text).map_err(|e| GeoJsonError::Json(e.to_string()))?;
    let mut out = Vec::new();
    collect(&value, "document", None, &mut out)?;
    if out.is_empty() {
        return Err(GeoJsonError::Empty);
    }
    Ok(out)
}

fn shape_err(at: &str, reason: impl Into<String>) -> GeoJsonError {
    GeoJsonError::Shape {
        at: at.to_owned(),
        reason: reason.into(),
    }
}

fn collect(
    v: &Value,
    at: &str,
    name: Option<&str>,
    out: &mut Vec<Geofence>,
) -> Result<(), GeoJsonError> {
    let kind = v
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| shape_err(at, "missing \"type\""))?;
    match kind {
        "FeatureCollection" => {
            let features = v
                .get("features")
                .and_then(Value::as_array)
                .ok_or_else(|| shape_err(at, "a FeatureCollection needs a \"features\" array"))?;
            for (i, f) in features.iter().enumerate() {
                collect(f, &format!("features[{i}]"), None, out)?;
            }
            Ok(())
        }
        "Feature" => {
            let name = v
                .get("properties")
                .and_then(|p| p.get("name"))
                .and_then(Value::as_str);
            let geometry = v
                .get("geometry")
                .ok_or_else(|| shape_err(at, "a Feature needs a \"geometry\""))?;
            let at = match name {
                Some(n) => format!("{at} ({n})"),
                None => at.to_owned(),
            };
            collect(geometry, &at, name, out)
        }
        "Polygon" => {
            let rings = rings_of(v.get("coordinates"), at)?;
            let name = name.map_or_else(|| format!("polygon-{}", out.len() + 1), str::to_owned);
            out.push(polygon(&name, &rings, at)?);
            Ok(())
        }
        "MultiPolygon" => {
            let polys = v
                .get("coordinates")
                .and_then(Value::as_array)
                .ok_or_else(|| shape_err(at, "\"coordinates\" must be an array of polygons"))?;
            for (i, p) in polys.iter().enumerate() {
                let at = format!("{at} polygon {}", i + 1);
                let rings = rings_of(Some(p), &at)?;
                let name = match name {
                    Some(n) => format!("{n}#{}", i + 1),
                    None => format!("polygon-{}", out.len() + 1),
                };
                out.push(polygon(&name, &rings, &at)?);
            }
            Ok(())
        }
        other => Err(shape_err(
            at,
            format!(
                "type {other} is not a site area (expected Polygon, MultiPolygon, Feature or FeatureCollection)"
            ),
        )),
    }
}

fn rings_of(v: Option<&Value>, at: &str) -> Result<Vec<Vec<[f64; 2]>>, GeoJsonError> {
    let rings = v
        .and_then(Value::as_array)
        .ok_or_else(|| shape_err(at, "\"coordinates\" must be an array of rings"))?;
    if rings.is_empty() {
        return Err(shape_err(at, "a polygon needs an exterior ring"));
    }
    rings
        .iter()
        .enumerate()
        .map(|(r, ring)| {
            let positions = ring
                .as_array()
                .ok_or_else(|| shape_err(at, format!("ring {r} is not an array")))?;
            positions
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let pair = p.as_array().filter(|a| a.len() >= 2);
                    match pair.map(|a| (a[0].as_f64(), a[1].as_f64())) {
                        Some((Some(lon), Some(lat))) => Ok([lon, lat]),
                        _ => Err(shape_err(
                            at,
                            format!("ring {r} position {i} is not [lon, lat]"),
                        )),
                    }
                })
                .collect()
        })
        .collect()
}

fn polygon(name: &str, rings: &[Vec<[f64; 2]>], at: &str) -> Result<Geofence, GeoJsonError> {
    Geofence::polygon(name, &rings[0], &rings[1..]).map_err(|source| GeoJsonError::Geofence {
        at: at.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const SITE: &str = r#"{
      "type": "FeatureCollection",
      "features": [
        {"type": "Feature", "properties": {"name": "depot"},
         "geometry": {"type": "Polygon", "coordinates": [
           [[2.3200, 48.8650], [2.3227, 48.8650], [2.3227, 48.8663], [2.3200, 48.8663], [2.3200, 48.8650]]
         ]}},
        {"type": "Feature", "properties": {"name": "annex"},
         "geometry": {"type": "MultiPolygon", "coordinates": [
           [[[2.33, 48.86], [2.331, 48.86], [2.331, 48.861], [2.33, 48.86]]],
           [[[2.34, 48.86], [2.341, 48.86], [2.341, 48.861], [2.34, 48.86]]]
         ]}}
      ]
    }"#;

    #[test]
    fn a_feature_collection_becomes_named_fences() {
        let fences = parse(SITE).expect("valid");
        let names: Vec<_> = fences.iter().map(Geofence::name).collect();
        assert_eq!(names, ["depot", "annex#1", "annex#2"]);
        assert!(fences[0].signed_distance_m(48.8656, 2.3213) > 0.0);
    }

    #[test]
    fn errors_say_where_and_why() {
        let cw = SITE.replace(
            "[[2.3200, 48.8650], [2.3227, 48.8650], [2.3227, 48.8663], [2.3200, 48.8663], [2.3200, 48.8650]]",
            "[[2.3200, 48.8650], [2.3200, 48.8663], [2.3227, 48.8663], [2.3227, 48.8650], [2.3200, 48.8650]]",
        );
        let e = parse(&cw).expect_err("clockwise exterior").to_string();
        assert!(
            e.starts_with("features[0] (depot): exterior ring: wound clockwise"),
            "{e}"
        );
        let e = parse(&SITE.replace("[2.34, 48.86]]]", "[2.34, 48.8601]]]"))
            .expect_err("unclosed")
            .to_string();
        assert!(
            e.contains("features[1] (annex) polygon 2") && e.contains("not closed"),
            "{e}"
        );
        let e = parse(&SITE.replace("2.3227, 48.8663", "2.3227, 98.8663"))
            .expect_err("range")
            .to_string();
        assert!(e.contains("out of range"), "{e}");
        let e = parse(r#"{"type": "Point", "coordinates": [1, 2]}"#)
            .expect_err("point")
            .to_string();
        assert!(e.contains("not a site area"), "{e}");
        assert!(matches!(parse("{"), Err(GeoJsonError::Json(_))));
        assert!(matches!(
            parse(r#"{"type":"FeatureCollection","features":[]}"#),
            Err(GeoJsonError::Empty)
        ));
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_json_shapes(s in "\\PC{0,200}") {
            let _ = parse(&s);
            let doc = format!(r#"{{"type":"Polygon","coordinates":{s}}}"#);
            let _ = parse(&doc);
        }
    }
}
