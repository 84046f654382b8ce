//! HTTP/1.1 proxying: one task per client connection, requests routed,
//! forwarded to a backend over a pooled keep-alive connection, and the
//! response streamed back.

use std::cell::Cell;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use http::header::{self, HeaderName, HeaderValue};
use http::{Request, Response, Uri};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use sozu_command::proto::command::{Cluster, RedirectPolicy, RedirectScheme};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use std::sync::Arc;

use crate::answers::{self, AnswerContext};

use crate::balancer::Backend;
use crate::body::{Completion, ForwardedBody, ProxyBody, RelayedBody, Upload};
use crate::context::{ClusterRuntime, HttpListener, Shared};
use crate::forwarding::{self, ForwardingValues, Origin};
use crate::metrics::Answered;
use crate::per_ip::ClientSlots;
use crate::pool::{BackendSender, Checkout};
use crate::settings::ListenerSettings;
use crate::shared_stream::SharedStream;
use crate::write_deadline::WriteDeadline;

/// What every request of one client connection shares.
struct ConnectionContext {
    peer: SocketAddr,
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

fn seconds(value: u32) -> Duration {
    Duration::from_secs(u64::from(value.max(1)))
}

/// Serves one plain-text client connection until it closes.
pub(crate) async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    listener_address: SocketAddr,
    listener: Rc<HttpListener>,
    shared: Rc<Shared>,
) {
    let config = listener.settings.borrow().clone();
    let request_timeout = seconds(config.request_timeout);
    // hyper and this task share the socket, so that a 408 can still be
    // written after hyper gave up on a request head.
    let stream = Arc::new(stream);
    let context = Rc::new(ConnectionContext::new(
        peer,
        listener_address,
        listener,
        shared.clone(),
        None,
    ));
    let io = WriteDeadline::new(SharedStream(stream.clone()), seconds(config.front_timeout));
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
/// timeout), then HTTP/2 or HTTP/1.1 as negotiated by ALPN.
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
    // As in plain text, a first request head that does not arrive in time
    // gets a 408, written through the TLS session hyper hands back.
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
    let service = service_fn(move |request| handle(service_context.clone(), request));
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
    let template = listener_template(config, 408);
    let response = answers::render(408, template.as_deref(), &context, &config.id_header);
    let bytes = answers::to_bytes(response);
    let _ = tokio::time::timeout(timeout, stream.write_all(&bytes)).await;
    let _ = stream.shutdown().await;
    record_refusal(shared, 408, bytes.len() as u64, timeout);
    tracing::info!(target: "access", request_id = %id, status = 408, "request");
}

/// The listener's template for a status, if it defines one.
fn listener_template(config: &ListenerSettings, status: u16) -> Option<String> {
    config.answers.get(&status).cloned()
}

/// The cluster's template for a status, if it defines one.
fn cluster_template(cluster: &Cluster, status: u16) -> Option<String> {
    if let Some(template) = cluster.answers.get(&status.to_string()) {
        return Some(template.clone());
    }
    if status == 503 {
        return cluster.answer_503.clone();
    }
    None
}

/// The cluster's template for a status, then the listener's.
fn templates(
    cluster: Option<&Cluster>,
    config: &ListenerSettings,
    status: u16,
) -> [Option<String>; 2] {
    [
        cluster.and_then(|cluster| cluster_template(cluster, status)),
        listener_template(config, status),
    ]
}

/// The host a request is for: the absolute URI's authority, else the Host
/// header; without any port. `None` when missing or malformed, which
/// includes more than one Host line and a port that is not a port number
/// (RFC 9112, 3.2: both are answered 400).
fn request_host(request: &Request<Incoming>) -> Option<String> {
    if request
        .headers()
        .get_all(header::HOST)
        .iter()
        .nth(1)
        .is_some()
    {
        return None;
    }
    let authority = match request.uri().authority() {
        Some(authority) => authority.as_str().to_owned(),
        None => {
            let host = request.headers().get(header::HOST)?.to_str().ok()?;
            host.parse::<http::uri::Authority>()
                .ok()?
                .as_str()
                .to_owned()
        }
    };
    if authority.contains('@') {
        return None;
    }
    let host = host_of_authority(&authority)?;
    if host.is_empty() {
        return None;
    }
    Some(host.to_owned())
}

