//! How the workers of a PostgreSQL replica hear of new work: a transaction that enqueues a job
//! sends `pg_notify('rollcall_jobs', '')` (delivered when it commits, to every replica), and
//! one connection per replica `LISTEN`s and pokes the workers. A hint only: a notification
//! lost while the connection is down is made up by the workers' polling, and the connection
//! is made again a second later. SQLite needs none of this (its commits wake the workers in
//! process). The same connection listens for the real-time stream (`realtime::wake`): one
//! listening connection per replica.

use std::time::Duration;

use tokio_postgres::{AsyncMessage, NoTls};

use crate::server::store::{Store, postgres::PgStore};
use rollcall_service::shutdown::Shutdown;

/// The channel of the notifications (`Exec::wake_workers`).
pub(crate) const CHANNEL: &str = "rollcall_jobs";

/// A count of wake-ups that each queue's loop watches (`Store::job_wakeups`).
pub(crate) type Wake = std::sync::Arc<tokio::sync::watch::Sender<u64>>;

pub(crate) fn new_wake() -> Wake {
    std::sync::Arc::new(tokio::sync::watch::Sender::new(0))
}

/// Tells this process's workers that there is new work.
pub(crate) fn poke(wake: &Wake) {
    wake.send_modify(|n| *n = n.wrapping_add(1));
}

/// Until `stop`: listens for enqueued work and wakes this process's workers (PostgreSQL; on
/// SQLite it returns at once).
pub(crate) async fn listen(store: Store, mut stop: Shutdown) {
    let Store::Postgres(pg) = store else {
        return;
    };
    loop {
        match listen_once(&pg, &mut stop).await {
            Ok(true) => return,
            Ok(false) => tracing::warn!(
                "the connection listening for enqueued jobs closed: the workers poll until it is back"
            ),
            Err(e) => tracing::warn!(
                error = %e,
                "listening for enqueued jobs failed: the workers poll until it is back"
            ),
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
            () = stop.wait() => return,
        }
    }
}

/// One listening connection: `true` when `stop` fired, `false` when the connection closed.
async fn listen_once(pg: &PgStore, stop: &mut Shutdown) -> Result<bool, tokio_postgres::Error> {
    let (client, mut conn) = pg.config.connect(NoTls).await?;
    let (wake, stream) = (pg.wake.clone(), pg.stream.clone());
    // Polling for messages also drives the connection (the LISTEN below goes through it).
    let mut driver = tokio::spawn(async move {
        while let Some(message) = futures_util::future::poll_fn(|cx| conn.poll_message(cx)).await {
            if let AsyncMessage::Notification(n) = message? {
                if n.channel() == crate::server::realtime::wake::CHANNEL {
                    match n.payload().parse::<i64>() {
                        Ok(tenant) => stream.mark(tenant),
                        Err(_) => stream.mark_all(),
                    }
                } else {
                    poke(&wake);
                }
            }
        }
        Ok::<(), tokio_postgres::Error>(())
    });
    client
        .batch_execute(&format!(
            "LISTEN {CHANNEL}; LISTEN {}",
            crate::server::realtime::wake::CHANNEL
        ))
        .await?;
    // Anything enqueued or published while this connection was being made: look now (the
    // hub reads the stream of every tenant it serves, repairing what it may have missed).
    poke(&pg.wake);
    pg.stream.mark_all();
    let stopped = tokio::select! {
        ended = &mut driver => match ended {
            Ok(Err(e)) => return Err(e),
            _ => false,
        },
        () = stop.wait() => true,
    };
    drop(client);
    driver.abort();
    Ok(stopped)
}
