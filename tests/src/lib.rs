//! Starts the real `rollcall-cloud` and `rollcall-node` binaries for end-to-end tests and for
//! `cargo xtask demo`: each on a free loopback port, in its own directory, with its log
//! captured to a file, stopped (SIGTERM, then SIGKILL) when dropped, and its log printed when
//! the test that owned it panicked.

mod browser;
mod fault_proxy;
mod osdp_peer;
mod process;
pub mod scratch;
mod services;
mod smtp;
mod tls;

pub use browser::{Browser, browser_available, y4m_from_photo};
pub use fault_proxy::{Fault, FaultProxy, FaultStats, Rng};
pub use osdp_peer::{OsdpPeer, node_on_reader, osdp_python};
pub use process::{HarnessError, Process, bin_path};
pub use scratch::ScratchDatabase;
pub use services::{
    AT_GATE, Cloud, CloudDb, DEMO_SITE, FAR_AWAY, Node, NodeOptions, OWNER_PASSWORD, Site, fields,
    on_each_backend, pg_bytes, reason_codes, sample_photo, wait_for,
};
pub use smtp::{Mail, SmtpSink, free_port, smtp_python};
pub use tls::private_ca;

/// Whether a test can run with what this machine has: `Ok` runs it; `Err(why)` skips it with
/// the reason on a developer's plain `cargo test`, and fails it in CI (`CI` set), where
/// `cargo xtask test` has installed everything.
pub fn environment_ready<T>(check: Result<T, String>) -> bool {
    match check {
        Ok(_) => true,
        Err(why) => {
            assert!(std::env::var_os("CI").is_none(), "{why}");
            eprintln!("skipped: {why}");
            false
        }
    }
}
