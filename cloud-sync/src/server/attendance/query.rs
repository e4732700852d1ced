//! How attendance events are listed: filters and sort orders on whitelisted fields (newest node
//! time first by default), and two ways to page — limit/offset (API v1) and an opaque keyset
//! cursor (API v2), which stays correct while new events arrive and costs the same on page 1000
//! as on page 1. Each sort order has its index, `(tenant_id, <time>, id)`.

use base64::Engine as _;

use crate::server::store::{
    Store, StoreError, TenantScope, decode_event,
    exec::{Exec, Row, in_tenant},
};
use rollcall_protocol::wire::{Decision, StoredEvent};

impl Store {
    /// The tenant's events in `filter`'s order, from `start`, at most `limit` (and at most
    /// [`MAX_PAGE`]).
    pub async fn events(
        &self,
        scope: &TenantScope,
        filter: EventFilter,
        start: PageStart,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let limit = limit.min(MAX_PAGE);
        in_tenant!(read self, scope, |tx| page(tx, &filter, &start, limit))
    }

    /// One of the tenant's events by id.
    pub async fn event(
        &self,
        scope: &TenantScope,
        id: &str,
    ) -> Result<Option<StoredEvent>, StoreError> {
        let id = id.to_owned();
        in_tenant!(read self, scope, |tx| async {
            tx.query_opt(
                &format!("SELECT {EVENT_COLUMNS} FROM events WHERE tenant_id = $1 AND id = $2"),
                &[&tx.tenant(), &id],
                read_event,
            )
            .await?
            .transpose()
        })
    }
}

const EVENT_COLUMNS: &str = "id, node_id, received_ms, body";

/// A row of [`EVENT_COLUMNS`].
fn read_event(r: &Row<'_>) -> Result<Result<StoredEvent, StoreError>, StoreError> {
    let (id, node_id, received_ms, body): (String, String, i64, String) =
        (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?);
    Ok(decode_event(id, node_id, received_ms, &body))
}

async fn page(
    tx: &impl Exec,
    f: &EventFilter,
    start: &PageStart,
    limit: u32,
) -> Result<Vec<StoredEvent>, StoreError> {
    let (offset, after) = match start {
        PageStart::Offset(n) => (*n, None),
        PageStart::After(c) => (0, Some(c)),
    };
    // The order's column and direction are fixed strings chosen by `Sort`.
    let (col, dir, after_op) = (f.sort.column(), f.sort.direction(), f.sort.after());
    tx.query(
        &format!(
            "SELECT {EVENT_COLUMNS} FROM events
             WHERE tenant_id = $1 AND (CAST($2 AS TEXT) IS NULL OR site_id = $2)
               AND (CAST($3 AS TEXT) IS NULL OR person_id = $3)
               AND (CAST($4 AS TEXT) IS NULL OR decision = $4)
               AND (CAST($5 AS BIGINT) IS NULL OR node_time_ms >= $5)
               AND (CAST($6 AS BIGINT) IS NULL OR node_time_ms < $6)
               AND (CAST($7 AS BIGINT) IS NULL
                    OR (tenant_id, {col}, id) {after_op} ($1, $7, CAST($8 AS TEXT)))
             ORDER BY {col} {dir}, id {dir} LIMIT $9 OFFSET $10"
        ),
        &[
            &tx.tenant(),
            &f.site_id,
            &f.person_id,
            &f.decision.map(|d| d.as_str()),
            &f.from_ms,
            &f.to_ms,
            &after.map(|c| c.key),
            &after.map(|c| c.id.as_str()),
            &i64::from(limit),
            &i64::from(offset),
        ],
        read_event,
    )
    .await?
    .into_iter()
    .collect()
}

/// Most items one page may hold.
pub const MAX_PAGE: u32 = 1000;

/// A time an event list can be ordered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    /// When the node decided.
    NodeTime,
    /// When the cloud received it.
    Received,
}

/// An order: a whitelisted key, newest or oldest first, ties broken by event id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort {
    pub key: SortKey,
    pub descending: bool,
}

impl Default for Sort {
    fn default() -> Self {
        Sort {
            key: SortKey::NodeTime,
            descending: true,
        }
    }
}

