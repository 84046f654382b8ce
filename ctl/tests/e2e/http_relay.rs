//! The HTTP/1.1 relay (issue 15) through the real daemon: pipelined
//! requests answered in order over one backend connection, the framing
//! rules refusing smuggling shapes before any byte reaches a backend, a
//! backend response with ambiguous framing answered 502, and a response
//! that runs until the backend closes sent on chunked to a client that
//! keeps its connection; a backend's answer given before it read the
//! whole request body relayed (not 502); interim 1xx answers passed on;
//! a Date on relayed responses and on the proxy's own answers.

use crate::harness;

use std::io::Write;
use std::sync::mpsc;
use std::time::Duration;

use harness::Site;
use harness::backend::{Backend, RawBackend, read_request};
use harness::client::{self, Connection};

/// Writes the head of a `method_target` request to `host` with a body of
/// `size` bytes, then the body from a thread of its own (until it is all
/// sent or a write fails); the thread gives how many body bytes it sent.
fn upload(
    stream: &std::net::TcpStream,
    method_target: &str,
    host: &str,
    size: usize,
) -> std::thread::JoinHandle<usize> {
    let mut writer = stream.try_clone().unwrap();
    let head =
        format!("{method_target} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {size}\r\n\r\n");
    writer.write_all(head.as_bytes()).unwrap();
    std::thread::spawn(move || {
        let chunk = [b'a'; 64 * 1024];
        let mut sent = 0;
        while sent < size
            && writer
                .write_all(&chunk[..chunk.len().min(size - sent)])
                .is_ok()
        {
            sent += chunk.len().min(size - sent);
        }
        sent
    })
}

/// `count` keep-alive GETs of `/0`, `/1`... for `host`, one after the other.
fn gets(host: &str, count: usize) -> Vec<u8> {
    let mut requests = Vec::new();
    for index in 0..count {
        write!(requests, "GET /{index} HTTP/1.1\r\nHost: {host}\r\n\r\n").unwrap();
    }
    requests
}

