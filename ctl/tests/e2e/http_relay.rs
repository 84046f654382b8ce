//! The HTTP/1.1 relay (issue 15) through the real daemon: pipelined
//! requests answered in order over one backend connection, the framing
//! rules refusing smuggling shapes before any byte reaches a backend, a
//! backend response with ambiguous framing answered 502, and a response
//! that runs until the backend closes sent on chunked to a client that
//! keeps its connection.

use crate::harness;

use std::io::{BufReader, Write};
use std::sync::mpsc;
use std::time::Duration;

use harness::Site;
use harness::backend::{Backend, RawBackend, read_request};
use harness::client::{self, Connection};

#[test]
fn pipelined_requests_are_answered_in_order_over_one_backend_connection() {
    let site = Site::start(1, "");
    let (seen, requests) = mpsc::channel();
    let backend = Backend::start_with("app", Duration::ZERO, Some(seen));
    site.daemon.serve(site.port, "app.test", "app", &[&backend]);
    let mut connection = Connection::open(site.port);
    let mut pipelined = Vec::new();
    for index in 0..20 {
        write!(pipelined, "GET /{index} HTTP/1.1\r\nHost: app.test\r\n\r\n").unwrap();
    }
    // One write: every request is in the proxy's buffer at once.
    connection.send(&pipelined).unwrap();
    for _ in 0..20 {
        let answer = connection.answer().unwrap();
        assert_eq!(answer.status, 200);
        assert_eq!(answer.text(), "app");
    }
    let targets: Vec<String> = (0..20)
        .map(|_| {
            requests
                .recv_timeout(Duration::from_secs(10))
                .unwrap()
                .target
        })
        .collect();
    let expected: Vec<String> = (0..20).map(|index| format!("/{index}")).collect();
    assert_eq!(targets, expected, "the backend saw them out of order");
    // And the connection still serves.
    assert_eq!(connection.get("app.test", "/after").status, 200);
    assert_eq!(backend.served(), 21);
}

/// Answers to pipelined requests may be held back to go out together:
/// none is lost when the client stops sending (half-close), none waits
/// for a request that is not complete yet, and an answer of the proxy's
/// own comes after them, in order.
#[test]
fn answers_held_back_for_pipelined_requests_all_reach_the_client_in_order() {
    let site = Site::start(1, "");
    let backend = Backend::start("app");
    site.daemon.serve(site.port, "app.test", "app", &[&backend]);

    // Ten requests, then the client closes its sending side.
    let mut pipelined = Vec::new();
    for index in 0..10 {
        write!(pipelined, "GET /{index} HTTP/1.1\r\nHost: app.test\r\n\r\n").unwrap();
    }
    let mut connection = Connection::open(site.port);
    connection.send(&pipelined).unwrap();
    connection
        .writer
        .shutdown(std::net::Shutdown::Write)
        .unwrap();
    for index in 0..10 {
        let answer = connection
            .answer()
            .unwrap_or_else(|error| panic!("answer {index}: {error}"));
        assert_eq!(answer.status, 200, "answer {index}");
    }

    // Five whole requests and the first half of a sixth: the five answers
    // come before the sixth is finished.
    let mut connection = Connection::open(site.port);
    let mut pipelined = Vec::new();
    for index in 0..5 {
        write!(pipelined, "GET /{index} HTTP/1.1\r\nHost: app.test\r\n\r\n").unwrap();
    }
    pipelined.extend_from_slice(b"GET /last HTTP/1.1\r\nHost: app");
    connection.send(&pipelined).unwrap();
    for index in 0..5 {
        let answer = connection
            .answer()
            .unwrap_or_else(|error| panic!("answer {index}: {error}"));
        assert_eq!(answer.status, 200, "answer {index}");
    }
    connection.send(b".test\r\n\r\n").unwrap();
    assert_eq!(connection.answer().unwrap().status, 200);

    // Three requests the backend answers, then one for an unknown host:
    // three 200s, then the proxy's own 404.
    let mut connection = Connection::open(site.port);
    let mut pipelined = Vec::new();
    for index in 0..3 {
        write!(pipelined, "GET /{index} HTTP/1.1\r\nHost: app.test\r\n\r\n").unwrap();
    }
    pipelined.extend_from_slice(b"GET / HTTP/1.1\r\nHost: nobody.test\r\n\r\n");
    connection.send(&pipelined).unwrap();
    for index in 0..3 {
        assert_eq!(connection.answer().unwrap().status, 200, "answer {index}");
    }
    assert_eq!(connection.answer().unwrap().status, 404);

    // Two requests the relay serves, then one it hands over to the
    // general path (HTTP/1.0): the two answers held back come first.
    let mut connection = Connection::open(site.port);
    let mut pipelined = Vec::new();
    for index in 0..2 {
        write!(pipelined, "GET /{index} HTTP/1.1\r\nHost: app.test\r\n\r\n").unwrap();
    }
    pipelined.extend_from_slice(b"GET /old HTTP/1.0\r\nHost: app.test\r\n\r\n");
    connection.send(&pipelined).unwrap();
    for index in 0..2 {
        let answer = connection.answer().unwrap();
        assert_eq!(answer.status, 200, "answer {index}");
        assert_eq!(answer.text(), "app");
    }
    let mut rest = Vec::new();
    std::io::Read::read_to_end(&mut connection.reader, &mut rest).unwrap();
    let last = client::parse(&rest).expect("an answer to the HTTP/1.0 request");
    assert_eq!(last.status, 200);
}

