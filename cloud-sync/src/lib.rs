//! `rollcall-cloud`: the central, multi-tenant server that site nodes sync to and admins use.
//!
//! - [`protocol`]: the node ↔ cloud wire types, and [`merge`]: the conflict rules both sides apply. Always built; the node depends on this crate
//!   with `default-features = false` and gets only these (plus [`problem`], [`cookie`], [`shutdown`],
//!   [`listen`] and [`logging`] with the `http` feature, and [`sqlite`] with the `sqlite` feature), not the server.
//! - `server` (feature `server`): storage, authentication, the HTTP API and metrics.
//!
//! Architecture invariant: every row a tenant owns carries `tenant_id`, and every query that
//! reads or writes one takes the tenant from the authenticated caller, never from the body.

pub mod merge;
pub mod protocol;

#[cfg(feature = "http")]
pub mod problem;

#[cfg(feature = "http")]
pub mod cookie;

#[cfg(feature = "http")]
pub mod gzip;

#[cfg(feature = "http")]
pub mod zstd;

#[cfg(feature = "http")]
pub mod codec;

#[cfg(feature = "http")]
pub mod shutdown;

#[cfg(feature = "http")]
pub mod listen;

#[cfg(feature = "http")]
pub mod logging;

#[cfg(feature = "http")]
pub mod wav;

#[cfg(feature = "sqlite")]
pub mod sqlite;

#[cfg(feature = "bundle")]
pub mod bundle;

#[cfg(feature = "server")]
pub mod server;
