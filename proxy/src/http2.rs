//! HTTP/2 on both sides of the proxy.
//!
//! Towards clients (HTTPS listeners, ALPN `h2`): hyper's HTTP/2 server with
//! its protections set explicitly (see [`server_builder`] and `doc/tls.md`).
//! Towards backends of clusters with `http2 = true`: HTTP/2 over cleartext
//! TCP with prior knowledge (h2c), one connection per backend that carries
//! every request to it at once ([`connect`], shared by the pool), and the
//! health checks of those clusters ([`probe_status`]).

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use http::header::{self, HeaderValue};
use http::{Request, Uri, Version};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpStream;

use crate::balancer::Backend;
use crate::body::ForwardedBody;
use crate::context::Shared;
use crate::options::ProxyOptions;
use crate::settings::ListenerSettings;

/// Streams a client may have open at once on one connection, unless the
/// listener says otherwise (`h2_max_concurrent_streams`); Sozu's default.
pub const DEFAULT_MAX_CONCURRENT_STREAMS: u32 = 100;

/// Streams a client may open and reset before the server even looked at
/// them, before the connection is closed with GOAWAY (ENHANCE_YOUR_CALM):
/// the defence against "rapid reset" (CVE-2023-44487). h2's own default.
pub const MAX_PENDING_ACCEPT_RESET_STREAMS: usize = 20;

/// Streams the server may reset because the client broke the protocol on
/// them (malformed headers, flow control), over the connection's life,
/// before it is closed with GOAWAY. Sozu closes after 100 such "glitches".
pub const MAX_LOCAL_ERROR_RESET_STREAMS: usize = 100;

/// The compression table a client may make the server keep (HPACK).
pub const HEADER_TABLE_SIZE: u32 = 4096;

/// Largest frame payload accepted (the protocol's minimum, 16 KiB).
pub const MAX_FRAME_SIZE: u32 = 16 * 1024;

/// Flow-control windows: what a client may send ahead, per stream and per
/// connection, before the proxy has passed it on.
pub const STREAM_WINDOW: u32 = 1024 * 1024;
/// See [`STREAM_WINDOW`].
pub const CONNECTION_WINDOW: u32 = 1024 * 1024;

/// Response bytes buffered per stream waiting for the client's window.
pub const MAX_SEND_BUFFER_SIZE: usize = 400 * 1024;

/// How long a ping may wait for its answer before the connection is taken
/// for dead.
pub const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// Runs the tasks hyper's HTTP/2 connections spawn (one per stream on the
/// server side, the connection itself on the client side) on the current
/// thread, so that they may hold `Rc`s.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LocalExecutor;

impl<F: std::future::Future + 'static> hyper::rt::Executor<F> for LocalExecutor {
    fn execute(&self, future: F) {
        tokio::task::spawn_local(future);
    }
}

/// The HTTP/2 server of a listener, its limits set: the listener's
/// `h2_max_concurrent_streams` and `h2_max_header_list_size` when given,
/// else [`DEFAULT_MAX_CONCURRENT_STREAMS`] and the proxy's header size
/// limit (the same as for HTTP/1.1 heads); the other protections at the
/// values of this module. An idle connection is pinged every
/// `front_timeout` seconds and closed when a ping goes unanswered.
pub(crate) fn server_builder(
    settings: &ListenerSettings,
    options: &ProxyOptions,
) -> hyper::server::conn::http2::Builder<LocalExecutor> {
    let max_header_list_size = settings
        .h2_max_header_list_size
        .unwrap_or_else(|| u32::try_from(options.max_header_size).unwrap_or(u32::MAX));
    let mut builder = hyper::server::conn::http2::Builder::new(LocalExecutor);
    builder
        .timer(TokioTimer::new())
        .max_concurrent_streams(
            settings
                .h2_max_concurrent_streams
                .unwrap_or(DEFAULT_MAX_CONCURRENT_STREAMS),
        )
        .max_header_list_size(max_header_list_size)
        .max_pending_accept_reset_streams(MAX_PENDING_ACCEPT_RESET_STREAMS)
        .max_local_error_reset_streams(MAX_LOCAL_ERROR_RESET_STREAMS)
        .header_table_size(HEADER_TABLE_SIZE)
        .max_frame_size(MAX_FRAME_SIZE)
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_send_buf_size(MAX_SEND_BUFFER_SIZE)
        .keep_alive_interval(Duration::from_secs(u64::from(
            settings.front_timeout.max(1),
        )))
        .keep_alive_timeout(KEEP_ALIVE_TIMEOUT);
    builder
}

/// Whether a client said it accepts trailers (`TE: trailers`), as gRPC
/// clients do.
pub(crate) fn accepts_trailers(headers: &http::HeaderMap) -> bool {
    headers
        .get_all(header::TE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("trailers"))
}

