//! The API's HTTP/1.1 server: hyper's connection with a timer, so that a connection's time
//! to send a request's headers is bounded, and a bound on open connections.
//!
//! `axum::serve` has neither: a client that sends half a request line keeps its connection
//! (and its task and buffers) forever. Here:
//! - `api.header_read_timeout_ms`: a connection that has not sent a whole request head
//!   this long after it opened, or after its previous response, is closed. The same timer
//!   closes idle keep-alive connections (hyper starts it whenever it waits for a head).
//! - `api.max_connections`: at most this many connections are served at once; further
//!   ones wait in the listen backlog until one closes.
//! - Shutdown: stop accepting, let in-flight requests finish (idle connections close at
//!   once), then return.
//!
//! HTTP/2 cleartext (h2c) is not served: clients and proxies talk HTTP/1.1 to the API.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::ApiConfig;

/// Serves `app` on `listener` until `shutdown` completes, then drains in-flight requests.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    config: &ApiConfig,
    shutdown: impl Future<Output = ()>,
) {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(config.header_read_timeout_ms.get()))
        .keep_alive(true);
    let connections = Arc::new(Semaphore::new(config.max_connections.get()));
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = Arc::clone(&connections).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_closed) => break,
            },
        };
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(error) => {
                    // Out of file descriptors, or the peer gave up: wait, do not spin.
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
        let service = TowerToHyperService::new(app.clone());
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                // Header timeouts, resets, malformed requests: the client's doing.
                tracing::debug!(%error, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
