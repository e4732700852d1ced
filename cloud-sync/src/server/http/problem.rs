//! Store errors as problem documents (RFC 9457), and the domains' problem types in the OpenAPI
//! document: all of them in one table, and on each operation the ones it can refuse with.

use serde_json::{Value, json};

use crate::server::store::StoreError;
use rollcall_service::problem::{Problem, ProblemType};

/// The problem types of the domains that one operation (`"post /api/v1/people"`) can refuse
/// with; each domain lists its own beside its routes (`REFUSALS`).
#[derive(Debug)]
pub(crate) struct Refusals {
    pub operation: &'static str,
    pub types: &'static [&'static ProblemType],
}

/// Every domain's [`Refusals`].
pub(crate) const OPERATION_REFUSALS: &[&[Refusals]] = &[
    crate::server::tenants::REFUSALS,
    crate::server::users::REFUSALS,
    crate::server::sites::REFUSALS,
    crate::server::nodes::REFUSALS,
    crate::server::people::REFUSALS,
    crate::server::jobs::REFUSALS,
    crate::server::notifications::REFUSALS,
];

/// Every problem type a domain refuses with, by domain, for the OpenAPI document.
pub(crate) const DOMAIN_PROBLEMS: &[&[&ProblemType]] = &[
    crate::server::tenants::store::PROBLEMS,
    crate::server::users::store::PROBLEMS,
    crate::server::sites::store::PROBLEMS,
    crate::server::nodes::store::PROBLEMS,
    crate::server::people::store::PROBLEMS,
    crate::server::jobs::store::PROBLEMS,
    crate::server::notifications::PROBLEMS,
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

/// Lists the domains' problem types in the document: a table in the description and
/// `x-problem-types` at the top for tools; on each operation that can refuse with some, their
/// URIs as the operation's `x-problem-types` and in the description of the answer of their
/// status (added if the handler did not declare it).
pub(crate) fn document(doc: &mut Value) {
    let kinds: Vec<_> = DOMAIN_PROBLEMS.iter().flat_map(|d| d.iter()).collect();
    let mut table = String::from(
        "\n\n**Problem types** a request can be refused with, besides `bad-request`, \
         `unauthorized`, `forbidden`, `not-found` and the others each operation lists:\n\n\
         | type | status | title | when |\n|---|---|---|---|\n",
    );
    for k in &kinds {
        table.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            k.uri(),
            k.status,
            k.title,
            k.meaning
        ));
    }
    if let Some(Value::String(d)) = doc.pointer_mut("/info/description") {
        d.push_str(&table);
    }
    doc["x-problem-types"] = Value::Array(
        kinds
            .iter()
            .map(|k| {
                json!({ "type": k.uri(), "status": k.status, "title": k.title,
                        "description": k.meaning })
            })
            .collect(),
    );
    for refusals in OPERATION_REFUSALS.iter().flat_map(|d| d.iter()) {
        let Some((method, path)) = refusals.operation.split_once(' ') else {
            continue;
        };
        let Some(op) = doc
            .get_mut("paths")
            .and_then(|p| p.get_mut(path))
            .and_then(|item| item.get_mut(method))
        else {
            continue;
        };
        op["x-problem-types"] = refusals.types.iter().map(|k| json!(k.uri())).collect();
        let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else {
            continue;
        };
        for k in refusals.types {
            let answer = responses.entry(k.status.to_string()).or_insert_with(|| {
                json!({
                    "description": "Refused",
                    "content": { "application/problem+json":
                                 { "schema": { "$ref": "#/components/schemas/Problem" } } }
                })
            });
            if let Some(Value::String(d)) = answer.get_mut("description") {
                d.push_str(&format!(" · `{}`: {}", k.slug, k.meaning));
            }
        }
    }
}
