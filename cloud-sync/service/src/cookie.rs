//! Reading the request's `Cookie` headers (RFC 6265 §5.4 as browsers send them): shared by the
//! cloud's browser sessions and fuzzed (`fuzz/fuzz_targets/cookie_header.rs`).

use axum::http::{HeaderMap, header};

/// The value of cookie `name` in the request's `Cookie` headers, if sent once and sane.
pub fn find<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let mut found = None;
    for value in headers.get_all(header::COOKIE) {
        let Ok(value) = value.to_str() else { continue };
        for pair in value.split(';') {
            let Some((k, v)) = pair.trim().split_once('=') else {
                continue;
            };
            if k == name {
                if found.is_some() {
                    // Two cookies of one name (one planted by a sibling host?): trust neither.
                    return None;
                }
                found = Some(v.trim_matches('"'));
            }
        }
    }
    found.filter(|v| !v.is_empty() && v.len() <= 200)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use proptest::prelude::*;

    const SESSION_COOKIE: &str = "__Host-rollcall_session";

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::COOKIE, HeaderValue::from_str(v).expect("header"));
        }
        h
    }

    #[test]
    fn cookies_are_found_by_exact_name() {
        let h = headers(&["a=1; __Host-rollcall_session=acme.abc; b=2"]);
        assert_eq!(find(&h, SESSION_COOKIE), Some("acme.abc"));
        assert_eq!(find(&h, "a"), Some("1"));
        assert_eq!(find(&h, "rollcall_session"), None);
        let h = headers(&["x=1", "__Host-rollcall_session=\"acme.q\""]);
        assert_eq!(find(&h, SESSION_COOKIE), Some("acme.q"));
        // The same name twice: neither is trusted.
        let h = headers(&["__Host-rollcall_session=acme.a; __Host-rollcall_session=evil.b"]);
        assert_eq!(find(&h, SESSION_COOKIE), None);
        assert_eq!(
            find(&headers(&["__Host-rollcall_session="]), SESSION_COOKIE),
            None
        );
    }

    proptest! {
        #[test]
        fn any_cookie_header_is_read_without_panicking(raw in "[ -~]{0,200}") {
            if let Ok(v) = HeaderValue::from_str(&raw) {
                let mut h = HeaderMap::new();
                h.insert(header::COOKIE, v);
                if let Some(found) = find(&h, SESSION_COOKIE) {
                    prop_assert!(raw.contains(found));
                }
            }
        }

        #[test]
        fn a_session_cookie_is_found_among_others(
            before in proptest::collection::vec("[a-z]{1,8}=[a-z0-9]{0,8}", 0..4),
            after in proptest::collection::vec("[a-z]{1,8}=[a-z0-9]{0,8}", 0..4),
            token in "[a-z]{2,8}\\.[0-9a-f]{64}",
        ) {
            let mut parts = before.clone();
            parts.push(format!("{SESSION_COOKIE}={token}"));
            parts.extend(after);
            let h = headers(&[&parts.join("; ")]);
            prop_assert_eq!(find(&h, SESSION_COOKIE), Some(token.as_str()));
        }
    }
}
