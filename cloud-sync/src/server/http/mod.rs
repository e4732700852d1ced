//! The HTTP layer every domain shares: the router (a list of each domain's routes) and its
//! middleware — CORS, rate limits, content negotiation, NUL refused in URIs, request ids,
//! idempotency keys — the mapping of store errors to problem documents, Prometheus metrics,
//! and the OpenAPI document with its page.

pub(crate) mod cors;
pub(crate) mod docs_page;
pub mod host;
pub(crate) mod idempotency;
pub mod idempotency_keys;
pub(crate) mod metrics;
pub(crate) mod negotiate;
pub(crate) mod nul;
pub(crate) mod openapi;
pub(crate) mod problem;
pub mod rate_limit;
pub(crate) mod request_meta;
pub(crate) mod router;
