//! TCP proxying: one task per client connection, relayed byte for byte to a
//! backend of the cluster named by the listener's frontend.
//!
//! A session goes through four steps:
//!
//! 1. the PROXY header, when the listener or the cluster asks for one, is
//!    read from the client (see [`ProxyHeaders`]);
//! 2. a backend is chosen and connected to, with the cluster's balancer and
//!    connection-attempt budget, exactly as HTTP does;
//! 3. a PROXY header is written to the backend, when the cluster sends or
//!    relays one;
//! 4. bytes are copied both ways until both sides are done.
//!
//! Half-closes are kept: when one side shuts down its write half, the other
//! side's write half is shut down after the last byte, and the opposite
//! direction goes on until it ends too (Sōzu 2.3.3 closes the whole session
//! instead and loses what the other side still had to say).
//!
//! Timeouts: `connect_timeout` bounds each connection attempt;
//! `front_timeout` and `back_timeout` are idle timeouts, each reset by any
//! byte read from or written to its side.

use std::cell::{Cell, RefCell};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use sozu_command::proto::command::{
    Cluster, ProxyProtocolConfig, RequestTcpFrontend, TcpListenerConfig,
};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use crate::balancer::Backend;
use crate::context::{ClusterRuntime, Shared};
use crate::metrics::Piped;
use crate::proxy_protocol::Header;
use crate::proxy_protocol_io::{self, ReceivedHeader};

/// A TCP listener's settings and the frontend its connections go to.
pub(crate) struct TcpListener {
    pub(crate) config: RefCell<Rc<TcpListenerConfig>>,
    /// The one frontend on this address; without it, connections are
    /// accepted and closed at once.
    pub(crate) frontend: RefCell<Option<Rc<RequestTcpFrontend>>>,
}

impl TcpListener {
    pub(crate) fn new(config: &TcpListenerConfig) -> TcpListener {
        TcpListener {
            config: RefCell::new(Rc::new(config.clone())),
            frontend: RefCell::new(None),
        }
    }
}

/// What a session does with PROXY headers, from the listener's
/// `expect_proxy` and the cluster's `proxy_protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProxyHeaders {
    /// Plain bytes both ways.
    None,
    /// Read the client's header and take its source as the client address;
    /// the backend gets the bytes that follow it.
    Expect,
    /// Write a header of our own to the backend: the client address (from
    /// the client's header when `expect`, else the peer) and ours.
    Send {
        /// The listener expects a header from the client as well.
        expect: bool,
    },
    /// Read the client's header and pass it to the backend unchanged. A
    /// relay needs a header to relay, so one is read even when the listener
    /// does not say `expect_proxy` (as Sōzu does).
    Relay,
}

impl ProxyHeaders {
    /// The behaviour of a session on a listener that does or does not
    /// expect headers, to `cluster`.
    pub(crate) fn of(expect_proxy: bool, cluster: &Cluster) -> ProxyHeaders {
        let configured = cluster
            .proxy_protocol
            .and_then(|value| ProxyProtocolConfig::try_from(value).ok());
        match configured {
            Some(ProxyProtocolConfig::RelayHeader) => ProxyHeaders::Relay,
            Some(ProxyProtocolConfig::SendHeader) => ProxyHeaders::Send {
                expect: expect_proxy,
            },
            Some(ProxyProtocolConfig::ExpectHeader) => ProxyHeaders::Expect,
            None if expect_proxy => ProxyHeaders::Expect,
            None => ProxyHeaders::None,
        }
    }

    /// Whether a header is read from the client first.
    pub(crate) fn reads(self) -> bool {
        match self {
            ProxyHeaders::None => false,
            ProxyHeaders::Expect | ProxyHeaders::Relay => true,
            ProxyHeaders::Send { expect } => expect,
        }
    }
}

fn seconds(value: u32) -> Duration {
    Duration::from_secs(u64::from(value.max(1)))
}

