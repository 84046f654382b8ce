//! WebSocket through the real daemon: the HTTP/1.1 upgrade handshake
//! reaches the backend with its headers, and once switched, frames flow
//! both ways unchanged, over HTTP and over HTTPS.

use crate::harness;

use std::io::BufReader;
use std::net::TcpStream;
use std::time::Duration;

use harness::backend::SeenRequest;
use harness::tls::{ClientSettings, HttpsSite, TlsConnection};
use harness::websocket::{self, BINARY, CLOSE, TEXT};

/// Exchanges messages of every length class on an open WebSocket, then
/// closes it.
fn talk(reader: &mut BufReader<impl std::io::Read + std::io::Write>) {
    for text in ["hello", "", "ünïcödé ✓", "again"] {
        let (opcode, payload) = websocket::echo(reader, TEXT, text.as_bytes()).unwrap();
        assert_eq!((opcode, payload.as_slice()), (TEXT, text.as_bytes()));
    }
    // 16-bit and 64-bit payload lengths.
    for length in [300usize, 70_000] {
        let payload: Vec<u8> = (0..length).map(|i| (i % 251) as u8).collect();
        let (opcode, echoed) = websocket::echo(reader, BINARY, &payload).unwrap();
        assert_eq!(opcode, BINARY);
        assert_eq!(echoed, payload);
    }
    let (opcode, payload) = websocket::echo(reader, CLOSE, &[0x03, 0xe8]).unwrap();
    assert_eq!((opcode, payload.as_slice()), (CLOSE, &[0x03, 0xe8][..]));
    // The backend closed after its close frame: so does the proxy.
    assert!(websocket::at_end(reader));
}

fn check_handshake_request(request: &SeenRequest, proto: &str) {
    assert_eq!(request.method, "GET");
    assert_eq!(request.target, "/chat");
    assert_eq!(request.header("upgrade"), Some("websocket"));
    assert!(
        request
            .header("connection")
            .is_some_and(|value| value.to_ascii_lowercase().contains("upgrade")),
        "{request:?}"
    );
    assert_eq!(
        request.header("sec-websocket-key"),
        Some("dGhlIHNhbXBsZSBub25jZQ==")
    );
    assert_eq!(request.header("sec-websocket-version"), Some("13"));
    assert_eq!(request.header("x-forwarded-proto"), Some(proto));
}

#[test]
fn the_handshake_proof_is_the_one_of_rfc_6455() {
    assert_eq!(
        websocket::accept_value("dGhlIHNhbXBsZSBub25jZQ=="),
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    );
}

#[test]
fn websocket_echo_over_http_and_https() {
    let (seen_sender, seen) = std::sync::mpsc::channel();
    let backend = websocket::echo_backend(seen_sender);
    let site = HttpsSite::start(1, |_| {});
    site.certificate(&["ws.test"]);
    site.serve("ws.test", "ws", backend.address);

    // Over HTTP.
    let stream = TcpStream::connect(("127.0.0.1", site.http_port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut plain = BufReader::new(stream);
    let answer = websocket::open(&mut plain, "ws.test", "/chat").unwrap();
    assert_eq!(answer.status, 101, "{answer:?}");
    assert_eq!(answer.header("upgrade"), Some("websocket"));
    assert_eq!(answer.header("sozu-id").map(str::len), Some(26));
    check_handshake_request(&seen.recv_timeout(Duration::from_secs(10)).unwrap(), "http");
    talk(&mut plain);

    // Over HTTPS (WebSocket over HTTP/1.1: the client offers http/1.1).
    let mut secure =
        TlsConnection::open(site.https_port, "ws.test", &ClientSettings::default()).unwrap();
    let answer = websocket::open(secure.reader(), "ws.test", "/chat").unwrap();
    assert_eq!(answer.status, 101, "{answer:?}");
    check_handshake_request(
        &seen.recv_timeout(Duration::from_secs(10)).unwrap(),
        "https",
    );
    talk(secure.reader());
}

#[test]
fn many_websockets_at_once_stay_apart() {
    let (seen_sender, _seen) = std::sync::mpsc::channel();
    let backend = websocket::echo_backend(seen_sender);
    let site = HttpsSite::start(2, |_| {});
    site.certificate(&["ws.test"]);
    site.serve("ws.test", "ws", backend.address);

    let mut sockets: Vec<TlsConnection> = (0..20)
        .map(|_| {
            let mut connection =
                TlsConnection::open(site.https_port, "ws.test", &ClientSettings::default())
                    .unwrap();
            let answer = websocket::open(connection.reader(), "ws.test", "/chat").unwrap();
            assert_eq!(answer.status, 101);
            connection
        })
        .collect();
    // Interleaved messages each come back on their own socket.
    for round in 0..3 {
        for (i, socket) in sockets.iter_mut().enumerate() {
            let message = format!("socket {i} round {round}");
            let (_, echoed) = websocket::echo(socket.reader(), TEXT, message.as_bytes()).unwrap();
            assert_eq!(echoed, message.as_bytes());
        }
    }
}

#[test]
fn a_backend_refusing_the_upgrade_is_an_ordinary_answer() {
    let (seen_sender, _seen) = std::sync::mpsc::channel();
    let backend = websocket::echo_backend(seen_sender);
    let site = HttpsSite::start(1, |_| {});
    site.certificate(&["ws.test"]);
    site.serve("ws.test", "ws", backend.address);
    // No Upgrade header: the echo backend answers 426.
    let mut connection =
        TlsConnection::open(site.https_port, "ws.test", &ClientSettings::default()).unwrap();
    let answer = connection
        .request("GET /chat HTTP/1.1\r\nHost: ws.test\r\nConnection: close\r\n\r\n")
        .unwrap();
    assert_eq!(answer.status, 426);
}
