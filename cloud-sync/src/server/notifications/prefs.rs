//! Preferences: per user × kind × channel (in-app, email, and a digest window for mail), over
//! the tenant's defaults (stored under the empty user id), over each kind's own. A critical
//! kind is on both channels and mails at once, whatever is stored. Beside them each user's time
//! zone and quiet hours.

use std::collections::HashMap;

use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::server::{
    audit::store::Audit,
    notifications::{
        kinds::{KINDS, Kind},
        quiet::QuietHours,
    },
    store::{
        Store, StoreError, TenantScope,
        exec::{Exec, in_tenant},
    },
};

/// One kind's channels, as they apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pref {
    pub in_app: bool,
    pub email: bool,
    /// 0: each mail at once; else one mail per window of this many minutes.
    pub digest_minutes: u32,
}

/// The longest digest window: a day.
pub const MAX_DIGEST_MINUTES: u32 = 1440;
/// The shortest digest window.
pub const MIN_DIGEST_MINUTES: u32 = 5;

/// What applies to `kind` given the user's stored row and the tenant's.
pub fn resolve(kind: &Kind, user: Option<Pref>, tenant: Option<Pref>) -> Pref {
    if kind.critical {
        return Pref {
            in_app: true,
            email: true,
            digest_minutes: 0,
        };
    }
    user.or(tenant).unwrap_or(Pref {
        in_app: true,
        email: kind.email_by_default,
        digest_minutes: 0,
    })
}

/// A user's time zone and quiet hours.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Settings {
    /// An IANA name; UTC when unset.
    pub time_zone: Option<String>,
    pub quiet_hours: Option<QuietHours>,
}

impl Settings {
    pub fn zone(&self) -> TimeZone {
        self.time_zone
            .as_deref()
            .and_then(|z| TimeZone::get(z).ok())
            .unwrap_or(TimeZone::UTC)
    }
}

/// The tenant's stored rows by (user id, kind): the empty user id holds its defaults.
pub(crate) async fn stored_prefs(
    tx: &impl Exec,
) -> Result<HashMap<(String, String), Pref>, StoreError> {
    let rows: Vec<(String, String, bool, bool, i64)> = tx
        .query(
            "SELECT user_id, kind, in_app, email, digest_minutes FROM notification_prefs
             WHERE tenant_id = $1",
            &[&tx.tenant()],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|(user, kind, in_app, email, digest)| {
            let digest_minutes = u32::try_from(digest).unwrap_or(0);
            (
                (user, kind),
                Pref {
                    in_app,
                    email,
                    digest_minutes,
                },
            )
        })
        .collect())
}

pub(crate) async fn stored_settings(
    tx: &impl Exec,
) -> Result<HashMap<String, Settings>, StoreError> {
    type Stored = (String, Option<String>, Option<i64>, Option<i64>);
    let rows: Vec<Stored> = tx
        .query(
            "SELECT user_id, time_zone, quiet_from, quiet_to FROM notification_settings
             WHERE tenant_id = $1",
            &[&tx.tenant()],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|(user, time_zone, from, to)| {
            let minute = |m: Option<i64>| m.and_then(|m| u16::try_from(m).ok());
            let quiet_hours = match (minute(from), minute(to)) {
                (Some(f), Some(t)) => QuietHours::new(f, t),
                _ => None,
            };
            (
                user,
                Settings {
                    time_zone,
                    quiet_hours,
                },
            )
        })
        .collect())
}

/// One kind's preference, as the API shows and takes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KindPref {
    /// A kind of `GET /api/v1/notification-kinds`.
    #[schema(max_length = 64)]
    pub kind: String,
    pub in_app: bool,
    pub email: bool,
    /// 0: each mail at once; 5-1440: one mail per window of this many minutes.
    #[serde(default)]
    #[schema(maximum = 1440)]
    pub digest_minutes: u32,
}

/// The preferences that apply, for every kind, with where each came from.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct AppliedPref {
    pub kind: String,
    pub critical: bool,
    pub in_app: bool,
    pub email: bool,
    pub digest_minutes: u32,
    /// `user`, `tenant` (the tenant's default) or `default` (the kind's own); `critical` when
    /// the kind cannot be changed.
    pub source: &'static str,
}