/// Serves one client connection of a TCP listener until both directions
/// are over, a side stays idle past its timeout, or no backend answers.
pub(crate) async fn serve_connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    listener_address: SocketAddr,
    listener: Rc<TcpListener>,
    shared: Rc<Shared>,
) {
    shared.metrics.borrow_mut().tcp_accepted += 1;
    let started = Instant::now();
    let config = listener.config.borrow().clone();
    let frontend = listener.frontend.borrow().clone();
    let Some(frontend) = frontend else {
        tracing::debug!(%peer, listener = %listener_address, "no TCP frontend on this listener");
        return;
    };
    let cluster = shared.clusters.borrow().get(&frontend.cluster_id).cloned();
    let Some(cluster) = cluster else {
        tracing::debug!(%peer, cluster = %frontend.cluster_id, "the TCP frontend's cluster does not exist");
        return;
    };
    let cluster_config = cluster.config.borrow().clone();
    let headers = ProxyHeaders::of(config.expect_proxy, &cluster_config);
    let timeouts = IdleTimeouts {
        front: seconds(config.front_timeout),
        back: seconds(config.back_timeout),
    };

    // -- 1. the client's PROXY header
    let mut received: Option<ReceivedHeader> = None;
    let mut client = peer;
    if headers.reads() {
        match proxy_protocol_io::accept_header(&mut stream, peer, timeouts.front, &shared).await {
            Some((address, header)) => {
                client = address;
                received = Some(header);
            }
            None => return,
        }
    }
    let mut session = Session {
        id: ulid::Ulid::new().to_string(),
        started,
        client,
        cluster_id: cluster_config.cluster_id.clone(),
        frontend,
        backend: None,
        connect_time: None,
        bytes_in: 0,
        bytes_out: 0,
        reported: (0, 0),
        shared: shared.clone(),
    };

    // -- 2. a backend
    let attempts = shared.connection_attempts(&cluster_config);
    let connected =
        match connect(&shared, &cluster, attempts, seconds(config.connect_timeout)).await {
            Ok(connected) => connected,
            Err(failure) => {
                session.finish(failure.describe());
                return;
            }
        };
    session.backend = Some(connected.backend.clone());
    session.connect_time = Some(connected.connect_time);
    let _in_use = BackendInUse::new(&shared, &cluster_config.cluster_id, connected.backend);
    let mut back = connected.stream;

    // -- 3. the backend's PROXY header
    let prefix = match headers {
        ProxyHeaders::Send { .. } => {
            // The address the client reached: the public one when the
            // listener declares it (we are behind a NAT), else the socket's.
            let destination = config
                .public_address
                .map(|address| address.to_socket_addr())
                .or_else(|| stream.local_addr().ok())
                .unwrap_or(listener_address);
            match Header::tcp(client, destination).encode() {
                Ok(bytes) => Some(bytes),
                Err(error) => {
                    session.finish(&error.to_string());
                    return;
                }
            }
        }
        ProxyHeaders::Relay => received.map(|received| received.bytes),
        ProxyHeaders::None | ProxyHeaders::Expect => None,
    };
    if let Some(prefix) = prefix {
        match tokio::time::timeout(timeouts.back, back.write_all(&prefix)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                session.finish(&format!("could not send the PROXY header: {error}"));
                return;
            }
            Err(_) => {
                session.finish("timed out sending the PROXY header");
                return;
            }
        }
    }

    // -- 4. bytes both ways
    let activity = {
        let (shared, cluster) = (shared.clone(), cluster_config.cluster_id.clone());
        let backend = session
            .backend
            .as_ref()
            .map(|backend| backend.id().to_owned());
        Activity::reporting(move |bytes_in, bytes_out| {
            shared.metrics.borrow_mut().record_piped_bytes(
                &cluster,
                backend.as_deref(),
                bytes_in,
                bytes_out,
            );
        })
    };
    let buffer_size = shared.options.buffer_size;
    let registration = session.backend.as_ref().map(|backend| {
        shared
            .sessions
            .register(&cluster_config.cluster_id, backend.id(), backend.address())
    });
    let closed_on_request = async {
        match &registration {
            Some(registration) => registration.closed().await,
            None => std::future::pending().await,
        }
    };
    let ending = tokio::select! {
        ending = relay(stream, back, timeouts, buffer_size, &activity) => ending,
        () = closed_on_request => Ending::CloseRequested,
    };
    session.bytes_in = activity.front_read.get();
    session.bytes_out = activity.front_written.get();
    session.reported = activity.reported.get();
    session.finish(ending.describe());
}

/// What is known about a session, for its access log line and metrics.
struct Session {
    id: String,
    started: Instant,
    client: SocketAddr,
    cluster_id: String,
    frontend: Rc<RequestTcpFrontend>,
    backend: Option<Arc<Backend>>,
    connect_time: Option<Duration>,
    bytes_in: u64,
    bytes_out: u64,
    /// Of those, what the metrics got while the session ran (in, out).
    reported: (u64, u64),
    shared: Rc<Shared>,
}

