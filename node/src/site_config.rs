//! Applies the site configuration the cloud gives (see `store::site_config`): once the cloud has
//! a geofence for the node's site, that outline replaces the config file's `[[geofence]]`
//! circles and `node.geofence_file` polygons, and a fraud policy set there replaces the file's
//! `[fraud]` section — live and after restarts; if the cloud drops the site (or the policy),
//! the file's are back. A version the node cannot use is refused whole: what is in force stays.

use rollcall_fraud::{Geofence, Policy};
use rollcall_protocol::wire::SiteConfig;

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
    #[error("the cloud's fraud policy of site `{site}` (version {version}) is unusable: {reason}")]
    Policy {
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

/// The fraud policy of a configuration, if it has one, checked as the config file's is.
pub fn policy(config: &SiteConfig) -> Result<Option<Policy>, SiteConfigError> {
    let Some(text) = &config.fraud_policy_json else {
        return Ok(None);
    };
    let unusable = |reason: String| SiteConfigError::Policy {
        site: config.id.clone(),
        version: config.updated_ms,
        reason,
    };
    let policy: Policy = serde_json::from_str(text).map_err(|e| unusable(e.to_string()))?;
    policy
        .validate()
        .map_err(|(key, why)| unusable(format!("{key}: {why}")))?;
    Ok(Some(policy))
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
        Some(c) => Some((fences(c)?, policy(c)?)),
        None => None,
    };
    if !store.set_site_config(config)? {
        return Ok(false);
    }
    let version = config.map_or(0, |c| c.updated_ms);
    match &in_force {
        Some((f, p)) => tracing::info!(
            version,
            fences = f.len(),
            fraud_policy = if p.is_some() {
                "the cloud's"
            } else {
                "the config file's"
            },
            "the site's configuration from the cloud is in force"
        ),
        None => tracing::warn!(
            "the cloud has no configuration for this site: the config file's geofences and policy are back"
        ),
    }
    let (fences, policy) = in_force.map_or((None, None), |(f, p)| (Some(f), p));
    pipeline.set_cloud_config(fences, policy, version);
    Ok(true)
}

/// At start-up: puts the configuration kept from the cloud back in force, if there is one.
pub fn restore(pipeline: &Pipeline, store: &NodeStore) -> Result<(), SiteConfigError> {
    if let Some(c) = store.site_config()? {
        let (f, p) = (fences(&c)?, policy(&c)?);
        tracing::info!(
            version = c.updated_ms,
            fences = f.len(),
            fraud_policy = if p.is_some() {
                "the cloud's"
            } else {
                "the config file's"
            },
            "the site's configuration last given by the cloud is in force"
        );
        pipeline.set_cloud_config(Some(f), p, c.updated_ms);
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
            fraud_policy_json: Some(r#"{"deny_at": 0.7, "deny_outright": ["low_gps_accuracy"]}"#.into()),
        };
        assert_eq!(fences(&c).expect("a triangle").len(), 1);
        let p = policy(&c).expect("a policy").expect("set");
        assert_eq!(p.deny_at, 0.7);
        c.fraud_policy_json = Some(r#"{"deny_at": 1.5}"#.into());
        let e = policy(&c).expect_err("a threshold above 1").to_string();
        assert!(e.contains("version 7") && e.contains("deny_at"), "{e}");
        c.fraud_policy_json = Some(r#"{"teleport": true}"#.into());
        assert!(
            policy(&c).is_err(),
            "unknown fields are refused, as in the config file"
        );
        c.geofence_geojson = r#"{"type":"Point","coordinates":[2.29,48.85]}"#.into();
        let e = fences(&c).expect_err("a point is no outline").to_string();
        assert!(e.contains("site `hq`") && e.contains("version 7"), "{e}");
    }
}
