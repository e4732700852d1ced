//! Every request gets an id: the client's `X-Request-Id` when it is a sane token, else a fresh
//! one. It is returned in the response, carried by the request's log span, and written into
//! the audit entries the request makes, with the peer address.

use std::net::SocketAddr;

use axum::{
    extract::{ConnectInfo, FromRequestParts, Request},
    http::{HeaderValue, request::Parts},
    middleware::Next,
    response::Response,
};
use tracing::Instrument as _;

pub const HEADER: &str = "x-request-id";

/// Who sent the request and under which id.
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    pub request_id: String,
    /// The peer's IP address (the TCP peer: a proxy in front is not trusted to say more).
    pub source: Option<String>,
}

#[derive(Clone)]
struct RequestId(String);

fn sane(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

fn fresh_id() -> String {
    let mut bytes = [0u8; 12];
    // Ids only correlate logs; a failed random source still leaves the time-ordered prefix.
    let _ = getrandom::fill(&mut bytes);
    format!("req-{}", hex::encode(bytes))
}

/// The middleware: assigns the id, runs the request in a span carrying it, echoes it back.
pub async fn assign(mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| sane(v))
        .map_or_else(fresh_id, str::to_owned);
    req.extensions_mut().insert(RequestId(id.clone()));
    let span =
        tracing::info_span!("request", id = %id, method = %req.method(), path = %req.uri().path());
    let mut response = next.run(req).instrument(span).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(HEADER, value);
    }
    response
}

impl RequestMeta {
    pub fn of(parts: &Parts) -> Self {
        Self {
            request_id: parts
                .extensions
                .get::<RequestId>()
                .map(|r| r.0.clone())
                .unwrap_or_default(),
            source: parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip().to_string()),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestMeta {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self::of(parts))
    }
}

impl RequestMeta {
    /// An audit entry for this request.
    pub fn audit(
        &self,
        actor: String,
        action: &'static str,
        target: Option<String>,
        detail: serde_json::Value,
    ) -> crate::server::audit::store::Audit {
        crate::server::audit::store::Audit {
            actor,
            action,
            target,
            source: self.source.clone(),
            request_id: self.request_id.clone(),
            detail,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_are_kept_only_when_sane() {
        assert!(sane("abc-123_x.y:z"));
        assert!(!sane(""));
        assert!(!sane(&"a".repeat(65)));
        assert!(!sane("a b"));
        assert!(!sane("a\nb"));
        assert!(fresh_id().starts_with("req-") && sane(&fresh_id()));
    }
}
