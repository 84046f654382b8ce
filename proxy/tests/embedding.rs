//! The embedding flow of `examples/embedded.rs`, asserted: a proxy started on
//! a thread, configured through its channel, proxying to a real backend,
//! answering unmatched hosts with the listener's default answer, and
//! stopping cleanly.
//!
//! Every wait has a deadline: a proxy that never answers, never serves or
//! never stops fails the test with what it was waiting for, instead of
//! hanging the run.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sozu_command::proto::command::{
    AddBackend, Cluster, HttpListenerConfig, PathRule, RequestHttpFrontend, ResponseStatus,
    RulePosition, WorkerResponse, request::RequestType,
};
use sozu_proxy::{ProxyError, ProxyOptions, ResponseReceiver};

fn start_backend(body: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                if line == "\r\n" {
                    break;
                }
                line.clear();
            }
            let mut stream = stream;
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
        }
    });
    address
}

/// How long the proxy may take to answer a request, serve a client or stop
/// (generous: the machine running the tests may be loaded).
const DEADLINE: Duration = Duration::from_secs(20);

/// Polls `ready` every few milliseconds until it gives a value, or panics
/// naming `what` once [`DEADLINE`] has passed.
fn within<T>(what: &str, mut ready: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + DEADLINE;
    loop {
        if let Some(value) = ready() {
            return value;
        }
        assert!(Instant::now() < end, "{what}: nothing after {DEADLINE:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The answer to request `id`, skipping events and other answers.
fn answer_to(receiver: &mut ResponseReceiver, id: &str) -> WorkerResponse {
    within(&format!("the answer to `{id}`"), || {
        while let Some(response) = receiver.try_recv() {
            if response.id == id {
                return Some(response);
            }
        }
        None
    })
}

/// Waits for the proxy thread to end and returns what it returned.
fn join(thread: JoinHandle<Result<(), ProxyError>>) -> Result<(), ProxyError> {
    within("the proxy thread to end", || {
        thread.is_finished().then_some(())
    });
    thread.join().expect("the proxy thread panicked")
}

/// `GET /` for `host` on a new connection, closed after the answer.
fn get(address: SocketAddr, host: &str) -> String {
    let mut stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    stream.set_write_timeout(Some(DEADLINE)).unwrap();
    write!(
        stream,
        "GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .unwrap_or_else(|error| panic!("no whole answer for {host} ({error}): {answer:?}"));
    answer
}

#[test]
fn the_whole_embedding_flow() {
    let backend = start_backend("hello from the backend");
    let listen = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (handle, thread) = sozu_proxy::spawn(ProxyOptions::default()).unwrap();
    let (sender, mut receiver) = (handle.sender, handle.receiver);

    let custom_404 = "HTTP/1.1 404 Not Found\r\nX-Default: yes\r\n\r\nnothing here for %ROUTE";
    let listener = HttpListenerConfig {
        address: listen.into(),
        sticky_name: "SOZUBALANCEID".into(),
        front_timeout: 60,
        back_timeout: 30,
        connect_timeout: 3,
        request_timeout: 10,
        active: true,
        answers: [("404".to_owned(), custom_404.to_owned())].into(),
        ..Default::default()
    };
    let steps: Vec<(&str, RequestType)> = vec![
        ("listener", RequestType::AddHttpListener(listener)),
        (
            "cluster",
            RequestType::AddCluster(Cluster {
                cluster_id: "example".into(),
                ..Default::default()
            }),
        ),
        (
            "frontend",
            RequestType::AddHttpFrontend(RequestHttpFrontend {
                cluster_id: Some("example".into()),
                address: listen.into(),
                hostname: "example.local".into(),
                path: PathRule::default(),
                position: RulePosition::Tree as i32,
                ..Default::default()
            }),
        ),
        (
            "backend",
            RequestType::AddBackend(AddBackend {
                cluster_id: "example".into(),
                backend_id: "example-0".into(),
                address: backend.into(),
                ..Default::default()
            }),
        ),
    ];
    for (id, request) in steps {
        sender.request(id, request).unwrap();
        let ack = answer_to(&mut receiver, id);
        assert_eq!(
            ack.status,
            ResponseStatus::Ok as i32,
            "{id}: {}",
            ack.message
        );
    }

    // A request the proxy cannot apply gets a FAILURE with its reason.
    sender
        .request(
            "bad",
            RequestType::AddBackend(AddBackend {
                cluster_id: "missing".into(),
                backend_id: "x".into(),
                address: backend.into(),
                ..Default::default()
            }),
        )
        .unwrap();
    let refused = answer_to(&mut receiver, "bad");
    assert_eq!(refused.status, ResponseStatus::Failure as i32);
    assert!(refused.message.contains("missing"), "{}", refused.message);

    let proxied = get(listen, "example.local");
    assert!(proxied.starts_with("HTTP/1.1 200"), "{proxied}");
    assert!(proxied.ends_with("hello from the backend"), "{proxied}");

    let unmatched = get(listen, "unknown.local");
    assert!(unmatched.starts_with("HTTP/1.1 404"), "{unmatched}");
    assert!(unmatched.contains("x-default: yes"), "{unmatched}");
    assert!(
        unmatched.ends_with("nothing here for unknown.local/"),
        "{unmatched}"
    );

    sender.soft_stop("stop").unwrap();
    assert_eq!(
        answer_to(&mut receiver, "stop").status,
        ResponseStatus::Ok as i32
    );
    join(thread).unwrap();
    // Once stopped, the handle says so instead of panicking.
    assert!(matches!(
        sender.request("late", RequestType::Status(Default::default())),
        Err(ProxyError::Stopped)
    ));
    // And the listener is closed: nothing accepts there any more.
    assert_eq!(
        TcpStream::connect(listen)
            .map_err(|error| error.kind())
            .err(),
        Some(std::io::ErrorKind::ConnectionRefused)
    );
}

#[test]
fn a_hard_stop_ends_the_thread_at_once() {
    let (handle, thread) = sozu_proxy::spawn(ProxyOptions::default()).unwrap();
    let (sender, mut receiver) = (handle.sender, handle.receiver);
    sender.hard_stop("stop").unwrap();
    assert_eq!(
        answer_to(&mut receiver, "stop").status,
        ResponseStatus::Ok as i32
    );
    join(thread).unwrap();
}

#[test]
fn dropping_the_handle_stops_the_server() {
    let (handle, thread) = sozu_proxy::spawn(ProxyOptions::default()).unwrap();
    drop(handle);
    join(thread).unwrap();
}
