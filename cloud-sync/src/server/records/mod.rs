//! What nodes push besides events: alarms, their audit lines and voice verification records
//! with their audio; the admin API and the storage.

pub(crate) mod api;
pub mod plan;
pub mod store;
pub mod voice;
pub(crate) mod voice_api;
