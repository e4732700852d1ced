//! `rollcall-cloud`: the central, multi-tenant server that site nodes sync to and admins use:
//! storage, authentication, the HTTP API and metrics ([`server`]).
//!
//! The node ↔ cloud contract (wire types, identifiers, the merge rule, the codec) is the
//! `rollcall-protocol` crate, and the process plumbing both daemons share (problem documents,
//! shutdown and the supervisor, listening, logging, SQLite opening) is `rollcall-service`: the
//! node depends on those two, never on this crate.
//!
//! Architecture invariant: every row a tenant owns carries `tenant_id`, and every query that
//! reads or writes one takes the tenant from the authenticated caller, never from the body.

pub mod server;