/// What a user's (or the tenant's, for `user` empty) preferences come to, every kind.
fn applied(prefs: &HashMap<(String, String), Pref>, user: &str) -> Vec<AppliedPref> {
    KINDS
        .iter()
        .map(|k| {
            let own = prefs.get(&(user.to_owned(), k.name.to_owned())).copied();
            let tenant = prefs.get(&(String::new(), k.name.to_owned())).copied();
            let p = resolve(k, own, tenant);
            let source = match (k.critical, own, tenant) {
                (true, _, _) => "critical",
                (_, Some(_), _) if user.is_empty() => "tenant",
                (_, Some(_), _) => "user",
                (_, None, Some(_)) => "tenant",
                _ => "default",
            };
            AppliedPref {
                kind: k.name.to_owned(),
                critical: k.critical,
                in_app: p.in_app,
                email: p.email,
                digest_minutes: p.digest_minutes,
                source,
            }
        })
        .collect()
}

/// Why preferences were refused (checked before anything is stored).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PrefError {
    #[error("`{0}` is not a kind of notification (see GET /api/v1/notification-kinds)")]
    UnknownKind(String),
    #[error("`{0}` is critical: it cannot be muted or put in a digest")]
    Critical(String),
    #[error("digest_minutes of `{0}` is 0 (no digest) or 5-1440")]
    DigestWindow(String),
    #[error("`{0}` is listed twice")]
    Twice(String),
    #[error("time_zone `{0}` is not an IANA time zone name (such as Europe/Berlin)")]
    Zone(String),
    #[error("quiet_hours must start and end at different times")]
    Quiet,
}

/// Checks a change of preferences: known kinds once each, critical ones left as they are.
pub fn check(kinds: &[KindPref]) -> Result<(), PrefError> {
    for (i, p) in kinds.iter().enumerate() {
        let k = crate::server::notifications::kinds::kind(&p.kind)
            .ok_or_else(|| PrefError::UnknownKind(p.kind.chars().take(64).collect()))?;
        if kinds[..i].iter().any(|o| o.kind == p.kind) {
            return Err(PrefError::Twice(p.kind.clone()));
        }
        if k.critical && (!p.in_app || !p.email || p.digest_minutes != 0) {
            return Err(PrefError::Critical(p.kind.clone()));
        }
        if p.digest_minutes != 0
            && !(MIN_DIGEST_MINUTES..=MAX_DIGEST_MINUTES).contains(&p.digest_minutes)
        {
            return Err(PrefError::DigestWindow(p.kind.clone()));
        }
    }
    Ok(())
}

/// A user's settings change: `None` leaves a field as it is; `Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SettingsChange {
    pub time_zone: Option<Option<String>>,
    pub quiet_hours: Option<Option<QuietHours>>,
}

pub fn check_settings(c: &SettingsChange) -> Result<(), PrefError> {
    if let Some(Some(z)) = &c.time_zone
        && (z.len() > 64 || TimeZone::get(z).is_err())
    {
        return Err(PrefError::Zone(z.chars().take(64).collect()));
    }
    if let Some(Some(q)) = &c.quiet_hours
        && !q.valid()
    {
        return Err(PrefError::Quiet);
    }
    Ok(())
}

/// A user's (or the tenant's) preferences and settings as the API shows them.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    pub kinds: Vec<AppliedPref>,
    pub settings: Settings,
}

crate::server::store::exec::always_changed!(Applied);

impl Store {
    /// What applies to `user` (empty: the tenant's defaults).
    pub async fn notification_prefs(
        &self,
        scope: &TenantScope,
        user: &str,
    ) -> Result<Applied, StoreError> {
        let user = user.to_owned();
        in_tenant!(read self, scope, |tx| async move {
            let prefs = stored_prefs(tx).await?;
            let settings = stored_settings(tx).await?.remove(&user).unwrap_or_default();
            Ok::<_, StoreError>(Applied {
                kinds: applied(&prefs, &user),
                settings,
            })
        })
    }

