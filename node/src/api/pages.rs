//! The node's own pages (the kiosk and the enrolment page) and what guards every answer from
//! other web pages on the site network:
//!
//! - A request that changes something (any method but GET, HEAD and OPTIONS) from a browser page
//!   of another origin is refused with 403 `cross-origin` before it runs: browsers name the page's
//!   origin in `Origin` on every such request, so a page elsewhere cannot post a check-in whose
//!   match pulses the turnstile. Cameras, native kiosk apps and `curl` send no `Origin` and are
//!   served as before.
//! - Every answer says `frame-ancestors 'none'` (and `X-Frame-Options: DENY` for old browsers),
//!   so no page can frame the kiosk or the enrolment page and trick a click; the pages get a
//!   Content-Security-Policy that runs only their own inline script, by its sha256, and talks
//!   only to the node.

use std::sync::LazyLock;

use axum::{
    extract::Request,
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use base64::Engine as _;
use rollcall_service::problem::Problem;
use sha2::{Digest, Sha256};

/// The policy of answers that are no page (JSON, metrics, the live feed).
const API_POLICY: &str = "default-src 'none'; frame-ancestors 'none'";

/// A page and its Content-Security-Policy.
pub(super) struct Page {
    html: &'static str,
    policy: HeaderValue,
}

pub(super) static KIOSK: LazyLock<Page> =
    LazyLock::new(|| Page::new(include_str!("../../kiosk/index.html")));
pub(super) static ENROLMENT: LazyLock<Page> =
    LazyLock::new(|| Page::new(include_str!("../../kiosk/enrol.html")));

impl Page {
    fn new(html: &'static str) -> Self {
        let policy = HeaderValue::from_str(&policy_of(html))
            .unwrap_or_else(|_| HeaderValue::from_static(API_POLICY));
        Self { html, policy }
    }

    /// The page, never cached (a node update changes it), under its policy.
    pub(super) fn answer(&self) -> Response {
        let mut r = (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            self.html,
        )
            .into_response();
        r.headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, self.policy.clone());
        r
    }
}

/// The inline scripts of `html`, each `'sha256-…'` as a policy names it.
fn script_hashes(html: &str) -> Vec<String> {
    let mut hashes = Vec::new();
    let mut rest = html;
    while let Some(open) = rest.find("<script>") {
        let body = &rest[open + "<script>".len()..];
        let Some(close) = body.find("</script>") else {
            break;
        };
        let digest = Sha256::digest(&body.as_bytes()[..close]);
        hashes.push(format!(
            "'sha256-{}'",
            base64::engine::general_purpose::STANDARD.encode(digest)
        ));
        rest = &body[close..];
    }
    hashes
}

/// A page's policy: its own inline scripts and styles, the camera's stream and captured frames,
/// requests to the node only, no framing, no plugins, no form posted elsewhere.
fn policy_of(html: &str) -> String {
    format!(
        "default-src 'none'; script-src {}; style-src 'unsafe-inline'; \
         img-src 'self' data: blob:; media-src 'self' blob: mediastream:; connect-src 'self'; \
         base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        script_hashes(html).join(" ")
    )
}

/// Whether a request's `Origin` is the node's own (the authority the request was sent to).
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let authority = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, authority)| authority);
    matches!((authority, host), (Some(a), Some(h)) if a.eq_ignore_ascii_case(h))
}

/// Refuses a change sent by another origin's page; sets the framing and content headers of
/// every answer.
pub(super) async fn guard(req: Request, next: Next) -> Response {
    let changes = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let mut response = if changes && !same_origin(req.headers()) {
        let origin = req
            .headers()
            .get(header::ORIGIN)
            .and_then(|o| o.to_str().ok())
            .unwrap_or("?")
            .escape_default()
            .to_string();
        tracing::warn!(%origin, path = %req.uri().path(), "cross-origin request refused");
        // Refused unread: the body left on the connection would be taken for the next request,
        // so the connection ends with this answer (and the client knows not to reuse it).
        let mut refused = Problem::new(
            StatusCode::FORBIDDEN,
            "cross-origin",
            "Cross-origin request refused",
            format!(
                "a page of {origin} may not send this to the node; use the node's own pages, or a client that sends no Origin"
            ),
        )
        .into_response();
        refused
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        refused
    } else {
        next.run(req).await
    };
    let h = response.headers_mut();
    h.entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(API_POLICY));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn only_the_nodes_own_origin_or_none_may_send_changes() {
        assert!(same_origin(&headers(&[("host", "10.0.0.5:8080")])));
        assert!(same_origin(&headers(&[
            ("host", "10.0.0.5:8080"),
            ("origin", "http://10.0.0.5:8080")
        ])));
        assert!(same_origin(&headers(&[
            ("host", "Kiosk.Local"),
            ("origin", "https://kiosk.local")
        ])));
        for origin in [
            "http://10.0.0.6:8080",
            "http://10.0.0.5:8081",
            "http://10.0.0.5",
            "null",
            "http://10.0.0.5:8080.evil.example",
        ] {
            let h = headers(&[("host", "10.0.0.5:8080"), ("origin", origin)]);
            assert!(!same_origin(&h), "{origin}");
        }
        assert!(!same_origin(&headers(&[(
            "origin",
            "http://10.0.0.5:8080"
        )])));
    }

    #[test]
    fn a_pages_policy_runs_exactly_its_own_scripts() {
        let html = "<p>x</p><script>let a = 1;</script><script>go();</script>";
        let hashes = script_hashes(html);
        let expected = |s: &str| {
            format!(
                "'sha256-{}'",
                base64::engine::general_purpose::STANDARD.encode(Sha256::digest(s))
            )
        };
        assert_eq!(hashes, [expected("let a = 1;"), expected("go();")]);
        let policy = policy_of(html);
        assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
        assert!(!policy.contains("script-src 'unsafe-inline'"), "{policy}");
        // Both pages have one inline script each, and a policy that names it.
        for page in [&*KIOSK, &*ENROLMENT] {
            assert_eq!(script_hashes(page.html).len(), 1);
            let p = page.policy.to_str().expect("ascii");
            assert!(p.contains(&script_hashes(page.html)[0]), "{p}");
        }
    }
}