impl Session {
    fn finish(&self, end: &str) {
        let duration = self.started.elapsed();
        let backend_id = self.backend.as_ref().map(|backend| backend.id());
        self.shared.metrics.borrow_mut().record_piped(
            &self.cluster_id,
            backend_id,
            &Piped {
                bytes_in: self.bytes_in - self.reported.0,
                bytes_out: self.bytes_out - self.reported.1,
                connect_time: self.connect_time,
            },
        );
        tracing::info!(
            target: "access",
            session_id = %self.id,
            protocol = "tcp",
            client = %self.client,
            listener = %self.frontend.address.to_socket_addr(),
            cluster = %self.cluster_id,
            backend = backend_id.unwrap_or("-"),
            backend_address = %self.backend.as_ref().map(|b| b.address().to_string()).unwrap_or_else(|| "-".into()),
            tags = ?self.frontend.tags,
            bytes_in = self.bytes_in,
            bytes_out = self.bytes_out,
            duration_ms = duration.as_secs_f64() * 1000.0,
            end,
            "session"
        );
    }
}

/// A backend connection that succeeded.
struct Connected {
    backend: Arc<Backend>,
    stream: TcpStream,
    connect_time: Duration,
}

/// Why no backend connection was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NoBackend {
    /// The balancer offered nothing to try.
    Unavailable,
    /// This many attempts failed, and nothing else could be tried.
    Failed(u32),
}

impl NoBackend {
    fn describe(self) -> &'static str {
        match self {
            NoBackend::Unavailable => "no available backend",
            NoBackend::Failed(_) => "every backend connection attempt failed",
        }
    }
}

/// Connects to a backend of `cluster`: up to `attempts` tries, each on a
/// backend not tried yet and bounded by `timeout`, with every success and
/// failure told to the balancer and its events reported.
async fn connect(
    shared: &Shared,
    cluster: &ClusterRuntime,
    attempts: u32,
    timeout: Duration,
) -> Result<Connected, NoBackend> {
    let mut tried: Vec<Arc<Backend>> = Vec::new();
    let mut failures = 0;
    while failures < attempts {
        let chosen = cluster
            .balancer
            .borrow_mut()
            .choose(Instant::now(), None, &tried);
        let Some(backend) = chosen else { break };
        let started = Instant::now();
        let outcome = tokio::time::timeout(timeout, TcpStream::connect(backend.address())).await;
        match outcome {
            Ok(Ok(stream)) => {
                let connect_time = started.elapsed();
                let events = cluster.balancer.borrow_mut().connect_succeeded(
                    &backend,
                    Instant::now(),
                    connect_time,
                );
                shared.report(events);
                let _ = stream.set_nodelay(true);
                return Ok(Connected {
                    backend,
                    stream,
                    connect_time,
                });
            }
            failed => {
                let error = match failed {
                    Ok(Err(error)) => error.to_string(),
                    _ => format!("no connection within {timeout:?}"),
                };
                tracing::debug!(backend = %backend.address(), %error, "backend connection failed");
                let events = cluster
                    .balancer
                    .borrow_mut()
                    .connect_failed(&backend, Instant::now());
                shared.report(events);
                tried.push(backend);
                failures += 1;
            }
        }
    }
    Err(if failures == 0 {
        NoBackend::Unavailable
    } else {
        NoBackend::Failed(failures)
    })
}

/// Counts a session on its backend (connections and active requests, for
/// least-loaded balancing and metrics) for as long as it lives.
struct BackendInUse {
    shared: Rc<Shared>,
    cluster_id: String,
    backend: Arc<Backend>,
}

impl BackendInUse {
    fn new(shared: &Rc<Shared>, cluster_id: &str, backend: Arc<Backend>) -> BackendInUse {
        backend.connection_opened();
        backend.request_started();
        shared
            .metrics
            .borrow_mut()
            .backend_connection(cluster_id, backend.id(), true);
        BackendInUse {
            shared: shared.clone(),
            cluster_id: cluster_id.to_owned(),
            backend,
        }
    }
}

impl Drop for BackendInUse {
    fn drop(&mut self) {
        self.backend.request_finished();
        self.shared.report(self.backend.connection_closed());
        self.shared.metrics.borrow_mut().backend_connection(
            &self.cluster_id,
            self.backend.id(),
            false,
        );
    }
}

/// How long each side may move no byte before the session is closed.
#[derive(Debug, Clone, Copy)]
struct IdleTimeouts {
    /// The client side (`front_timeout`).
    front: Duration,
    /// The backend side (`back_timeout`).
    back: Duration,
}

