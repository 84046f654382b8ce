//! HTTP/2 pieces of the end-to-end tests, on the `h2` crate: a client over
//! TLS (ALPN `h2`) that can open many streams on one connection, and a
//! backend that speaks HTTP/2 cleartext only (h2c, prior knowledge) and
//! records what it received.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode, Version};
use tokio::sync::watch;

use super::tls::{ClientSettings, client_config};

/// A current-thread runtime for a test's async part.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// An answer received over HTTP/2.
#[derive(Debug, Clone)]
pub struct H2Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub trailers: Option<HeaderMap>,
}

impl H2Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// The client side of one HTTP/2 connection over TLS.
pub type H2Client = h2::client::SendRequest<Bytes>;

/// Opens an HTTP/2 connection over TLS to `127.0.0.1:port` with SNI
/// `name`, offering only `h2`; the connection runs on a task of the
/// current runtime, whose handle is returned to see how it ended.
pub async fn connect(
    port: u16,
    name: &str,
) -> std::io::Result<(H2Client, tokio::task::JoinHandle<Result<(), h2::Error>>)> {
    let config = client_config(&ClientSettings {
        alpn: vec!["h2"],
        ..Default::default()
    });
    let tcp = tokio::net::TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port))).await?;
    let server_name =
        rustls::pki_types::ServerName::try_from(name.to_owned()).map_err(std::io::Error::other)?;
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(server_name, tcp)
        .await?;
    assert_eq!(
        tls.get_ref().1.alpn_protocol(),
        Some(&b"h2"[..]),
        "the server did not choose h2"
    );
    let (client, connection) = h2::client::handshake(tls)
        .await
        .map_err(std::io::Error::other)?;
    let task = tokio::spawn(connection);
    Ok((client, task))
}

/// Like [`connect`], but the connection is the caller's to drive (to read
/// the server's settings, for example).
pub async fn connect_raw(
    port: u16,
    name: &str,
) -> std::io::Result<(
    H2Client,
    h2::client::Connection<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, Bytes>,
)> {
    let config = client_config(&ClientSettings {
        alpn: vec!["h2"],
        ..Default::default()
    });
    let tcp = tokio::net::TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port))).await?;
    let server_name =
        rustls::pki_types::ServerName::try_from(name.to_owned()).map_err(std::io::Error::other)?;
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(server_name, tcp)
        .await?;
    h2::client::handshake(tls)
        .await
        .map_err(std::io::Error::other)
}

/// The server's `SETTINGS_MAX_CONCURRENT_STREAMS`, as a client connecting
/// to `port` with SNI `name` learns it (after one request).
pub async fn advertised_max_streams(port: u16, name: &str) -> usize {
    let (client, mut connection) = connect_raw(port, name).await.unwrap();
    let request = Request::get(format!("https://{name}/")).body(()).unwrap();
    let exchange = async {
        let mut client = client.ready().await.unwrap();
        let (response, _) = client.send_request(request, true).unwrap();
        response.await.unwrap()
    };
    tokio::select! {
        _ = exchange => {}
        result = &mut connection => panic!("the connection ended first: {result:?}"),
    }
    connection.max_concurrent_send_streams()
}

/// Sends `request` (no body) and reads the whole answer.
pub async fn send(client: &H2Client, request: Request<()>) -> Result<H2Answer, h2::Error> {
    send_with_body(client, request, Bytes::new()).await
}

/// Sends `request` with `body` (in frames as flow control allows) and
/// reads the whole answer.
pub async fn send_with_body(
    client: &H2Client,
    request: Request<()>,
    body: Bytes,
) -> Result<H2Answer, h2::Error> {
    let mut client = client.clone().ready().await?;
    let (response, mut stream) = client.send_request(request, body.is_empty())?;
    let mut left = body;
    while !left.is_empty() {
        stream.reserve_capacity(left.len().min(1 << 20));
        let granted = std::future::poll_fn(|cx| stream.poll_capacity(cx))
            .await
            .ok_or_else(|| h2::Error::from(h2::Reason::CANCEL))??;
        let piece = left.split_to(granted.min(left.len()));
        stream.send_data(piece, left.is_empty())?;
    }
    let response = response.await?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let mut body = response.into_body();
    let mut bytes = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        let _ = body.flow_control().release_capacity(chunk.len());
        bytes.extend_from_slice(&chunk);
    }
    let trailers = body.trailers().await?;
    Ok(H2Answer {
        status,
        headers,
        body: bytes,
        trailers,
    })
}

