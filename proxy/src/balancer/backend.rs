//! A backend as the server holds it while it uses it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use super::BalancerEvent;

/// One backend of a cluster: where to connect, plus the live counters of
/// what is using it.
///
/// The [`Balancer`](super::Balancer) hands out `Arc<Backend>`s. A handle
/// stays valid after its backend is removed from the cluster (it is just no
/// longer chosen), so a connection or request in flight can always report
/// its end. Counters are atomics so that a handle is `Send` and `Sync` and
/// counting needs neither the balancer nor a lock.
#[derive(Debug)]
pub struct Backend {
    cluster_id: String,
    id: String,
    address: SocketAddr,
    /// The address as text, for access records.
    address_text: String,
    /// Replaced as a whole when the backend is updated in place; read by
    /// cloning the `Arc` out, so the lock is held for a reference count.
    settings: Mutex<Arc<BackendSettings>>,
    connections: AtomicUsize,
    requests: AtomicUsize,
    removed: AtomicBool,
    drain_reported: AtomicBool,
}

/// The settings of a backend that an update may change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendSettings {
    /// The value of the sticky-session cookie that leads to this backend:
    /// its `sticky_id`, else its backend id.
    pub sticky_value: String,
    /// The weight used by random balancing; 100 when the backend did not
    /// set one (or set 0, which is what Sozu's CLI sends for "unset").
    pub weight: u32,
    /// A backup is only chosen when no other backend can be.
    pub backup: bool,
    /// A unix socket path to connect to instead of the address, if given.
    pub unix_path: Option<String>,
}

impl Backend {
    pub(crate) fn new(
        cluster_id: &str,
        id: &str,
        address: SocketAddr,
        settings: BackendSettings,
    ) -> Backend {
        Backend {
            cluster_id: cluster_id.to_owned(),
            id: id.to_owned(),
            address,
            address_text: address.to_string(),
            settings: Mutex::new(Arc::new(settings)),
            connections: AtomicUsize::new(0),
            requests: AtomicUsize::new(0),
            removed: AtomicBool::new(false),
            drain_reported: AtomicBool::new(false),
        }
    }

    /// The cluster this backend belongs to.
    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    /// The backend id; several backends may share one on different
    /// addresses.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The address to connect to.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// [`Backend::address`] as text, written once.
    pub fn address_text(&self) -> &str {
        &self.address_text
    }

    /// The current settings (sticky value, weight, backup, unix path).
    pub fn settings(&self) -> Arc<BackendSettings> {
        Arc::clone(&self.settings.lock().unwrap_or_else(PoisonError::into_inner))
    }

    pub(crate) fn replace_settings(&self, settings: BackendSettings) {
        *self.settings.lock().unwrap_or_else(PoisonError::into_inner) = Arc::new(settings);
    }

    /// Open connections to this backend.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    /// Requests being served by this backend.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::Relaxed)
    }

    /// Counts a connection to this backend, once it is established.
    pub fn connection_opened(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts the end of a connection. When it was the last one of a backend
    /// removed from its cluster, returns the
    /// [`BalancerEvent::RemovedBackendHasNoConnections`] to publish.
    pub fn connection_closed(&self) -> Option<BalancerEvent> {
        let previous = decrement(&self.connections);
        if previous == 1 {
            self.drained_event()
        } else {
            None
        }
    }

    /// Counts a request sent to this backend.
    pub fn request_started(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts the end of a request (answered, failed or abandoned).
    pub fn request_finished(&self) {
        decrement(&self.requests);
    }

    /// Whether the backend was removed from its cluster.
    pub fn is_removed(&self) -> bool {
        self.removed.load(Ordering::SeqCst)
    }

    pub(crate) fn mark_removed(&self) {
        self.removed.store(true, Ordering::SeqCst);
    }

    /// [`BalancerEvent::RemovedBackendHasNoConnections`] if the backend is
    /// removed and has no connection left, the first time only. Call it
    /// right after removing a backend: one removed while idle gets no
    /// [`Backend::connection_closed`] to report it.
    pub fn drained_event(&self) -> Option<BalancerEvent> {
        let drained = self.is_removed() && self.connections.load(Ordering::SeqCst) == 0;
        (drained && !self.drain_reported.swap(true, Ordering::SeqCst)).then(|| {
            BalancerEvent::RemovedBackendHasNoConnections {
                cluster_id: self.cluster_id.clone(),
                backend_id: self.id.clone(),
                address: self.address,
            }
        })
    }
}

/// Decrements without going below zero (an unmatched end is a caller bug
/// that must not wrap a counter around) and returns the previous value.
fn decrement(counter: &AtomicUsize) -> usize {
    counter
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |count| {
            count.checked_sub(1)
        })
        .unwrap_or(0)
}