#[test]
fn pipelined_requests_are_answered_in_order_over_one_backend_connection() {
    let site = Site::start(1, "");
    let (seen, requests) = mpsc::channel();
    let backend = Backend::start_with("app", Duration::ZERO, Some(seen));
    site.daemon.serve(site.port, "app.test", "app", &[&backend]);
    let mut connection = Connection::open(site.port);
    let pipelined = gets("app.test", 20);
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
    let pipelined = gets("app.test", 10);
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
    let mut pipelined = gets("app.test", 5);
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
    let mut pipelined = gets("app.test", 3);
    pipelined.extend_from_slice(b"GET / HTTP/1.1\r\nHost: nobody.test\r\n\r\n");
    connection.send(&pipelined).unwrap();
    for index in 0..3 {
        assert_eq!(connection.answer().unwrap().status, 200, "answer {index}");
    }
    assert_eq!(connection.answer().unwrap().status, 404);

    // Two requests the relay serves, then one it hands over to the
    // general path (HTTP/1.0): the two answers held back come first.
    let mut connection = Connection::open(site.port);
    let mut pipelined = gets("app.test", 2);
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

/// An answer held back for a pipelined request goes out on its own when
/// the backend is slow to answer the next one: the backend holds `/slow`
/// until the client has `/fast`'s answer.
#[test]
fn an_answer_held_back_does_not_wait_for_a_slow_backend() {
    let site = Site::start(1, "");
    let (release, released) = mpsc::channel::<()>();
    let released = std::sync::Mutex::new(released);
    let backend = RawBackend::conversing(move |mut reader, mut writer| {
        while let Some(request) = read_request(&mut reader) {
            if request.target == "/slow" {
                let _ = released
                    .lock()
                    .unwrap()
                    .recv_timeout(Duration::from_secs(20));
            }
            let body = request.target.as_bytes();
            let _ = write!(
                writer,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            let _ = writer.write_all(body);
        }
    });
    site.daemon.add_cluster(harness::cluster("slow"));
    site.daemon
        .add_frontend(harness::frontend(site.port, "slow.test", Some("slow")));
    site.daemon
        .add_backend(harness::backend("slow", "raw", backend.address));
    let mut connection = Connection::open(site.port);
    connection
        .reader
        .get_ref()
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    connection
        .send(b"GET /fast HTTP/1.1\r\nHost: slow.test\r\n\r\nGET /slow HTTP/1.1\r\nHost: slow.test\r\n\r\n")
        .unwrap();
    let fast = connection
        .answer()
        .expect("the first answer, while the backend holds the second");
    assert_eq!(fast.text(), "/fast");
    release.send(()).unwrap();
    let slow = connection.answer().unwrap();
    assert_eq!(slow.text(), "/slow");
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
    let backend = RawBackend::conversing(|mut reader, mut writer| {
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
    let backend = RawBackend::conversing(|mut reader, mut writer| {
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
        let sender = upload(&stream, "POST /upload", "nowhere.test", BODY);
        let mut answer = Vec::new();
        let read = stream.read_to_end(&mut answer);
        sender.join().unwrap();
        assert!(read.is_ok(), "the answer was lost: {read:?}");
        let text = String::from_utf8_lossy(&answer);
        assert!(text.starts_with("HTTP/1.1 404"), "{text}");
    }
    assert_eq!(backend.served(), 0);
}

/// A raw backend on `cluster` for `host` at the site's listener.
fn raw_site(site: &Site, cluster: &str, host: &str, backend: &RawBackend) {
    site.daemon.add_cluster(harness::cluster(cluster));
    site.daemon
        .add_frontend(harness::frontend(site.port, host, Some(cluster)));
    site.daemon
        .add_backend(harness::backend(cluster, "raw", backend.address));
}

#[test]
fn a_backend_answer_before_the_whole_body_is_relayed_and_both_connections_close() {
    // RFC 9112 §9.3: the backend refuses the upload from its head and
    // reads no more of it; the proxy stops sending the body, relays the
    // 413 with Connection: close, and keeps neither connection.
    let site = Site::start(1, "");
    let (release, released) = mpsc::channel::<()>();
    let released = std::sync::Mutex::new(released);
    let backend = RawBackend::conversing(move |mut reader, mut writer| {
        if harness::backend::read_head(&mut reader).is_some() {
            let _ = writer.write_all(
                b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 8\r\nX-From: backend\r\n\r\ntoo big!",
            );
            // Holds the connection without reading, until the test ends.
            let _ = released
                .lock()
                .unwrap()
                .recv_timeout(Duration::from_secs(60));
        }
    });
    raw_site(&site, "upload", "upload.test", &backend);
    const BODY: usize = 64 << 20;
    let mut connection = Connection::open(site.port);
    let sender = upload(&connection.writer, "POST /upload", "upload.test", BODY);
    let answer = connection.answer().unwrap();
    assert_eq!(answer.status, 413, "{answer:?}");
    assert_eq!(answer.text(), "too big!");
    assert_eq!(answer.header("x-from"), Some("backend"));
    assert_eq!(answer.header("connection"), Some("close"), "{answer:?}");
    assert!(
        connection.closed_within(Duration::from_secs(10)),
        "the client connection stays open after a cut upload"
    );
    let sent = sender.join().unwrap();
    assert!(sent < BODY, "the whole body was taken: {sent} bytes");
    // The next request opens a new backend connection: the one whose
    // upload was cut is not pooled.
    let mut connection = Connection::open(site.port);
    connection
        .send(b"POST /again HTTP/1.1\r\nHost: upload.test\r\nContent-Length: 0\r\n\r\n")
        .unwrap();
    assert_eq!(connection.answer().unwrap().status, 413);
    assert_eq!(
        backend
            .connections
            .load(std::sync::atomic::Ordering::SeqCst),
        2
    );
    drop(release);
}

#[test]
fn interim_answers_reach_the_client_before_the_final_one() {
    // RFC 9110 §15.2: a 103 Early Hints (its Link header kept, its
    // hop-by-hop ones not) and a 100, then the final response.
    let site = Site::start(1, "");
    let backend = RawBackend::conversing(|mut reader, mut writer| {
        while read_request(&mut reader).is_some() {
            let _ = writer.write_all(
                b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\nConnection: x-hint\r\nX-Hint: 1\r\n\r\n",
            );
            let _ = writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
            let _ = writer.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        }
    });
    raw_site(&site, "hints", "hints.test", &backend);
    let mut connection = Connection::open(site.port);
    for _ in 0..2 {
        connection
            .send(b"GET / HTTP/1.1\r\nHost: hints.test\r\n\r\n")
            .unwrap();
        let hints = connection.head().unwrap();
        assert_eq!(hints.status, 103, "{hints:?}");
        assert_eq!(hints.header("link"), Some("</style.css>; rel=preload"));
        assert_eq!(hints.header("x-hint"), None, "{hints:?}");
        assert_eq!(hints.header("connection"), None, "{hints:?}");
        assert_eq!(connection.head().unwrap().status, 100);
        let answer = connection.answer().unwrap();
        assert_eq!(answer.status, 200);
        assert_eq!(answer.text(), "ok");
    }
}

#[test]
fn relayed_responses_and_the_proxys_own_answers_carry_a_date() {
    let site = Site::start(1, "");
    let backend = RawBackend::conversing(|mut reader, mut writer| {
        while let Some(request) = read_request(&mut reader) {
            let answer: &[u8] = if request.target == "/dated" {
                b"HTTP/1.1 200 OK\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nContent-Length: 2\r\n\r\nok"
            } else {
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
            };
            let _ = writer.write_all(answer);
        }
    });
    raw_site(&site, "dates", "dates.test", &backend);
    let dates = |answer: &client::Answer| -> Vec<String> {
        answer
            .headers
            .iter()
            .filter(|(name, _)| name.eq_ignore_ascii_case("date"))
            .map(|(_, value)| value.clone())
            .collect()
    };
    let recent = |value: &str| {
        let date = httpdate::parse_http_date(value).unwrap_or_else(|_| panic!("{value:?}"));
        let now = std::time::SystemTime::now();
        let skew = now
            .duration_since(date)
            .unwrap_or_else(|error| error.duration());
        assert!(skew < Duration::from_secs(5), "{value} is {skew:?} off");
    };
    let mut connection = Connection::open(site.port);
    // Without a Date: the proxy's.
    let answer = connection.get("dates.test", "/");
    assert_eq!(answer.status, 200);
    let found = dates(&answer);
    assert_eq!(found.len(), 1, "{answer:?}");
    recent(&found[0]);
    // With one: the backend's, alone.
    let answer = connection.get("dates.test", "/dated");
    assert_eq!(dates(&answer), ["Sun, 06 Nov 1994 08:49:37 GMT"]);
    // The proxy's own answer (no route): one Date, one Content-Length.
    let answer = connection.get("nobody.test", "/");
    assert_eq!(answer.status, 404);
    let found = dates(&answer);
    assert_eq!(found.len(), 1, "{answer:?}");
    recent(&found[0]);
    let lengths = answer
        .headers
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .count();
    assert_eq!(lengths, 1, "{answer:?}");
}

#[test]
fn a_backend_that_answers_and_closes_mid_upload_has_its_answer_relayed() {
    // The backend answers 401 from the head and closes at once, its
    // receive buffer full of body: the proxy's writes then fail (a reset),
    // and the answer received before still wins over a 502.
    let site = Site::start(1, "");
    let backend = RawBackend::conversing(|mut reader, mut writer| {
        if harness::backend::read_head(&mut reader).is_some() {
            let _ = writer.write_all(
                b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"x\"\r\nContent-Length: 6\r\n\r\nno way",
            );
        }
    });
    raw_site(&site, "guarded", "guarded.test", &backend);
    const BODY: usize = 64 << 20;
    for attempt in 0..5 {
        let mut connection = Connection::open(site.port);
        let sender = upload(&connection.writer, "PUT /file", "guarded.test", BODY);
        let answer = connection.answer().unwrap();
        assert_eq!(answer.status, 401, "attempt {attempt}: {answer:?}");
        assert_eq!(answer.text(), "no way");
        assert_eq!(answer.header("connection"), Some("close"));
        assert!(connection.closed_within(Duration::from_secs(10)));
        sender.join().unwrap();
    }

    // An upload the backend reads whole keeps both connections.
    let reading = Backend::start("app");
    site.daemon.serve(site.port, "app.test", "app", &[&reading]);
    let mut connection = Connection::open(site.port);
    let body = vec![b'b'; 256 * 1024];
    for _ in 0..2 {
        let head = format!(
            "POST /up HTTP/1.1\r\nHost: app.test\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        connection.send(head.as_bytes()).unwrap();
        connection.send(&body).unwrap();
        let answer = connection.answer().unwrap();
        assert_eq!(answer.status, 200);
        assert_eq!(answer.header("connection"), None, "{answer:?}");
    }
    assert_eq!(reading.served(), 2);
}
