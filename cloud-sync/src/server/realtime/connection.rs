//! One WebSocket connection, from the upgrade to its close: client frames answered in order,
//! the hub's messages for its topics passed on, a resume replayed from the stream, and the
//! connection closed — with a documented code — when its user is signed out, its tenant
//! suspended, it falls behind, or the server stops.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use axum::extract::ws::{CloseFrame, Message as WsMessage, Utf8Bytes, WebSocket};

use crate::server::{
    http::router::AppState,
    realtime::{
        frames::{self, ClientFrame, ServerFrame, Topic, close},
        tickets::Ticket,
    },
    store::TenantScope,
};

/// How often a connection checks that its user, session and tenant still stand.
pub const RECHECK: Duration = Duration::from_secs(2);
/// Longest gap replayed on a resume; a longer one gets `resync`.
pub const MAX_REPLAY: i64 = 10_000;

/// Whether the messages after `since` (below the head) can be replayed: the stream still holds
/// the first of them and the gap is at most [`MAX_REPLAY`]; else the client gets `resync`.
pub fn replayable(since: i64, bounds: crate::server::realtime::stream::Bounds) -> bool {
    let kept = bounds.oldest.is_some_and(|oldest| since + 1 >= oldest);
    kept && bounds.head - since <= MAX_REPLAY
}

struct Live {
    state: Arc<AppState>,
    scope: TenantScope,
    ticket: Ticket,
    socket: WebSocket,
    /// Per topic subscribed with `since`: messages up to this number came from the replay.
    replayed: HashMap<String, i64>,
}

enum End {
    Client,
    Code(u16, &'static str),
}

pub(crate) async fn run(
    state: Arc<AppState>,
    scope: TenantScope,
    ticket: Ticket,
    socket: WebSocket,
) {
    let head = match state.store.stream_bounds(&scope).await {
        Ok(b) => b.head,
        Err(e) => {
            tracing::warn!(tenant = scope.slug(), error = %e, "a connection could not read its stream");
            return;
        }
    };
    let (member, mut queue) = state.hub.join(scope.id(), head);
    let mut stop = state.hub.stop.clone();
    let mut live = Live {
        state: state.clone(),
        scope,
        ticket,
        socket,
        replayed: HashMap::new(),
    };
    tracing::info!(tenant = live.scope.slug(), user = ?live.ticket.user_id, "real-time connection opened");
    let mut recheck = tokio::time::interval(RECHECK);
    recheck.tick().await;
    let end = loop {
        tokio::select! {
            frame = live.socket.recv() => match frame {
                Some(Ok(WsMessage::Text(text))) => {
                    if let Err(e) = live.frame(&member, text.as_str()).await {
                        break e;
                    }
                }
                Some(Ok(WsMessage::Binary(_))) => {
                    let e = frames::error("invalid-frame", "frames are JSON text");
                    if live.send(&e).await.is_err() { break End::Client; }
                }
                Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => {}
                Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => break End::Client,
            },
            m = queue.recv() => match m {
                Some(m) => {
                    if live.deliver(&m).await.is_err() { break End::Client; }
                }
                None => break End::Code(close::SLOW_CONSUMER, "slow consumer"),
            },
            () = member.conn.kick.notified() => {
                break if member.conn.slow.load(Ordering::Acquire) {
                    End::Code(close::SLOW_CONSUMER, "slow consumer: resume with since")
                } else {
                    End::Code(close::SUSPENDED, "tenant suspended")
                };
            }
            _ = recheck.tick() => {
                if let Some(end) = still_stands(&live.state, &live.scope, &live.ticket).await { break end; }
            }
            () = stop.wait() => break End::Code(close::GOING_AWAY, "server shutting down"),
        }
    };
    if let End::Code(code, reason) = end {
        tracing::info!(
            tenant = live.scope.slug(),
            code,
            reason,
            "real-time connection closed"
        );
        let _ = live
            .socket
            .send(WsMessage::Close(Some(CloseFrame {
                code,
                reason: Utf8Bytes::from_static(reason),
            })))
            .await;
    }
    drop(member);
}

impl Live {
    async fn send(&mut self, frame: &ServerFrame) -> Result<(), axum::Error> {
        let text = serde_json::to_string(frame).unwrap_or_default();
        self.socket.send(WsMessage::Text(text.into())).await
    }

    async fn deliver(&mut self, d: &super::hub::Delivery) -> Result<(), axum::Error> {
        let m = &d.message;
        if self
            .replayed
            .get(&m.topic)
            .or_else(|| self.replayed.get("tenant"))
            .is_some_and(|upto| m.seq <= *upto)
        {
            return Ok(());
        }
        self.socket.send(WsMessage::Text(d.text.clone())).await
    }

    async fn frame(&mut self, member: &super::hub::Member, text: &str) -> Result<(), End> {
        let reply = match frames::parse(text) {
            Err(e) => e,
            Ok(ClientFrame::Ping { id }) => ServerFrame::Pong { id },
            Ok(ClientFrame::Ack { .. }) => return Ok(()),
            Ok(ClientFrame::Unsubscribe { topics }) => {
                self.state.hub.unsubscribe(member, &topics);
                ServerFrame::Unsubscribed { topics }
            }
            Ok(ClientFrame::Subscribe { topics, since }) => {
                return self.subscribe(member, topics, since).await;
            }
        };
        self.send(&reply).await.map_err(|_| End::Client)
    }

