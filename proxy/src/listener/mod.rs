//! The listeners of a server: one per address, HTTP (or HTTPS) or TCP,
//! each accepting or not.
//!
//! Public here: [`bind`], how every listening socket is made, and
//! [`is_resource_exhaustion`], which tells an accept failure that calls
//! for a pause. The rest is the server's own: `Listeners` is the table
//! its command loop changes; the accept tasks it starts (`accept`) hand
//! each connection to its protocol module. Sockets handed over by the
//! server this one replaces (an upgrade) are kept there until a listener
//! on their address is activated.

mod accept;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::rc::Rc;

use tokio::task::JoinHandle;

use crate::context::{HttpListener, Shared};
use crate::handle::ListenSocket;
use crate::tcp::TcpListener;

pub(crate) use accept::bind;
pub use accept::is_resource_exhaustion;

/// What a listener serves, with the state its connections share.
pub(crate) enum ListenerKind {
    /// HTTP, or HTTPS when the listener has its TLS side.
    Http(Rc<HttpListener>),
    /// TCP, relayed to one cluster's backends.
    Tcp(Rc<TcpListener>),
}

/// A listener and, while it is active, its accepting task.
pub(crate) struct Listener {
    pub(crate) kind: ListenerKind,
    active: Option<ActiveListener>,
}

impl Listener {
    /// The HTTP side of an HTTP or HTTPS listener.
    pub(crate) fn http(&self) -> Option<&Rc<HttpListener>> {
        match &self.kind {
            ListenerKind::Http(http) => Some(http),
            ListenerKind::Tcp(_) => None,
        }
    }

    /// The TCP side of a TCP listener.
    pub(crate) fn tcp(&self) -> Option<&Rc<TcpListener>> {
        match &self.kind {
            ListenerKind::Tcp(tcp) => Some(tcp),
            ListenerKind::Http(_) => None,
        }
    }

    /// Stops accepting, if it was.
    fn deactivate(&mut self) {
        if let Some(active) = self.active.take() {
            active.accept_task.abort();
        }
    }
}

/// The accepting side of an active listener.
struct ActiveListener {
    accept_task: JoinHandle<()>,
    /// A duplicate of the listening socket, kept to hand over on upgrade.
    socket: OwnedFd,
}

/// Every listener of a server, by address, with the sockets handed over
/// by the server it replaces that no listener took yet.
#[derive(Default)]
pub(crate) struct Listeners {
    by_address: HashMap<SocketAddr, Listener>,
    adopted: Vec<ListenSocket>,
}

impl Listeners {
    /// Keeps sockets handed over by the server this one replaces, for the
    /// listeners activated on their addresses.
    pub(crate) fn adopt(&mut self, sockets: Vec<ListenSocket>) {
        self.adopted.extend(sockets);
    }

    /// The listener on `address`.
    pub(crate) fn get(&self, address: &SocketAddr) -> Option<&Listener> {
        self.by_address.get(address)
    }

    /// Every listener with its address.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&SocketAddr, &Listener)> {
        self.by_address.iter()
    }

    /// The HTTP or HTTPS listener on `address`.
    pub(crate) fn http(&self, address: SocketAddr) -> Result<Rc<HttpListener>, String> {
        self.by_address
            .get(&address)
            .and_then(Listener::http)
            .cloned()
            .ok_or_else(|| format!("no HTTP or HTTPS listener on {address}"))
    }

    /// The HTTPS listener on `address`.
    pub(crate) fn https(&self, address: SocketAddr) -> Result<Rc<HttpListener>, String> {
        self.by_address
            .get(&address)
            .and_then(Listener::http)
            .filter(|listener| listener.tls.is_some())
            .cloned()
            .ok_or_else(|| format!("no HTTPS listener on {address}"))
    }

    /// Adds a listener, listening first when it is `active`: when the
    /// address cannot be listened on, nothing is added. A listener already
    /// on the address is replaced (and stops accepting).
    pub(crate) fn insert(
        &mut self,
        address: SocketAddr,
        kind: ListenerKind,
        active: bool,
        shared: &Rc<Shared>,
    ) -> Result<(), String> {
        let mut listener = Listener { kind, active: None };
        if active {
            listener.active = Some(open(
                &mut self.adopted,
                address,
                &listener.kind,
                false,
                shared,
            )?);
        }
        if let Some(mut replaced) = self.by_address.insert(address, listener) {
            replaced.deactivate();
        }
        Ok(())
    }

    /// Removes the listener on `address`, which stops accepting.
    pub(crate) fn remove(&mut self, address: SocketAddr) {
        if let Some(mut listener) = self.by_address.remove(&address) {
            listener.deactivate();
        }
    }

    /// Starts accepting on `address` (nothing to do when it already does).
    /// `from_scm`: only a handed-over socket may be used.
    pub(crate) fn activate(
        &mut self,
        address: SocketAddr,
        from_scm: bool,
        shared: &Rc<Shared>,
    ) -> Result<(), String> {
        let Some(listener) = self.by_address.get_mut(&address) else {
            return Err(format!("no listener on {address}"));
        };
        if listener.active.is_none() {
            let active = open(&mut self.adopted, address, &listener.kind, from_scm, shared)?;
            listener.active = Some(active);
        }
        Ok(())
    }

    /// Stops accepting on `address`; the listener stays.
    pub(crate) fn deactivate(&mut self, address: SocketAddr) {
        if let Some(listener) = self.by_address.get_mut(&address) {
            listener.deactivate();
        }
    }

    /// Duplicates of the sockets of the active listeners, to hand over to
    /// the server that replaces this one.
    pub(crate) fn share_sockets(&self) -> Vec<ListenSocket> {
        self.by_address
            .iter()
            .filter_map(|(address, listener)| {
                let active = listener.active.as_ref()?;
                let fd = active.socket.try_clone().ok()?;
                Some(ListenSocket {
                    address: *address,
                    fd,
                })
            })
            .collect()
    }

    /// Stops accepting on every listener.
    pub(crate) fn stop_accepting(&mut self) {
        for listener in self.by_address.values_mut() {
            listener.deactivate();
        }
    }
}

/// Starts accepting on a listener's address: a socket handed over by the
/// server this one replaces when there is one, else a new one. Changes
/// nothing but `adopted` (the socket taken from it), so a failure leaves
/// the listener as it was.
fn open(
    adopted: &mut Vec<ListenSocket>,
    address: SocketAddr,
    kind: &ListenerKind,
    from_scm: bool,
    shared: &Rc<Shared>,
) -> Result<ActiveListener, String> {
    // A socket handed over by the server this one replaces is used
    // whenever there is one: connections already queued on it must be
    // accepted here, not lost with a fresh socket.
    let handed_over = adopted
        .iter()
        .position(|socket| socket.address == address)
        .map(|position| adopted.swap_remove(position));
    let socket = match handed_over {
        Some(adopted) => std::net::TcpListener::from(adopted.fd),
        None if from_scm => return Err(format!("no handed-over socket for {address}")),
        None => bind(address).map_err(|error| error.to_string())?,
    };
    let duplicate = socket
        .try_clone()
        .map_err(|error| format!("could not duplicate the socket of {address}: {error}"))?;
    let accept_task = match kind {
        ListenerKind::Http(http) => {
            accept::spawn_http_accept(socket, address, http.clone(), shared.clone())
        }
        ListenerKind::Tcp(tcp) => {
            accept::spawn_tcp_accept(socket, address, tcp.clone(), shared.clone())
        }
    }
    .map_err(|error| format!("could not listen on {address}: {error}"))?;
    Ok(ActiveListener {
        accept_task,
        socket: duplicate.into(),
    })
}
