//! HTTP proxying: one task per client connection. The request's way:
//!
//! - this module accepts the connection (TLS handshake, ALPN) and decides
//!   who serves it: the HTTP/1.1 relay ([`relay`]) for plain HTTP/1, hyper
//!   for HTTP/2 and for what the relay hands over;
//! - [`policy`]: host check, routing, redirects, authentication, per-IP
//!   limits, each answering the request or letting it through;
//! - [`hyper_policy`] and [`hyper_forward`]: the hyper path's head rewrite,
//!   retry loop over backends and response relay;
//! - [`answer`]: the answers the proxy gives itself, and the exchange
//!   record (metrics and access log line).

mod access;
mod answer;
mod back_head;
mod backend;
mod expect;
mod forward;
mod hyper_forward;
mod hyper_policy;
mod policy;
mod relay;
mod relay_plan;
mod relay_rewrite;
mod response;
mod rewind;
mod tunnel;

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::answers::{self, AnswerContext};
use crate::context::{HttpListener, Shared};
use crate::forwarding::{ForwardingValues, Origin};
use crate::metrics::Answered;
use crate::per_ip::ClientSlots;
use crate::settings::ListenerSettings;
use crate::shared_stream::SharedStream;
use crate::write_deadline::WriteDeadline;

/// What every request of one client connection shares.
pub(super) struct ConnectionContext {
    peer: SocketAddr,
    /// `peer` as text, for access records.
    peer_text: String,
    listener_address: SocketAddr,
    listener: Rc<HttpListener>,
    shared: Rc<Shared>,
    /// The TLS server name the client asked for, on HTTPS listeners.
    server_name: Option<String>,
    /// Requests received on this connection so far.
    requests: Cell<u64>,
    /// Woken when a request arrives.
    request_arrived: tokio::sync::Notify,
    /// Its slots under the per-IP connection limits.
    slots: ClientSlots,
    /// The forwarding header values of the last request, reused while the
    /// listener's public address stays the same.
    forwarding: std::cell::RefCell<Option<Rc<ForwardingValues>>>,
}

impl ConnectionContext {
    fn new(
        peer: SocketAddr,
        listener_address: SocketAddr,
        listener: Rc<HttpListener>,
        shared: Rc<Shared>,
        server_name: Option<String>,
    ) -> Self {
        ConnectionContext {
            peer,
            peer_text: peer.to_string(),
            listener_address,
            listener,
            shared,
            server_name,
            requests: Cell::new(0),
            request_arrived: tokio::sync::Notify::new(),
            slots: ClientSlots::new(peer.ip()),
            forwarding: std::cell::RefCell::default(),
        }
    }

    /// The forwarding header values for requests from `origin`.
    fn forwarding(&self, origin: &Origin) -> Rc<ForwardingValues> {
        let mut cached = self.forwarding.borrow_mut();
        match cached.as_ref() {
            Some(values) if values.origin() == origin => values.clone(),
            _ => cached
                .insert(Rc::new(ForwardingValues::new(origin)))
                .clone(),
        }
    }
}

impl Drop for ConnectionContext {
    fn drop(&mut self) {
        self.shared.connections_per_ip.release(&self.slots);
    }
}

pub(super) fn seconds(value: u32) -> Duration {
    Duration::from_secs(u64::from(value.max(1)))
}

/// Serves one plain-text client connection until it closes: the relay
/// serves it, and hands it to hyper (with the bytes it read) at the first
/// request it does not serve.
pub(crate) async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    listener_address: SocketAddr,
    listener: Rc<HttpListener>,
    shared: Rc<Shared>,
) {
    let config = listener.settings.borrow().clone();
    let request_timeout = seconds(config.request_timeout);
    let context = Rc::new(ConnectionContext::new(
        peer,
        listener_address,
        listener,
        shared.clone(),
        None,
    ));
    let (stream, buffered) = match relay::serve(stream, context.clone()).await {
        relay::Ending::Closed => return,
        relay::Ending::HandOver(stream, buffered) => (stream, buffered),
    };
    // hyper and this task share the socket, so that a 408 can still be
    // written after hyper gave up on a request head.
    let stream = Arc::new(stream);
    let io = rewind::Rewind::new(buffered, SharedStream(stream.clone()));
    let io = WriteDeadline::new(io, seconds(config.front_timeout));
    let result = serve_http(TokioIo::new(io), context.clone(), false).await;
    // hyper closes silently when the head of a request does not arrive in
    // time; the first request of a connection gets a 408, as in Sozu (a
    // keep-alive connection idle between requests just closes).
    let Err(error) = result else { return };
    if error.is_timeout()
        && context.requests.get() == 0
        && let Ok(stream) = Arc::try_unwrap(stream)
    {
        answer_request_timeout(stream, &config, request_timeout, &shared).await;
    } else {
        record_parse_refusal(&shared, peer, &error);
    }
}

