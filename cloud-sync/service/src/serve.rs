//! Serving HTTP/1.1 so that a crowd of slow or silent clients cannot hold the server: each
//! connection must send a request's head within `header_timeout` (which also closes a
//! keep-alive connection idle that long), each request must be answered within
//! `request_timeout` (body included; 408 otherwise — a streamed answer such as a live feed may
//! then run as long as it likes), and at most `max_connections` are open at once (one over it
//! is closed at once, so the process keeps its file descriptors and `/healthz` keeps answering).
//! On shutdown, no new connection is taken, idle ones are closed and requests in flight finish.
//!
//! axum's own `serve` offers none of these limits; this is the same loop over hyper with them.

use std::{
    convert::Infallible,
    net::SocketAddr,
    pin::pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{
    Router,
    extract::ConnectInfo,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{net::TcpListener, sync::Semaphore};
use tower::ServiceExt as _;

use crate::problem::Problem;

/// The limits of [`serve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnLimits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub request_timeout: Duration,
}

impl Default for ConnLimits {
    /// 1024 connections, 10 s for a request's head (or idle between requests), 60 s a request.
    fn default() -> Self {
        Self {
            max_connections: 1024,
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
        }
    }
}

/// What [`serve`] refused, for a server's metrics.
#[derive(Debug, Default)]
pub struct ServeCounts {
    /// Connections closed at once because `max_connections` were open.
    pub over_cap: AtomicU64,
    /// Requests answered 408 because they took longer than `request_timeout`.
    pub timed_out: AtomicU64,
}

/// Serves `router` on `listener` with `limits` until `shutdown` resolves, then drains: no new
/// connection, idle ones closed, requests in flight finished. Handlers see the client's
/// address as `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnLimits,
    counts: Arc<ServeCounts>,
    shutdown: impl Future<Output = ()>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let (closing, closed) = tokio::sync::watch::channel(false);
    let mut shutdown = pin!(shutdown);
    let mut warned: Option<Instant> = None;
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors or a connection reset before it was taken: wait
                    // a moment rather than spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            counts.over_cap.fetch_add(1, Ordering::Relaxed);
            if warned.is_none_or(|at| at.elapsed() > Duration::from_secs(10)) {
                warned = Some(Instant::now());
                tracing::warn!(
                    max = limits.max_connections,
                    "connection limit reached: new connections are closed at once"
                );
            }
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (router, counts, mut closed) = (router.clone(), counts.clone(), closed.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: hyper::Request<_>| {
                let (router, counts) = (router.clone(), counts.clone());
                async move {
                    let mut req = req.map(axum::body::Body::new);
                    req.extensions_mut().insert(ConnectInfo(remote));
                    let answer = tokio::time::timeout(limits.request_timeout, router.oneshot(req));
                    Ok::<Response, Infallible>(match answer.await {
                        Ok(Ok(response)) => response,
                        Ok(Err(never)) => match never {},
                        Err(_) => {
                            counts.timed_out.fetch_add(1, Ordering::Relaxed);
                            timed_out(limits.request_timeout, remote)
                        }
                    })
                }
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .keep_alive(true);
            let mut conn = pin!(
                builder
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades()
            );
            tokio::select! {
                served = conn.as_mut() => {
                    if let Err(e) = served {
                        tracing::debug!(error = %e, "connection ended");
                    }
                }
                _ = async { closed.wait_for(|c| *c).await.map(|_| ()) } => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
            drop(permit);
        });
    }
    drop(listener);
    let _ = closing.send(true);
    drop(closed);
    // Every connection task holds a receiver: this returns once the last one has ended.
    closing.closed().await;
}

fn timed_out(limit: Duration, remote: SocketAddr) -> Response {
    tracing::warn!(client = %remote, "request not answered within {} s: 408", limit.as_secs_f64());
    let mut response = Problem::new(
        StatusCode::REQUEST_TIMEOUT,
        "request-timeout",
        "Request timeout",
        format!(
            "the request was not received and answered within {} s",
            limit.as_secs_f64()
        ),
    )
    .into_response();
    response.headers_mut().insert(
        axum::http::header::CONNECTION,
        axum::http::HeaderValue::from_static("close"),
    );
    response
}
