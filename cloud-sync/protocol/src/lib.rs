//! `rollcall-protocol`: the contract between a site's node and the cloud, which both depend on
//! and neither owns.
//!
//! - [`wire`]: the sync types (pushes and their acknowledgement, the people, site and
//!   revocation pulls, node registration), version [`wire::PROTOCOL_VERSION`];
//! - [`checks`]: the bounds of a pushed event's fields, which the cloud enforces per item;
//! - [`ids`]: the identifiers that cross the wire, as parsing newtypes (the one copy of each rule);
//! - [`merge`]: the hybrid-logical-clock merge rule both sides apply to shared records;
//! - [`codec`], [`gzip`], [`zstd`]: how a body is encoded and compressed, inflated with a bound;
//! - [`realtime`]: the frames, topics and close codes of the cloud's WebSocket;
//! - [`wav`]: the check of a voice record's audio; [`bundle`]: signed node config bundles.
//! - [`golden`]: one value of every payload shape, and its checked-in JSON and CBOR files.
//!
//! Nothing here does I/O or knows a server: the node builds against it without the cloud's
//! dependencies.

pub mod bundle;
pub mod checks;
pub mod codec;
pub mod golden;
pub mod gzip;
pub mod ids;
pub mod merge;
pub mod realtime;
pub mod wav;
pub mod wire;
pub mod zstd;
