//! TCP proxying end to end: the real `sozu` binary with one worker (so that
//! balancing is one round robin, not one per worker), TCP listeners,
//! frontends and clusters configured over the command socket, and echo
//! backends on plain threads.
//!
//! PROXY headers are written out byte by byte here, independently of the
//! proxy's own encoder, so a mistake in one cannot hide in the other.

use crate::harness;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use harness::backend::{Backend, SeenRequest};
use harness::{Daemon, free_port, local, wait_until};
use sozu_command::channel::CommandChannel;
use sozu_command::proto::command::{
    ActivateListener, AddBackend, CloseSessions, Cluster, DeactivateListener, EventKind,
    HttpListenerConfig, ListenerType, PathRule, ProxyProtocolConfig, QueryMetricsOptions,
    RemoveListener, RequestHttpFrontend, RequestTcpFrontend, RulePosition, TcpListenerConfig,
    UpdateTcpListenerConfig, filtered_metrics::Inner, request::RequestType,
    response_content::ContentType,
};

const CONFIG: &str =
    "command_socket = \"sozu.sock\"\nworker_count = 1\nworker_timeout = 5\nlog_level = \"warn\"\n";

/// How long any single socket read in these tests may block.
const READ_LIMIT: Duration = Duration::from_secs(15);

// ---- backends

/// A TCP backend on its own threads: counts its connections and, for each,
/// runs `serve` on the stream.
struct TcpBackend {
    address: SocketAddr,
    connections: Arc<AtomicUsize>,
}

impl TcpBackend {
    fn start(serve: impl Fn(TcpStream) + Send + Sync + 'static) -> TcpBackend {
        TcpBackend::start_at(SocketAddr::from(([127, 0, 0, 1], 0)), serve)
    }

