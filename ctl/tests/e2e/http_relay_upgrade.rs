//! Protocol upgrades (WebSocket) and `Expect: 100-continue` served by the
//! HTTP/1.1 relay (issue 15). The relay keeps a header name's case as
//! received and hyper lowercases it: every test sends a probe header and
//! checks that the backend saw it as sent, so it knows the relay served it.

use crate::harness;

use std::io::{BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

use harness::Site;
use harness::backend::{Backend, RawBackend, SeenRequest, read_head};
use harness::client::Connection;
use harness::tls::{ClientSettings, HttpsSite, TlsConnection};
use harness::websocket::{self, BINARY, CLOSE, TEXT};

/// The header a client sends so that the backend can tell the paths apart.
const PROBE: &str = "X-Path-Probe";
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

fn next(seen: &mpsc::Receiver<SeenRequest>) -> SeenRequest {
    seen.recv_timeout(Duration::from_secs(10))
        .expect("the backend saw no request")
}

/// Whether the relay forwarded `request`: the probe's name kept its case.
fn relayed(request: &SeenRequest) -> bool {
    request.headers.iter().any(|(name, _)| name == PROBE)
}

/// A site whose cluster `app` on `app.test` has the one backend at
/// `address`.
fn site_for(address: std::net::SocketAddr) -> Site {
    let site = Site::start(1, "");
    site.daemon.add_cluster(harness::cluster("app"));
    site.daemon
        .add_frontend(harness::frontend(site.port, "app.test", Some("app")));
    site.daemon
        .add_backend(harness::backend("app", "one", address));
    site
}

/// An echo WebSocket backend behind a site, and a connection that has
/// asked it to upgrade `/chat` (the answer not read yet); what the
/// backend saw comes on the receiver.
fn chat() -> (RawBackend, Site, Connection, mpsc::Receiver<SeenRequest>) {
    let (seen_tx, seen) = mpsc::channel();
    let backend = websocket::echo_backend(seen_tx);
    let site = site_for(backend.address);
    let mut connection = Connection::open(site.port);
    connection
        .send(upgrade_request("/chat").as_bytes())
        .unwrap();
    (backend, site, connection, seen)
}

/// The opening handshake of a WebSocket, with the probe header.
fn upgrade_request(path: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: app.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n{PROBE}: 1\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
}

/// A backend that answers every upgrade with a 101 and then runs `then`
/// on the switched connection (a reader holding what came after the head,
/// and a writer); the head goes to `seen`.
fn switching_backend(
    seen: mpsc::Sender<SeenRequest>,
    greeting: &'static [u8],
    then: impl Fn(BufReader<TcpStream>, TcpStream) + Send + Sync + 'static,
) -> RawBackend {
    let seen = std::sync::Mutex::new(seen);
    RawBackend::conversing(move |mut reader, mut writer| {
        let Some(request) = read_head(&mut reader) else {
            return;
        };
        let _ = seen.lock().unwrap().send(request);
        // The 101 and the first bytes of the new protocol in one write.
        let mut answer =
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
                .to_vec();
        answer.extend_from_slice(greeting);
        if writer.write_all(&answer).is_ok() {
            then(reader, writer);
        }
    })
}

#[test]
fn a_websocket_through_the_relay_carries_messages_both_ways() {
    // The backend lives as long as the test.
    let (_backend, site, mut connection, seen) = chat();
    let head = connection.head().unwrap();
    assert_eq!(head.status, 101, "{head:?}");
    assert_eq!(head.header("upgrade"), Some("websocket"));
    assert_eq!(head.header("connection"), Some("upgrade"));
    assert_eq!(head.header("sozu-id").map(str::len), Some(26));
    assert_eq!(
        head.header("sec-websocket-accept"),
        Some(websocket::accept_value(KEY).as_str())
    );
    let request = next(&seen);
    assert!(relayed(&request), "hyper forwarded it: {request:?}");
    assert_eq!(request.header("upgrade"), Some("websocket"));
    assert_eq!(request.header("connection"), Some("upgrade"));
    assert_eq!(request.header("sec-websocket-key"), Some(KEY));
    assert_eq!(request.header("x-forwarded-proto"), Some("http"));
    // Each way, small and large messages (a megabyte is many reads and
    // writes on both connections).
    let reader = &mut connection.reader;
    let (opcode, payload) = websocket::echo(reader, TEXT, b"hello").unwrap();
    assert_eq!((opcode, payload.as_slice()), (TEXT, &b"hello"[..]));
    let large: Vec<u8> = (0..1 << 20).map(|i| (i % 253) as u8).collect();
    let (opcode, echoed) = websocket::echo(reader, BINARY, &large).unwrap();
    assert_eq!(opcode, BINARY);
    assert!(echoed == large, "the large message came back changed");
    let (opcode, _) = websocket::echo(reader, CLOSE, &[0x03, 0xe8]).unwrap();
    assert_eq!(opcode, CLOSE);
    // The backend closed after its close frame: so does the proxy.
    assert!(websocket::at_end(reader));
    // Counted once, as a 101 (the tunnel's bytes are no response body).
    let metrics = site.daemon.metrics();
    let app = &metrics.clusters["app"];
    assert_eq!(harness::count(&app.cluster, "requests"), 1);
    assert_eq!(harness::count(&app.cluster, "http.status.101"), 1);
}

#[test]
fn a_websocket_over_https_goes_through_the_relay_too() {
    let (seen_tx, seen) = mpsc::channel();
    let backend = websocket::echo_backend(seen_tx);
    let site = HttpsSite::start(1, |_| {});
    site.certificate(&["app.test"]);
    site.serve("app.test", "app", backend.address);
    let mut connection =
        TlsConnection::open(site.https_port, "app.test", &ClientSettings::default()).unwrap();
    let reader = connection.reader();
    reader
        .get_mut()
        .write_all(upgrade_request("/chat").as_bytes())
        .unwrap();
    let answer = harness::tls::read_answer(reader).unwrap();
    assert_eq!(answer.status, 101, "{answer:?}");
    let request = next(&seen);
    assert!(relayed(&request), "hyper forwarded it: {request:?}");
    assert_eq!(request.header("x-forwarded-proto"), Some("https"));
    let payload: Vec<u8> = (0..200_000).map(|i| (i % 241) as u8).collect();
    let (opcode, echoed) = websocket::echo(reader, BINARY, &payload).unwrap();
    assert_eq!(opcode, BINARY);
    assert!(echoed == payload, "the message came back changed");
    let (opcode, _) = websocket::echo(reader, CLOSE, &[0x03, 0xe8]).unwrap();
    assert_eq!(opcode, CLOSE);
    // The backend's close reaches the client as the end of the session.
    assert!(websocket::at_end(reader));
}

#[test]
fn half_closes_are_passed_on_both_ways() {
    let (seen_tx, seen) = mpsc::channel();
    let (got_tx, got) = mpsc::channel();
    let got_tx = std::sync::Mutex::new(got_tx);
    // The backend says its piece and closes its way out, then reads what
    // the client still sends until the client closes its own.
    let backend = switching_backend(seen_tx, b"", move |mut reader, writer| {
        let mut writer = writer;
        writer.write_all(b"from the backend").unwrap();
        writer.shutdown(Shutdown::Write).unwrap();
        let mut rest = Vec::new();
        let _ = reader.read_to_end(&mut rest);
        let _ = got_tx.lock().unwrap().send(rest);
    });
    let site = site_for(backend.address);
    let mut connection = Connection::open(site.port);
    connection
        .send(upgrade_request("/half").as_bytes())
        .unwrap();
    assert_eq!(connection.head().unwrap().status, 101);
    assert!(relayed(&next(&seen)));
    // The backend's end reaches the client as the end of its reading...
    let mut received = Vec::new();
    connection.reader.read_to_end(&mut received).unwrap();
    assert_eq!(received, b"from the backend");
    // ...while its own way out still works, and its end reaches the
    // backend (whose read_to_end returns).
    connection.send(b"from the client").unwrap();
    connection.writer.shutdown(Shutdown::Write).unwrap();
    let rest = got
        .recv_timeout(Duration::from_secs(10))
        .expect("the backend never saw the client's end");
    assert_eq!(rest, b"from the client");
}

#[test]
fn bytes_sent_with_the_heads_are_not_lost() {
    let (seen_tx, seen) = mpsc::channel();
    // The backend's first bytes come in the 101's packet; then it echoes
    // upper-cased.
    let backend = switching_backend(seen_tx, b"welcome|", |mut reader, mut writer| {
        let mut buffer = [0; 1024];
        while let Ok(read) = reader.read(&mut buffer) {
            if read == 0
                || writer
                    .write_all(&buffer[..read].to_ascii_uppercase())
                    .is_err()
            {
                return;
            }
        }
    });
    let site = site_for(backend.address);
    let mut connection = Connection::open(site.port);
    // The client does not wait for the 101 to send its first bytes.
    let early = format!("{}early bytes", upgrade_request("/eager"));
    connection.send(early.as_bytes()).unwrap();
    let head = connection.head().unwrap();
    assert_eq!(head.status, 101);
    assert!(relayed(&next(&seen)));
    let mut back = vec![0; "welcome|EARLY BYTES".len()];
    connection.reader.read_exact(&mut back).unwrap();
    assert_eq!(back, b"welcome|EARLY BYTES");
    // Bytes that look like HTTP are just bytes now.
    let lookalike = b"GET / HTTP/1.1\r\nHost: app.test\r\n\r\n";
    connection.send(lookalike).unwrap();
    let mut back = vec![0; lookalike.len()];
    connection.reader.read_exact(&mut back).unwrap();
    assert_eq!(back, lookalike.to_ascii_uppercase());
}

#[test]
fn a_refused_upgrade_is_an_ordinary_answer_and_the_connection_goes_on() {
    let (seen_tx, seen) = mpsc::channel();
    let seen_tx = std::sync::Mutex::new(seen_tx);
    // 426 (with a length, the backend connection stays) or 400 with a
    // body until the backend closes; anything else 200.
    let backend = RawBackend::conversing(move |mut reader, mut writer| {
        while let Some(request) = read_head(&mut reader) {
            let target = request.target.clone();
            let _ = seen_tx.lock().unwrap().send(request);
            let answer: &[u8] = match target.as_str() {
                "/426" => {
                    b"HTTP/1.1 426 Upgrade Required\r\nUpgrade: websocket\r\nContent-Length: 4\r\n\r\nnope"
                }
                "/400" => b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\nno socket here",
                _ => b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nplain",
            };
            if writer.write_all(answer).is_err() || target == "/400" {
                return;
            }
        }
    });
    let site = site_for(backend.address);
    let mut connection = Connection::open(site.port);
    connection.send(upgrade_request("/426").as_bytes()).unwrap();
    let answer = connection.answer().unwrap();
    assert_eq!((answer.status, answer.text().as_str()), (426, "nope"));
    // Hop-by-hop on an answer that switches nothing.
    assert_eq!(answer.header("upgrade"), None);
    assert_eq!(answer.header("connection"), None);
    assert!(relayed(&next(&seen)));
    let answer = connection.get("app.test", "/after");
    assert_eq!((answer.status, answer.text().as_str()), (200, "plain"));
    assert_eq!(next(&seen).target, "/after");

    // A body until the backend closes is sent on chunked: the client
    // connection goes on.
    connection.send(upgrade_request("/400").as_bytes()).unwrap();
    let answer = connection.answer().unwrap();
    assert_eq!(answer.status, 400);
    assert_eq!(answer.text(), "no socket here");
    assert!(relayed(&next(&seen)));
    let answer = connection.get("app.test", "/again");
    assert_eq!((answer.status, answer.text().as_str()), (200, "plain"));
}

/// An upload of `body` asking `Expect: 100-continue`, with the probe.
fn expecting(length: usize) -> String {
    format!(
        "POST /upload HTTP/1.1\r\nHost: app.test\r\n{PROBE}: 1\r\nContent-Length: {length}\r\nExpect: 100-continue\r\n\r\n"
    )
}

#[test]
fn the_backend_s_100_continue_is_relayed_then_its_answer() {
    let (seen_tx, seen) = mpsc::channel();
    let seen_tx = std::sync::Mutex::new(seen_tx);
    let backend = RawBackend::conversing(move |mut reader, mut writer| {
        while let Some(mut request) = read_head(&mut reader) {
            writer
                .write_all(b"HTTP/1.1 100 Continue\r\nX-Interim: backend\r\n\r\n")
                .unwrap();
            let mut body = Vec::new();
            harness::backend::read_body(&mut reader, &request, |piece| {
                body.extend_from_slice(piece)
            });
            // The body says how many bytes came.
            let count = body.len().to_string();
            let answer = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{count}",
                count.len()
            );
            request.body = body;
            let _ = seen_tx.lock().unwrap().send(request);
            if writer.write_all(answer.as_bytes()).is_err() {
                return;
            }
        }
    });
    let site = site_for(backend.address);
    let mut connection = Connection::open(site.port);
    let body = vec![b'x'; 300_000];
    connection.send(expecting(body.len()).as_bytes()).unwrap();
    // The backend's own 100 (its header shows it), before any body byte.
    let interim = connection.head().unwrap();
    assert_eq!(interim.status, 100);
    assert_eq!(interim.header("x-interim"), Some("backend"));
    connection.send(&body).unwrap();
    let answer = connection.answer().unwrap();
    assert_eq!(answer.status, 200, "one 100 only, then the answer");
    assert_eq!(answer.text(), "300000");
    let request = next(&seen);
    assert!(relayed(&request), "hyper forwarded it: {request:?}");
    assert_eq!(request.header("expect"), Some("100-continue"));
    assert!(request.body == body);
    // The connection goes on.
    connection.send(expecting(3).as_bytes()).unwrap();
    assert_eq!(connection.head().unwrap().status, 100);
    connection.send(b"abc").unwrap();
    assert_eq!(connection.answer().unwrap().status, 200);
    assert_eq!(next(&seen).body, b"abc");
}

