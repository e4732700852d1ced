//! Face templates, sealed with the tenant's data key (`sealing`): the database holds only
//! ciphertext bound to its tenant, person and id, and each tenant's data key only wrapped by the
//! server's master key. The admin API lists a template's metadata, never its vector; the vectors
//! are opened only for the tenant's own nodes (sync).

use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use super::{
    PgStore, SqliteStore, Store, StoreError, TenantScope,
    audit::Audit,
    blocking,
    postgres::{append_audit as pg_audit, scoped},
    sqlite::append_audit,
};
use crate::server::sealing::{self, DataKey, MasterKey, Sealed};
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
    /// Seals and stores a template; [`StoreError::Invalid`] if the person is not the tenant's,
    /// [`StoreError::Conflict`] if they have [`MAX_PER_PERSON`] already.
    pub async fn add_template(
        &self,
        scope: &TenantScope,
        master: &MasterKey,
        t: NewTemplate,
        audit: Audit,
    ) -> Result<TemplateInfo, StoreError> {
        let (scope, master) = (scope.clone(), master.clone());
        match self {
            Store::Sqlite(s) => {
                blocking(s, move |s| s.add_template(&scope, &master, &t, &audit)).await
            }
            Store::Postgres(p) => p.add_template(&scope, &master, &t, &audit).await,
        }
    }

    /// A person's templates, oldest first (metadata only).
    pub async fn templates(
        &self,
        scope: &TenantScope,
        person_id: &str,
    ) -> Result<Vec<TemplateInfo>, StoreError> {
        Ok(self
            .sealed_templates(scope, person_id)
            .await?
            .into_iter()
            .map(|(info, _)| info)
            .collect())
    }

    /// A person's templates with their vectors, opened (for the tenant's nodes).
    pub async fn template_vectors(
        &self,
        scope: &TenantScope,
        master: &MasterKey,
        person_id: &str,
    ) -> Result<Vec<(TemplateInfo, Vec<f32>)>, StoreError> {
        let sealed = self.sealed_templates(scope, person_id).await?;
        if sealed.is_empty() {
            return Ok(Vec::new());
        }
        let dek = match self {
            Store::Sqlite(s) => {
                let (scope, master) = (scope.clone(), master.clone());
                blocking(s, move |s| s.data_key(&scope, &master)).await?
            }
            Store::Postgres(p) => p.data_key(scope, master).await?,
        };
        sealed
            .into_iter()
            .map(|(info, sealed)| {
                let place = sealing::template_place(scope.id, &info.person_id, &info.id);
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
        match self {
            Store::Sqlite(s) => {
                let (scope, master) = (scope.clone(), master.clone());
                blocking(s, move |s| s.data_key(&scope, &master).map(drop)).await
            }
            Store::Postgres(p) => p.data_key(scope, master).await.map(drop),
        }
    }

    async fn sealed_templates(
        &self,
        scope: &TenantScope,
        person_id: &str,
    ) -> Result<Vec<(TemplateInfo, Sealed)>, StoreError> {
        let (scope, person) = (scope.clone(), person_id.to_owned());
        match self {
            Store::Sqlite(s) => blocking(s, move |s| s.sealed_templates(&scope, &person)).await,
            Store::Postgres(p) => p.sealed_templates(&scope, &person).await,
        }
    }

    pub async fn delete_template(
        &self,
        scope: &TenantScope,
        person_id: &str,
        id: &str,
        audit: Audit,
    ) -> Result<bool, StoreError> {
        let (scope, person, id) = (scope.clone(), person_id.to_owned(), id.to_owned());
        match self {
            Store::Sqlite(s) => {
                blocking(s, move |s| s.delete_template(&scope, &person, &id, &audit)).await
            }
            Store::Postgres(p) => p.delete_template(&scope, &person, &id, &audit).await,
        }
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

fn too_many(person: &str) -> StoreError {
    StoreError::Conflict(format!(
        "person `{person}` has {MAX_PER_PERSON} templates already; delete one first"
    ))
}

fn no_person(person: &str) -> StoreError {
    StoreError::Invalid(format!("no person `{person}`"))
}

impl SqliteStore {
    pub(super) fn data_key(
        &self,
        scope: &TenantScope,
        master: &MasterKey,
    ) -> Result<DataKey, StoreError> {
        let stored = self
            .conn
            .query_row(
                "SELECT nonce, wrapped FROM tenant_keys WHERE tenant_id = ?1",
                [scope.id],
                |r| {
                    Ok(Sealed {
                        nonce: r.get(0)?,
                        ciphertext: r.get(1)?,
                    })
                },
            )
            .optional()?;
        if let Some(wrapped) = stored {
            return Ok(master.unwrap_data_key(scope.id, &wrapped)?);
        }
        let (dek, wrapped) = master.new_data_key(scope.id)?;
        self.conn.execute(
            "INSERT INTO tenant_keys (tenant_id, nonce, wrapped, created_ms) VALUES (?1, ?2, ?3, ?4)",
            params![scope.id, wrapped.nonce, wrapped.ciphertext, now_ms()],
        )?;
        Ok(dek)
    }

    fn add_template(
        &mut self,
        scope: &TenantScope,
        master: &MasterKey,
        t: &NewTemplate,
        audit: &Audit,
    ) -> Result<TemplateInfo, StoreError> {
        let dek = self.data_key(scope, master)?;
        let tx = self.conn.transaction()?;
        let count: Option<i64> = tx
            .query_row(
                "SELECT (SELECT count(*) FROM face_templates WHERE tenant_id = ?1 AND person_id = ?2)
                 FROM people WHERE tenant_id = ?1 AND id = ?2",
                params![scope.id, t.person_id],
                |r| r.get(0),
            )
            .optional()?;
        match count {
            None => return Err(no_person(&t.person_id)),
            Some(n) if n >= MAX_PER_PERSON => return Err(too_many(&t.person_id)),
            Some(_) => {}
        }
        let sealed = dek.seal(
            &sealing::template_place(scope.id, &t.person_id, &t.id),
            &sealing::vector_bytes(&t.vector),
        )?;
        let created_ms = now_ms();
        tx.execute(
            "INSERT INTO face_templates (tenant_id, id, person_id, model, dim, nonce, sealed, created_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                scope.id,
                t.id,
                t.person_id,
                t.model,
                t.vector.len() as i64,
                sealed.nonce,
                sealed.ciphertext,
                created_ms
            ],
        )?;
        append_audit(&tx, scope.id, audit)?;
        Self::note_person_change(&tx, scope.id, &t.person_id, false)?;
        tx.commit()?;
        Ok(info(
            t.id.clone(),
            t.person_id.clone(),
            t.model.clone(),
            t.vector.len() as i64,
            created_ms,
        ))
    }

    fn sealed_templates(
        &self,
        scope: &TenantScope,
        person: &str,
    ) -> Result<Vec<(TemplateInfo, Sealed)>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, person_id, model, dim, created_ms, nonce, sealed FROM face_templates
             WHERE tenant_id = ?1 AND person_id = ?2 ORDER BY created_ms, id",
        )?;
        let rows = stmt.query_map(params![scope.id, person], |r| {
            Ok((
                info(r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?),
                Sealed {
                    nonce: r.get(5)?,
                    ciphertext: r.get(6)?,
                },
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn delete_template(
        &mut self,
        scope: &TenantScope,
        person: &str,
        id: &str,
        audit: &Audit,
    ) -> Result<bool, StoreError> {
        let tx = self.conn.transaction()?;
        let n = tx.execute(
            "DELETE FROM face_templates WHERE tenant_id = ?1 AND person_id = ?2 AND id = ?3",
            params![scope.id, person, id],
        )?;
        if n > 0 {
            append_audit(&tx, scope.id, audit)?;
            Self::note_person_change(&tx, scope.id, person, false)?;
        }
        tx.commit()?;
        Ok(n > 0)
    }
}

impl PgStore {
    async fn data_key(
        &self,
        scope: &TenantScope,
        master: &MasterKey,
    ) -> Result<DataKey, StoreError> {
        let mut client = self.client().await?;
        let tx = scoped(&mut client, scope).await?;
        let dek = Self::data_key_in(&tx, scope, master).await?;
        tx.commit().await?;
        Ok(dek)
    }

    /// The tenant's data key, made (once, whatever the races between replicas) on first use.
    pub(super) async fn data_key_in(
        tx: &tokio_postgres::Transaction<'_>,
        scope: &TenantScope,
        master: &MasterKey,
    ) -> Result<DataKey, StoreError> {
        let (fresh, wrapped) = master.new_data_key(scope.id)?;
        let n = tx
            .execute(
                "INSERT INTO tenant_keys (tenant_id, nonce, wrapped, created_ms) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (tenant_id) DO NOTHING",
                &[&scope.id, &wrapped.nonce, &wrapped.ciphertext, &now_ms()],
            )
            .await?;
        if n == 1 {
            return Ok(fresh);
        }
        let row = tx
            .query_one(
                "SELECT nonce, wrapped FROM tenant_keys WHERE tenant_id = $1",
                &[&scope.id],
            )
            .await?;
        let stored = Sealed {
            nonce: row.get(0),
            ciphertext: row.get(1),
        };
        Ok(master.unwrap_data_key(scope.id, &stored)?)
    }

    async fn add_template(
        &self,
        scope: &TenantScope,
        master: &MasterKey,
        t: &NewTemplate,
        audit: &Audit,
    ) -> Result<TemplateInfo, StoreError> {
        let mut client = self.client().await?;
        let tx = scoped(&mut client, scope).await?;
        // Locks the person: their template count cannot be raced past the limit.
        let count: Option<i64> = tx
            .query_opt(
                "SELECT (SELECT count(*) FROM face_templates WHERE tenant_id = $1 AND person_id = $2)
                 FROM people WHERE tenant_id = $1 AND id = $2 FOR UPDATE",
                &[&scope.id, &t.person_id],
            )
            .await?
            .map(|r| r.get(0));
        match count {
            None => return Err(no_person(&t.person_id)),
            Some(n) if n >= MAX_PER_PERSON => return Err(too_many(&t.person_id)),
            Some(_) => {}
        }
        let dek = Self::data_key_in(&tx, scope, master).await?;
        let sealed = dek.seal(
            &sealing::template_place(scope.id, &t.person_id, &t.id),
            &sealing::vector_bytes(&t.vector),
        )?;
        let created_ms = now_ms();
        let dim = t.vector.len() as i64;
        tx.execute(
            "INSERT INTO face_templates (tenant_id, id, person_id, model, dim, nonce, sealed, created_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                &scope.id,
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
        pg_audit(&tx, scope.id, audit).await?;
        Self::note_person_change(&tx, scope.id, &t.person_id, false).await?;
        tx.commit().await?;
        Ok(info(
            t.id.clone(),
            t.person_id.clone(),
            t.model.clone(),
            dim,
            created_ms,
        ))
    }

    async fn sealed_templates(
        &self,
        scope: &TenantScope,
        person: &str,
    ) -> Result<Vec<(TemplateInfo, Sealed)>, StoreError> {
        let mut client = self.client().await?;
        let tx = scoped(&mut client, scope).await?;
        let rows = tx
            .query(
                "SELECT id, person_id, model, dim, created_ms, nonce, sealed FROM face_templates
                 WHERE tenant_id = $1 AND person_id = $2 ORDER BY created_ms, id",
                &[&scope.id, &person],
            )
            .await?;
        tx.commit().await?;
        Ok(rows
            .iter()
            .map(|r| {
                (
                    info(r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)),
                    Sealed {
                        nonce: r.get(5),
                        ciphertext: r.get(6),
                    },
                )
            })
            .collect())
    }

    async fn delete_template(
        &self,
        scope: &TenantScope,
        person: &str,
        id: &str,
        audit: &Audit,
    ) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let tx = scoped(&mut client, scope).await?;
        let n = tx
            .execute(
                "DELETE FROM face_templates WHERE tenant_id = $1 AND person_id = $2 AND id = $3",
                &[&scope.id, &person, &id],
            )
            .await?;
        if n > 0 {
            pg_audit(&tx, scope.id, audit).await?;
            Self::note_person_change(&tx, scope.id, person, false).await?;
        }
        tx.commit().await?;
        Ok(n > 0)
    }
}
