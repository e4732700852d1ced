//! Applies the site configuration the cloud gives (see `store::site_config`): once the cloud has
//! a geofence for the node's site, that outline replaces the config file's `[[geofence]]`
//! circles and `node.geofence_file` polygons, live and after restarts; if the cloud drops the
//! site, the file's fences are back. A version the node cannot parse is refused whole: the
//! fences in force stay.

use rollcall_cloud::protocol::SiteConfig;
use rollcall_fraud::Geofence;

use crate::{
    pipeline::Pipeline,
    store::{NodeStore, StoreError},
};

#[derive(Debug, thiserror::Error)]
pub enum SiteConfigError {
    #[error("the cloud's geofence of site `{site}` (version {version}) is unusable: {reason}")]
    Geofence {
        site: String,
        version: i64,
        reason: String,
    },
    #[error("the cloud's configuration is for site `{got}`, this node serves `{want}`")]
    OtherSite { got: String, want: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The fences of a configuration.
pub fn fences(config: &SiteConfig) -> Result<Vec<Geofence>, SiteConfigError> {
    rollcall_fraud::geojson::parse(&config.geofence_geojson).map_err(|e| {
        SiteConfigError::Geofence {
            site: config.id.clone(),
            version: config.updated_ms,
            reason: e.to_string(),
        }
    })
}

/// Applies what the cloud gave (`None`: it has no such site): stored first, then in force.
/// Returns whether anything changed.
pub fn apply(
    pipeline: &Pipeline,
    store: &mut NodeStore,
    config: Option<&SiteConfig>,
) -> Result<bool, SiteConfigError> {
    let in_force = match config {
        Some(c) if c.id != pipeline.site_id() => {
            return Err(SiteConfigError::OtherSite {
                got: c.id.clone(),
                want: pipeline.site_id().to_owned(),
            });
        }
        Some(c) => Some(fences(c)?),
        None => None,
    };
    if !store.set_site_config(config)? {
        return Ok(false);
    }
    match &in_force {
        Some(f) => tracing::info!(
            version = config.map_or(0, |c| c.updated_ms),
            fences = f.len(),
            "the site's geofence from the cloud is in force"
        ),
        None => tracing::warn!(
            "the cloud has no configuration for this site: the config file's geofences are back"
        ),
    }
    pipeline.set_cloud_geofences(in_force, config.map_or(0, |c| c.updated_ms));
    Ok(true)
}

/// At start-up: puts the configuration kept from the cloud back in force, if there is one.
pub fn restore(pipeline: &Pipeline, store: &NodeStore) -> Result<(), SiteConfigError> {
    if let Some(c) = store.site_config()? {
        let f = fences(&c)?;
        tracing::info!(
            version = c.updated_ms,
            fences = f.len(),
            "the site's geofence last given by the cloud is in force"
        );
        pipeline.set_cloud_geofences(Some(f), c.updated_ms);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unusable_outline_is_refused_with_the_site_version_and_reason() {
        let mut c = SiteConfig {
            id: "hq".into(),
            name: "HQ".into(),
            geofence_geojson: r#"{"type":"Polygon","coordinates":[[[2.29,48.85],[2.30,48.85],[2.30,48.86],[2.29,48.85]]]}"#.into(),
            updated_ms: 7,
        };
        assert_eq!(fences(&c).expect("a triangle").len(), 1);
        c.geofence_geojson = r#"{"type":"Point","coordinates":[2.29,48.85]}"#.into();
        let e = fences(&c).expect_err("a point is no outline").to_string();
        assert!(e.contains("site `hq`") && e.contains("version 7"), "{e}");
    }
}