    /// Stores `kinds` (checked with [`check`]) and `settings` for `user` (empty: the tenant's
    /// defaults, which have no settings); what applies after.
    pub async fn set_notification_prefs(
        &self,
        scope: &TenantScope,
        user: &str,
        kinds: Vec<KindPref>,
        settings: SettingsChange,
        audit: Audit,
    ) -> Result<Applied, StoreError> {
        let user = user.to_owned();
        in_tenant!(write self, scope, audit, |tx| async move {
            for p in &kinds {
                tx.execute(
                    "INSERT INTO notification_prefs (tenant_id, user_id, kind, in_app, email,
                                                     digest_minutes)
                     VALUES ($1, $2, $3, $4, $5, $6)
                     ON CONFLICT (tenant_id, user_id, kind) DO UPDATE
                     SET in_app = excluded.in_app, email = excluded.email,
                         digest_minutes = excluded.digest_minutes",
                    &[
                        &tx.tenant(),
                        &user,
                        &p.kind,
                        &p.in_app,
                        &p.email,
                        &i64::from(p.digest_minutes),
                    ],
                )
                .await?;
            }
            if settings != SettingsChange::default() {
                let mut s = stored_settings(tx).await?.remove(&user).unwrap_or_default();
                if let Some(z) = settings.time_zone {
                    s.time_zone = z;
                }
                if let Some(q) = settings.quiet_hours {
                    s.quiet_hours = q;
                }
                tx.execute(
                    "INSERT INTO notification_settings (tenant_id, user_id, time_zone, quiet_from,
                                                        quiet_to)
                     VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT (tenant_id, user_id) DO UPDATE
                     SET time_zone = excluded.time_zone, quiet_from = excluded.quiet_from,
                         quiet_to = excluded.quiet_to",
                    &[
                        &tx.tenant(),
                        &user,
                        &s.time_zone,
                        &s.quiet_hours.map(|q| i64::from(q.from)),
                        &s.quiet_hours.map(|q| i64::from(q.to)),
                    ],
                )
                .await?;
            }
            let prefs = stored_prefs(tx).await?;
            let settings = stored_settings(tx).await?.remove(&user).unwrap_or_default();
            Ok::<_, StoreError>(Applied {
                kinds: applied(&prefs, &user),
                settings,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::notifications::kinds::{DOOR_HELD_OPEN, TAMPER, kind};
    use proptest::prelude::*;

    fn pref(in_app: bool, email: bool, digest_minutes: u32) -> Pref {
        Pref {
            in_app,
            email,
            digest_minutes,
        }
    }

    #[test]
    fn the_user_overrides_the_tenant_which_overrides_the_kind() {
        let held = kind(DOOR_HELD_OPEN).expect("kind");
        assert_eq!(resolve(held, None, None), pref(true, false, 0));
        let tenant = Some(pref(true, true, 15));
        assert_eq!(resolve(held, None, tenant), pref(true, true, 15));
        assert_eq!(
            resolve(held, Some(pref(false, false, 0)), tenant),
            pref(false, false, 0)
        );
    }

    #[test]
    fn changes_are_checked_before_they_are_stored() {
        let p = |kind: &str, in_app, email, digest| KindPref {
            kind: kind.into(),
            in_app,
            email,
            digest_minutes: digest,
        };
        assert!(check(&[p(DOOR_HELD_OPEN, false, true, 60)]).is_ok());
        assert!(check(&[p(TAMPER, true, true, 0)]).is_ok());
        assert_eq!(
            check(&[p(TAMPER, true, false, 0)]),
            Err(PrefError::Critical(TAMPER.into()))
        );
        assert!(matches!(
            check(&[p("nope", true, true, 0)]),
            Err(PrefError::UnknownKind(_))
        ));
        assert!(matches!(
            check(&[p(DOOR_HELD_OPEN, true, true, 4)]),
            Err(PrefError::DigestWindow(_))
        ));
        assert!(matches!(
            check(&[
                p(DOOR_HELD_OPEN, true, true, 0),
                p(DOOR_HELD_OPEN, true, true, 0)
            ]),
            Err(PrefError::Twice(_))
        ));
        let zone = |z: &str| SettingsChange {
            time_zone: Some(Some(z.into())),
            ..SettingsChange::default()
        };
        assert!(check_settings(&zone("Europe/Berlin")).is_ok());
        assert!(matches!(
            check_settings(&zone("Mars/Olympus")),
            Err(PrefError::Zone(_))
        ));
    }

    proptest! {
        /// Whatever is stored, a critical kind is on both channels and mails at once.
        #[test]
        fn critical_kinds_cannot_be_muted(
            i in 0..KINDS.len(),
            user in proptest::option::of((any::<bool>(), any::<bool>(), 0u32..2000)),
            tenant in proptest::option::of((any::<bool>(), any::<bool>(), 0u32..2000)),
        ) {
            let k = &KINDS[i];
            let p = resolve(k, user.map(|(a, b, c)| pref(a, b, c)), tenant.map(|(a, b, c)| pref(a, b, c)));
            if k.critical {
                prop_assert_eq!(p, pref(true, true, 0));
            } else if let Some((a, b, c)) = user {
                prop_assert_eq!(p, pref(a, b, c));
            }
        }
    }
}