/// A backend that answers `answer` from the head, reads no body, and
/// reports each head it got and then what still came on the connection
/// until it closed.
fn answering_from_the_head(
    answer: &'static [u8],
) -> (
    RawBackend,
    mpsc::Receiver<SeenRequest>,
    mpsc::Receiver<Vec<u8>>,
) {
    let (seen_tx, seen) = mpsc::channel();
    let (after_tx, after) = mpsc::channel();
    let seen_tx = std::sync::Mutex::new(seen_tx);
    let after_tx = std::sync::Mutex::new(after_tx);
    let backend = RawBackend::conversing(move |mut reader, mut writer| {
        let Some(request) = read_head(&mut reader) else {
            return;
        };
        let _ = seen_tx.lock().unwrap().send(request);
        let _ = writer.write_all(answer);
        let mut rest = Vec::new();
        let _ = reader.read_to_end(&mut rest);
        let _ = after_tx.lock().unwrap().send(rest);
    });
    (backend, seen, after)
}

#[test]
fn a_417_before_the_body_ends_the_exchange_cleanly() {
    let (backend, seen, after) = answering_from_the_head(
        b"HTTP/1.1 417 Expectation Failed\r\nContent-Length: 7\r\n\r\nrefused",
    );
    let site = site_for(backend.address);
    let mut connection = Connection::open(site.port);
    connection.send(expecting(1000).as_bytes()).unwrap();
    // No 100: the final answer straight away.
    let answer = connection.answer().unwrap();
    assert_eq!((answer.status, answer.text().as_str()), (417, "refused"));
    assert_eq!(answer.header("connection"), Some("close"));
    assert!(relayed(&next(&seen)));
    // The proxy closed the backend connection without sending a body
    // byte, and closes the client's.
    let rest = after
        .recv_timeout(Duration::from_secs(10))
        .expect("the backend connection was not closed");
    assert!(
        rest.is_empty(),
        "{} body bytes reached the backend",
        rest.len()
    );
    assert!(connection.closed_within(Duration::from_secs(10)));
}

