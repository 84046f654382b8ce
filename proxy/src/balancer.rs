//! Stand-in balancer (round robin); replaced by the full balancer.

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use sozu_command::proto::command::AddBackend;

/// A backend and its counters.
#[derive(Debug)]
pub struct Backend {
    /// Id.
    pub id: String,
    /// Address.
    pub address: SocketAddr,
    /// Sticky id.
    pub sticky_id: Option<String>,
    /// Active connections.
    pub connections: Cell<usize>,
}

impl Backend {
    /// The cookie value.
    pub fn sticky_value(&self) -> &str {
        self.sticky_id.as_deref().unwrap_or(&self.id)
    }
}

/// An event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BalancerEvent {
    /// Down.
    BackendDown(Rc<Backend>),
}

/// Backends of a cluster.
#[derive(Debug, Default)]
pub struct Balancer {
    backends: Vec<Rc<Backend>>,
    next: Cell<usize>,
}

impl PartialEq for Backend {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id && self.address == other.address
    }
}
impl Eq for Backend {}

impl Balancer {
    /// Empty.
    pub fn new() -> Self {
        Self::default()
    }
    /// Adds.
    pub fn add_backend(&mut self, backend: &AddBackend) {
        let address = backend.address.to_socket_addr();
        self.backends
            .retain(|b| !(b.id == backend.backend_id && b.address == address));
        self.backends.push(Rc::new(Backend {
            id: backend.backend_id.clone(),
            address,
            sticky_id: backend.sticky_id.clone(),
            connections: Cell::new(0),
        }));
    }
    /// Removes.
    pub fn remove_backend(&mut self, id: &str, address: SocketAddr) -> bool {
        let before = self.backends.len();
        self.backends
            .retain(|b| !(b.id == id && b.address == address));
        before != self.backends.len()
    }
    /// Chooses.
    pub fn choose(
        &self,
        _now: Instant,
        sticky: Option<&str>,
        exclude: &[Rc<Backend>],
    ) -> Option<Rc<Backend>> {
        if let Some(sticky) = sticky
            && let Some(b) = self
                .backends
                .iter()
                .find(|b| b.sticky_value() == sticky && !exclude.contains(b))
        {
            return Some(b.clone());
        }
        let candidates: Vec<_> = self
            .backends
            .iter()
            .filter(|b| !exclude.contains(b))
            .collect();
        if candidates.is_empty() {
            return None;
        }
        let i = self.next.get();
        self.next.set(i.wrapping_add(1));
        Some(candidates[i % candidates.len()].clone())
    }
    /// Success.
    pub fn connect_succeeded(
        &self,
        _backend: &Rc<Backend>,
        _now: Instant,
        _time: Duration,
    ) -> Vec<BalancerEvent> {
        vec![]
    }
    /// Failure.
    pub fn connect_failed(&self, _backend: &Rc<Backend>, _now: Instant) -> Vec<BalancerEvent> {
        vec![]
    }
    /// Number of backends.
    pub fn len(&self) -> usize {
        self.backends.len()
    }
    /// No backends.
    pub fn is_empty(&self) -> bool {
        self.backends.is_empty()
    }
}

impl Backend {
    /// A request starts on this backend.
    pub fn request_started(&self) {}
    /// A request ends on this backend.
    pub fn request_finished(&self) {}
    /// A connection opens.
    pub fn connection_opened(&self) {
        self.connections.set(self.connections.get() + 1);
    }
    /// A connection closes.
    pub fn connection_closed(&self) {
        self.connections
            .set(self.connections.get().saturating_sub(1));
    }
}

impl BalancerEvent {
    /// The protocol event kind and backend concerned.
    pub fn kind_and_backend(&self) -> (sozu_command::proto::command::EventKind, Option<&Backend>) {
        match self {
            BalancerEvent::BackendDown(b) => (
                sozu_command::proto::command::EventKind::BackendDown,
                Some(b),
            ),
        }
    }
}

impl Balancer {
    /// Applies a cluster's policy.
    pub fn configure(
        &mut self,
        _cluster: &sozu_command::proto::command::Cluster,
    ) -> Result<(), String> {
        Ok(())
    }
    /// Backends that can be chosen.
    pub fn available(&self) -> usize {
        self.backends.len()
    }
}
