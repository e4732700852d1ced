//! A node registered again (its credential leaked, its box replaced with the same disk) may
//! take over the node it replaces (`POST /api/v1/nodes` with `replaces`): in the registration's
//! transaction the old credential is revoked and everything the cloud holds of the old node —
//! its events, alarms, audit lines and voice records, the refusals that settled their numbers,
//! and its watermarks — moves to the new one. The node keeps its database and its sequence
//! numbers, so what it sends again is a duplicate and what it sends next continues the same
//! watermark; without the handover the new node would start at 0, be told it lacks everything
//! and have every re-sent item refused as another node's (`id_conflict`).

use super::StoreError;

/// The old node as the handover needs it: its site and event watermark.
pub(super) const OLD: &str =
    "SELECT site_id, watermark FROM nodes WHERE tenant_id = $1 AND id = $2";

/// What moves to the new node (`$1` tenant, `$2` old node, `$3` new node).
pub(super) const MOVES: &[&str] = &[
    "UPDATE events SET node_id = $3 WHERE tenant_id = $1 AND node_id = $2",
    "UPDATE sync_rejections SET node_id = $3 WHERE tenant_id = $1 AND node_id = $2",
    "UPDATE node_records SET node_id = $3 WHERE tenant_id = $1 AND node_id = $2",
    "UPDATE record_rejections SET node_id = $3 WHERE tenant_id = $1 AND node_id = $2",
    "UPDATE node_stream_marks SET node_id = $3 WHERE tenant_id = $1 AND node_id = $2",
];

/// Revokes the old node (`$3` now) and clears its watermark (it holds nothing any more).
pub(super) const RETIRE: &str =
    "UPDATE nodes SET revoked_ms = coalesce(revoked_ms, $3), watermark = 0
     WHERE tenant_id = $1 AND id = $2";

/// Checks the node to replace: it must be the tenant's and serve the same site. Its watermark.
pub(super) fn check(
    old: &str,
    site_id: &str,
    found: Option<(String, i64)>,
) -> Result<i64, StoreError> {
    match found {
        None => Err(StoreError::Invalid(format!(
            "replaces: the tenant has no node `{old}`"
        ))),
        Some((site, _)) if site != site_id => Err(StoreError::Invalid(format!(
            "replaces: node `{old}` serves site `{site}`, not `{site_id}`"
        ))),
        Some((_, watermark)) => Ok(watermark),
    }
}