    /// Like [`TcpBackend::start`], on a given address.
    fn start_at(
        address: SocketAddr,
        serve: impl Fn(TcpStream) + Send + Sync + 'static,
    ) -> TcpBackend {
        let listener = TcpListener::bind(address).unwrap();
        let address = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = connections.clone();
        let serve = Arc::new(serve);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                counted.fetch_add(1, Ordering::SeqCst);
                let serve = serve.clone();
                std::thread::spawn(move || serve(stream));
            }
        });
        TcpBackend {
            address,
            connections,
        }
    }

    /// Echoes every byte, and shuts its write side once the client has
    /// shut its own (a half-close, answered with one).
    fn echo() -> TcpBackend {
        TcpBackend::start(|stream| {
            let _ = echo(stream);
        })
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

fn echo(stream: TcpStream) -> std::io::Result<u64> {
    let mut reader = stream.try_clone()?;
    let mut writer = stream;
    let copied = std::io::copy(&mut reader, &mut writer)?;
    writer.shutdown(Shutdown::Write)?;
    Ok(copied)
}

/// Reads one PROXY v2 header (16 bytes, then the length they announce).
fn read_proxy_header(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut header = vec![0u8; 16];
    stream.read_exact(&mut header)?;
    let length = usize::from(u16::from_be_bytes([header[14], header[15]]));
    header.resize(16 + length, 0);
    stream.read_exact(&mut header[16..])?;
    Ok(header)
}

/// A backend that expects a PROXY header: reports it, then echoes.
fn proxy_backend() -> (TcpBackend, mpsc::Receiver<Vec<u8>>) {
    let (headers, received) = mpsc::channel();
    let headers = std::sync::Mutex::new(headers);
    let backend = TcpBackend::start(move |mut stream| {
        stream.set_read_timeout(Some(READ_LIMIT)).unwrap();
        if let Ok(header) = read_proxy_header(&mut stream) {
            let _ = headers.lock().unwrap().send(header);
            let _ = echo(stream);
        }
    });
    (backend, received)
}

// ---- PROXY headers, by hand

const SIGNATURE: [u8; 12] = [
    0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
];

/// A PROXY v2 header for TCP over IPv4, with `tlvs` after the addresses.
fn proxy_v4(source: SocketAddr, destination: SocketAddr, tlvs: &[u8]) -> Vec<u8> {
    let (SocketAddr::V4(source), SocketAddr::V4(destination)) = (source, destination) else {
        panic!("IPv4 addresses only");
    };
    let mut header = SIGNATURE.to_vec();
    header.push(0x21); // version 2, PROXY
    header.push(0x11); // AF_INET, STREAM
    header.extend_from_slice(&u16::try_from(12 + tlvs.len()).unwrap().to_be_bytes());
    header.extend_from_slice(&source.ip().octets());
    header.extend_from_slice(&destination.ip().octets());
    header.extend_from_slice(&source.port().to_be_bytes());
    header.extend_from_slice(&destination.port().to_be_bytes());
    header.extend_from_slice(tlvs);
    header
}

fn address(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

// ---- configuration

fn add_tcp_listener(daemon: &Daemon, port: u16, configure: impl FnOnce(&mut TcpListenerConfig)) {
    let mut config = TcpListenerConfig {
        address: local(port),
        ..Default::default()
    };
    configure(&mut config);
    daemon.ok(RequestType::AddTcpListener(config));
    daemon.ok(RequestType::ActivateListener(ActivateListener {
        address: local(port),
        proxy: ListenerType::Tcp as i32,
        from_scm: false,
        interface: None,
    }));
}

fn add_cluster(daemon: &Daemon, id: &str, proxy_protocol: Option<ProxyProtocolConfig>) {
    daemon.ok(RequestType::AddCluster(Cluster {
        cluster_id: id.into(),
        proxy_protocol: proxy_protocol.map(|value| value as i32),
        ..Default::default()
    }));
}

fn tcp_frontend(port: u16, cluster: &str) -> RequestTcpFrontend {
    RequestTcpFrontend {
        cluster_id: cluster.into(),
        address: local(port),
        ..Default::default()
    }
}

fn add_backend(daemon: &Daemon, cluster: &str, id: &str, address: SocketAddr) {
    daemon.ok(RequestType::AddBackend(AddBackend {
        cluster_id: cluster.into(),
        backend_id: id.into(),
        address: address.into(),
        ..Default::default()
    }));
}

/// A daemon with a TCP listener on a fresh port, routed to cluster `app`
/// (with `proxy_protocol`), whose backends are `backends`.
fn daemon_with(
    expect_proxy: bool,
    proxy_protocol: Option<ProxyProtocolConfig>,
    backends: &[SocketAddr],
) -> (Daemon, u16) {
    let daemon = Daemon::start(CONFIG);
    let port = free_port();
    add_tcp_listener(&daemon, port, |config| config.expect_proxy = expect_proxy);
    add_cluster(&daemon, "app", proxy_protocol);
    daemon.ok(RequestType::AddTcpFrontend(tcp_frontend(port, "app")));
    for (index, backend) in backends.iter().enumerate() {
        add_backend(&daemon, "app", &format!("b{index}"), *backend);
    }
    (daemon, port)
}

// ---- clients

fn connect(port: u16) -> TcpStream {
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(READ_LIMIT)).unwrap();
    stream
}

/// Sends `message`, shuts the write side, and returns everything read
/// until the proxy closes the connection.
fn exchange(mut stream: TcpStream, message: &[u8]) -> Vec<u8> {
    stream.write_all(message).unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    answer
}

/// Whether the proxy closed the connection (end of stream or reset)
/// without sending anything.
fn is_closed(stream: &mut TcpStream) -> bool {
    let mut buffer = [0u8; 64];
    match stream.read(&mut buffer) {
        Ok(0) => true,
        Ok(_) => false,
        Err(error) => !matches!(
            error.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

/// A counter of a backend of `cluster`, summed over workers; 0 when absent.
fn backend_count(daemon: &Daemon, cluster: &str, backend: &str, name: &str) -> i64 {
    let answer = daemon.ok(RequestType::QueryMetrics(QueryMetricsOptions::default()));
    let Some(ContentType::Metrics(metrics)) = answer.content.and_then(|c| c.content_type) else {
        panic!("no metrics in the answer");
    };
    metrics
        .clusters
        .get(cluster)
        .and_then(|cluster| cluster.backends.iter().find(|b| b.backend_id == backend))
        .and_then(|backend| backend.metrics.get(name))
        .and_then(|metric| match metric.inner {
            Some(Inner::Count(count)) => Some(count),
            _ => None,
        })
        .unwrap_or(0)
}

/// A counter of the proxy as a whole, summed over workers.
fn proxy_count(daemon: &Daemon, name: &str) -> i64 {
    let answer = daemon.ok(RequestType::QueryMetrics(QueryMetricsOptions::default()));
    let Some(ContentType::Metrics(metrics)) = answer.content.and_then(|c| c.content_type) else {
        panic!("no metrics in the answer");
    };
    match metrics.proxying.get(name).and_then(|m| m.inner.clone()) {
        Some(Inner::Count(count)) => count,
        _ => 0,
    }
}

// ---- tests

#[test]
fn round_robin_spreads_connections_over_backends() {
    let backends = [TcpBackend::echo(), TcpBackend::echo(), TcpBackend::echo()];
    let addresses: Vec<SocketAddr> = backends.iter().map(|b| b.address).collect();
    let (_daemon, port) = daemon_with(false, None, &addresses);
    for round in 0..9 {
        let message = format!("connection {round}");
        assert_eq!(
            exchange(connect(port), message.as_bytes()),
            message.as_bytes()
        );
    }
    let spread: Vec<usize> = backends.iter().map(TcpBackend::connections).collect();
    assert_eq!(spread, [3, 3, 3]);
}

#[test]
fn a_megabyte_comes_back_after_the_client_shuts_its_write_side() {
    let backend = TcpBackend::echo();
    let (daemon, port) = daemon_with(false, None, &[backend.address]);
    let payload: Vec<u8> = (0..1_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let stream = connect(port);
    let mut writer = stream.try_clone().unwrap();
    let sent = payload.clone();
    // Write on one thread and read on this one: an echo of a megabyte does
    // not fit in socket buffers.
    let sender = std::thread::spawn(move || {
        writer.write_all(&sent).unwrap();
        writer.shutdown(Shutdown::Write).unwrap();
    });
    let mut reader = stream;
    let mut echoed = Vec::new();
    reader.read_to_end(&mut echoed).unwrap();
    sender.join().unwrap();
    assert_eq!(echoed.len(), payload.len());
    assert!(echoed == payload, "the echo differs from what was sent");

    // Every byte is counted once the session is over.
    let counted = wait_until(Duration::from_secs(10), || {
        backend_count(&daemon, "app", "b0", "bytes_in") == 1_000_000
            && backend_count(&daemon, "app", "b0", "bytes_out") == 1_000_000
    });
    assert!(
        counted,
        "bytes_in {} bytes_out {}",
        backend_count(&daemon, "app", "b0", "bytes_in"),
        backend_count(&daemon, "app", "b0", "bytes_out")
    );
    assert!(proxy_count(&daemon, "tcp.requests") >= 1);
}

#[test]
fn bytes_of_a_running_session_reach_the_metrics_before_it_ends() {
    let backend = TcpBackend::echo();
    let (daemon, port) = daemon_with(false, None, &[backend.address]);
    let stream = connect(port);
    let mut writer = stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        writer.write_all(&vec![7u8; 1_000_000]).unwrap();
        writer
    });
    let mut reader = stream;
    let mut echoed = vec![0u8; 1_000_000];
    reader.read_exact(&mut echoed).unwrap();
    let writer = sender.join().unwrap();
    // The session is still open: most of its bytes show already.
    let live = wait_until(Duration::from_secs(10), || {
        backend_count(&daemon, "app", "b0", "bytes_in") >= 750_000
            && backend_count(&daemon, "app", "b0", "bytes_out") >= 750_000
    });
    assert!(
        live,
        "bytes_in {} bytes_out {} while the session runs",
        backend_count(&daemon, "app", "b0", "bytes_in"),
        backend_count(&daemon, "app", "b0", "bytes_out")
    );
    assert!(backend_count(&daemon, "app", "b0", "bytes_in") <= 1_000_000);
    // Once it ends, every byte is counted, and none twice.
    drop(writer);
    drop(reader);
    let exact = wait_until(Duration::from_secs(10), || {
        backend_count(&daemon, "app", "b0", "bytes_in") == 1_000_000
            && backend_count(&daemon, "app", "b0", "bytes_out") == 1_000_000
    });
    assert!(
        exact,
        "bytes_in {} bytes_out {} after the session",
        backend_count(&daemon, "app", "b0", "bytes_in"),
        backend_count(&daemon, "app", "b0", "bytes_out")
    );
}

#[test]
fn the_backend_half_close_reaches_the_client_who_can_still_send() {
    let (received, heard) = mpsc::channel();
    let received = std::sync::Mutex::new(received);
    let backend = TcpBackend::start(move |mut stream| {
        stream.set_read_timeout(Some(READ_LIMIT)).unwrap();
        stream.write_all(b"greeting").unwrap();
        stream.shutdown(Shutdown::Write).unwrap();
        // Still reading after its own write side is shut.
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest);
        let _ = received.lock().unwrap().send(rest);
    });
    let (_daemon, port) = daemon_with(false, None, &[backend.address]);
    let mut client = connect(port);
    let mut greeting = Vec::new();
    client.read_to_end(&mut greeting).unwrap();
    assert_eq!(greeting, b"greeting");
    client.write_all(b"still talking").unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    let rest = heard.recv_timeout(READ_LIMIT).unwrap();
    assert_eq!(rest, b"still talking");
}

#[test]
fn a_sending_cluster_writes_the_client_and_listener_addresses() {
    let (backend, headers) = proxy_backend();
    let (_daemon, port) = daemon_with(
        false,
        Some(ProxyProtocolConfig::SendHeader),
        &[backend.address],
    );
    let client = connect(port);
    let client_address = client.local_addr().unwrap();
    let listener_address = SocketAddr::from(([127, 0, 0, 1], port));
    assert_eq!(exchange(client, b"payload"), b"payload");
    let header = headers.recv_timeout(READ_LIMIT).unwrap();
    assert_eq!(header, proxy_v4(client_address, listener_address, &[]));
}

#[test]
fn an_expecting_listener_hands_the_header_source_to_a_sending_cluster() {
    let (backend, headers) = proxy_backend();
    let (_daemon, port) = daemon_with(
        true,
        Some(ProxyProtocolConfig::SendHeader),
        &[backend.address],
    );
    let original = proxy_v4(
        address("203.0.113.7:4242"),
        address("198.51.100.1:443"),
        &[],
    );
    let mut message = original.clone();
    message.extend_from_slice(b"payload");
    assert_eq!(exchange(connect(port), &message), b"payload");
    let header = headers.recv_timeout(READ_LIMIT).unwrap();
    let listener_address = SocketAddr::from(([127, 0, 0, 1], port));
    assert_eq!(
        header,
        proxy_v4(address("203.0.113.7:4242"), listener_address, &[])
    );
}

#[test]
fn a_relaying_cluster_passes_the_header_unchanged() {
    let (backend, headers) = proxy_backend();
    let (_daemon, port) = daemon_with(
        true,
        Some(ProxyProtocolConfig::RelayHeader),
        &[backend.address],
    );
    // With an ALPN TLV and a NOOP one, to show nothing is rebuilt.
    let tlvs = [0x01, 0x00, 0x02, b'h', b'2', 0x04, 0x00, 0x01, 0x00];
    let original = proxy_v4(
        address("203.0.113.7:4242"),
        address("198.51.100.1:443"),
        &tlvs,
    );
    let mut message = original.clone();
    message.extend_from_slice(b"payload");
    assert_eq!(exchange(connect(port), &message), b"payload");
    assert_eq!(headers.recv_timeout(READ_LIMIT).unwrap(), original);
}

#[test]
fn an_http_listener_with_expect_proxy_forwards_the_header_source() {
    let (seen, requests) = mpsc::channel::<SeenRequest>();
    let backend = Backend::start_with("one", Duration::ZERO, Some(seen));
    let daemon = Daemon::start(CONFIG);
    let port = free_port();
    daemon.ok(RequestType::AddHttpListener(HttpListenerConfig {
        address: local(port),
        expect_proxy: true,
        ..Default::default()
    }));
    daemon.ok(RequestType::ActivateListener(ActivateListener {
        address: local(port),
        proxy: ListenerType::Http as i32,
        from_scm: false,
        interface: None,
    }));
    add_cluster(&daemon, "web", None);
    daemon.ok(RequestType::AddHttpFrontend(RequestHttpFrontend {
        cluster_id: Some("web".into()),
        address: local(port),
        hostname: "app.test".into(),
        path: PathRule::default(),
        position: RulePosition::Tree as i32,
        ..Default::default()
    }));
    add_backend(&daemon, "web", "one", backend.address);

    let mut request = proxy_v4(address("203.0.113.7:4242"), address("198.51.100.1:80"), &[]);
    request.extend_from_slice(b"GET / HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n");
    // The client keeps its write side open: an HTTP listener does not
    // answer a request whose client half-closed (hyper's default).
    let mut client = connect(port);
    client.write_all(&request).unwrap();
    let mut answer = Vec::new();
    client.read_to_end(&mut answer).unwrap();
    let answer = harness::client::parse(&answer).unwrap();
    assert_eq!(answer.status, 200);
    let seen = requests.recv_timeout(READ_LIMIT).unwrap();
    let forwarded_for = seen.header("x-forwarded-for").unwrap_or_default();
    assert_eq!(forwarded_for, "203.0.113.7");

    // Without a header, the connection is closed before any HTTP.
    let mut plain = connect(port);
    plain
        .write_all(b"GET / HTTP/1.1\r\nHost: app.test\r\n\r\n")
        .unwrap();
    assert!(is_closed(&mut plain));
}

#[test]
fn a_bad_proxy_header_closes_only_its_connection() {
    let backend = TcpBackend::echo();
    let (daemon, port) = daemon_with(true, None, &[backend.address]);
    let header = proxy_v4(
        address("203.0.113.7:4242"),
        address("198.51.100.1:443"),
        &[],
    );

    // A session already relaying when the bad ones arrive.
    let mut established = connect(port);
    established.write_all(&header).unwrap();
    established.write_all(b"before").unwrap();
    let mut echoed = [0u8; 6];
    established.read_exact(&mut echoed).unwrap();
    assert_eq!(&echoed, b"before");

    // Not a PROXY header at all.
    let mut plain = connect(port);
    plain.write_all(b"hello there, proxy\r\n").unwrap();
    assert!(is_closed(&mut plain));
    // A header announcing 65535 bytes: refused from its first 16.
    let mut oversized = connect(port);
    let mut huge = SIGNATURE.to_vec();
    huge.extend_from_slice(&[0x21, 0x11, 0xFF, 0xFF]);
    huge.extend_from_slice(&[0u8; 100]);
    oversized.write_all(&huge).unwrap();
    assert!(is_closed(&mut oversized));
    // A version 1 header.
    let mut text = connect(port);
    text.write_all(b"PROXY TCP4 203.0.113.7 198.51.100.1 4242 443\r\n")
        .unwrap();
    assert!(is_closed(&mut text));
    // A wrong version nibble.
    let mut version = connect(port);
    let mut wrong = header.clone();
    wrong[12] = 0x31;
    version.write_all(&wrong).unwrap();
    assert!(is_closed(&mut version));

    // The established session and new ones carry on.
    established.write_all(b"after").unwrap();
    let mut echoed = [0u8; 5];
    established.read_exact(&mut echoed).unwrap();
    assert_eq!(&echoed, b"after");
    let mut message = header.clone();
    message.extend_from_slice(b"fresh");
    assert_eq!(exchange(connect(port), &message), b"fresh");
    assert_eq!(proxy_count(&daemon, "proxy_protocol.errors"), 4);
}

#[test]
fn refused_connections_move_on_to_the_next_backend_then_close() {
    // Ports nobody listens on: connecting is refused at once.
    let dead = [
        SocketAddr::from(([127, 0, 0, 1], free_port())),
        SocketAddr::from(([127, 0, 0, 1], free_port())),
    ];
    let alive = TcpBackend::echo();
    let (daemon, port) = daemon_with(false, None, &[dead[0], alive.address, dead[1]]);
    for round in 0..4 {
        let message = format!("attempt {round}");
        assert_eq!(
            exchange(connect(port), message.as_bytes()),
            message.as_bytes()
        );
    }
    assert_eq!(alive.connections(), 4);

    // A cluster whose every backend refuses: the client is closed.
    let lonely = free_port();
    add_tcp_listener(&daemon, lonely, |_| {});
    add_cluster(&daemon, "dead", None);
    daemon.ok(RequestType::AddTcpFrontend(tcp_frontend(lonely, "dead")));
    add_backend(&daemon, "dead", "d0", dead[0]);
    add_backend(&daemon, "dead", "d1", dead[1]);
    let started = Instant::now();
    let mut client = connect(lonely);
    client.write_all(b"anyone?").unwrap();
    assert!(is_closed(&mut client));
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn idle_sides_time_out_but_slow_steady_ones_do_not() {
    // Sends a byte every 300 ms for 1.5 s, longer than the 1 s timeouts:
    // each byte resets them.
    let slow = TcpBackend::start(|mut stream| {
        for _ in 0..5 {
            std::thread::sleep(Duration::from_millis(300));
            if stream.write_all(b"a").is_err() {
                return;
            }
        }
        let _ = stream.shutdown(Shutdown::Write);
    });
    let daemon = Daemon::start(CONFIG);
    let port = free_port();
    add_tcp_listener(&daemon, port, |config| {
        config.front_timeout = 1;
        config.back_timeout = 1;
    });
    add_cluster(&daemon, "app", None);
    daemon.ok(RequestType::AddTcpFrontend(tcp_frontend(port, "app")));
    add_backend(&daemon, "app", "slow", slow.address);
    // The client half-closes at once and then only listens.
    assert_eq!(exchange(connect(port), b""), b"aaaaa");

    // A backend that never says anything: the session ends after ~1 s.
    let silent = TcpBackend::start(|mut stream| {
        let mut sink = Vec::new();
        let _ = stream.read_to_end(&mut sink);
    });
    daemon.ok(RequestType::RemoveBackend(
        sozu_command::proto::command::RemoveBackend {
            cluster_id: "app".into(),
            backend_id: "slow".into(),
            address: slow.address.into(),
        },
    ));
    add_backend(&daemon, "app", "silent", silent.address);
    let started = Instant::now();
    let mut client = connect(port);
    assert!(is_closed(&mut client));
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "closed after {waited:?}"
    );
}

#[test]
fn listeners_are_updated_deactivated_and_removed_at_runtime() {
    let backend = TcpBackend::echo();
    let (daemon, port) = daemon_with(false, None, &[backend.address]);
    assert_eq!(exchange(connect(port), b"plain"), b"plain");

    // Expecting a PROXY header from now on.
    daemon.ok(RequestType::UpdateTcpListener(UpdateTcpListenerConfig {
        address: local(port),
        expect_proxy: Some(true),
        ..Default::default()
    }));
    let mut plain = connect(port);
    plain.write_all(b"plain").unwrap();
    assert!(is_closed(&mut plain));
    let mut message = proxy_v4(
        address("203.0.113.7:4242"),
        address("198.51.100.1:443"),
        &[],
    );
    message.extend_from_slice(b"framed");
    assert_eq!(exchange(connect(port), &message), b"framed");

    // Deactivated: nobody accepts on the port any more.
    daemon.ok(RequestType::DeactivateListener(DeactivateListener {
        address: local(port),
        proxy: ListenerType::Tcp as i32,
        to_scm: false,
        interface: None,
    }));
    assert!(wait_until(Duration::from_secs(10), || {
        TcpStream::connect(("127.0.0.1", port)).is_err()
    }));
    daemon.ok(RequestType::ActivateListener(ActivateListener {
        address: local(port),
        proxy: ListenerType::Tcp as i32,
        from_scm: false,
        interface: None,
    }));
    assert_eq!(exchange(connect(port), &message), b"framed");

    // The frontend goes, then the listener.
    daemon.ok(RequestType::RemoveTcpFrontend(tcp_frontend(port, "app")));
    let mut unrouted = connect(port);
    unrouted.write_all(&message).unwrap();
    assert!(is_closed(&mut unrouted));
    daemon.ok(RequestType::RemoveListener(RemoveListener {
        address: local(port),
        proxy: ListenerType::Tcp as i32,
        interface: None,
    }));
    assert!(wait_until(Duration::from_secs(10), || {
        TcpStream::connect(("127.0.0.1", port)).is_err()
    }));
}

#[test]
fn sni_routing_on_tcp_frontends_is_refused_by_name() {
    let backend = TcpBackend::echo();
    let (daemon, port) = daemon_with(false, None, &[backend.address]);
    let message = daemon.failure(RequestType::AddTcpFrontend(RequestTcpFrontend {
        sni: Some("example.com".into()),
        ..tcp_frontend(port, "app")
    }));
    assert!(message.contains("'sni'"), "{message}");
}

#[test]
fn sessions_report_balancer_events() {
    let dead = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let (daemon, port) = daemon_with(false, None, &[dead]);
    let mut events = CommandChannel::connect(&daemon.socket).unwrap();
    events
        .write_message(&RequestType::SubscribeEvents(Default::default()).into())
        .unwrap();
    let mut seen = Vec::new();
    let mut saw = |kind: EventKind, seen: &mut Vec<i32>| {
        wait_until(Duration::from_secs(10), || {
            if let Ok(Some(response)) = events.read_message(Some(Duration::from_millis(200)))
                && let Some(ContentType::Event(event)) =
                    response.content.and_then(|c| c.content_type)
            {
                seen.push(event.kind);
            }
            seen.contains(&(kind as i32))
        })
    };

    // The only backend refuses: the cluster has nothing left.
    let mut client = connect(port);
    assert!(is_closed(&mut client));
    assert!(
        saw(EventKind::NoAvailableBackends, &mut seen),
        "events: {seen:?}"
    );

    // It comes up; once its wait after the failure is over, sessions go
    // through again and the cluster is reported recovered.
    let _alive = TcpBackend::start_at(dead, |stream| {
        let _ = echo(stream);
    });
    assert!(wait_until(Duration::from_secs(10), || {
        let mut stream = connect(port);
        stream.write_all(b"up?").is_ok() && stream.shutdown(Shutdown::Write).is_ok() && {
            let mut answer = Vec::new();
            stream.read_to_end(&mut answer).is_ok() && answer == b"up?"
        }
    }));
    assert!(
        saw(EventKind::ClusterRecovered, &mut seen),
        "events: {seen:?}"
    );
}

#[test]
fn close_sessions_ends_the_live_sessions_of_a_cluster_or_backend() {
    let (first, second) = (TcpBackend::echo(), TcpBackend::echo());
    let (daemon, port) = daemon_with(false, None, &[first.address, second.address]);
    // Four live sessions, two on each backend (round robin), each proven
    // alive by an echo.
    let mut streams: Vec<TcpStream> = (0..4)
        .map(|_| {
            let mut stream = connect(port);
            stream.write_all(b"ping").unwrap();
            let mut echoed = [0u8; 4];
            stream.read_exact(&mut echoed).unwrap();
            assert_eq!(&echoed, b"ping");
            stream
        })
        .collect();

    // One backend's sessions only.
    let answer = daemon.ok(RequestType::CloseSessions(CloseSessions {
        cluster_id: "app".into(),
        backend_id: Some("b0".into()),
        address: None,
    }));
    let Some(ContentType::ClosedSessions(closed)) = answer.content.and_then(|c| c.content_type)
    else {
        panic!("no closed sessions count")
    };
    assert_eq!(closed.closed, 2);
    for stream in &streams {
        stream
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
    }
    let ended: Vec<bool> = streams.iter_mut().map(is_closed).collect();
    assert_eq!(
        ended.iter().filter(|closed| **closed).count(),
        2,
        "{ended:?}, backend connections: {} {}",
        first.connections(),
        second.connections()
    );

    // Then the whole cluster: the two others.
    let answer = daemon.ok(RequestType::CloseSessions(CloseSessions {
        cluster_id: "app".into(),
        backend_id: None,
        address: None,
    }));
    assert!(format!("{answer:?}").contains("closed: 2"), "{answer:?}");

    // An unknown cluster is refused by name; new sessions still work.
    let message = daemon.failure(RequestType::CloseSessions(CloseSessions {
        cluster_id: "ghost".into(),
        backend_id: None,
        address: None,
    }));
    assert!(message.contains("ghost"), "{message}");
    assert_eq!(exchange(connect(port), b"still here"), b"still here");
}
