//! `Cookie` headers from browsers: any bytes, as one or more header values, are read without
//! panicking, and a cookie found is a piece of what was sent.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rollcall_service::cookie;

fuzz_target!(|data: &[u8]| {
    let mut headers = axum::http::HeaderMap::new();
    for line in data.split(|&b| b == b'\n') {
        if let Ok(v) = axum::http::HeaderValue::from_bytes(line) {
            headers.append(axum::http::header::COOKIE, v);
        }
    }
    if let Some(found) = cookie::find(&headers, "__Host-rollcall_session") {
        assert!(!found.is_empty() && found.len() <= 200);
        assert!(data.windows(found.len()).any(|w| w == found.as_bytes()));
    }
});
