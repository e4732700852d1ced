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

/// For `#[serde(default, deserialize_with = "crate::server::http::present")]` on an
/// `Option<Option<T>>` field of a request body: an absent field stays `None` (leave it as it
/// is), `null` becomes `Some(None)` (clear it), a value `Some(Some(v))`.
pub(crate) fn present<'de, D: serde::Deserializer<'de>, T: serde::Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}
