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
use hyper::client::conn::http1::SendRequest;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use sozu_command::proto::command::{Cluster, HttpListenerConfig, RedirectPolicy, RedirectScheme};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::answers::{self, AnswerContext};
use std::sync::Arc;

use crate::balancer::Backend;
use crate::body::{Completion, ForwardedBody, ProxyBody, RelayedBody};
use crate::forwarding::{self, Origin};
use crate::metrics::Answered;
use crate::server::{ClusterRuntime, HttpListener, Shared};

/// The default name of the request id header.
pub const DEFAULT_REQUEST_ID_HEADER: &str = "sozu-id";

/// What every request of one client connection shares.
struct ConnectionContext {
    peer: SocketAddr,
    listener_address: SocketAddr,
    listener: Rc<HttpListener>,
    shared: Rc<Shared>,
}

/// Decrements the connection count however the connection task ends.
pub(crate) struct ConnectionGuard(pub(crate) Rc<Shared>);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        let shared = &self.0;
        shared
            .connections
            .set(shared.connections.get().saturating_sub(1));
        shared.connection_closed.notify_one();
    }
}

fn seconds(value: u32) -> Duration {
    Duration::from_secs(u64::from(value.max(1)))
}

/// The name of the request id header of a listener.
fn request_id_header(config: &HttpListenerConfig) -> HeaderName {
    config
        .sozu_id_header
        .as_deref()
        .and_then(|name| HeaderName::from_bytes(name.as_bytes()).ok())
        .unwrap_or_else(|| HeaderName::from_static(DEFAULT_REQUEST_ID_HEADER))
}

