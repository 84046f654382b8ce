//! Listening sockets and the tasks that accept on them.

use std::io;
use std::net::SocketAddr;
use std::rc::Rc;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::task::JoinHandle;

use crate::http;
use crate::server::{HttpListener, Shared};

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
    socket.set_nonblocking(true)?;
    let socket = tokio::net::TcpListener::from_std(socket)?;
    Ok(tokio::task::spawn_local(async move {
        loop {
            let (stream, peer) = match socket.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of descriptors or a connection reset while queued:
                    // keep serving; back off briefly on resource errors.
                    tracing::warn!(%address, %error, "accept failed");
                    if is_resource_exhaustion(&error) {
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                    continue;
                }
            };
            if shared.connections.get() >= shared.options.max_connections {
                // Over capacity: drop it now rather than hold it unanswered.
                drop(stream);
                continue;
            }
            let _ = stream.set_nodelay(true);
            if listener.tls.is_some() {
                tokio::task::spawn_local(http::serve_tls_connection(
                    stream,
                    peer,
                    address,
                    listener.clone(),
                    shared.clone(),
                ));
            } else {
                tokio::task::spawn_local(http::serve_connection(
                    stream,
                    peer,
                    address,
                    listener.clone(),
                    shared.clone(),
                ));
            }
        }
    }))
}

fn is_resource_exhaustion(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}
