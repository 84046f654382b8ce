//! Opening HTTP/1.1 connections to backends, for the relay and the hyper
//! path alike: both take them from, and give them back to, the same
//! [`crate::pool::BackendPool`] as [`RawConnection`]s.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::balancer::Backend;
use crate::body::ForwardedBody;
use crate::context::{ClusterRuntime, Shared};
use crate::deadline::Deadline;
use crate::pool::{BackendSender, RawConnection};

/// Tells `backend`'s balancer that a connection to it failed (logged at
/// debug level), and reports what the balancer made of it.
pub(super) fn connect_failed(
    shared: &Shared,
    cluster: &ClusterRuntime,
    backend: &Arc<Backend>,
    error: &dyn std::fmt::Display,
) {
    tracing::debug!(backend = %backend.address(), %error, "backend connection failed");
    let events = cluster
        .balancer
        .borrow_mut()
        .connect_failed(backend, Instant::now());
    shared.report(events);
}

/// Tells `backend`'s balancer that a connection to it opened in `elapsed`,
/// and reports what the balancer made of it.
pub(super) fn connect_succeeded(
    shared: &Shared,
    cluster: &ClusterRuntime,
    backend: &Arc<Backend>,
    elapsed: Duration,
) {
    let events = cluster
        .balancer
        .borrow_mut()
        .connect_succeeded(backend, Instant::now(), elapsed);
    shared.report(events);
}

/// Opens a connection to `backend`, telling its balancer how it went, and
/// counts it (backend's connections, metrics, sessions `close_sessions`
/// can end) until it closes. Returns it with the time connecting took.
pub(super) async fn connect(
    shared: &Rc<Shared>,
    cluster: &ClusterRuntime,
    cluster_id: &str,
    backend: &Arc<Backend>,
    (deadline, timeout): (&mut Deadline, Duration),
) -> Result<(RawConnection, Duration), ()> {
    let started = Instant::now();
    let stream = match deadline
        .within(timeout, TcpStream::connect(backend.address()))
        .await
    {
        Ok(Ok(stream)) => stream,
        result => {
            let error = match result {
                Ok(Err(error)) => error.to_string(),
                _ => "connection timed out".to_owned(),
            };
            connect_failed(shared, cluster, backend, &error);
            return Err(());
        }
    };
    let _ = stream.set_nodelay(true);
    let elapsed = started.elapsed();
    connect_succeeded(shared, cluster, backend, elapsed);
    backend.connection_opened();
    shared
        .metrics
        .borrow_mut()
        .backend_connection(cluster_id, backend.id(), true);
    let registration = shared
        .sessions
        .register(cluster_id, backend.id(), backend.address());
    let weak = Rc::downgrade(shared);
    let closing = backend.clone();
    let closing_cluster = cluster_id.to_owned();
    let on_close = Box::new(move || {
        if let Some(shared) = weak.upgrade() {
            shared.report(closing.connection_closed());
            shared
                .metrics
                .borrow_mut()
                .backend_connection(&closing_cluster, closing.id(), false);
        }
    });
    Ok((
        RawConnection::new(stream, backend.clone(), registration, on_close),
        elapsed,
    ))
}

/// Runs hyper's HTTP/1.1 client over a pooled connection, for one exchange
/// of the hyper path. When the exchange ended cleanly on a connection the
/// backend keeps alive ([`crate::pool::BackendPool::give`]) and hyper lets
/// go of the stream with nothing unread, the stream goes back to the pool
/// for the next request of either path; otherwise it closes. A protocol
/// upgrade (`upgrade`) keeps the stream for good.
pub(super) async fn drive(
    shared: &Rc<Shared>,
    raw: RawConnection,
    upgrade: bool,
) -> std::io::Result<BackendSender> {
    let (stream, detached) = raw.detach();
    let (sender, connection) = hyper::client::conn::http1::Builder::new()
        .handshake::<_, ForwardedBody>(TokioIo::new(stream))
        .await
        .map_err(std::io::Error::other)?;
    let reusable = Rc::new(Cell::new(false));
    let kept = reusable.clone();
    let shared = shared.clone();
    tokio::task::spawn_local(async move {
        // Ends with the exchange, or when `close_sessions` asks; dropping
        // `detached` closes the connection's accounting.
        if upgrade {
            tokio::select! {
                _ = connection.with_upgrades() => {}
                () = detached.closed() => {}
            }
            return;
        }
        let parts = tokio::select! {
            parts = connection.without_shutdown() => parts.ok(),
            () = detached.closed() => None,
        };
        if let Some(parts) = parts
            && kept.get()
            && parts.read_buf.is_empty()
        {
            let stream = parts.io.into_inner();
            shared.pool.give_raw(detached.attach(stream));
        }
    });
    Ok(BackendSender::Http1 { sender, reusable })
}
