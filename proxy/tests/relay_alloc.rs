//! The HTTP/1.1 relay allocates nothing per request on its common path
//! (routing, forwarding headers, request id, metrics, pooled backend
//! connection) once warm, nor for a sticky cluster (the cookie taken out,
//! `Set-Cookie` added) or a frontend with host/path rewrites: a counting
//! global allocator sees no allocation in the whole process while a
//! keep-alive client sends a thousand requests of each kind through a real
//! proxy server to a real backend on 127.0.0.1, access logs off and then
//! on (an ascii access layer taking the relay's records directly, as the
//! daemon sets it up). The client and the backend here use fixed buffers
//! and allocate nothing themselves.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sozu_command::proto::command::{
    AddBackend, Cluster, HttpListenerConfig, PathRule, RequestHttpFrontend, ResponseStatus,
    RulePosition, WorkerResponse, request::RequestType,
};
use sozu_proxy::access_log::{AccessLogFormat, AccessLogLayer, AccessLogWriter};
use sozu_proxy::{ProxyOptions, ResponseReceiver};
use tracing_subscriber::prelude::*;

/// Counts every allocation and reallocation of the process.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is passed on to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const DEADLINE: Duration = Duration::from_secs(20);
const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-From: backend\r\n\r\nhello";
const REQUEST: &[u8] = b"GET /alloc?q=1 HTTP/1.1\r\nHost: alloc.test\r\nUser-Agent: relay-alloc\r\nX-Forwarded-For: 10.0.0.1\r\nAccept: */*\r\n\r\n";
/// To the sticky cluster, naming its backend: no `Set-Cookie` back.
const STICKY: &[u8] = b"GET /s HTTP/1.1\r\nHost: sticky.test\r\nX-Forwarded-For: 10.0.0.1\r\nCookie: a=1; LB=alloc-s; b=2\r\n\r\n";
/// To the sticky cluster, naming a backend that is not there: balanced,
/// and a `Set-Cookie` back.
const STALE: &[u8] = b"GET /stale HTTP/1.1\r\nHost: sticky.test\r\nX-Forwarded-For: 10.0.0.1\r\nCookie: LB=gone\r\n\r\n";
/// To the frontend that rewrites host and path.
const REWRITE: &[u8] =
    b"GET /outer HTTP/1.1\r\nHost: rewrite.test\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n";
/// Each request and whether its response sets the sticky cookie.
const CASES: [(&[u8], bool); 4] = [
    (REQUEST, false),
    (STICKY, false),
    (STALE, true),
    (REWRITE, false),
];

/// Where `\r\n\r\n` ends in `bytes`, if it does.
fn head_end(bytes: &[u8]) -> Option<usize> {
    bytes
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .map(|at| at + 4)
}

/// A keep-alive backend answering every request head with `RESPONSE`,
/// from a fixed buffer; it checks that the forwarding headers arrived.
fn start_backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || serve_backend(stream));
        }
    });
    address
}

fn serve_backend(mut stream: TcpStream) {
    let mut buffer = [0u8; 8192];
    let mut filled = 0;
    loop {
        match stream.read(&mut buffer[filled..]) {
            Ok(0) | Err(_) => return,
            Ok(read) => filled += read,
        }
        while let Some(end) = head_end(&buffer[..filled]) {
            let head = &buffer[..end];
            let has = |needle: &[u8]| head.windows(needle.len()).any(|w| w == needle);
            // Forwarding headers added, the sticky cookie taken out (the
            // others kept), the rewrites applied.
            let rewritten = !has(b"rewrite.test")
                || (head.starts_with(b"GET /inner?r=1 HTTP/1.1\r\n")
                    && has(b"\r\nHost: internal.test\r\n")
                    && has(b"\r\nX-Forwarded-Host: rewrite.test\r\n"));
            let sticky = (!head.starts_with(b"GET /s ") || has(b"\r\nCookie: a=1; b=2\r\n"))
                && (!head.starts_with(b"GET /stale ") || !has(b"Cookie"));
            assert!(
                has(b"X-Forwarded-For: 10.0.0.1, 127.0.0.1\r\n")
                    && has(b"sozu-id: ")
                    && !has(b"LB=")
                    && rewritten
                    && sticky,
                "{}",
                String::from_utf8_lossy(head)
            );
            if stream.write_all(RESPONSE).is_err() {
                return;
            }
            buffer.copy_within(end..filled, 0);
            filled -= end;
        }
    }
}

