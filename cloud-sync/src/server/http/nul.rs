//! The middleware that refuses a URI whose path or query holds a percent-encoded NUL (`%00`)
//! before any route reads it: PostgreSQL cannot store or compare the NUL character, and every
//! `{id}` and query filter reaches SQL (`rollcall_service::text` has the rule; JSON bodies are
//! checked by `rollcall_service::problem::Json`, a push item by the sync ingest).

use axum::{extract::Request, middleware::Next, response::Response};

use rollcall_service::{
    problem::Problem,
    text::{NUL_REFUSED, uri_nul},
};

pub(crate) async fn refuse_in_uri(req: Request, next: Next) -> Response {
    let uri = req.uri();
    if let Some(name) = uri_nul(uri.path(), uri.query()) {
        use axum::response::IntoResponse as _;
        return Problem::bad_request(format!("{name}: {NUL_REFUSED}")).into_response();
    }
    next.run(req).await
}