/// The host of a `host[:port]` authority, or `None` when the port is not
/// a port number (digits, at most 65535; an empty port counts as none).
fn host_of_authority(authority: &str) -> Option<&str> {
    // An IPv6 literal is bracketed, and its colons are not a port's.
    let port_start = match authority.rfind(']') {
        Some(end) => authority[end..].find(':').map(|colon| end + colon),
        None => authority.rfind(':'),
    };
    let Some(colon) = port_start else {
        return Some(authority);
    };
    let (host, port) = (&authority[..colon], &authority[colon + 1..]);
    if port.is_empty() || (port.bytes().all(|b| b.is_ascii_digit()) && port.parse::<u16>().is_ok())
    {
        Some(host)
    } else {
        None
    }
}

fn strip_port(authority: &str) -> &str {
    match authority.rsplit_once(':') {
        Some((host, port))
            if !port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit())
                && !host.ends_with(':') =>
        {
            host
        }
        _ => authority,
    }
}

/// Everything about a request that outlives its routing, for the answer,
/// the access log and the metrics.
struct Exchange {
    started: Instant,
    /// The request id, a ULID, ready to be sent as a header.
    request_id: HeaderValue,
    id_header: HeaderName,
    method: http::Method,
    route: String,
    /// The frontend that matched, once routed.
    frontend: Option<Arc<crate::router::Route>>,
    backend: Option<Arc<Backend>>,
    connect_time: Option<Duration>,
    response_time: Option<Duration>,
    upload: Rc<Upload>,
    shared: Rc<Shared>,
    peer: SocketAddr,
}

impl Exchange {
    fn request_id(&self) -> &str {
        self.request_id.to_str().unwrap_or_default()
    }

    fn cluster_id(&self) -> Option<&str> {
        self.frontend.as_ref()?.cluster_id()
    }

    /// Records metrics and writes the access log line.
    fn finish(&self, status: u16, bytes_out: u64) {
        let service_time = self.started.elapsed();
        let answered = Answered {
            status,
            bytes_in: self.upload.bytes.get(),
            bytes_out,
            connect_time: self.connect_time,
            response_time: self.response_time,
            service_time,
        };
        let backend_id = self.backend.as_ref().map(|backend| backend.id());
        self.shared
            .metrics
            .borrow_mut()
            .record(self.cluster_id(), backend_id, &answered);
        tracing::info!(
            target: "access",
            request_id = self.request_id(),
            client = %self.peer,
            cluster = self.cluster_id().unwrap_or("-"),
            backend = backend_id.unwrap_or("-"),
            backend_address = %self.backend.as_ref().map(|b| b.address().to_string()).unwrap_or_else(|| "-".into()),
            method = %self.method,
            route = %self.route,
            status,
            bytes_in = answered.bytes_in,
            bytes_out,
            service_ms = service_time.as_secs_f64() * 1000.0,
            "request"
        );
    }

    /// Answers with a template, counted and logged. `extra` carries the
    /// variables specific to this answer; the exchange fills in the rest.
    fn answer(
        &self,
        status: u16,
        templates: [Option<String>; 2],
        extra: AnswerContext<'_>,
    ) -> Response<ProxyBody> {
        let template = templates.into_iter().flatten().next();
        let context = AnswerContext {
            route: &self.route,
            request_id: self.request_id(),
            cluster_id: self.cluster_id().unwrap_or_default(),
            backend_id: self.backend.as_ref().map_or("", |b| b.id()),
            ..extra
        };
        let response = answers::render(status, template.as_deref(), &context, &self.id_header);
        let length = match response.body() {
            ProxyBody::Full(Some(bytes)) => bytes.len() as u64,
            _ => 0,
        };
        self.finish(status, length);
        response
    }
}

/// Returns a backend connection to the pool and accounts for the exchange
/// when the response body is over.
struct ResponseEnd {
    exchange: Exchange,
    status: u16,
    sender: Option<BackendSender>,
    cluster: Rc<ClusterRuntime>,
}

impl Completion for ResponseEnd {
    fn complete(self: Box<Self>, bytes: u64, finished: bool) {
        let ResponseEnd {
            exchange,
            status,
            sender,
            cluster,
        } = *self;
        if let Some(backend) = &exchange.backend {
            backend.request_finished();
            // A removed backend's idle connections were closed; this one
            // closes too rather than wait in the pool for nobody.
            if finished
                && !backend.is_removed()
                && let Some(sender) = sender
            {
                exchange.shared.pool.give(backend.address(), sender);
            }
        }
        drop(cluster);
        exchange.finish(status, bytes);
    }
}