fn answer_to(receiver: &mut ResponseReceiver, id: &str) -> WorkerResponse {
    let started = Instant::now();
    loop {
        while let Some(response) = receiver.try_recv() {
            if response.id == id {
                return response;
            }
        }
        assert!(started.elapsed() < DEADLINE, "no answer to {id}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Sends `request` on `stream` and reads its whole response into
/// `buffer`, checking whether it sets the sticky cookie; returns the
/// response's length.
fn exchange(
    stream: &mut TcpStream,
    buffer: &mut [u8],
    (request, sets_cookie): (&[u8], bool),
) -> usize {
    stream.write_all(request).unwrap();
    let mut filled = 0;
    loop {
        let read = stream.read(&mut buffer[filled..]).unwrap();
        assert!(read > 0, "the proxy closed the connection");
        filled += read;
        if let Some(end) = head_end(&buffer[..filled])
            && filled >= end + 5
        {
            assert!(buffer.starts_with(b"HTTP/1.1 200 OK\r\n"));
            assert_eq!(&buffer[end..end + 5], b"hello");
            let set_cookie = b"\r\nSet-Cookie: LB=alloc-s; Path=/\r\n";
            let found = buffer[..end]
                .windows(set_cookie.len())
                .any(|w| w == set_cookie);
            assert_eq!(
                found,
                sets_cookie,
                "{}",
                String::from_utf8_lossy(&buffer[..end])
            );
            return filled;
        }
    }
}

/// Sends `requests` requests (the cases in turn) and counts the
/// allocations of the whole process meanwhile.
fn allocations_in(requests: usize, stream: &mut TcpStream, buffer: &mut [u8]) -> u64 {
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    for round in 0..requests {
        exchange(stream, buffer, CASES[round % CASES.len()]);
    }
    ALLOCATIONS.load(Ordering::SeqCst) - before
}

/// Access records written: counted, and checked to be a relay's ascii
/// line, without allocating.
struct Records;

static RECORDS: AtomicU64 = AtomicU64::new(0);

impl AccessLogWriter for Records {
    fn write_text(&self, record: &[u8]) {
        let text = std::str::from_utf8(record).unwrap();
        assert!(
            text.contains(" INFO alloc [") && text.contains(" - http GET "),
            "{text}"
        );
        RECORDS.fetch_add(1, Ordering::SeqCst);
    }
    fn write_binary(&self, _record: &[u8]) {
        panic!("an ascii layer wrote a binary record");
    }
}

/// The number of access records written, once it reaches `count` (or the
/// deadline passes).
fn records_reaching(count: u64) -> u64 {
    let started = Instant::now();
    loop {
        let records = RECORDS.load(Ordering::SeqCst);
        if records >= count || started.elapsed() > DEADLINE {
            return records;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn a_warm_relay_allocates_nothing_per_request() {
    let backend = start_backend();
    let listen = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (handle, thread) = sozu_proxy::spawn(ProxyOptions::default()).unwrap();
    let (sender, mut receiver) = (handle.sender, handle.receiver);
    let steps: Vec<(&str, RequestType)> = vec![
        (
            "listener",
            RequestType::AddHttpListener(HttpListenerConfig {
                address: listen.into(),
                front_timeout: 60,
                back_timeout: 30,
                connect_timeout: 3,
                request_timeout: 10,
                sticky_name: "LB".into(),
                active: true,
                ..Default::default()
            }),
        ),
        (
            "cluster",
            RequestType::AddCluster(Cluster {
                cluster_id: "alloc".into(),
                ..Default::default()
            }),
        ),
        (
            "frontend",
            RequestType::AddHttpFrontend(RequestHttpFrontend {
                cluster_id: Some("alloc".into()),
                address: listen.into(),
                hostname: "alloc.test".into(),
                path: PathRule::default(),
                position: RulePosition::Tree as i32,
                ..Default::default()
            }),
        ),
        (
            "backend",
            RequestType::AddBackend(AddBackend {
                cluster_id: "alloc".into(),
                backend_id: "alloc-0".into(),
                address: backend.into(),
                ..Default::default()
            }),
        ),
        (
            "sticky cluster",
            RequestType::AddCluster(Cluster {
                cluster_id: "sticky".into(),
                sticky_session: true,
                ..Default::default()
            }),
        ),
        (
            "sticky frontend",
            RequestType::AddHttpFrontend(RequestHttpFrontend {
                cluster_id: Some("sticky".into()),
                address: listen.into(),
                hostname: "sticky.test".into(),
                path: PathRule::default(),
                position: RulePosition::Tree as i32,
                ..Default::default()
            }),
        ),
        (
            "sticky backend",
            RequestType::AddBackend(AddBackend {
                cluster_id: "sticky".into(),
                backend_id: "alloc-s".into(),
                address: backend.into(),
                ..Default::default()
            }),
        ),
        (
            "rewrite frontend",
            RequestType::AddHttpFrontend(RequestHttpFrontend {
                cluster_id: Some("alloc".into()),
                address: listen.into(),
                hostname: "rewrite.test".into(),
                path: PathRule::default(),
                position: RulePosition::Tree as i32,
                rewrite_host: Some("internal.test".into()),
                rewrite_path: Some("/inner?r=1".into()),
                ..Default::default()
            }),
        ),
    ];
    for (id, request) in steps {
        sender.request(id, request).unwrap();
        let ack = answer_to(&mut receiver, id);
        assert_eq!(ack.status, ResponseStatus::Ok as i32, "{}", ack.message);
    }
    let mut stream = TcpStream::connect(listen).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    stream.set_nodelay(true).unwrap();
    let mut buffer = vec![0u8; 8192];
    // Warm-up: the connection's buffers, the backend connection in the
    // pool, the metrics' entries for the cluster and backend.
    for round in 0..200 {
        exchange(&mut stream, &mut buffer, CASES[round % CASES.len()]);
    }
    let requests = 1000 * CASES.len();
    let allocations = allocations_in(requests, &mut stream, &mut buffer);
    assert_eq!(
        allocations, 0,
        "{allocations} allocations in {requests} requests"
    );
    // Access logs on, as the daemon sets them up: an ascii access layer
    // taking request records directly, behind a reloadable filter. Still
    // nothing allocated, and one record a request.
    let (filter, _handle) = tracing_subscriber::reload::Layer::new(
        tracing_subscriber::EnvFilter::new("warn,access=info"),
    );
    let layer = AccessLogLayer::new(AccessLogFormat::Ascii, Arc::new(Records), "alloc").direct();
    tracing::subscriber::set_global_default(
        tracing_subscriber::registry().with(filter).with(layer),
    )
    .unwrap();
    for round in 0..200 {
        exchange(&mut stream, &mut buffer, CASES[round % CASES.len()]);
    }
    // A request's record is written just after its answer went out.
    let records = records_reaching(200);
    assert_eq!(records, 200, "access records for 200 requests");
    let allocations = allocations_in(requests, &mut stream, &mut buffer);
    assert_eq!(
        allocations, 0,
        "{allocations} allocations in {requests} requests with access logs on"
    );
    let logged = records_reaching(records + requests as u64) - records;
    assert_eq!(logged, requests as u64, "access records");
    drop(stream);
    sender.hard_stop("stop").unwrap();
    answer_to(&mut receiver, "stop");
    thread.join().unwrap().unwrap();
}
