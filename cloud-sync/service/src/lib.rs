//! `rollcall-service`: the process plumbing both daemons (`rollcall-cloud`, `rollcall-node`)
//! share, kept out of the server crate so that the node builds without the server:
//!
//! - [`problem`]: RFC 9457 problem documents, the one shape of every HTTP error;
//! - [`cookie`]: reading `Cookie` headers;
//! - [`shutdown`]: the SIGTERM/Ctrl-C signal and the "stop now" broadcast;
//! - [`supervisor`]: starts every background loop, stops them on shutdown and awaits them;
//! - [`listen`]: binding and announcing the listen address; [`serve`]: serving it with
//!   connection limits and timeouts; [`logging`]: the log subscriber;
//! - [`sqlite`]: how every rollcall SQLite file is opened and migrated; [`clock`]: the wall clock;
//! - [`text`]: the NUL character refused at the edge (PostgreSQL cannot store it).

pub mod clock;
pub mod cookie;
pub mod listen;
pub mod logging;
pub mod problem;
pub mod serve;
pub mod shutdown;
pub mod sqlite;
pub mod supervisor;
pub mod text;
