//! A tenant's users and their roles: the admin API and the storage (with refresh tokens and the
//! platform's own secrets).

pub(crate) mod api;
pub mod store;
