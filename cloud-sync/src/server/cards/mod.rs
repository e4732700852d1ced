//! Revoked cards: the admin API and the storage every node of the tenant pulls from.

pub(crate) mod api;
pub mod store;