async fn handle(
    context: Rc<ConnectionContext>,
    request: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    context.requests.set(context.requests.get() + 1);
    context.request_arrived.notify_one();
    Ok(proxy(context, request).await)
}

async fn proxy(
    context: Rc<ConnectionContext>,
    mut request: Request<Incoming>,
) -> Response<ProxyBody> {
    let shared = context.shared.clone();
    let config = context.listener.settings.borrow().clone();
    let client_version = request.version();
    let authority = request.uri().authority().map(|a| a.as_str().to_owned());
    let path_and_query = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let host = request_host(&request);
    let route_host = host.as_deref().unwrap_or("-");
    let mut route = String::with_capacity(route_host.len() + path_and_query.len());
    route.push_str(route_host);
    route.push_str(&path_and_query);
    let mut exchange = Exchange {
        started: Instant::now(),
        request_id: new_request_id(),
        id_header: config.id_header.clone(),
        method: request.method().clone(),
        route,
        frontend: None,
        backend: None,
        connect_time: None,
        response_time: None,
        upload: Rc::default(),
        shared: shared.clone(),
        peer: context.peer,
    };

    let Some(host) = host else {
        return exchange.answer(
            400,
            [listener_template(&config, 400), None],
            AnswerContext {
                message: "The request has no valid host.",
                phase: "headers",
                ..Default::default()
            },
        );
    };
    if config.strict_sni
        && let Some(server_name) = &context.server_name
        && !host.trim_end_matches('.').eq_ignore_ascii_case(server_name)
    {
        let message = format!("This connection was opened for {server_name}.");
        return exchange.answer(
            421,
            [listener_template(&config, 421), None],
            AnswerContext {
                message: &message,
                ..Default::default()
            },
        );
    }

    // -- routing
    let route = context
        .listener
        .router
        .borrow()
        .lookup(&host, &path_and_query, request.method().as_str())
        .cloned();
    let Some(route) = route else {
        shared.metrics.borrow_mut().unrouted += 1;
        return exchange.answer(
            404,
            [listener_template(&config, 404), None],
            AnswerContext::default(),
        );
    };
    exchange.frontend = Some(route.clone());
    let cluster = route
        .cluster_id()
        .and_then(|id| shared.clusters.borrow().get(id).cloned());
    let cluster_config = cluster
        .as_ref()
        .map(|cluster| cluster.config.borrow().clone());
    let secure = config.secure;

    // -- redirects and refusals decided by the frontend
    let redirect = route.redirect();
    let redirect_status = match redirect {
        RedirectPolicy::Permanent => Some(301),
        RedirectPolicy::Found => Some(302),
        RedirectPolicy::PermanentRedirect => Some(308),
        _ => None,
    };
    if let Some(status) = redirect_status {
        let scheme = match route.redirect_scheme() {
            RedirectScheme::UseHttps => "https",
            RedirectScheme::UseHttp => "http",
            RedirectScheme::UseSame if secure => "https",
            RedirectScheme::UseSame => "http",
        };
        let port = route
            .rewrite_port()
            .map(u32::from)
            .or_else(|| cluster_config.as_ref().and_then(|c| c.https_redirect_port));
        let location = redirect_location(
            scheme,
            route.rewrite_host().unwrap_or(&host),
            port,
            route.rewrite_path().unwrap_or(&path_and_query),
        );
        // The frontend's redirect_template is a whole answer template, as
        // in Sozu; one that does not parse gives way to the usual choice.
        let [cluster_template, listener_template] =
            templates(cluster_config.as_deref(), &config, status);
        let templates = [
            route
                .redirect_template()
                .filter(|template| answers::parses(template))
                .map(str::to_owned)
                .or(cluster_template),
            listener_template,
        ];
        return exchange.answer(
            status,
            templates,
            AnswerContext {
                redirect_location: &location,
                ..Default::default()
            },
        );
    }
    if redirect == RedirectPolicy::Unauthorized || route.cluster_id().is_none() {
        let realm = cluster_config
            .as_ref()
            .and_then(|c| c.www_authenticate.clone())
            .unwrap_or_default();
        return exchange.answer(
            401,
            templates(cluster_config.as_deref(), &config, 401),
            AnswerContext {
                www_authenticate: &realm,
                ..Default::default()
            },
        );
    }
    let (Some(cluster), Some(cluster_config)) = (cluster, cluster_config) else {
        return exchange.answer(
            503,
            [listener_template(&config, 503), None],
            AnswerContext {
                message: "The cluster of this route does not exist.",
                ..Default::default()
            },
        );
    };
    if cluster_config.https_redirect {
        let location = redirect_location(
            "https",
            &host,
            cluster_config.https_redirect_port,
            &path_and_query,
        );
        return exchange.answer(
            301,
            templates(Some(&cluster_config), &config, 301),
            AnswerContext {
                redirect_location: &location,
                ..Default::default()
            },
        );
    }
    if route.required_auth()
        && !crate::auth::authorized(request.headers(), &cluster_config.authorized_hashes)
    {
        let realm = cluster_config
            .www_authenticate
            .clone()
            .unwrap_or_else(|| format!("Basic realm=\"{}\"", cluster_config.cluster_id));
        return exchange.answer(
            401,
            templates(Some(&cluster_config), &config, 401),
            AnswerContext {
                www_authenticate: &realm,
                ..Default::default()
            },
        );
    }

    // -- the per-IP connection limit, once the request is to be forwarded
    let limit = cluster_config
        .max_connections_per_ip
        .unwrap_or_else(|| shared.max_connections_per_ip.get());
    if !shared
        .connections_per_ip
        .admit(&context.slots, &cluster_config.cluster_id, limit)
    {
        // Retry-After 0 means no header (an empty header is left out).
        let retry_after = match cluster_config
            .retry_after
            .unwrap_or(shared.options.retry_after)
        {
            0 => String::new(),
            seconds => seconds.to_string(),
        };
        return exchange.answer(
            429,
            templates(Some(&cluster_config), &config, 429),
            AnswerContext {
                retry_after: &retry_after,
                message: "Too many connections from this address.",
                ..Default::default()
            },
        );
    }

    // -- the request as the backend will see it
    let upgrade = request.headers().contains_key(header::UPGRADE);
    let http2 = cluster_config.http2 == Some(true);
    // Read before hop-by-hop headers go: an HTTP/2 backend is told again.
    let accepts_trailers = http2 && crate::http2::accepts_trailers(request.headers());
    let target_authority = request
        .uri()
        .authority()
        .map(|authority| authority.as_str().to_owned());
    let sticky = if cluster_config.sticky_session {
        forwarding::take_sticky_cookie(request.headers_mut(), &config.sticky_name)
    } else {
        None
    };
    {
        let headers = request.headers_mut();
        forwarding::remove_hop_by_hop(headers, upgrade);
        let forwarding = context.forwarding(&Origin {
            peer: context.peer,
            listener: config.public_address.unwrap_or(context.listener_address),
            secure: config.secure,
        });
        forwarding::add_forwarding_headers(headers, &forwarding, config.forwarded_headers);
        forwarding::apply_real_ip(
            headers,
            &forwarding,
            config.elide_x_real_ip,
            config.send_x_real_ip,
        );
        if !headers.contains_key(X_REQUEST_ID) {
            headers.insert(X_REQUEST_ID, exchange.request_id.clone());
        }
        headers.insert(exchange.id_header.clone(), exchange.request_id.clone());
        // An absolute-form target names the host: a proxy must send that,
        // not the Host header it received (RFC 9112, 3.2.2).
        if let Some(authority) = &target_authority
            && let Ok(value) = HeaderValue::from_str(authority)
        {
            headers.insert(header::HOST, value);
        }
        forwarding::apply_edits(headers, route.request_headers());
        if let Some(rewrite_host) = route.rewrite_host()
            && let Ok(value) = HeaderValue::from_str(rewrite_host)
        {
            if let Some(original) = headers.get(header::HOST).cloned() {
                headers.insert("x-forwarded-host", original);
            }
            headers.insert(header::HOST, value);
        }
        if !headers.contains_key(header::HOST)
            && let Ok(value) = HeaderValue::from_str(authority.as_deref().unwrap_or(&host))
        {
            headers.insert(header::HOST, value);
        }
    }
    // The backend gets the origin form (path and query) or the rewritten
    // path; a request already in origin form keeps its URI as it is.
    let rewrite_path = route.rewrite_path();
    let origin_form = request.uri().scheme().is_none() && request.uri().authority().is_none();
    if rewrite_path.is_some() || !origin_form {
        *request.uri_mut() = rewrite_path
            .unwrap_or(&path_and_query)
            .parse::<Uri>()
            .unwrap_or_else(|_| Uri::from_static("/"));
    }
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut request));
    // Backends are spoken to in HTTP/1.1, whatever the client speaks, or
    // in HTTP/2 when their cluster says so.
    *request.version_mut() = http::Version::HTTP_11;
    if http2 {
        crate::http2::to_http2(&mut request, accepts_trailers);
    }
    let (parts, incoming) = request.into_parts();
    let mut pending = Some(Request::from_parts(
        parts,
        ForwardedBody::new(incoming, exchange.upload.clone()),
    ));

    // -- backend connection attempts
    let connect_timeout = seconds(config.connect_timeout);
    let back_timeout = seconds(config.back_timeout);
    let attempts = shared.connection_attempts(&cluster_config);
    let mut tried: Vec<Arc<Backend>> = Vec::new();
    // Why the last backend that took the request failed to answer it.
    let mut failed_exchange: Option<String> = None;
    let mut attempt = 0;
    while attempt < attempts {
        let chosen =
            cluster
                .balancer
                .borrow_mut()
                .choose(Instant::now(), sticky.as_deref(), &tried);
        let Some(backend) = chosen else { break };
        exchange.backend = Some(backend.clone());
        let (pooled, h2_ticket) = match shared.pool.checkout(backend.address(), http2).await {
            Checkout::Open(sender) => (Some(sender), None),
            Checkout::Connect(ticket) => (None, ticket),
            // Another request just failed to connect to it: count it as
            // tried, that request reported the failure.
            Checkout::Failed => {
                tried.push(backend);
                continue;
            }
        };
        let reused = pooled.is_some();
        let mut sender = match pooled {
            // An idle connection becomes ready once hyper has seen the end
            // of its previous exchange; one that closed meanwhile is dropped
            // and the loop looks again.
            Some(mut sender) => match sender.ready().await {
                Ok(()) => sender,
                Err(_) => continue,
            },
            None => {
                attempt += 1;
                let connect_started = Instant::now();
                match connect_backend(
                    &shared,
                    &cluster_config.cluster_id,
                    &backend,
                    connect_timeout,
                    h2_ticket,
                )
                .await
                {
                    Ok(sender) => {
                        let elapsed = connect_started.elapsed();
                        exchange.connect_time = Some(elapsed);
                        let events = cluster.balancer.borrow_mut().connect_succeeded(
                            &backend,
                            Instant::now(),
                            elapsed,
                        );
                        shared.report(events);
                        sender
                    }
                    Err(error) => {
                        tracing::debug!(backend = %backend.address(), %error, "backend connection failed");
                        let events = cluster
                            .balancer
                            .borrow_mut()
                            .connect_failed(&backend, Instant::now());
                        shared.report(events);
                        tried.push(backend);
                        continue;
                    }
                }
            }
        };
        let Some(outgoing) = pending.take() else {
            break;
        };
        // A keep-alive connection may have been closed by the backend just
        // as this request went out, or a backend may die right after
        // accepting; a request that can be sent again safely (idempotent,
        // no body) is kept to be, should that happen.
        let replay = replayable(&outgoing);
        backend.request_started();
        let sent_at = Instant::now();
        let sent = answer_within(
            sender.try_send_request(outgoing),
            back_timeout,
            &exchange.upload,
        )
        .await;
        match sent {
            Ok(Ok(response)) => {
                exchange.response_time = Some(sent_at.elapsed());
                return relay_response(
                    response,
                    client_version,
                    exchange,
                    sender,
                    cluster,
                    route.response_headers(),
                    &backend,
                    sticky.as_deref(),
                    &config.sticky_name,
                    client_upgrade,
                    back_timeout,
                );
            }
            Ok(Err(mut error)) => {
                backend.request_finished();
                shared.pool.retire(backend.address(), &sender);
                if let Some(unsent) = error.take_message() {
                    // The connection died before the request left: try again
                    // on another connection, this does not count as an attempt.
                    pending = Some(unsent);
                    continue;
                }
                if exchange.upload.failed.get() {
                    // The client's body broke on the way: its fault, not
                    // the backend's.
                    return exchange.answer(
                        400,
                        templates(Some(&cluster_config), &config, 400),
                        AnswerContext {
                            message: "The request body could not be read.",
                            phase: "request body",
                            ..Default::default()
                        },
                    );
                }
                if let Some(again) = replay {
                    tracing::debug!(backend = %backend.address(), error = %error.error(), reused, "backend connection failed before answering, sending again");
                    if !reused {
                        // A fresh connection that dies before answering:
                        // try another backend (only connection failures
                        // count towards marking a backend down, as in Sozu).
                        failed_exchange = Some(error.into_error().to_string());
                        tried.push(backend);
                    }
                    pending = Some(again);
                    continue;
                }
                let message = error.into_error().to_string();
                return exchange.answer(
                    502,
                    templates(Some(&cluster_config), &config, 502),
                    AnswerContext {
                        message: &message,
                        ..Default::default()
                    },
                );
            }
            Err(_) => {
                backend.request_finished();
                let duration = format!("{}s", back_timeout.as_secs());
                return exchange.answer(
                    504,
                    templates(Some(&cluster_config), &config, 504),
                    AnswerContext {
                        duration: &duration,
                        ..Default::default()
                    },
                );
            }
        }
    }
    if let Some(message) = failed_exchange {
        // A backend took the request and failed it, and no other one could
        // take it instead: that is a bad gateway, not an unavailable one.
        return exchange.answer(
            502,
            templates(Some(&cluster_config), &config, 502),
            AnswerContext {
                message: &message,
                ..Default::default()
            },
        );
    }
    let retry_after = cluster_config
        .retry_after
        .unwrap_or(shared.options.retry_after)
        .to_string();
    let message = if tried.is_empty() {
        "The cluster has no available backend."
    } else {
        "Every connection attempt failed."
    };
    exchange.backend = None;
    exchange.answer(
        503,
        templates(Some(&cluster_config), &config, 503),
        AnswerContext {
            message,
            retry_after: &retry_after,
            ..Default::default()
        },
    )
}