/// Client bytes (in and out together) a session counts before it adds
/// them to the metrics: a long session shows in the metrics as it runs, at
/// the cost of one metrics update per this many bytes.
const REPORT_EVERY: u64 = 256 * 1024;

/// When each side last moved a byte, and how many moved.
struct Activity {
    front: Cell<Instant>,
    back: Cell<Instant>,
    /// Read from the client.
    front_read: Cell<u64>,
    /// Written to the client.
    front_written: Cell<u64>,
    back_read: Cell<u64>,
    back_written: Cell<u64>,
    /// Client bytes (in, out) already added to the metrics.
    reported: Cell<(u64, u64)>,
    /// Adds client bytes (in, out) to the metrics while the session runs.
    report: Option<Box<dyn Fn(u64, u64)>>,
}

impl Activity {
    fn new() -> Activity {
        let now = Instant::now();
        Activity {
            front: Cell::new(now),
            back: Cell::new(now),
            front_read: Cell::new(0),
            front_written: Cell::new(0),
            back_read: Cell::new(0),
            back_written: Cell::new(0),
            reported: Cell::new((0, 0)),
            report: None,
        }
    }

    /// Reports client bytes through `report` every [`REPORT_EVERY`] bytes.
    fn reporting(report: impl Fn(u64, u64) + 'static) -> Activity {
        Activity {
            report: Some(Box::new(report)),
            ..Activity::new()
        }
    }

    /// Called when client bytes moved: reports them once enough piled up.
    fn client_moved(&self) {
        let Some(report) = &self.report else { return };
        let (read, written) = (self.front_read.get(), self.front_written.get());
        let (reported_in, reported_out) = self.reported.get();
        if read + written - reported_in - reported_out >= REPORT_EVERY {
            report(read - reported_in, written - reported_out);
            self.reported.set((read, written));
        }
    }
}

/// How the byte relay ended.
#[derive(Debug)]
enum Ending {
    /// Both directions reached their end.
    Closed,
    /// The client side moved nothing for `front_timeout`.
    FrontIdle,
    /// The backend side moved nothing for `back_timeout`.
    BackIdle,
    /// A socket failed (a reset, say).
    Failed(io::Error),
    /// `close_sessions` ended it.
    CloseRequested,
}

impl Ending {
    fn describe(&self) -> &'static str {
        match self {
            Ending::Closed => "closed",
            Ending::CloseRequested => "closed by close_sessions",
            Ending::FrontIdle => "client idle timeout",
            Ending::BackIdle => "backend idle timeout",
            Ending::Failed(error) if error.kind() == io::ErrorKind::ConnectionReset => {
                "connection reset"
            }
            Ending::Failed(_) => "socket error",
        }
    }
}

/// Copies bytes both ways until both directions are over or one side is
/// idle too long. `copy_bidirectional` shuts down a side's write half when
/// the other side's read half ends, and keeps copying the other direction:
/// that is what carries half-closes through.
async fn relay(
    front: TcpStream,
    back: TcpStream,
    timeouts: IdleTimeouts,
    buffer_size: usize,
    activity: &Activity,
) -> Ending {
    let mut front = Metered {
        session: activity,
        client: true,
        stream: front,
        activity: &activity.front,
        read: &activity.front_read,
        written: &activity.front_written,
    };
    let mut back = Metered {
        session: activity,
        client: false,
        stream: back,
        activity: &activity.back,
        read: &activity.back_read,
        written: &activity.back_written,
    };
    let copy =
        tokio::io::copy_bidirectional_with_sizes(&mut front, &mut back, buffer_size, buffer_size);
    tokio::select! {
        copied = copy => match copied {
            Ok(_) => Ending::Closed,
            Err(error) => Ending::Failed(error),
        },
        idle = idle(activity, timeouts) => idle,
    }
}

/// Returns when a side has moved nothing for its timeout. Sleeps until the
/// earliest deadline, then checks again: activity meanwhile pushes it back.
async fn idle(activity: &Activity, timeouts: IdleTimeouts) -> Ending {
    loop {
        let front_deadline = activity.front.get() + timeouts.front;
        let back_deadline = activity.back.get() + timeouts.back;
        tokio::time::sleep_until(front_deadline.min(back_deadline).into()).await;
        let now = Instant::now();
        if now >= activity.front.get() + timeouts.front {
            return Ending::FrontIdle;
        }
        if now >= activity.back.get() + timeouts.back {
            return Ending::BackIdle;
        }
    }
}