/// Makes a request prepared for an HTTP/1.1 backend fit for an HTTP/2
/// one: its Host header becomes the `:authority` (RFC 9113, 8.3.1), the
/// target stays the path. Hop-by-hop headers were removed already; hyper
/// drops whatever HTTP/2 forbids besides. `TE: trailers`, the one TE that
/// HTTP/2 allows, is passed on when the client sent it (`accepts_trailers`):
/// gRPC servers look for it.
pub(crate) fn to_http2<B>(request: &mut Request<B>, accepts_trailers: bool) {
    if accepts_trailers {
        request
            .headers_mut()
            .insert(header::TE, HeaderValue::from_static("trailers"));
    }
    let Some(host) = request.headers_mut().remove(header::HOST) else {
        return;
    };
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |path| path.as_str());
    let uri = Uri::builder()
        .scheme("http")
        .authority(host.as_bytes())
        .path_and_query(path)
        .build();
    match uri {
        Ok(uri) => {
            *request.uri_mut() = uri;
            *request.version_mut() = Version::HTTP_2;
        }
        // A Host that is no authority travels as a header, as it came
        // (h2 sends a relative target of an HTTP/1.1 request that way).
        Err(_) => {
            request.headers_mut().insert(header::HOST, host);
        }
    }
}

/// Opens the HTTP/2 cleartext connection to a backend, counted like the
/// HTTP/1.1 ones while it lives.
pub(crate) async fn connect(
    shared: &Rc<Shared>,
    cluster_id: &str,
    backend: &Arc<Backend>,
    timeout: Duration,
) -> std::io::Result<SendRequest<ForwardedBody>> {
    let stream = tokio::time::timeout(timeout, TcpStream::connect(backend.address()))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connection timed out"))??;
    stream.set_nodelay(true)?;
    // A backend's response heads may be as large as a client's request
    // heads (hyper's client default is 16 KiB).
    let max_header_list_size = u32::try_from(shared.options.max_header_size).unwrap_or(u32::MAX);
    let (sender, connection) = hyper::client::conn::http2::Builder::new(LocalExecutor)
        .timer(TokioTimer::new())
        .max_header_list_size(max_header_list_size)
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
        if let Err(error) = connection.await {
            tracing::debug!(backend = %backend.address(), %error, "HTTP/2 backend connection ended");
        }
        shared.report(backend.connection_closed());
        shared
            .metrics
            .borrow_mut()
            .backend_connection(&cluster_id, backend.id(), false);
    });
    Ok(sender)
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A health probe in HTTP/2 cleartext: `GET uri` on a connection of its
/// own, with `:authority` the probed address; the answer's status, or
/// `None` when there was none.
pub(crate) async fn probe_status(target: SocketAddr, uri: &str) -> Option<u16> {
    let stream = TcpStream::connect(target).await.ok()?;
    let _ = stream.set_nodelay(true);
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(LocalExecutor, TokioIo::new(stream))
            .await
            .ok()?;
    let _connection = AbortOnDrop(tokio::task::spawn_local(async move {
        let _ = connection.await;
    }));
    let request = Request::get(format!("http://{target}{uri}"))
        .header(
            header::USER_AGENT,
            HeaderValue::from_static("sozu-health-check"),
        )
        .body(ForwardedBody::empty())
        .ok()?;
    let response = sender.send_request(request).await.ok()?;
    Some(response.status().as_u16())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_header_becomes_the_authority() {
        let mut request = Request::get("/a?b=c")
            .header(header::HOST, "app.test:8080")
            .header("x-other", "1")
            .body(())
            .unwrap();
        to_http2(&mut request, false);
        assert_eq!(request.uri().to_string(), "http://app.test:8080/a?b=c");
        assert!(request.headers().get(header::HOST).is_none());
        assert_eq!(request.headers()["x-other"], "1");
        assert_eq!(request.version(), Version::HTTP_2);

        let mut odd = Request::get("/")
            .header(header::HOST, "a b")
            .body(())
            .unwrap();
        to_http2(&mut odd, false);
        assert_eq!(odd.uri(), "/");
        assert_eq!(odd.headers()[header::HOST], "a b");
    }

    #[test]
    fn te_trailers_is_passed_on_alone() {
        let mut headers = http::HeaderMap::new();
        headers.insert(header::TE, HeaderValue::from_static("gzip, Trailers"));
        assert!(accepts_trailers(&headers));
        headers.insert(header::TE, HeaderValue::from_static("gzip"));
        assert!(!accepts_trailers(&headers));
        let mut request = Request::get("/")
            .header(header::HOST, "g.test")
            .body(())
            .unwrap();
        to_http2(&mut request, true);
        assert_eq!(request.headers()[header::TE], "trailers");
    }
}