#[allow(clippy::too_many_arguments)]
fn relay_response(
    response: Response<Incoming>,
    client_version: http::Version,
    exchange: Exchange,
    sender: BackendSender,
    cluster: Rc<ClusterRuntime>,
    edits: &[crate::router::HeaderEdit],
    backend: &Arc<Backend>,
    sticky: Option<&str>,
    sticky_name: &str,
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
    back_timeout: Duration,
) -> Response<ProxyBody> {
    let status = response.status().as_u16();
    let switching = status == 101;
    let (mut parts, incoming) = response.into_parts();
    parts.version = client_version;
    forwarding::remove_hop_by_hop(&mut parts.headers, switching);
    forwarding::apply_edits(&mut parts.headers, edits);
    parts
        .headers
        .insert(exchange.id_header.clone(), exchange.request_id.clone());
    let sticky_session = cluster.config.borrow().sticky_session;
    if sticky_session {
        let settings = backend.settings();
        let sticky_value = settings.sticky_value.as_str();
        if sticky != Some(sticky_value) {
            let cookie = format!("{sticky_name}={sticky_value}; Path=/");
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                parts.headers.append(header::SET_COOKIE, value);
            }
        }
    }
    if switching {
        // A protocol upgrade (WebSocket): once both sides have switched,
        // relay raw bytes in both directions.
        let backend_upgrade = hyper::upgrade::on(Response::from_parts(parts.clone(), incoming));
        if let Some(client_upgrade) = client_upgrade {
            tokio::task::spawn_local(async move {
                if let (Ok(client), Ok(backend)) = (client_upgrade.await, backend_upgrade.await) {
                    let mut client = TokioIo::new(client);
                    let mut backend = TokioIo::new(backend);
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut backend).await;
                }
            });
        }
        exchange.finish(status, 0);
        return Response::from_parts(parts, ProxyBody::empty());
    }
    let end = Box::new(ResponseEnd {
        exchange,
        status,
        sender: Some(sender),
        cluster,
    });
    Response::from_parts(
        parts,
        ProxyBody::Relayed(RelayedBody::new(incoming, end, back_timeout)),
    )
}