/// A socket that notes the time of its last read or write and counts bytes.
struct Metered<'a, S> {
    /// The session's activity, told when client bytes move.
    session: &'a Activity,
    /// Whether this is the client's socket.
    client: bool,
    stream: S,
    activity: &'a Cell<Instant>,
    read: &'a Cell<u64>,
    written: &'a Cell<u64>,
}

impl<S> Metered<'_, S> {
    fn moved(&self, counter: &Cell<u64>, bytes: usize) {
        if bytes > 0 {
            counter.set(counter.get() + bytes as u64);
            self.activity.set(Instant::now());
            if self.client {
                self.session.client_moved();
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Metered<'_, S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.stream).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            this.moved(this.read, buf.filled().len() - before);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Metered<'_, S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_write(cx, buf);
        if let Poll::Ready(Ok(written)) = polled {
            this.moved(this.written, written);
        }
        polled
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(written)) = polled {
            this.moved(this.written, written);
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(proxy_protocol: Option<ProxyProtocolConfig>) -> Cluster {
        Cluster {
            cluster_id: "c".into(),
            proxy_protocol: proxy_protocol.map(|value| value as i32),
            ..Default::default()
        }
    }

    #[test]
    fn listener_and_cluster_settings_choose_the_header_behaviour() {
        use ProxyProtocolConfig::*;
        let cases = [
            (false, None, ProxyHeaders::None),
            (true, None, ProxyHeaders::Expect),
            (true, Some(ExpectHeader), ProxyHeaders::Expect),
            (
                false,
                Some(SendHeader),
                ProxyHeaders::Send { expect: false },
            ),
            (true, Some(SendHeader), ProxyHeaders::Send { expect: true }),
            (true, Some(RelayHeader), ProxyHeaders::Relay),
            (false, Some(RelayHeader), ProxyHeaders::Relay),
        ];
        for (expect, configured, wanted) in cases {
            let chosen = ProxyHeaders::of(expect, &cluster(configured));
            assert_eq!(
                chosen, wanted,
                "expect_proxy {expect}, cluster {configured:?}"
            );
        }
        assert!(!ProxyHeaders::None.reads());
        assert!(!ProxyHeaders::Send { expect: false }.reads());
        assert!(ProxyHeaders::Send { expect: true }.reads());
        assert!(ProxyHeaders::Relay.reads());
    }

    /// The relay on in-memory sockets: a half-close on either side still
    /// lets the other direction finish, and idle timeouts fire per side.
    #[test]
    fn half_closes_are_carried_and_idle_sides_time_out() {
        use tokio::io::AsyncReadExt;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let address = listener.local_addr().unwrap();
            let listener = &listener;
            let pair = || async move {
                let client = TcpStream::connect(address).await.unwrap();
                let (server, _) = listener.accept().await.unwrap();
                (client, server)
            };
            let (mut client, front) = pair().await;
            let (back, mut backend) = pair().await;
            let activity = Activity::new();
            let relayed = relay(
                front,
                back,
                IdleTimeouts {
                    front: Duration::from_secs(5),
                    back: Duration::from_secs(5),
                },
                1024,
                &activity,
            );
            let peers = async {
                client.write_all(b"question").await.unwrap();
                client.shutdown().await.unwrap();
                let mut asked = Vec::new();
                backend.read_to_end(&mut asked).await.unwrap();
                assert_eq!(asked, b"question");
                // The client's write half is closed; it still gets this.
                backend.write_all(b"late answer").await.unwrap();
                backend.shutdown().await.unwrap();
                let mut answer = Vec::new();
                client.read_to_end(&mut answer).await.unwrap();
                assert_eq!(answer, b"late answer");
            };
            let (ending, ()) = tokio::join!(relayed, peers);
            assert!(matches!(ending, Ending::Closed), "{ending:?}");
            assert_eq!(activity.front_read.get(), 8);
            assert_eq!(activity.front_written.get(), 11);

            let (_client, front) = pair().await;
            let (back, _backend) = pair().await;
            let activity = Activity::new();
            let ending = relay(
                front,
                back,
                IdleTimeouts {
                    front: Duration::from_millis(300),
                    back: Duration::from_millis(100),
                },
                1024,
                &activity,
            )
            .await;
            assert!(matches!(ending, Ending::BackIdle), "{ending:?}");
        });
    }
}
