//! Node ↔ cloud sync: the push (its body, decoded and bounded, and its one transaction), the
//! pulls of people, site and revocations, and the refusals a node's admin sees.

pub(crate) mod body;
pub(crate) mod ingest;
pub(crate) mod pull;
pub(crate) mod push;
pub mod rejections;
pub(crate) mod rejections_api;
