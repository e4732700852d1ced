//! Face templates, sealed with the tenant's data key (`sealing`): the database holds only
//! ciphertext bound to its tenant, person and id, and each tenant's data key only wrapped by the
//! server's master key. The admin API lists a template's metadata, never its vector; the vectors
//! are opened only for the tenant's own nodes (sync).

use serde::Serialize;

use crate::server::people::store::PeopleError;

use crate::server::sealing::{self, DataKey, MasterKey, Sealed};
use crate::server::{
    audit::store::Audit,
    people::changes::note_change,
    store::{
        Store, StoreError, TenantScope,
        exec::{Exec, in_tenant},
    },
};
use rollcall_service::clock::now_ms;

/// Most templates one person may have (several photos, a few confirmed check-ins).
pub const MAX_PER_PERSON: i64 = 20;

/// A template as the API shows it: what and when, never the vector.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct TemplateInfo {
    pub id: String,
    pub person_id: String,
    /// The embedder that made it (templates of different models are not comparable).
    pub model: String,
    /// Length of the vector.
    pub dim: u32,
    pub created_ms: i64,
}

#[derive(Debug, Clone)]
pub struct NewTemplate {
    pub id: String,
    pub person_id: String,
    pub model: String,
    pub vector: Vec<f32>,
}

impl Store {
    /// Seals and stores a template; [`PeopleError::NoPerson`] if the person is not the tenant's,
    /// [`PeopleError::TooManyTemplates`] if they have [`MAX_PER_PERSON`] already,
    /// [`PeopleError::TemplateDimension`] if its model makes embeddings of another length
    /// (`model_dims`).
    pub async fn add_template(
        &self,
        scope: &TenantScope,
        master: &MasterKey,
        t: NewTemplate,
        audit: Audit,
    ) -> Result<TemplateInfo, StoreError> {
        let master = master.clone();
        in_tenant!(write self, scope, audit, |tx| add(tx, &master, &t))
    }

    /// A person's templates, oldest first (metadata only).
    pub async fn templates(
        &self,
        scope: &TenantScope,
        person_id: &str,
    ) -> Result<Vec<TemplateInfo>, StoreError> {
        let person = person_id.to_owned();
        let sealed = in_tenant!(read self, scope, |tx| sealed_templates(tx, &person))?;
        Ok(sealed.into_iter().map(|(info, _)| info).collect())
    }

    /// A person's templates with their vectors, opened (for the tenant's nodes).
    pub async fn template_vectors(
        &self,
        scope: &TenantScope,
        master: &MasterKey,
        person_id: &str,
    ) -> Result<Vec<(TemplateInfo, Vec<f32>)>, StoreError> {
        let person = person_id.to_owned();
        let sealed = in_tenant!(read self, scope, |tx| sealed_templates(tx, &person))?;
        if sealed.is_empty() {
            return Ok(Vec::new());
        }
        let master = master.clone();
        let dek = in_tenant!(internal self, scope, |tx| data_key(tx, &master))?;
        sealed
            .into_iter()
            .map(|(info, sealed)| {
                let place = sealing::template_place(scope.id(), &info.person_id, &info.id);
                let bytes = dek.open(&place, &sealed)?;
                let vector = sealing::bytes_vector(&bytes).ok_or(sealing::SealError::Open)?;
                Ok((info, vector))
            })
            .collect()
    }

    /// Opens (or makes) the tenant's data key with `master`: fails when `master` is not the key
    /// the tenant's data was sealed with (checked at start-up).
    pub async fn check_master_key(
        &self,
        scope: &TenantScope,
        master: &MasterKey,
    ) -> Result<(), StoreError> {
        let master = master.clone();
        in_tenant!(internal self, scope, |tx| data_key(tx, &master)).map(drop)
    }

    pub async fn delete_template(
        &self,
        scope: &TenantScope,
        person_id: &str,
        id: &str,
        audit: Audit,
    ) -> Result<bool, StoreError> {
        let (person, id) = (person_id.to_owned(), id.to_owned());
        in_tenant!(write self, scope, audit, |tx| delete(tx, &person, &id))
    }
}

fn info(id: String, person_id: String, model: String, dim: i64, created_ms: i64) -> TemplateInfo {
    TemplateInfo {
        id,
        person_id,
        model,
        dim: u32::try_from(dim).unwrap_or(0),
        created_ms,
    }
}

