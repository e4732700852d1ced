//! Store errors as problem documents (RFC 9457).

use axum::http::StatusCode;

use crate::server::store::StoreError;
use rollcall_service::problem::Problem;

/// A store failure as the client sees it: a conflict says what clashed; anything else is logged
/// and answered without internals.
pub(crate) fn store_problem(e: StoreError) -> Problem {
    match e {
        StoreError::Conflict(detail) => {
            Problem::new(StatusCode::CONFLICT, "conflict", "Conflict", detail)
        }
        StoreError::Invalid(detail) => Problem::bad_request(detail),
        e => {
            tracing::error!(error = %e, "store error");
            Problem::internal("the database failed; the request was not applied")
        }
    }
}