/// Serves one TLS client connection: handshake (bounded by the request
/// timeout), then HTTP/2 (hyper) or HTTP/1.1 (the relay, then hyper for
/// what it hands over) as negotiated by ALPN.
pub(crate) async fn serve_tls_connection(
    stream: TcpStream,
    peer: SocketAddr,
    listener_address: SocketAddr,
    listener: Rc<HttpListener>,
    shared: Rc<Shared>,
) {
    let Some(tls) = listener.tls.as_ref() else {
        return;
    };
    // The configuration current now serves this handshake to its end, even
    // if certificates change meanwhile.
    let server_config = tls.server_config.borrow().clone();
    let handshake_timeout = seconds(listener.settings.borrow().request_timeout);
    let acceptor = tokio_rustls::TlsAcceptor::from(server_config);
    let handshake = tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await;
    let stream = match handshake {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => {
            tracing::debug!(%peer, %error, "TLS handshake failed");
            shared.metrics.borrow_mut().tls_failures += 1;
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            shared.metrics.borrow_mut().tls_failures += 1;
            return;
        }
    };
    let (_, session) = stream.get_ref();
    let server_name = session.server_name().map(str::to_ascii_lowercase);
    let h2 = session.alpn_protocol() == Some(b"h2");
    let config = listener.settings.borrow().clone();
    let context = Rc::new(ConnectionContext::new(
        peer,
        listener_address,
        listener,
        shared.clone(),
        server_name,
    ));
    // HTTP/1.1 goes to the relay first, as in plain text.
    let (stream, buffered) = if h2 {
        (stream, Vec::new())
    } else {
        match relay::serve(stream, context.clone()).await {
            relay::Ending::Closed => return,
            relay::Ending::HandOver(stream, buffered) => (stream, buffered),
        }
    };
    // As in plain text, a first request head that does not arrive in time
    // gets a 408, written through the TLS session hyper hands back.
    let stream = rewind::Rewind::new(buffered, stream);
    let (stream, home) = crate::shared_stream::Lent::new(stream);
    let io = WriteDeadline::new(stream, seconds(config.front_timeout));
    let result = serve_http(TokioIo::new(io), context.clone(), h2).await;
    let Err(error) = result else { return };
    let returned = home.lock().ok().and_then(|mut home| home.take());
    // (An HTTP/2 client has no place for an HTTP/1.1 answer; its timeouts
    // are GOAWAYs, see `drive_h2`.)
    if !h2
        && error.is_timeout()
        && context.requests.get() == 0
        && let Some(stream) = returned
    {
        answer_request_timeout(stream, &config, seconds(config.request_timeout), &shared).await;
    } else {
        record_parse_refusal(&shared, peer, &error);
    }
}

/// Counts and logs a request head hyper refused and answered itself (400,
/// 414 or 431, without body).
fn record_parse_refusal(shared: &Shared, peer: SocketAddr, error: &hyper::Error) {
    if !error.is_parse() || error.is_parse_version_h2() {
        return;
    }
    let status = if !error.is_parse_too_large() {
        400
    } else if error.to_string().contains("URI") {
        414
    } else {
        431
    };
    record_refusal(shared, status, 0, Duration::ZERO);
    tracing::info!(target: "access", client = %peer, status, %error, "request");
}

/// Runs hyper on an established connection until it closes, shutting down
/// gracefully when the server stops; returns how the connection ended.
async fn serve_http<I>(
    io: TokioIo<I>,
    context: Rc<ConnectionContext>,
    h2: bool,
) -> Result<(), hyper::Error>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let shared = context.shared.clone();
    let config = context.listener.settings.borrow().clone();
    let request_timeout = seconds(config.request_timeout);
    let stopping = shared.stopping.subscribe();
    let service_context = context.clone();
    let service = service_fn(move |request| hyper_policy::handle(service_context.clone(), request));
    if h2 {
        let builder = crate::http2::server_builder(&config, &shared.options);
        let connection = builder.serve_connection(io, service);
        tokio::pin!(connection);
        return drive_h2(
            connection,
            |c| c.graceful_shutdown(),
            stopping,
            &context,
            request_timeout,
            seconds(config.front_timeout),
        )
        .await;
    }
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(request_timeout)
        .keep_alive(true)
        .max_buf_size(shared.options.max_header_size.max(8192))
        // The buffer limit alone is only checked between reads, so a head
        // somewhat larger could still pass; this is exact (431).
        .max_header_size(shared.options.max_header_size);
    let connection = builder.serve_connection(io, service).with_upgrades();
    tokio::pin!(connection);
    drive(
        connection,
        |c| c.graceful_shutdown(),
        stopping,
        &context,
        request_timeout,
    )
    .await
}