/// The tenant's data key, made (once, whatever the races between replicas) on first use.
pub(crate) async fn data_key(tx: &impl Exec, master: &MasterKey) -> Result<DataKey, StoreError> {
    let t = tx.tenant();
    let stored = async || {
        tx.query_opt(
            "SELECT nonce, wrapped FROM tenant_keys WHERE tenant_id = $1",
            &[&t],
            |r| {
                Ok(Sealed {
                    nonce: r.get(0)?,
                    ciphertext: r.get(1)?,
                })
            },
        )
        .await
    };
    if let Some(wrapped) = stored().await? {
        return Ok(master.unwrap_data_key(t, &wrapped)?);
    }
    let (fresh, wrapped) = master.new_data_key(t)?;
    let n = tx
        .execute(
            "INSERT INTO tenant_keys (tenant_id, nonce, wrapped, created_ms) VALUES ($1, $2, $3, $4)
             ON CONFLICT (tenant_id) DO NOTHING",
            &[&t, &wrapped.nonce, &wrapped.ciphertext, &now_ms()],
        )
        .await?;
    if n == 1 {
        return Ok(fresh);
    }
    // Another replica made it first.
    let wrapped = stored().await?.ok_or(StoreError::Key)?;
    Ok(master.unwrap_data_key(t, &wrapped)?)
}

crate::server::store::exec::always_changed!(TemplateInfo);

async fn add(
    tx: &impl Exec,
    master: &MasterKey,
    t: &NewTemplate,
) -> Result<TemplateInfo, StoreError> {
    // Locks the person: their template count cannot be raced past the limit.
    let count: Option<i64> = tx
        .query_opt(
            &format!(
                "SELECT (SELECT count(*) FROM face_templates WHERE tenant_id = $1 AND person_id = $2)
                 FROM people WHERE tenant_id = $1 AND id = $2{}",
                tx.dialect().lock_rows()
            ),
            &[&tx.tenant(), &t.person_id],
            |r| r.get(0),
        )
        .await?;
    match count {
        None => return Err(PeopleError::NoPerson(t.person_id.clone()).into()),
        Some(n) if n >= MAX_PER_PERSON => {
            return Err(PeopleError::TooManyTemplates(t.person_id.clone()).into());
        }
        Some(_) => {}
    }
    let dim = t.vector.len() as i64;
    if let Some(m) = super::model_dims::check_and_bind(tx, &[(t.model.as_str(), dim)]).await? {
        return Err(PeopleError::TemplateDimension(m).into());
    }
    let dek = data_key(tx, master).await?;
    let sealed = dek.seal(
        &sealing::template_place(tx.tenant(), &t.person_id, &t.id),
        &sealing::vector_bytes(&t.vector),
    )?;
    let created_ms = now_ms();
    tx.execute(
        "INSERT INTO face_templates (tenant_id, id, person_id, model, dim, nonce, sealed, created_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        &[
            &tx.tenant(),
            &t.id,
            &t.person_id,
            &t.model,
            &dim,
            &sealed.nonce,
            &sealed.ciphertext,
            &created_ms,
        ],
    )
    .await?;
    note_change(tx, &t.person_id, false).await?;
    Ok(info(
        t.id.clone(),
        t.person_id.clone(),
        t.model.clone(),
        dim,
        created_ms,
    ))
}

async fn sealed_templates(
    tx: &impl Exec,
    person: &str,
) -> Result<Vec<(TemplateInfo, Sealed)>, StoreError> {
    tx.query(
        "SELECT id, person_id, model, dim, created_ms, nonce, sealed FROM face_templates
         WHERE tenant_id = $1 AND person_id = $2 ORDER BY created_ms, id",
        &[&tx.tenant(), &person],
        |r| {
            Ok((
                info(r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?),
                Sealed {
                    nonce: r.get(5)?,
                    ciphertext: r.get(6)?,
                },
            ))
        },
    )
    .await
}

async fn delete(tx: &impl Exec, person: &str, id: &str) -> Result<bool, StoreError> {
    let n = tx
        .execute(
            "DELETE FROM face_templates WHERE tenant_id = $1 AND person_id = $2 AND id = $3",
            &[&tx.tenant(), &person, &id],
        )
        .await?;
    if n > 0 {
        note_change(tx, person, false).await?;
    }
    Ok(n > 0)
}
