//! A tenant's nodes: registration (and the handover of a replaced node), listing, revocation,
//! the tenant's signing key and signed config bundles.

pub(crate) mod api;
pub(crate) mod handover;
pub(crate) mod store;
