//! Opening HTTP/1.1 connections to backends, for the relay and the hyper
//! path alike: both take them from, and give them back to, the same
//! [`crate::pool::BackendPool`] as [`RawConnection`]s.

use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;

use crate::balancer::Backend;
use crate::context::{ClusterRuntime, Shared};
use crate::deadline::Deadline;
use crate::pool::RawConnection;

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
            tracing::debug!(backend = %backend.address(), %error, "backend connection failed");
            let events = cluster
                .balancer
                .borrow_mut()
                .connect_failed(backend, Instant::now());
            shared.report(events);
            return Err(());
        }
    };
    let _ = stream.set_nodelay(true);
    let elapsed = started.elapsed();
    let events = cluster
        .balancer
        .borrow_mut()
        .connect_succeeded(backend, Instant::now(), elapsed);
    shared.report(events);
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