    async fn subscribe(
        &mut self,
        member: &super::hub::Member,
        topics: Vec<String>,
        since: Option<i64>,
    ) -> Result<(), End> {
        let mut granted = Vec::new();
        for t in topics {
            let mut verdict = Topic::parse(&t).and_then(|topic| {
                frames::allowed(&topic, self.ticket.role, self.ticket.user_id.as_deref())
            });
            if let (Err(why), Ok(Topic::Job(id))) = (&verdict, Topic::parse(&t))
                && why == frames::JOB_OF_ANOTHER
                && started(&self.state, &self.scope, self.ticket.user_id.as_deref(), id).await
            {
                verdict = Ok(());
            }
            match verdict {
                Ok(()) => granted.push(t),
                Err(why) => {
                    let code = if why.starts_with("topic `") {
                        "invalid-topic"
                    } else {
                        "forbidden"
                    };
                    self.send(&frames::error(code, why))
                        .await
                        .map_err(|_| End::Client)?;
                }
            }
        }
        if granted.is_empty() {
            return Ok(());
        }
        // Delivered live from now on; what came before is replayed below, once.
        self.state.hub.subscribe(member, &granted);
        let bounds = match self.state.store.stream_bounds(&self.scope).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "reading the stream's bounds failed");
                let _ = self
                    .send(&frames::error(
                        "unavailable",
                        "the stream cannot be read now; try again",
                    ))
                    .await;
                return Ok(());
            }
        };
        self.send(&ServerFrame::Subscribed {
            topics: granted.clone(),
            head: bounds.head,
        })
        .await
        .map_err(|_| End::Client)?;
        let Some(since) = since.filter(|s| *s < bounds.head) else {
            return Ok(());
        };
        if !replayable(since, bounds) {
            return self
                .send(&ServerFrame::Resync {
                    topics: granted,
                    head: bounds.head,
                })
                .await
                .map_err(|_| End::Client);
        }
        let wanted: HashSet<String> = granted.iter().cloned().collect();
        let mut after = since;
        while after < bounds.head {
            let page = match self.state.store.stream_after(&self.scope, after, 500).await {
                Ok(p) if !p.is_empty() => p,
                _ => break,
            };
            for m in page.iter().filter(|m| m.seq <= bounds.head) {
                after = m.seq;
                if frames::delivers(&wanted, &m.topic) {
                    let text = serde_json::to_string(m).unwrap_or_default();
                    self.socket
                        .send(WsMessage::Text(text.into()))
                        .await
                        .map_err(|_| End::Client)?;
                }
            }
            if page.last().is_some_and(|m| m.seq >= bounds.head) {
                break;
            }
        }
        for t in granted {
            self.replayed.insert(t, bounds.head);
        }
        Ok(())
    }
}

/// `None` while the connection's user, session and tenant still stand; else how it ends.
async fn still_stands(state: &AppState, scope: &TenantScope, ticket: &Ticket) -> Option<End> {
    let tenant = state.tenants.get_by_id(&state.store, scope.id()).await;
    match tenant {
        Ok(Some(t)) if t.scope().is_some() => {}
        Ok(_) => return Some(End::Code(close::SUSPENDED, "tenant suspended")),
        Err(_) => return None,
    }
    let signed_out = Some(End::Code(close::SIGNED_OUT, "signed out"));
    if let Some(id) = &ticket.user_id {
        match state.store.user(scope, id).await {
            Ok(Some(u)) if u.accepts_token_issued_at(ticket.issued_ms) => {}
            Ok(_) => return signed_out,
            Err(_) => return None,
        }
    }
    if let Some(session) = &ticket.session_sha256 {
        match state.store.live_session(scope, session).await {
            Ok(Some(_)) => {}
            Ok(None) => return signed_out,
            Err(_) => return None,
        }
    }
    None
}

/// Whether `user` started job `id` of the tenant.
async fn started(state: &AppState, scope: &TenantScope, user: Option<&str>, id: i64) -> bool {
    let Some(user) = user else {
        return false;
    };
    match state.store.job(scope, id).await {
        Ok(Some(job)) => job.actor.as_deref() == Some(&format!("user:{user}")),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::realtime::stream::Bounds;

    #[test]
    fn a_gap_is_replayed_only_while_the_stream_holds_it_and_it_is_short() {
        let b = |oldest, head| Bounds { oldest, head };
        assert!(replayable(10, b(Some(1), 110)));
        assert!(
            replayable(10, b(Some(11), 110)),
            "the first missing one is held"
        );
        assert!(!replayable(10, b(Some(12), 110)), "number 11 was purged");
        assert!(!replayable(10, b(None, 110)), "all purged");
        assert!(
            !replayable(0, b(Some(1), MAX_REPLAY + 1)),
            "too long to replay"
        );
        assert!(replayable(0, b(Some(1), MAX_REPLAY)));
    }
}
