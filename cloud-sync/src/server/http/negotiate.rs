//! Content negotiation for the API: it answers JSON (and problem+json) only, so a request whose
//! `Accept` rules both out gets 406 with a problem document instead of a body it cannot read.

use axum::{extract::Request, http::header, middleware::Next, response::Response};

use rollcall_service::problem::Problem;

/// Whether an `Accept` header admits JSON. No header, or an unreadable one, admits anything.
pub fn accepts_json(accept: Option<&str>) -> bool {
    let Some(accept) = accept else { return true };
    accept.split(',').any(|range| {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let refused = parts.any(|p| {
            p.trim()
                .strip_prefix("q=")
                .and_then(|q| q.trim().parse::<f32>().ok())
                .is_some_and(|q| q <= 0.0)
        });
        !refused
            && matches!(
                media.as_str(),
                "*/*" | "application/*" | "application/json" | "application/problem+json"
            )
    })
}

/// The middleware, on `/api/…` routes.
pub async fn json_only(req: Request, next: Next) -> Response {
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .map(|v| v.to_str().unwrap_or("*/*"));
    if req.uri().path().starts_with("/api/") && !accepts_json(accept) {
        return axum::response::IntoResponse::into_response(Problem::new(
            axum::http::StatusCode::NOT_ACCEPTABLE,
            "not-acceptable",
            "Not acceptable",
            "this API answers application/json (errors: application/problem+json) only",
        ));
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_acceptable_unless_ruled_out() {
        for ok in [
            None,
            Some("*/*"),
            Some("application/json"),
            Some("text/html, application/*;q=0.5"),
            Some("Application/JSON; charset=utf-8"),
            Some("application/problem+json"),
        ] {
            assert!(accepts_json(ok), "{ok:?}");
        }
        for no in [
            Some("text/html"),
            Some("application/xml"),
            Some("application/json;q=0"),
            Some(""),
        ] {
            assert!(!accepts_json(no), "{no:?}");
        }
    }
}