/// Polls a hyper connection to its end and returns its result. When the
/// server starts stopping, asks it to finish gracefully (in-flight requests
/// complete, idle keep-alive connections close); a connection that has not
/// received its first request yet is given until that request arrives (at
/// most the request timeout), so a client whose connection was just
/// accepted is still answered.
async fn drive<C, T>(
    mut connection: std::pin::Pin<&mut C>,
    shutdown: impl Fn(std::pin::Pin<&mut C>),
    mut stopping: tokio::sync::watch::Receiver<bool>,
    context: &ConnectionContext,
    request_timeout: Duration,
) -> T
where
    C: std::future::Future<Output = T>,
{
    let mut stop_seen = *stopping.borrow();
    let mut shut = false;
    loop {
        if stop_seen && !shut {
            if context.requests.get() > 0 {
                shutdown(connection.as_mut());
                shut = true;
            } else {
                // Wait for the first request, or give up on it.
                tokio::select! {
                    result = connection.as_mut() => return result,
                    _ = context.request_arrived.notified() => {}
                    _ = tokio::time::sleep(request_timeout) => {
                        shutdown(connection.as_mut());
                        shut = true;
                    }
                }
                continue;
            }
        }
        tokio::select! {
            result = connection.as_mut() => return result,
            changed = stopping.changed(), if !stop_seen => {
                stop_seen = changed.is_err() || *stopping.borrow();
            }
        }
    }
}

/// Polls an HTTP/2 connection to its end and returns its result.
///
/// hyper has no timeouts of its own for HTTP/2 clients that say nothing:
/// the first request must come within `request_timeout` of the handshake,
/// and a connection that brings no new request for `idle_timeout` is asked
/// to go away (GOAWAY; the streams under way finish). When the server
/// stops, the connection is asked to go away at once: hyper's two-step
/// GOAWAY still takes the requests the client had already sent.
async fn drive_h2<C, T>(
    mut connection: std::pin::Pin<&mut C>,
    shutdown: impl Fn(std::pin::Pin<&mut C>),
    mut stopping: tokio::sync::watch::Receiver<bool>,
    context: &ConnectionContext,
    request_timeout: Duration,
    idle_timeout: Duration,
) -> T
where
    C: std::future::Future<Output = T>,
{
    let mut requests = context.requests.get();
    let mut deadline = tokio::time::Instant::now() + request_timeout;
    let mut shut = false;
    loop {
        if !shut && *stopping.borrow_and_update() {
            shutdown(connection.as_mut());
            shut = true;
        }
        tokio::select! {
            result = connection.as_mut() => return result,
            changed = stopping.changed(), if !shut => {
                if changed.is_err() {
                    shutdown(connection.as_mut());
                    shut = true;
                }
            }
            () = context.request_arrived.notified(), if !shut => {
                requests = context.requests.get();
                deadline = tokio::time::Instant::now() + idle_timeout;
            }
            _ = tokio::time::sleep_until(deadline), if !shut => {
                let now = context.requests.get();
                if now == requests {
                    tracing::debug!(peer = %context.peer, requests, "idle HTTP/2 connection asked to go away");
                    shutdown(connection.as_mut());
                    shut = true;
                } else {
                    requests = now;
                    deadline = tokio::time::Instant::now() + idle_timeout;
                }
            }
        }
    }
}

/// Counts an answer given before any request could be routed.
fn record_refusal(shared: &Shared, status: u16, bytes_out: u64, service_time: Duration) {
    shared.metrics.borrow_mut().record(
        None,
        None,
        &Answered {
            status,
            bytes_in: 0,
            bytes_out,
            connect_time: None,
            response_time: None,
            service_time,
        },
    );
}

/// Writes a 408 on a connection whose first request did not arrive within
/// `timeout`, counts it, and closes.
async fn answer_request_timeout(
    mut stream: impl tokio::io::AsyncWrite + Unpin,
    config: &ListenerSettings,
    timeout: Duration,
    shared: &Shared,
) {
    let id = ulid::Ulid::new().to_string();
    let duration = format!("{}s", timeout.as_secs());
    let context = AnswerContext {
        request_id: &id,
        duration: &duration,
        phase: "request head",
        ..Default::default()
    };
    let template = answer::listener_template(config, 408);
    let response = answers::render(408, template.as_deref(), &context, &config.id_header);
    let bytes = answers::to_bytes(response);
    let _ = tokio::time::timeout(timeout, stream.write_all(&bytes)).await;
    let _ = stream.shutdown().await;
    record_refusal(shared, 408, bytes.len() as u64, timeout);
    tracing::info!(target: "access", request_id = %id, status = 408, "request");
}
