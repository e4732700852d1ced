//! The audit trail: the entry every write appends, and the admin API that lists them.

pub(crate) mod api;
pub mod store;

pub use store::{Audit, AuditEntry};