#[test]
fn a_backend_silent_on_the_expectation_gets_the_body_after_the_relay_s_100() {
    let (seen_tx, seen) = mpsc::channel();
    let backend = Backend::start_with("quiet", Duration::ZERO, Some(seen_tx));
    let site = site_for(backend.address);
    let mut connection = Connection::open(site.port);
    connection.send(expecting(5).as_bytes()).unwrap();
    // The relay's own 100 (after its wait for the backend's).
    let interim = connection.head().unwrap();
    assert_eq!(interim.status, 100);
    assert_eq!(interim.header("x-interim"), None);
    connection.send(b"hello").unwrap();
    let answer = connection.answer().unwrap();
    assert_eq!((answer.status, answer.text().as_str()), (200, "quiet"));
    let request = next(&seen);
    assert!(relayed(&request));
    assert_eq!(request.body, b"hello");

    // A client that sends its body without waiting gets no 100.
    let mut upload = expecting(5).into_bytes();
    upload.extend_from_slice(b"world");
    connection.send(&upload).unwrap();
    let answer = connection.answer().unwrap();
    assert_eq!((answer.status, answer.text().as_str()), (200, "quiet"));
    assert_eq!(next(&seen).body, b"world");
}

#[test]
fn a_pooled_connection_closed_while_the_client_waits_is_replaced() {
    let (seen_tx, seen) = mpsc::channel();
    let seen_tx = std::sync::Mutex::new(seen_tx);
    let connections = std::sync::atomic::AtomicUsize::new(0);
    // The first connection answers a GET, then closes without a word at
    // the next head; the others say 100, read the body and answer.
    let backend = RawBackend::start(move |stream| {
        let first = connections.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0;
        let mut writer = stream.try_clone().unwrap();
        let mut reader = BufReader::new(stream);
        while let Some(mut request) = read_head(&mut reader) {
            if request.method == "GET" {
                writer
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    .unwrap();
                continue;
            }
            if first {
                return;
            }
            writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").unwrap();
            let mut body = Vec::new();
            harness::backend::read_body(&mut reader, &request, |piece| {
                body.extend_from_slice(piece)
            });
            request.body = body;
            let _ = seen_tx.lock().unwrap().send(request);
            let answer = b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n";
            if writer.write_all(answer).is_err() {
                return;
            }
        }
    });
    let site = site_for(backend.address);
    let mut connection = Connection::open(site.port);
    assert_eq!(connection.get("app.test", "/").text(), "ok");
    // The upload's head goes on the pooled connection, which dies: the
    // head goes again on a new one, and the client never knows.
    connection.send(expecting(4).as_bytes()).unwrap();
    assert_eq!(connection.head().unwrap().status, 100);
    connection.send(b"data").unwrap();
    assert_eq!(connection.answer().unwrap().status, 201);
    let request = next(&seen);
    assert!(relayed(&request));
    assert_eq!(request.body, b"data");
    assert_eq!(
        backend
            .connections
            .load(std::sync::atomic::Ordering::SeqCst),
        2
    );
}

