//! The runtime context: what the command loop and every connection task
//! share on the server's thread.
//!
//! [`Shared`] holds the options, the clusters with their balancers, the
//! backend connection pool, the metrics and the connection counters;
//! [`ClusterRuntime`] is one cluster, [`HttpListener`] one HTTP or HTTPS
//! listener. Everything is behind `Rc`/`RefCell`, never a lock: the server
//! and its connections run on one thread.
//!
//! This module sits above the building blocks (router, balancer, pool,
//! metrics, TLS, …), which it imports, and below the protocol modules
//! (`http`, `http2`, `tcp`, `health`, …), the listeners and the server,
//! which import it; it imports none of them.

mod cluster;
mod listener;
mod stopping;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Instant;

use foldhash::HashMap;
use sozu_command::proto::command::response_content::ContentType;
use sozu_command::proto::command::{Event, ResponseStatus, WorkerResponse};
use tokio::sync::{Notify, mpsc};

use crate::balancer::BalancerEvent;
use crate::buffers::BufferPool;
use crate::handle::EVENT_ID;
use crate::metrics::{LiveGauges, Metrics};
use crate::options::ProxyOptions;
use crate::per_ip::ConnectionsPerIp;
use crate::pool::BackendPool;
use crate::sessions::SessionRegistry;

pub(crate) use cluster::ClusterRuntime;
pub(crate) use listener::{HttpListener, TlsListener};
pub(crate) use stopping::{StopWatch, Stopping};

/// State shared by the command loop and every connection task.
pub(crate) struct Shared {
    pub(crate) options: ProxyOptions,
    pub(crate) clusters: RefCell<HashMap<String, Rc<ClusterRuntime>>>,
    pub(crate) pool: BackendPool,
    /// The HTTP/1.1 relay's buffers.
    pub(crate) buffers: BufferPool,
    pub(crate) metrics: RefCell<Metrics>,
    pub(crate) max_connection_attempts: Cell<u32>,
    pub(crate) max_connections_per_ip: Cell<u64>,
    /// Client connections per cluster and IP, for that limit.
    pub(crate) connections_per_ip: ConnectionsPerIp,
    /// Open client connections.
    pub(crate) connections: Cell<usize>,
    /// Woken each time a client connection ends (soft stop waits on it).
    pub(crate) connection_closed: Notify,
    /// Live backend sessions, for `close_sessions`.
    pub(crate) sessions: Rc<SessionRegistry>,
    /// Set when the server starts stopping; connection tasks close their
    /// keep-alive connections gracefully when they see it.
    pub(crate) stopping: Rc<Stopping>,
    /// Where events go: the server's response channel.
    events: mpsc::UnboundedSender<WorkerResponse>,
}

impl Shared {
    /// The context of a server with no cluster and no connection yet;
    /// events are sent on `events` with the id [`EVENT_ID`].
    pub(crate) fn new(
        options: ProxyOptions,
        events: mpsc::UnboundedSender<WorkerResponse>,
    ) -> Shared {
        let max_connection_attempts = options.max_connection_attempts.max(1);
        let max_connections_per_ip = options.max_connections_per_ip;
        Shared {
            metrics: RefCell::new({
                let mut metrics = Metrics::new(&options.name);
                metrics.keep_timings = options.statsd.is_some();
                metrics
            }),
            buffers: BufferPool::new(
                options.buffer_size,
                options.min_buffers,
                options.max_buffers,
            ),
            options,
            clusters: RefCell::new(HashMap::default()),
            pool: BackendPool::default(),
            max_connection_attempts: Cell::new(max_connection_attempts),
            max_connections_per_ip: Cell::new(max_connections_per_ip),
            connections_per_ip: ConnectionsPerIp::default(),
            connections: Cell::new(0),
            connection_closed: Notify::new(),
            sessions: Rc::default(),
            stopping: Rc::default(),
            events,
        }
    }

    /// Reports balancer events as protocol events.
    pub(crate) fn report(&self, events: impl IntoIterator<Item = BalancerEvent>) {
        for event in events {
            self.send_event(event.to_event());
        }
    }

    /// Sends one event to whoever reads the server's responses.
    pub(crate) fn send_event(&self, event: Event) {
        let _ = self.events.send(WorkerResponse {
            id: EVENT_ID.to_owned(),
            status: ResponseStatus::Processing as i32,
            message: String::new(),
            content: Some(ContentType::Event(event).into()),
        });
    }

    /// The attempt budget of a request to `cluster`.
    pub(crate) fn connection_attempts(
        &self,
        cluster: &sozu_command::proto::command::Cluster,
    ) -> u32 {
        cluster
            .max_connection_attempts
            .unwrap_or_else(|| self.max_connection_attempts.get())
            .max(1)
    }

    /// The gauges `query_metrics` reports besides the metrics' own
    /// counters, read now.
    pub(crate) fn live_gauges(&self) -> LiveGauges {
        let now = Instant::now();
        LiveGauges {
            connections: self.connections.get(),
            max_connections: self.options.max_connections,
            idle_backend_connections: self.pool.idle_count(),
            available_backends: self
                .clusters
                .borrow()
                .iter()
                .map(|(id, cluster)| (id.clone(), cluster.balancer.borrow().available(now)))
                .collect(),
            backends_up: self
                .clusters
                .borrow()
                .iter()
                .map(|(id, cluster)| {
                    let balancer = cluster.balancer.borrow();
                    let up = balancer
                        .availability(now)
                        .map(|(backend, up)| (backend.to_owned(), up))
                        .collect();
                    (id.clone(), up)
                })
                .collect(),
        }
    }
}

/// One open client connection: counted from [`ConnectionGuard::new`] until
/// the guard is dropped, however the connection task ends.
pub(crate) struct ConnectionGuard(Rc<Shared>);

impl ConnectionGuard {
    /// Counts a new client connection (open connections and accepted
    /// ones).
    pub(crate) fn new(shared: &Rc<Shared>) -> Self {
        shared.connections.set(shared.connections.get() + 1);
        shared.metrics.borrow_mut().accepted += 1;
        ConnectionGuard(shared.clone())
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        let shared = &self.0;
        shared
            .connections
            .set(shared.connections.get().saturating_sub(1));
        shared.connection_closed.notify_one();
    }
}