/// Waits for a backend's answer for as long as it is not silent for
/// `timeout`: time spent receiving the client's body (a slow upload) does
/// not count, the backend's silence after the last body bytes does.
async fn answer_within<F: std::future::Future>(
    answer: F,
    timeout: Duration,
    upload: &Upload,
) -> Result<F::Output, ()> {
    tokio::pin!(answer);
    let started = Instant::now();
    let mut deadline = started + timeout;
    loop {
        tokio::select! {
            output = &mut answer => return Ok(output),
            _ = tokio::time::sleep_until(deadline.into()) => {
                let last = upload.progressed_at.get().unwrap_or(started).max(started);
                let next = last + timeout;
                if next <= Instant::now() {
                    return Err(());
                }
                deadline = next;
            }
        }
    }
}

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A new request id: a ULID, as a header value.
fn new_request_id() -> HeaderValue {
    let mut text = [0; ulid::ULID_LEN];
    let text = ulid::Ulid::new().array_to_str(&mut text);
    HeaderValue::from_str(text).expect("a ULID is a valid header value")
}

/// A copy of a request that may be sent again after a failure on a reused
/// connection: idempotent (RFC 9110, 9.2.2) and without body, so that
/// nothing of it is lost with the first copy.
fn replayable(request: &Request<ForwardedBody>) -> Option<Request<ForwardedBody>> {
    use http::Method;
    let idempotent = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    );
    if !idempotent
        || !http_body::Body::is_end_stream(request.body())
        || request.headers().contains_key(header::UPGRADE)
    {
        return None;
    }
    let mut copy = Request::new(ForwardedBody::empty());
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.version_mut() = request.version();
    *copy.headers_mut() = request.headers().clone();
    Some(copy)
}

