//! A tenant's sites and their geofences and fraud policies: the admin API and the storage.

pub(crate) mod api;
pub mod store;
