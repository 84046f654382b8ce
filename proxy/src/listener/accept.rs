//! Listening sockets and the tasks that accept on them: each accepted
//! connection goes to its protocol (`http`, `tcp`), after the PROXY header
//! when the listener expects one.

use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::task::JoinHandle;

use crate::context::{ConnectionGuard, HttpListener, Shared};
use crate::http;
use crate::log_limit::LogLimit;
use crate::proxy_protocol_io;
use crate::tcp::{self, TcpListener};

/// How many connections the kernel queues while the proxy is busy.
const BACKLOG: i32 = 1024;

/// Binds a listening TCP socket with `SO_REUSEADDR` and `SO_REUSEPORT`, so
/// several workers (and an old and a new worker during an upgrade) can
/// listen on the same address and the kernel spreads connections over them.
pub fn bind(address: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    if address.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&address.into()).map_err(|error| {
        io::Error::new(error.kind(), format!("could not bind {address}: {error}"))
    })?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// Starts accepting HTTP or HTTPS connections on `socket` (already
/// listening).
pub(crate) fn spawn_http_accept(
    socket: std::net::TcpListener,
    address: SocketAddr,
    listener: Rc<HttpListener>,
    shared: Rc<Shared>,
) -> io::Result<JoinHandle<()>> {
    spawn_accept(socket, address, shared.clone(), move |mut stream, peer| {
        let (listener, shared) = (listener.clone(), shared.clone());
        let guard = ConnectionGuard::new(&shared);
        // One task kind per listener kind: a plain connection's task does
        // not carry the room a TLS session needs (the whole task is moved
        // into place when spawned).
        if listener.tls.is_some() {
            tokio::task::spawn_local(async move {
                let _guard = guard;
                let Some(client) = client_address(&mut stream, peer, &listener, &shared).await
                else {
                    return;
                };
                http::serve_tls_connection(stream, client, address, listener, shared).await;
            });
        } else {
            tokio::task::spawn_local(async move {
                let _guard = guard;
                let Some(client) = client_address(&mut stream, peer, &listener, &shared).await
                else {
                    return;
                };
                http::serve_connection(stream, client, address, listener, shared).await;
            });
        }
    })
}

/// The client's address: the peer's, or with `expect_proxy` the one its
/// PROXY header gives. That header comes before any HTTP or TLS byte: it is
/// read here, and hyper (or rustls) sees the rest. `None`: no valid header.
async fn client_address(
    stream: &mut tokio::net::TcpStream,
    peer: SocketAddr,
    listener: &HttpListener,
    shared: &Rc<Shared>,
) -> Option<SocketAddr> {
    let (expect_proxy, limit) = {
        let settings = listener.settings.borrow();
        let limit = u64::from(settings.request_timeout.max(1));
        (settings.expect_proxy, std::time::Duration::from_secs(limit))
    };
    proxy_protocol_io::client_address(stream, peer, expect_proxy, limit, shared).await
}

/// Starts accepting TCP connections on `socket` (already listening) for a
/// TCP listener.
pub(crate) fn spawn_tcp_accept(
    socket: std::net::TcpListener,
    address: SocketAddr,
    listener: Rc<TcpListener>,
    shared: Rc<Shared>,
) -> io::Result<JoinHandle<()>> {
    spawn_accept(socket, address, shared.clone(), move |stream, peer| {
        let guard = ConnectionGuard::new(&shared);
        let serve = tcp::serve_connection(stream, peer, address, listener.clone(), shared.clone());
        tokio::task::spawn_local(async move {
            let _guard = guard;
            serve.await;
        });
    })
}

/// The accept loop every listener kind shares: accepts, sheds connections
/// over the server's capacity, sets `TCP_NODELAY`, and hands each stream
/// with its peer address to `serve`.
///
/// Each `serve` counts its connection ([`ConnectionGuard`]) before it
/// spawns the task that serves it: a soft stop that begins before that
/// task first runs still waits for the connection instead of dropping it
/// unanswered (an upgraded worker lost one in a few hundred that way).
fn spawn_accept(
    socket: std::net::TcpListener,
    address: SocketAddr,
    shared: Rc<Shared>,
    serve: impl Fn(tokio::net::TcpStream, SocketAddr) + 'static,
) -> io::Result<JoinHandle<()>> {
    socket.set_nonblocking(true)?;
    let socket = tokio::net::TcpListener::from_std(socket)?;
    Ok(tokio::task::spawn_local(async move {
        loop {
            let (stream, peer) = match socket.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    // A connection reset while queued, or out of
                    // descriptors: keep accepting, after a pause when the
                    // process itself is short of resources.
                    static ACCEPT_FAILED: LogLimit = LogLimit::new(Duration::from_secs(1));
                    if let Some(held_back) = ACCEPT_FAILED.allow() {
                        tracing::warn!(%address, %error, held_back, "accept failed");
                    }
                    if is_resource_exhaustion(&error) {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    continue;
                }
            };
            if shared.connections.get() >= shared.options.max_connections {
                // Over capacity: close it now rather than hold it unserved.
                drop(stream);
                continue;
            }
            let _ = stream.set_nodelay(true);
            serve(stream, peer);
        }
    }))
}

/// Whether an accept failed because the process or the system is short of
/// descriptors or memory: accepting again at once would fail the same way,
/// so the caller pauses first.
pub fn is_resource_exhaustion(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}