/// Serves one client connection until it closes.
pub(crate) async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    listener_address: SocketAddr,
    listener: Rc<HttpListener>,
    shared: Rc<Shared>,
) {
    shared.connections.set(shared.connections.get() + 1);
    shared.metrics.borrow_mut().accepted += 1;
    let _guard = ConnectionGuard(shared.clone());
    let config = listener.config.borrow().clone();
    let request_timeout = seconds(config.request_timeout);
    let mut stopping = shared.stopping.subscribe();

    // A connection that sends nothing at all within the request timeout gets
    // a 408 (hyper's own head timeout closes silently).
    let mut stream = stream;
    tokio::select! {
        ready = tokio::time::timeout(request_timeout, stream.readable()) => {
            if ready.is_err() {
                let id = ulid::Ulid::new().to_string();
                let duration = format!("{}s", request_timeout.as_secs());
                let context = AnswerContext { request_id: &id, duration: &duration, ..Default::default() };
                let template = listener_template(&config, 408);
                let response = answers::render(408, template.as_deref(), &context, &request_id_header(&config));
                let _ = stream.write_all(&answers::to_bytes(response)).await;
                return;
            }
        }
        _ = stopping.changed() => return,
    }

    let context = Rc::new(ConnectionContext {
        peer,
        listener_address,
        listener,
        shared: shared.clone(),
    });
    let service = service_fn(move |request| handle(context.clone(), request));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(request_timeout)
        .keep_alive(true)
        .max_buf_size(shared.options.max_header_size.max(8192));
    let connection = builder
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(connection);
    let mut shutting_down = *stopping.borrow();
    if shutting_down {
        connection.as_mut().graceful_shutdown();
    }
    loop {
        tokio::select! {
            _ = connection.as_mut() => break,
            changed = stopping.changed(), if !shutting_down => {
                if changed.is_err() || *stopping.borrow() {
                    shutting_down = true;
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// The listener's template for a status, if it defines one.
fn listener_template(config: &HttpListenerConfig, status: u16) -> Option<String> {
    if let Some(template) = config.answers.get(&status.to_string()) {
        return Some(template.clone());
    }
    let answers = config.http_answers.as_ref()?;
    match status {
        301 => answers.answer_301.clone(),
        400 => answers.answer_400.clone(),
        401 => answers.answer_401.clone(),
        404 => answers.answer_404.clone(),
        408 => answers.answer_408.clone(),
        413 => answers.answer_413.clone(),
        421 => answers.answer_421.clone(),
        429 => answers.answer_429.clone(),
        502 => answers.answer_502.clone(),
        503 => answers.answer_503.clone(),
        504 => answers.answer_504.clone(),
        507 => answers.answer_507.clone(),
        _ => None,
    }
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
    config: &HttpListenerConfig,
    status: u16,
) -> [Option<String>; 2] {
    [
        cluster.and_then(|cluster| cluster_template(cluster, status)),
        listener_template(config, status),
    ]
}

/// The host a request is for: the absolute URI's authority, else the Host
/// header; without any port. `None` when missing or malformed.
fn request_host(request: &Request<Incoming>) -> Option<String> {
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
    let host = strip_port(&authority);
    if host.is_empty() {
        return None;
    }
    Some(host.to_owned())
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
    request_id: String,
    id_header: HeaderName,
    method: String,
    route: String,
    cluster_id: Option<String>,
    backend: Option<Arc<Backend>>,
    connect_time: Option<Duration>,
    response_time: Option<Duration>,
    bytes_in: Rc<Cell<u64>>,
    shared: Rc<Shared>,
    peer: SocketAddr,
}

impl Exchange {
    /// Records metrics and writes the access log line.
    fn finish(&self, status: u16, bytes_out: u64) {
        let service_time = self.started.elapsed();
        let answered = Answered {
            status,
            bytes_in: self.bytes_in.get(),
            bytes_out,
            connect_time: self.connect_time,
            response_time: self.response_time,
            service_time,
        };
        let backend_id = self.backend.as_ref().map(|backend| backend.id());
        self.shared
            .metrics
            .borrow_mut()
            .record(self.cluster_id.as_deref(), backend_id, &answered);
        tracing::info!(
            target: "access",
            request_id = %self.request_id,
            client = %self.peer,
            cluster = self.cluster_id.as_deref().unwrap_or("-"),
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
            request_id: &self.request_id,
            cluster_id: self.cluster_id.as_deref().unwrap_or_default(),
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
    sender: Option<SendRequest<ForwardedBody>>,
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
            if finished && let Some(sender) = sender {
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
    Ok(proxy(context, request).await)
}

async fn proxy(
    context: Rc<ConnectionContext>,
    mut request: Request<Incoming>,
) -> Response<ProxyBody> {
    let shared = context.shared.clone();
    let config = context.listener.config.borrow().clone();
    let request_id = ulid::Ulid::new().to_string();
    let path_and_query = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let host = request_host(&request);
    let mut exchange = Exchange {
        started: Instant::now(),
        request_id,
        id_header: request_id_header(&config),
        method: request.method().as_str().to_owned(),
        route: format!("{}{}", host.as_deref().unwrap_or("-"), path_and_query),
        cluster_id: None,
        backend: None,
        connect_time: None,
        response_time: None,
        bytes_in: Rc::new(Cell::new(0)),
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
    exchange.cluster_id = route.cluster_id().map(str::to_owned);
    let cluster = route
        .cluster_id()
        .and_then(|id| shared.clusters.borrow().get(id).cloned());
    let cluster_config = cluster
        .as_ref()
        .map(|cluster| cluster.config.borrow().clone());
    let secure = false;

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
        let templates = [
            route
                .redirect_template()
                .and_then(|name| cluster_config.as_ref()?.answers.get(name).cloned()),
            templates(cluster_config.as_deref(), &config, status)[0]
                .clone()
                .or_else(|| listener_template(&config, status)),
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

    // -- the request as the backend will see it
    let upgrade = request.headers().contains_key(header::UPGRADE);
    let sticky_name = config.sticky_name.clone();
    let sticky = if cluster_config.sticky_session {
        forwarding::take_sticky_cookie(request.headers_mut(), &sticky_name)
    } else {
        None
    };
    {
        let headers = request.headers_mut();
        forwarding::remove_hop_by_hop(headers, upgrade);
        let origin = Origin {
            peer: context.peer,
            listener: config
                .public_address
                .map(|address| address.to_socket_addr())
                .unwrap_or(context.listener_address),
            secure: false,
        };
        forwarding::add_forwarding_headers(headers, &origin, config.forwarded_headers.unwrap_or(0));
        forwarding::apply_real_ip(
            headers,
            context.peer,
            config.elide_x_real_ip.unwrap_or(false),
            config.send_x_real_ip.unwrap_or(false),
        );
        if let Ok(id) = HeaderValue::from_str(&exchange.request_id) {
            if !headers.contains_key("x-request-id") {
                headers.insert("x-request-id", id.clone());
            }
            headers.insert(exchange.id_header.clone(), id);
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
            && let Ok(value) = HeaderValue::from_str(&host)
        {
            headers.insert(header::HOST, value);
        }
    }
    let target_path = route
        .rewrite_path()
        .map_or_else(|| path_and_query.clone(), str::to_owned);
    *request.uri_mut() = target_path
        .parse::<Uri>()
        .unwrap_or_else(|_| Uri::from_static("/"));
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut request));
    let (parts, incoming) = request.into_parts();
    let mut pending = Some(Request::from_parts(
        parts,
        ForwardedBody::new(incoming, exchange.bytes_in.clone()),
    ));

    // -- backend connection attempts
    let connect_timeout = seconds(config.connect_timeout);
    let back_timeout = seconds(config.back_timeout);
    let attempts = shared.connection_attempts(&cluster_config);
    let mut tried: Vec<Arc<Backend>> = Vec::new();
    let mut attempt = 0;
    while attempt < attempts {
        let chosen =
            cluster
                .balancer
                .borrow_mut()
                .choose(Instant::now(), sticky.as_deref(), &tried);
        let Some(backend) = chosen else { break };
        exchange.backend = Some(backend.clone());
        let mut sender = match shared.pool.take(backend.address()) {
            Some(sender) => sender,
            None => {
                attempt += 1;
                let connect_started = Instant::now();
                match connect(
                    &shared,
                    &cluster_config.cluster_id,
                    &backend,
                    connect_timeout,
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
        backend.request_started();
        let sent_at = Instant::now();
        let sent = tokio::time::timeout(back_timeout, sender.try_send_request(outgoing)).await;
        match sent {
            Ok(Ok(response)) => {
                exchange.response_time = Some(sent_at.elapsed());
                return relay_response(
                    response,
                    exchange,
                    sender,
                    cluster,
                    route.response_headers(),
                    &backend,
                    sticky.as_deref(),
                    &sticky_name,
                    client_upgrade,
                );
            }
            Ok(Err(mut error)) => {
                backend.request_finished();
                if let Some(unsent) = error.take_message() {
                    // The connection died before the request left: try again
                    // on another connection, this does not count as an attempt.
                    pending = Some(unsent);
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
    exchange: Exchange,
    sender: SendRequest<ForwardedBody>,
    cluster: Rc<ClusterRuntime>,
    edits: &[crate::router::HeaderEdit],
    backend: &Arc<Backend>,
    sticky: Option<&str>,
    sticky_name: &str,
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
) -> Response<ProxyBody> {
    let status = response.status().as_u16();
    let switching = status == 101;
    let (mut parts, incoming) = response.into_parts();
    forwarding::remove_hop_by_hop(&mut parts.headers, switching);
    forwarding::apply_edits(&mut parts.headers, edits);
    if let Ok(id) = HeaderValue::from_str(&exchange.request_id) {
        parts.headers.insert(exchange.id_header.clone(), id);
    }
    let sticky_session = cluster.config.borrow().sticky_session;
    let sticky_value = backend.settings().sticky_value.clone();
    if sticky_session && sticky != Some(sticky_value.as_str()) {
        let cookie = format!("{sticky_name}={sticky_value}; Path=/");
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            parts.headers.append(header::SET_COOKIE, value);
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
    Response::from_parts(parts, ProxyBody::Relayed(RelayedBody::new(incoming, end)))
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

/// Opens a keep-alive HTTP/1.1 connection to a backend.
async fn connect(
    shared: &Rc<Shared>,
    cluster_id: &str,
    backend: &Arc<Backend>,
    timeout: Duration,
) -> std::io::Result<SendRequest<ForwardedBody>> {
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
    let shared = shared.clone();
    let backend = backend.clone();
    let cluster_id = cluster_id.to_owned();
    tokio::task::spawn_local(async move {
        let _ = connection.with_upgrades().await;
        shared.report(backend.connection_closed());
        shared
            .metrics
            .borrow_mut()
            .backend_connection(&cluster_id, backend.id(), false);
    });
    Ok(sender)
}
