//! The hyper path's forwarding: the retry loop over a cluster's backends,
//! through pooled backend connections (HTTP/1.1 ones shared with the
//! relay, driven by hyper's client for one exchange; or the shared h2c one
//! for the clusters that speak HTTP/2), and the response relayed back.

use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::{self, HeaderValue};
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use super::answer::Exchange;
use super::policy::Admitted;
use super::seconds;
use crate::balancer::Backend;
use crate::body::{Completion, ForwardedBody, ProxyBody, RelayedBody, Upload};
use crate::context::{ClusterRuntime, Shared};
use crate::deadline::Deadline;
use crate::forwarding;
use crate::pool::{BackendSender, Checkout};
use crate::settings::ListenerSettings;

/// A request ready for the backend, and what its forwarding needs.
pub(super) struct Forwarding {
    pub(super) request: Request<ForwardedBody>,
    /// The sticky session the request named, if any.
    pub(super) sticky: Option<String>,
    /// The client side of a protocol upgrade.
    pub(super) client_upgrade: Option<hyper::upgrade::OnUpgrade>,
    /// The cluster speaks HTTP/2 to its backends.
    pub(super) http2: bool,
}

/// Sends the request to a backend of its cluster, trying others while
/// connections fail, and returns the response to relay or an answer.
pub(super) async fn forward(
    shared: Rc<Shared>,
    config: &ListenerSettings,
    mut exchange: Exchange,
    admitted: Admitted,
    forwarding: Forwarding,
    client_version: http::Version,
) -> Response<ProxyBody> {
    let Admitted {
        route,
        cluster,
        cluster_config,
    } = admitted;
    let Forwarding {
        request,
        sticky,
        client_upgrade,
        http2,
    } = forwarding;
    let upgrade = request.headers().contains_key(header::UPGRADE);
    let mut pending = Some(request);
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
        let Some((pooled, h2_ticket)) = from_pool(&shared, &backend, http2, upgrade).await else {
            // Another request just failed to connect to it: count it as
            // tried, that request reported the failure.
            tried.push(backend);
            continue;
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
                let opened = open_connection(
                    &shared,
                    &cluster,
                    &cluster_config.cluster_id,
                    &backend,
                    (connect_timeout, upgrade),
                    h2_ticket,
                    &mut exchange,
                )
                .await;
                match opened {
                    Some(sender) => sender,
                    None => {
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
                    return exchange.body_unreadable(config, &cluster_config);
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
                return exchange.bad_gateway(config, &cluster_config, &message);
            }
            Err(_) => {
                backend.request_finished();
                return exchange.timed_out(config, &cluster_config, back_timeout);
            }
        }
    }
    exchange.unavailable(config, &cluster_config, failed_exchange, tried.is_empty())
}

/// What the pool holds for a request to `backend`: a connection, or none
/// (with the ticket to open the HTTP/2 one, for `http2`); `None` when
/// another request just failed to open the backend's HTTP/2 connection.
/// An idle HTTP/1.1 connection is the relay's kind, run by hyper's client
/// for this exchange (`upgrade`: the request asks for a protocol upgrade).
async fn from_pool(
    shared: &Rc<Shared>,
    backend: &Arc<Backend>,
    http2: bool,
    upgrade: bool,
) -> Option<(Option<BackendSender>, Option<crate::pool::H2Connecting>)> {
    if http2 {
        return match shared.pool.checkout(backend.address()).await {
            Checkout::Open(sender) => Some((Some(sender), None)),
            Checkout::Connect(ticket) => Some((None, Some(ticket))),
            Checkout::Failed => None,
        };
    }
    let pooled = match shared.pool.take_raw(backend) {
        Some(raw) => super::backend::drive(shared, raw, upgrade).await.ok(),
        None => None,
    };
    Some((pooled, None))
}

/// Opens a connection to `backend` and tells its balancer how it went;
/// `None` when it failed. HTTP/2 when given the ticket to open the
/// backend's shared connection (which then gets it), else an HTTP/1.1
/// connection opened as the relay opens its own, that goes to the same
/// pool after the exchange (`upgrade`: unless the request upgrades it).
async fn open_connection(
    shared: &Rc<Shared>,
    cluster: &ClusterRuntime,
    cluster_id: &str,
    backend: &Arc<Backend>,
    (connect_timeout, upgrade): (Duration, bool),
    h2_ticket: Option<crate::pool::H2Connecting>,
    exchange: &mut Exchange,
) -> Option<BackendSender> {
    let Some(ticket) = h2_ticket else {
        let mut deadline = Deadline::new(connect_timeout);
        let timeout = (&mut deadline, connect_timeout);
        let (raw, elapsed) = super::backend::connect(shared, cluster, cluster_id, backend, timeout)
            .await
            .ok()?;
        exchange.connect_time = Some(elapsed);
        return super::backend::drive(shared, raw, upgrade).await.ok();
    };
    let connect_started = Instant::now();
    match connect_h2(shared, cluster_id, backend, connect_timeout, ticket).await {
        Ok(sender) => {
            let elapsed = connect_started.elapsed();
            exchange.connect_time = Some(elapsed);
            super::backend::connect_succeeded(shared, cluster, backend, elapsed);
            Some(sender)
        }
        Err(error) => {
            super::backend::connect_failed(shared, cluster, backend, &error);
            None
        }
    }
}

/// Returns a backend connection to the pool and accounts for the exchange
/// when the response body is over.
struct ResponseEnd {
    exchange: Exchange,
    status: u16,
    sender: Option<BackendSender>,
    /// The backend keeps the connection open after this response.
    keep_alive: bool,
    cluster: Rc<ClusterRuntime>,
}

impl Completion for ResponseEnd {
    fn complete(self: Box<Self>, bytes: u64, finished: bool) {
        let ResponseEnd {
            exchange,
            status,
            sender,
            keep_alive,
            cluster,
        } = *self;
        if let Some(backend) = &exchange.backend {
            backend.request_finished();
            // A removed backend's idle connections were closed; this one
            // closes too rather than wait in the pool for nobody.
            if finished
                && keep_alive
                && !backend.is_removed()
                && let Some(sender) = sender
            {
                exchange.shared.pool.give(sender);
            }
        }
        drop(cluster);
        exchange.finish(status, bytes);
    }
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
    let keep_alive = keeps_alive(parts.version, &parts.headers);
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
        keep_alive,
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

/// Whether a backend keeps its connection open after a response of this
/// version with these headers (HTTP/2 connections always stay).
fn keeps_alive(version: http::Version, headers: &http::HeaderMap) -> bool {
    let says = |word: &str| {
        headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .any(|token| token.trim().eq_ignore_ascii_case(word))
    };
    match version {
        http::Version::HTTP_11 => !says("close"),
        http::Version::HTTP_10 => says("keep-alive") && !says("close"),
        http::Version::HTTP_09 => false,
        _ => true,
    }
}

/// Opens the backend's shared HTTP/2 connection with the ticket to do so.
async fn connect_h2(
    shared: &Rc<Shared>,
    cluster_id: &str,
    backend: &Arc<Backend>,
    timeout: Duration,
    ticket: crate::pool::H2Connecting,
) -> std::io::Result<BackendSender> {
    match crate::http2::connect(shared, cluster_id, backend, timeout).await {
        Ok(sender) => Ok(ticket.connected(sender)),
        Err(error) => {
            ticket.failed();
            Err(error)
        }
    }
}