#[test]
fn smuggling_shapes_are_refused_and_reach_no_backend() {
    let site = Site::start(1, "");
    let backend = Backend::start("app");
    site.daemon.serve(site.port, "app.test", "app", &[&backend]);
    for request in [
        // Transfer-Encoding with Content-Length (RFC 9112 §6.1).
        &b"POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: app.test\r\n\r\n"[..],
        // Content-Length values that differ, in a list (§6.3 (5)).
        b"POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 5, 6\r\n\r\nhello!",
        // Whitespace before the colon (§5.1).
        b"POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
        // A bare LF ending a header line (§2.2).
        b"GET / HTTP/1.1\r\nHost: app.test\nX-Other: 1\r\n\r\n",
        // A malformed chunk extension (§7.1.1).
        b"POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n5;=x\r\nhello\r\n0\r\n\r\n",
    ] {
        let answer = client::raw(site.port, request).unwrap();
        let status = client::parse(&answer).map(|answer| answer.status);
        assert_eq!(status, Some(400), "{:?}", String::from_utf8_lossy(request));
    }
    assert_eq!(backend.served(), 0, "a refused request reached the backend");
    assert_eq!(client::get(site.port, "app.test", "/").status, 200);
}

#[test]
fn a_backend_response_with_ambiguous_framing_is_answered_502() {
    let site = Site::start(1, "");
    let backend = RawBackend::start(|stream| {
        let mut writer = stream.try_clone().unwrap();
        let mut reader = BufReader::new(stream);
        while read_request(&mut reader).is_some() {
            let _ = writer.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
            );
        }
    });
    site.daemon.add_cluster(harness::cluster("ambiguous"));
    site.daemon.add_frontend(harness::frontend(
        site.port,
        "ambiguous.test",
        Some("ambiguous"),
    ));
    site.daemon
        .add_backend(harness::backend("ambiguous", "raw", backend.address));
    let answer = client::get(site.port, "ambiguous.test", "/");
    assert_eq!(answer.status, 502, "{answer:?}");
}

#[test]
fn a_response_until_close_is_sent_chunked_and_the_client_connection_lives_on() {
    let site = Site::start(1, "");
    let backend = RawBackend::start(|stream| {
        let mut writer = stream.try_clone().unwrap();
        let mut reader = BufReader::new(stream);
        if read_request(&mut reader).is_some() {
            // No length, no chunking: the body ends when the connection does.
            let _ = writer.write_all(b"HTTP/1.1 200 OK\r\nX-Framing: none\r\n\r\nuntil ");
            let _ = writer.write_all(b"close");
        }
    });
    site.daemon.add_cluster(harness::cluster("eof"));
    site.daemon
        .add_frontend(harness::frontend(site.port, "eof.test", Some("eof")));
    site.daemon
        .add_backend(harness::backend("eof", "raw", backend.address));
    let mut connection = Connection::open(site.port);
    for _ in 0..2 {
        connection
            .send(b"GET / HTTP/1.1\r\nHost: eof.test\r\n\r\n")
            .unwrap();
        let head = connection.head().unwrap();
        assert_eq!(head.status, 200);
        assert_eq!(head.header("transfer-encoding"), Some("chunked"));
        let mut body = Vec::new();
        connection
            .body(&head, |piece| body.extend_from_slice(piece))
            .unwrap();
        assert_eq!(body, b"until close");
    }
    assert_eq!(
        backend
            .connections
            .load(std::sync::atomic::Ordering::SeqCst),
        2,
        "a connection that ended its response by closing is not reused"
    );
}

#[test]
fn an_answer_given_before_the_body_is_read_reaches_the_client_whole() {
    // The proxy answers 404 from the head alone and closes while the
    // client is still sending its body: it lingers and drops what comes,
    // so the client reads the answer instead of a connection reset.
    use std::io::Read;
    let site = Site::start(1, "");
    let backend = Backend::start("app");
    site.daemon.serve(site.port, "app.test", "app", &[&backend]);
    const BODY: usize = 512 * 1024;
    for _ in 0..5 {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", site.port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let head = format!(
            "POST /upload HTTP/1.1\r\nHost: nowhere.test\r\nContent-Length: {BODY}\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).unwrap();
        let mut writer = stream.try_clone().unwrap();
        let sender = std::thread::spawn(move || {
            let chunk = [b'a'; 16 * 1024];
            for _ in 0..BODY / chunk.len() {
                if writer.write_all(&chunk).is_err() {
                    break;
                }
            }
        });
        let mut answer = Vec::new();
        let read = stream.read_to_end(&mut answer);
        sender.join().unwrap();
        assert!(read.is_ok(), "the answer was lost: {read:?}");
        let text = String::from_utf8_lossy(&answer);
        assert!(text.starts_with("HTTP/1.1 404"), "{text}");
    }
    assert_eq!(backend.served(), 0);
}