/// `GET https://authority/path` on an open connection.
pub async fn get(client: &H2Client, authority: &str, path: &str) -> Result<H2Answer, h2::Error> {
    let request = Request::get(format!("https://{authority}{path}"))
        .body(())
        .unwrap();
    send(client, request).await
}

/// A request as an HTTP/2 backend received it.
#[derive(Debug, Clone)]
pub struct SeenH2 {
    pub version: Version,
    pub method: String,
    pub authority: Option<String>,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// A backend that speaks HTTP/2 cleartext only, on its own thread: answers
/// every request with `status` and its name as body after `delay`.
pub struct H2Backend {
    pub address: SocketAddr,
    /// Every request received, in order.
    pub seen: Arc<Mutex<Vec<SeenH2>>>,
    /// TCP connections accepted.
    pub connections: Arc<AtomicUsize>,
    /// Requests being answered right now, and the most seen at once.
    pub in_flight: Arc<AtomicUsize>,
    pub peak_in_flight: Arc<AtomicUsize>,
    /// The status of the answers (200 unless changed).
    pub status: Arc<AtomicU16>,
    /// When set, every stream is reset (INTERNAL_ERROR) instead of
    /// answered.
    pub reset: Arc<AtomicBool>,
    /// Length of an `x-big` header added to answers (none when 0).
    pub big_header: Arc<AtomicUsize>,
    /// When set, answers end with trailers (`grpc-status: 0`), as gRPC
    /// servers' do.
    pub trailers: Arc<AtomicBool>,
    /// When set, only requests whose path starts with it wait for the
    /// delay; the others are answered at once.
    pub delayed_prefix: Arc<Mutex<Option<String>>>,
    /// Bumped to make every open connection go away (GOAWAY, then close).
    go_away: watch::Sender<u64>,
    stop: watch::Sender<bool>,
}

impl H2Backend {
    pub fn start(name: &str, delay: Duration) -> H2Backend {
        Self::start_on(0, name, delay)
    }

    /// A backend answering at once on a given port (one that was closed
    /// until now, for example).
    pub fn start_at(port: u16, name: &str) -> H2Backend {
        Self::start_on(port, name, Duration::ZERO)
    }

    fn start_on(port: u16, name: &str, delay: Duration) -> H2Backend {
        let listener = std::net::TcpListener::bind(("127.0.0.1", port))
            .unwrap_or_else(|error| panic!("could not bind port {port}: {error}"));
        listener.set_nonblocking(true).unwrap();
        let address = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let in_flight = Arc::new(AtomicUsize::new(0));
        let peak_in_flight = Arc::new(AtomicUsize::new(0));
        let status = Arc::new(AtomicU16::new(200));
        let reset = Arc::new(AtomicBool::new(false));
        let big_header = Arc::new(AtomicUsize::new(0));
        let trailers = Arc::new(AtomicBool::new(false));
        let delayed_prefix = Arc::new(Mutex::new(None));
        let (go_away, _) = watch::channel(0u64);
        let (stop, mut stopped) = watch::channel(false);
        let shared = Served {
            name: Bytes::from(name.to_owned()),
            delay,
            seen: seen.clone(),
            in_flight: in_flight.clone(),
            peak_in_flight: peak_in_flight.clone(),
            status: status.clone(),
            reset: reset.clone(),
            big_header: big_header.clone(),
            trailers: trailers.clone(),
            delayed_prefix: delayed_prefix.clone(),
        };
        let thread_connections = connections.clone();
        let thread_go_away = go_away.subscribe();
        std::thread::spawn(move || {
            runtime().block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                loop {
                    let accepted = tokio::select! {
                        accepted = listener.accept() => accepted,
                        _ = stopped.changed() => return,
                    };
                    let Ok((socket, _)) = accepted else { continue };
                    let _ = socket.set_nodelay(true);
                    thread_connections.fetch_add(1, Ordering::SeqCst);
                    let served = shared.clone();
                    let go_away = thread_go_away.clone();
                    tokio::spawn(serve_h2(socket, served, go_away));
                }
            });
        });
        H2Backend {
            address,
            seen,
            connections,
            in_flight,
            peak_in_flight,
            status,
            reset,
            big_header,
            trailers,
            delayed_prefix,
            go_away,
            stop,
        }
    }

    /// Requests received so far.
    pub fn requests(&self) -> Vec<SeenH2> {
        self.seen.lock().unwrap().clone()
    }

    /// Sends GOAWAY on every open connection, which then closes once its
    /// streams are answered.
    pub fn go_away(&self) {
        self.go_away.send_modify(|generation| *generation += 1);
    }
}