impl Sort {
    /// What `sort=` accepts: a field, `-` first for newest first.
    pub const ALLOWED: [&'static str; 4] = [
        "-node_time_ms",
        "node_time_ms",
        "-received_ms",
        "received_ms",
    ];

    pub fn parse(s: &str) -> Option<Self> {
        let (descending, field) = match s.strip_prefix('-') {
            Some(f) => (true, f),
            None => (false, s),
        };
        let key = match field {
            "node_time_ms" => SortKey::NodeTime,
            "received_ms" => SortKey::Received,
            _ => return None,
        };
        Some(Sort { key, descending })
    }

    pub fn as_str(self) -> &'static str {
        match (self.key, self.descending) {
            (SortKey::NodeTime, true) => "-node_time_ms",
            (SortKey::NodeTime, false) => "node_time_ms",
            (SortKey::Received, true) => "-received_ms",
            (SortKey::Received, false) => "received_ms",
        }
    }

    /// The column (a fixed name, never the client's text).
    pub fn column(self) -> &'static str {
        match self.key {
            SortKey::NodeTime => "node_time_ms",
            SortKey::Received => "received_ms",
        }
    }

    pub fn direction(self) -> &'static str {
        if self.descending { "DESC" } else { "ASC" }
    }

    /// How a row after the cursor compares to it.
    pub fn after(self) -> &'static str {
        if self.descending { "<" } else { ">" }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventFilter {
    pub site_id: Option<String>,
    pub person_id: Option<String>,
    pub decision: Option<Decision>,
    /// Node time at or after (ms since the epoch).
    pub from_ms: Option<i64>,
    /// Node time before.
    pub to_ms: Option<i64>,
    pub sort: Sort,
}

/// Where a page starts.
#[derive(Debug, Clone, PartialEq)]
pub enum PageStart {
    Offset(u32),
    /// Strictly after this event in the cursor's order.
    After(Cursor),
}

/// The last event of a page: the order it was listed in, its sort key and its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub sort: Sort,
    pub key: i64,
    pub id: String,
}

impl Cursor {
    pub fn encode(&self) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!(
            "{}:{}:{}",
            self.sort.as_str(),
            self.key,
            self.id
        ))
    }

    /// `None` for anything this server did not hand out.
    pub fn decode(s: &str) -> Option<Self> {
        if s.len() > 128 {
            return None;
        }
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s)
            .ok()?;
        let text = String::from_utf8(raw).ok()?;
        let (sort, key, id) = match text.split(':').collect::<Vec<_>>()[..] {
            [sort, key, id] => (Sort::parse(sort)?, key, id),
            // Cursors handed out before sort orders existed: newest node time first.
            [key, id] => (Sort::default(), key, id),
            _ => return None,
        };
        let valid_id = id.len() == 26 && id.bytes().all(|b| b.is_ascii_alphanumeric());
        if !valid_id {
            return None;
        }
        Some(Cursor {
            sort,
            key: key.parse().ok()?,
            id: id.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn cursors_round_trip_and_junk_is_refused() {
        for sort in Sort::ALLOWED {
            let c = Cursor {
                sort: Sort::parse(sort).expect("allowed"),
                key: 1_700_000_000_000,
                id: "01HZZZZZZZZZZZZZZZZZZZZZZA".into(),
            };
            assert_eq!(Cursor::decode(&c.encode()), Some(c));
        }
        // An older server's cursor still reads, as the default order.
        let legacy = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode("1700000000000:01HZZZZZZZZZZZZZZZZZZZZZZA");
        assert_eq!(
            Cursor::decode(&legacy).map(|c| c.sort),
            Some(Sort::default())
        );
        for s in Sort::ALLOWED {
            assert_eq!(Sort::parse(s).map(Sort::as_str), Some(s));
        }
        for bad in [
            "",
            "-",
            "risk_score",
            "--node_time_ms",
            "node_time_ms ",
            "id; DROP",
        ] {
            assert_eq!(Sort::parse(bad), None, "{bad}");
        }
        for junk in ["", "!!!", "bm90IGEgY3Vyc29y", &"A".repeat(200)] {
            assert_eq!(Cursor::decode(junk), None, "{junk}");
        }
    }

    proptest! {
        #[test]
        fn decoding_any_text_never_panics(s in "\\PC{0,160}") {
            let _ = Cursor::decode(&s);
        }
    }
}
