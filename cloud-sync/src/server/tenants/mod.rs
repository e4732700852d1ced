//! Tenants: the platform operator's API over them, their storage, and how a request is resolved
//! to one (its host name or header) with a short-lived cache.

pub(crate) mod api;
pub(crate) mod cache;
pub mod resolve;
pub mod store;