impl Drop for H2Backend {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

#[derive(Clone)]
struct Served {
    name: Bytes,
    delay: Duration,
    seen: Arc<Mutex<Vec<SeenH2>>>,
    in_flight: Arc<AtomicUsize>,
    peak_in_flight: Arc<AtomicUsize>,
    status: Arc<AtomicU16>,
    reset: Arc<AtomicBool>,
    big_header: Arc<AtomicUsize>,
    trailers: Arc<AtomicBool>,
    delayed_prefix: Arc<Mutex<Option<String>>>,
}

async fn serve_h2(
    socket: tokio::net::TcpStream,
    served: Served,
    mut go_away: watch::Receiver<u64>,
) {
    go_away.borrow_and_update();
    let Ok(mut connection) = h2::server::handshake(socket).await else {
        return;
    };
    let mut going_away = false;
    loop {
        let next = tokio::select! {
            next = connection.accept() => next,
            changed = go_away.changed(), if !going_away => {
                if changed.is_ok() {
                    connection.graceful_shutdown();
                }
                going_away = true;
                continue;
            }
        };
        let Some(Ok((request, respond))) = next else {
            return;
        };
        tokio::spawn(answer(request, respond, served.clone()));
    }
}

async fn answer(
    request: Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
    served: Served,
) {
    let now = served.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    served.peak_in_flight.fetch_max(now, Ordering::SeqCst);
    let (parts, mut body) = request.into_parts();
    let delayed = served
        .delayed_prefix
        .lock()
        .unwrap()
        .as_ref()
        .is_none_or(|prefix| parts.uri.path().starts_with(prefix.as_str()));
    let mut bytes = Vec::new();
    while let Some(Ok(chunk)) = body.data().await {
        let _ = body.flow_control().release_capacity(chunk.len());
        bytes.extend_from_slice(&chunk);
    }
    served.seen.lock().unwrap().push(SeenH2 {
        version: parts.version,
        method: parts.method.to_string(),
        authority: parts.uri.authority().map(|a| a.to_string()),
        path: parts
            .uri
            .path_and_query()
            .map_or("/".to_owned(), |p| p.to_string()),
        headers: parts.headers,
        body: bytes,
    });
    if delayed && !served.delay.is_zero() {
        tokio::time::sleep(served.delay).await;
    }
    if served.reset.load(Ordering::SeqCst) {
        served.in_flight.fetch_sub(1, Ordering::SeqCst);
        respond.send_reset(h2::Reason::INTERNAL_ERROR);
        return;
    }
    let status = StatusCode::from_u16(served.status.load(Ordering::SeqCst)).unwrap();
    let mut response = Response::builder()
        .status(status)
        .header("content-length", served.name.len())
        .header("x-backend", served.name.as_ref());
    let big = served.big_header.load(Ordering::SeqCst);
    if big > 0 {
        response = response.header("x-big", "b".repeat(big));
    }
    let response = response.body(()).unwrap();
    served.in_flight.fetch_sub(1, Ordering::SeqCst);
    let with_trailers = served.trailers.load(Ordering::SeqCst);
    if let Ok(mut stream) = respond.send_response(response, false) {
        let _ = stream.send_data(served.name.clone(), !with_trailers);
        if with_trailers {
            let mut trailers = HeaderMap::new();
            trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
            trailers.insert("grpc-message", http::HeaderValue::from_static("done"));
            let _ = stream.send_trailers(trailers);
        }
    }
}
