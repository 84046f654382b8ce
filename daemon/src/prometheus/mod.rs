//! The Prometheus endpoint: `GET /metrics` on `metrics.prometheus_address`
//! (or `sozu start --prometheus-address`), served by the main process.
//!
//! Scrapes are answered from a [`Snapshot`] of the aggregated metrics, taken
//! at most once a second the same way `sozu metrics get` asks the workers
//! (a worker that does not answer is reported down instead of failing the
//! scrape). A scrape never waits for the workers, except the very first
//! one, which waits for the first snapshot. Connections are bounded
//! ([`MAX_CONNECTIONS`]; more are closed at once) and each lives at most
//! [`CONNECTION_LIFETIME`]: a slow or stuck scraper holds one task of the
//! main process's event loop, which never blocks on it, so the command
//! socket and the workers go on.

mod snapshot;

use std::cell::Cell;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode, body::Incoming, header};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::main_process::Main;
pub use snapshot::Snapshot;

/// Most scrape connections open at once.
pub const MAX_CONNECTIONS: usize = 16;
/// Longest life of one scrape connection (keep-alive included).
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(10);
/// Longest wait for a request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);

/// Listens on `address`.
pub async fn bind(address: SocketAddr) -> Result<TcpListener, String> {
    TcpListener::bind(address)
        .await
        .map_err(|error| format!("cannot serve Prometheus metrics on {address}: {error}"))
}

/// Serves scrapes until the main process exits.
pub async fn serve(main: Rc<Main>, listener: TcpListener) {
    let snapshot = Rc::new(Snapshot::default());
    let open = Rc::new(Cell::new(0usize));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                // Out of descriptors, most likely: wait a little instead of
                // spinning.
                tracing::warn!(%error, "prometheus endpoint: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if open.get() >= MAX_CONNECTIONS {
            drop(stream);
            continue;
        }
        open.set(open.get() + 1);
        let (main, snapshot, open) = (main.clone(), snapshot.clone(), open.clone());
        tokio::task::spawn_local(async move {
            let service = hyper::service::service_fn(move |request| {
                let (main, snapshot) = (main.clone(), snapshot.clone());
                async move { Ok::<_, Infallible>(answer(&main, &snapshot, &request).await) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEAD_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(CONNECTION_LIFETIME, connection).await;
            open.set(open.get() - 1);
        });
    }
}

async fn answer(
    main: &Rc<Main>,
    snapshot: &Rc<Snapshot>,
    request: &Request<Incoming>,
) -> Response<Full<Bytes>> {
    let plain = |status: StatusCode, text: &'static str| {
        let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
        *response.status_mut() = status;
        response
    };
    if request.uri().path() != "/metrics" {
        return plain(
            StatusCode::NOT_FOUND,
            "not found: metrics are at /metrics\n",
        );
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "use GET\n");
        response
            .headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    let text = snapshot.current(main).await;
    let mut response = Response::new(Full::new(text));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(sozu_command::prometheus::CONTENT_TYPE),
    );
    response
}