#[test]
fn close_sessions_ends_a_websocket() {
    use sozu_command::proto::command::{
        CloseSessions, request::RequestType, response_content::ContentType,
    };
    // The backend lives as long as the test.
    let (_backend, site, mut connection, seen) = chat();
    assert_eq!(connection.head().unwrap().status, 101);
    assert!(relayed(&next(&seen)));
    let (_, echoed) = websocket::echo(&mut connection.reader, TEXT, b"alive").unwrap();
    assert_eq!(echoed, b"alive");
    // The tunnel's backend connection is a live session of the cluster.
    let answer = site.daemon.ok(RequestType::CloseSessions(CloseSessions {
        cluster_id: "app".into(),
        backend_id: None,
        address: None,
    }));
    let Some(ContentType::ClosedSessions(closed)) = answer.content.and_then(|c| c.content_type)
    else {
        panic!("no closed sessions count")
    };
    assert_eq!(closed.closed, 1);
    assert!(connection.closed_within(Duration::from_secs(10)));
}

#[test]
fn a_101_before_the_whole_upload_is_a_502_not_a_tunnel() {
    // Switches protocols from the head of an upgrade that has a large
    // body, and reads none of the body until the client has its answer:
    // the relay cannot send more than the sockets' buffers hold (a few
    // MiB, far from the 64 MiB body), so the 101 comes while the body is
    // going out. Where the body broke off is not known to the proxy, so no
    // tunnel may start from there.
    let (seen_tx, seen) = mpsc::channel();
    let (gate_tx, gate) = mpsc::channel::<()>();
    let once = std::sync::Mutex::new(Some((seen_tx, gate)));
    let backend = RawBackend::conversing(move |mut reader, mut writer| {
        let Some((seen_tx, gate)) = once.lock().unwrap().take() else {
            return;
        };
        let Some(request) = read_head(&mut reader) else {
            return;
        };
        let _ = seen_tx.send(request);
        let _ = writer.write_all(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\n",
        );
        // Until the test has its answer (or is gone).
        let _ = gate.recv();
        let _ = std::io::copy(&mut reader, &mut std::io::sink());
    });
    let site = site_for(backend.address);
    let length = 64 << 20;
    let head = format!(
        "POST /up HTTP/1.1\r\nHost: app.test\r\nUpgrade: x\r\nConnection: Upgrade\r\n{PROBE}: 1\r\nContent-Length: {length}\r\n\r\n"
    );
    let mut connection = Connection::open(site.port);
    connection.send(head.as_bytes()).unwrap();
    // The body goes on in the background; the answer comes meanwhile.
    let mut body_writer = connection.writer.try_clone().unwrap();
    let uploader = std::thread::spawn(move || {
        let chunk = vec![b'x'; 64 * 1024];
        for _ in 0..length / chunk.len() {
            if body_writer.write_all(&chunk).is_err() {
                break;
            }
        }
    });
    let answer = connection.answer().unwrap();
    drop(gate_tx);
    assert_eq!(answer.status, 502, "{}", answer.text());
    assert!(relayed(&next(&seen)));
    assert!(connection.closed_within(Duration::from_secs(10)));
    uploader.join().unwrap();
}

#[test]
fn a_backend_that_repeats_100_after_the_relay_s_own_gets_a_502() {
    // Silent on the expectation (the relay says 100 itself after a
    // second), then 100 after 100 after the body: the ones the client is
    // not shown count against the interim answers a response may have.
    let backend = RawBackend::conversing(move |mut reader, mut writer| {
        let Some(_) = read_head(&mut reader) else {
            return;
        };
        let mut body = [0u8; 5];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        for _ in 0..40 {
            if writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = writer.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    });
    let site = site_for(backend.address);
    let mut connection = Connection::open(site.port);
    let head = format!(
        "POST / HTTP/1.1\r\nHost: app.test\r\n{PROBE}: 1\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"
    );
    connection.send(head.as_bytes()).unwrap();
    assert_eq!(connection.head().unwrap().status, 100);
    connection.send(b"hello").unwrap();
    let answer = connection.answer().unwrap();
    assert_eq!(answer.status, 502, "{}", answer.text());
}
