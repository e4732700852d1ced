//! Store errors as problem documents (RFC 9457).

use crate::server::store::StoreError;
use rollcall_service::problem::{Problem, ProblemType};

/// Every problem type a domain refuses with, by domain, for the OpenAPI document.
pub(crate) const DOMAIN_PROBLEMS: &[&[&ProblemType]] = &[
    crate::server::tenants::store::PROBLEMS,
    crate::server::users::store::PROBLEMS,
    crate::server::sites::store::PROBLEMS,
    crate::server::nodes::store::PROBLEMS,
    crate::server::people::store::PROBLEMS,
];

/// A store failure as the client sees it: a domain's refusal as its own problem type, saying
/// what clashed or what is missing; anything else is logged and answered without internals.
pub(crate) fn store_problem(e: StoreError) -> Problem {
    match e {
        StoreError::Refused(r) => Problem::of(r.problem_type(), r.to_string()),
        e => {
            tracing::error!(error = %e, "store error");
            Problem::internal("the database failed; the request was not applied")
        }
    }
}