fn redirect_location(scheme: &str, host: &str, port: Option<u32>, path: &str) -> String {
    let port = match port {
        Some(80) if scheme == "http" => String::new(),
        Some(443) if scheme == "https" => String::new(),
        Some(port) => format!(":{port}"),
        None => String::new(),
    };
    let host = strip_port(host);
    format!("{scheme}://{host}{port}{path}")
}

/// Opens a connection to a backend: HTTP/2 when given the ticket to open
/// the backend's shared one (which then gets it), else HTTP/1.1.
async fn connect_backend(
    shared: &Rc<Shared>,
    cluster_id: &str,
    backend: &Arc<Backend>,
    timeout: Duration,
    h2_ticket: Option<crate::pool::H2Connecting>,
) -> std::io::Result<BackendSender> {
    let Some(ticket) = h2_ticket else {
        return connect(shared, cluster_id, backend, timeout)
            .await
            .map(BackendSender::Http1);
    };
    match crate::http2::connect(shared, cluster_id, backend, timeout).await {
        Ok(sender) => Ok(ticket.connected(sender)),
        Err(error) => {
            ticket.failed();
            Err(error)
        }
    }
}

/// Opens a keep-alive HTTP/1.1 connection to a backend.
async fn connect(
    shared: &Rc<Shared>,
    cluster_id: &str,
    backend: &Arc<Backend>,
    timeout: Duration,
) -> std::io::Result<hyper::client::conn::http1::SendRequest<ForwardedBody>> {
    let stream = tokio::time::timeout(timeout, TcpStream::connect(backend.address()))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connection timed out"))??;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::Builder::new()
        .handshake(TokioIo::new(stream))
        .await
        .map_err(std::io::Error::other)?;
    backend.connection_opened();
    shared
        .metrics
        .borrow_mut()
        .backend_connection(cluster_id, backend.id(), true);
    let registration = shared
        .sessions
        .register(cluster_id, backend.id(), backend.address());
    let shared = shared.clone();
    let backend = backend.clone();
    let cluster_id = cluster_id.to_owned();
    tokio::task::spawn_local(async move {
        // Ends with the connection, or when `close_sessions` asks.
        tokio::select! {
            _ = connection.with_upgrades() => {}
            () = registration.closed() => {}
        }
        shared.report(backend.connection_closed());
        shared
            .metrics
            .borrow_mut()
            .backend_connection(&cluster_id, backend.id(), false);
    });
    Ok(sender)
}

#[cfg(test)]
mod tests {
    use super::host_of_authority;

    #[test]
    fn the_host_of_an_authority_is_found_and_a_bad_port_refused() {
        for (authority, host) in [
            ("app.test", Some("app.test")),
            ("app.test:8080", Some("app.test")),
            ("app.test:", Some("app.test")),
            ("app.test:65535", Some("app.test")),
            ("[::1]", Some("[::1]")),
            ("[::1]:443", Some("[::1]")),
            ("app.test:abc", None),
            ("app.test:80a", None),
            ("app.test:65536", None),
            ("app.test:+80", None),
            ("[::1]:x", None),
        ] {
            assert_eq!(host_of_authority(authority), host, "{authority}");
        }
    }
}
