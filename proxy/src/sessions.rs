//! The live backend sessions of a server, so that `close_sessions` can end
//! those of a cluster or of one backend.
//!
//! A session here is a connection to a backend: a TCP session (client and
//! backend tied together), or an HTTP keep-alive connection to a backend
//! (closing it fails the request in flight on it, if any, and the client
//! connection is closed; idle ones just go).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;

use tokio::sync::Notify;

struct Entry {
    cluster_id: String,
    backend_id: String,
    address: SocketAddr,
    close: Rc<Notify>,
}

/// Every live backend session of one server.
#[derive(Default)]
pub(crate) struct SessionRegistry {
    next: Cell<u64>,
    entries: RefCell<HashMap<u64, Entry>>,
}

/// A session's place in the registry; leaving it (drop) unregisters it.
pub(crate) struct Registration {
    id: u64,
    registry: Rc<SessionRegistry>,
    close: Rc<Notify>,
}

impl Registration {
    /// Resolves when `close_sessions` asks this session to end.
    pub(crate) async fn closed(&self) {
        self.close.notified().await;
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.entries.borrow_mut().remove(&self.id);
    }
}

impl SessionRegistry {
    /// Registers a session with a backend of a cluster.
    pub(crate) fn register(
        self: &Rc<Self>,
        cluster_id: &str,
        backend_id: &str,
        address: SocketAddr,
    ) -> Registration {
        let id = self.next.get();
        self.next.set(id + 1);
        let close = Rc::new(Notify::new());
        self.entries.borrow_mut().insert(
            id,
            Entry {
                cluster_id: cluster_id.to_owned(),
                backend_id: backend_id.to_owned(),
                address,
                close: close.clone(),
            },
        );
        Registration {
            id,
            registry: self.clone(),
            close,
        }
    }

    /// Asks every session of `cluster_id` (of one backend when
    /// `backend_id` or `address` is given) to close; returns how many.
    pub(crate) fn close(
        &self,
        cluster_id: &str,
        backend_id: Option<&str>,
        address: Option<SocketAddr>,
    ) -> u64 {
        let mut closed = 0;
        for entry in self.entries.borrow().values() {
            let matches = entry.cluster_id == cluster_id
                && backend_id.is_none_or(|id| id == entry.backend_id)
                && address.is_none_or(|address| address == entry.address);
            if matches {
                // A stored permit: the session ends even if it is not
                // waiting on it at this very moment.
                entry.close.notify_one();
                closed += 1;
            }
        }
        closed
    }
}
