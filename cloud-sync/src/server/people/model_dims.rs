//! Each embedder name stands for one embedding length in a tenant: a shipped embedder's
//! (`rollcall_protocol::checks::KNOWN_EMBEDDERS`: `mobilefacenet` is 192), else the first
//! template stored under the name binds it to its length (`template_models`); a template of another length
//! under that name is refused — through the admin API with 409 `template-dimension`, in a node's
//! push as that person's rejection alone. Before, the cloud took any length, a fresh node
//! adopted the first one it pulled, and from then on every enrolment there failed.
//!
//! Templates stored before the binding table existed bind their model on its next template, to
//! their own length. Two first templates of different lengths racing on two replicas: the
//! binding's primary key lets one in; the other reads the winner's length and is refused.

use std::collections::HashMap;

use crate::server::store::{StoreError, exec::Exec};
use rollcall_service::clock::now_ms;

/// A template whose length is not its model's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub model: String,
    /// The length the model is bound to (or that another template of the request has).
    pub bound: i64,
    pub got: i64,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "model `{}` makes embeddings of {} numbers in this tenant, this one has {}: \
             templates of another embedder need their own model name",
            self.model, self.bound, self.got
        )
    }
}

/// The length `model` is bound to in the tenant, if any: a shipped embedder's own, or the
/// binding's, or that its older templates have.
async fn bound(tx: &impl Exec, model: &str) -> Result<Option<i64>, StoreError> {
    if let Some(dim) = rollcall_protocol::checks::known_embedding_dim(model) {
        return Ok(i64::try_from(dim).ok());
    }
    let dim: Option<Option<i64>> = tx
        .query_opt(
            "SELECT coalesce(
                 (SELECT dim FROM template_models WHERE tenant_id = $1 AND model = $2),
                 (SELECT min(dim) FROM face_templates WHERE tenant_id = $1 AND model = $2))",
            &[&tx.tenant(), &model],
            |r| r.get(0),
        )
        .await?;
    Ok(dim.flatten())
}

/// Checks templates `(model, length)` against their models' bindings and against each other,
/// and binds the models not bound yet. `Ok(Some(_))` names the first template refused; nothing
/// is bound then unless a race was lost after binding (harmless: the binding is what the other
/// writer stored).
pub(crate) async fn check_and_bind(
    tx: &impl Exec,
    templates: &[(&str, i64)],
) -> Result<Option<Mismatch>, StoreError> {
    let mut wanted: HashMap<&str, i64> = HashMap::new();
    for &(model, dim) in templates {
        match wanted.get(model) {
            Some(&first) if first != dim => {
                return Ok(Some(Mismatch {
                    model: model.to_owned(),
                    bound: first,
                    got: dim,
                }));
            }
            Some(_) => {}
            None => {
                wanted.insert(model, dim);
            }
        }
    }
    let mut unbound = Vec::new();
    for (&model, &dim) in &wanted {
        match bound(tx, model).await? {
            Some(b) if b != dim => {
                return Ok(Some(Mismatch {
                    model: model.to_owned(),
                    bound: b,
                    got: dim,
                }));
            }
            Some(_) => {}
            None => unbound.push((model, dim)),
        }
    }
    for (model, dim) in unbound {
        tx.execute(
            "INSERT INTO template_models (tenant_id, model, dim, bound_ms) VALUES ($1, $2, $3, $4)
             ON CONFLICT (tenant_id, model) DO NOTHING",
            &[&tx.tenant(), &model, &dim, &now_ms()],
        )
        .await?;
        // Another writer may have bound it first, to another length.
        if let Some(b) = bound(tx, model).await?
            && b != dim
        {
            return Ok(Some(Mismatch {
                model: model.to_owned(),
                bound: b,
                got: dim,
            }));
        }
    }
    Ok(None)
}
