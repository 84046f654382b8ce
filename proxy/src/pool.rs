//! Idle keep-alive connections to backends, owned by one server.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;

use hyper::client::conn::http1::SendRequest;

use crate::body::ForwardedBody;

/// Idle connections kept per backend address; more are closed.
const MAX_IDLE_PER_BACKEND: usize = 256;

/// Keep-alive connections to backends waiting for their next request.
#[derive(Default)]
pub(crate) struct BackendPool {
    idle: RefCell<HashMap<SocketAddr, Vec<SendRequest<ForwardedBody>>>>,
}

impl BackendPool {
    /// An idle connection to `address` that is still open, if any.
    pub(crate) fn take(&self, address: SocketAddr) -> Option<SendRequest<ForwardedBody>> {
        let mut idle = self.idle.borrow_mut();
        let connections = idle.get_mut(&address)?;
        while let Some(sender) = connections.pop() {
            if !sender.is_closed() {
                return Some(sender);
            }
        }
        None
    }

    /// Puts a connection back after a complete exchange.
    pub(crate) fn give(&self, address: SocketAddr, sender: SendRequest<ForwardedBody>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.borrow_mut();
        let connections = idle.entry(address).or_default();
        if connections.len() < MAX_IDLE_PER_BACKEND {
            connections.push(sender);
        }
    }

    /// Idle connections held, all backends together.
    pub(crate) fn idle_count(&self) -> usize {
        self.idle.borrow().values().map(Vec::len).sum()
    }

    /// Closes the idle connections of a backend that is gone.
    pub(crate) fn forget(&self, address: SocketAddr) {
        self.idle.borrow_mut().remove(&address);
    }
}
