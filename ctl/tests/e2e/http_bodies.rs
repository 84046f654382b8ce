//! Bodies and connections through the real daemon: 100 MB streamed each
//! way without the worker holding them, chunked bodies, keep-alive reuse on
//! both sides, and `Expect: 100-continue`.

use crate::harness;

use std::io::{BufReader, Write};
use std::sync::mpsc;
use std::time::Duration;

use harness::backend::{Backend, RawBackend, read_body, read_head};
use harness::client::{self, Connection};
use harness::{Daemon, Site};

const HUNDRED_MB: u64 = 100 * 1024 * 1024;
/// The worker may grow while it relays, but never by the size of a body.
const RSS_LIMIT: u64 = 40 * 1024 * 1024;

/// Bytes of a body whose byte at offset `i` is `i % 251`: a prime period,
/// so a lost, repeated or reordered piece shows up.
struct Pattern {
    table: Vec<u8>,
}

impl Pattern {
    const PIECE: usize = 64 * 1024;

    fn new() -> Pattern {
        Pattern {
            table: (0..251 + Self::PIECE).map(|i| (i % 251) as u8).collect(),
        }
    }

    /// The `len` bytes that start at `offset`.
    fn at(&self, offset: u64, len: usize) -> &[u8] {
        let start = (offset % 251) as usize;
        &self.table[start..start + len]
    }

    /// Writes `total` bytes of the pattern.
    fn write(&self, out: &mut impl Write, total: u64) -> std::io::Result<()> {
        let mut offset = 0;
        while offset < total {
            let len = (total - offset).min(Self::PIECE as u64) as usize;
            out.write_all(self.at(offset, len))?;
            offset += len as u64;
        }
        Ok(())
    }
}

/// Checks pieces of a body against the pattern as they arrive.
struct Checker<'a> {
    pattern: &'a Pattern,
    offset: u64,
    mismatch: Option<u64>,
}

impl Checker<'_> {
    fn feed(&mut self, piece: &[u8]) {
        if self.mismatch.is_none() && piece != self.pattern.at(self.offset, piece.len()) {
            self.mismatch = Some(self.offset);
        }
        self.offset += piece.len() as u64;
    }
}

fn single_worker(daemon: &Daemon) -> i32 {
    let pids = daemon.worker_pids();
    assert_eq!(pids.len(), 1);
    pids[0]
}

#[test]
fn a_100_mb_upload_is_streamed_to_the_backend() {
    let site = Site::start(1, "");
    // The backend counts and checks what it receives, then says so.
    let counter = RawBackend::start(|stream| {
        let pattern = Pattern::new();
        let mut writer = stream.try_clone().unwrap();
        let mut reader = BufReader::new(stream);
        while let Some(head) = read_head(&mut reader) {
            let mut checker = Checker {
                pattern: &pattern,
                offset: 0,
                mismatch: None,
            };
            if read_body(&mut reader, &head, |piece| checker.feed(piece)).is_none() {
                return;
            }
            let body = format!("{} {:?}", checker.offset, checker.mismatch);
            let answer = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            if writer.write_all(answer.as_bytes()).is_err() {
                return;
            }
        }
    });
    site.daemon.add_cluster(harness::cluster("up"));
    site.daemon
        .add_frontend(harness::frontend(site.port, "up.test", Some("up")));
    site.daemon
        .add_backend(harness::backend("up", "counter", counter.address));
    let worker = single_worker(&site.daemon);

    let mut connection = Connection::open(site.port);
    connection
        .send(
            format!(
                "POST /upload HTTP/1.1\r\nHost: up.test\r\nContent-Length: {HUNDRED_MB}\r\n\r\n"
            )
            .as_bytes(),
        )
        .unwrap();
    Pattern::new()
        .write(&mut connection.writer, HUNDRED_MB)
        .unwrap();
    let answer = connection.answer().unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(answer.text(), format!("{HUNDRED_MB} None"));

    let peak = Daemon::peak_rss(worker);
    assert!(peak < RSS_LIMIT, "the worker peaked at {peak} bytes");
}

/// A backend that counts the body bytes it receives and answers the count.
fn counting_backend() -> RawBackend {
    RawBackend::conversing(|mut reader, mut writer| {
        while let Some(head) = read_head(&mut reader) {
            let mut received = 0u64;
            if read_body(&mut reader, &head, |piece| received += piece.len() as u64).is_none() {
                return;
            }
            let body = received.to_string();
            let answer = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            if writer.write_all(answer.as_bytes()).is_err() {
                return;
            }
        }
    })
}

#[test]
fn an_upload_slower_than_back_timeout_is_not_cut() {
    // back_timeout bounds the backend's silence, not the client's upload.
    let site = Site::start(1, "back_timeout = 1");
    let counter = counting_backend();
    site.daemon.add_cluster(harness::cluster("up"));
    site.daemon
        .add_frontend(harness::frontend(site.port, "up.test", Some("up")));
    site.daemon
        .add_backend(harness::backend("up", "counter", counter.address));

    let mut connection = Connection::open(site.port);
    let piece = vec![b'p'; 64 * 1024];
    let pieces = 30;
    connection
        .send(
            format!(
                "POST /slow HTTP/1.1\r\nHost: up.test\r\nContent-Length: {}\r\n\r\n",
                piece.len() * pieces
            )
            .as_bytes(),
        )
        .unwrap();
    let started = std::time::Instant::now();
    for _ in 0..pieces {
        connection.send(&piece).unwrap();
        // Pacing: the upload lasts about three back timeouts.
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(started.elapsed() > Duration::from_secs(2));
    let answer = connection.answer().unwrap();
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.text(), (piece.len() * pieces).to_string());
}

#[test]
fn a_100_mb_download_is_streamed_to_the_client() {
    let site = Site::start(1, "");
    let streamer = RawBackend::conversing(|mut reader, mut writer| {
        let pattern = Pattern::new();
        while let Some(head) = read_head(&mut reader) {
            if read_body(&mut reader, &head, |_| {}).is_none() {
                return;
            }
            let chunked = head.target.contains("chunked");
            let framing = if chunked {
                "Transfer-Encoding: chunked".to_owned()
            } else {
                format!("Content-Length: {HUNDRED_MB}")
            };
            if writer
                .write_all(format!("HTTP/1.1 200 OK\r\n{framing}\r\n\r\n").as_bytes())
                .is_err()
            {
                return;
            }
            let written = if chunked {
                // Chunks of uneven sizes.
                let mut offset = 0u64;
                let mut size = 1usize;
                let mut result = Ok(());
                while offset < HUNDRED_MB && result.is_ok() {
                    let len = (HUNDRED_MB - offset).min(size as u64) as usize;
                    result = writer
                        .write_all(format!("{len:x}\r\n").as_bytes())
                        .and_then(|()| writer.write_all(pattern.at(offset, len)))
                        .and_then(|()| writer.write_all(b"\r\n"));
                    offset += len as u64;
                    size = (size * 7 + 13) % Pattern::PIECE + 1;
                }
                result.and_then(|()| writer.write_all(b"0\r\n\r\n"))
            } else {
                pattern.write(&mut writer, HUNDRED_MB)
            };
            if written.is_err() {
                return;
            }
        }
    });
    site.daemon.add_cluster(harness::cluster("down"));
    site.daemon
        .add_frontend(harness::frontend(site.port, "down.test", Some("down")));
    site.daemon
        .add_backend(harness::backend("down", "streamer", streamer.address));
    let worker = single_worker(&site.daemon);

    let pattern = Pattern::new();
    let mut connection = Connection::open(site.port);
    for path in ["/sized", "/chunked"] {
        connection
            .send(format!("GET {path} HTTP/1.1\r\nHost: down.test\r\n\r\n").as_bytes())
            .unwrap();
        let head = connection.head().unwrap();
        assert_eq!(head.status, 200, "{path}");
        let mut checker = Checker {
            pattern: &pattern,
            offset: 0,
            mismatch: None,
        };
        let received = connection.body(&head, |piece| checker.feed(piece)).unwrap();
        assert_eq!(received, HUNDRED_MB, "{path}");
        assert_eq!(checker.mismatch, None, "{path}");
    }
    let peak = Daemon::peak_rss(worker);
    assert!(peak < RSS_LIMIT, "the worker peaked at {peak} bytes");
}

#[test]
fn chunked_bodies_pass_both_ways() {
    let site = Site::start(1, "");
    let (seen_tx, seen) = mpsc::channel();
    let echo = Backend::start_with("echo", Duration::ZERO, Some(seen_tx));
    site.daemon.serve(site.port, "app.test", "app", &[&echo]);
    let request = concat!(
        "POST /chunks HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n",
        "4\r\nWiki\r\n",
        "5;name=value\r\npedia\r\n",
        "e\r\n in\r\n\r\nchunks.\r\n",
        "0\r\n\r\n"
    );
    let mut connection = Connection::open(site.port);
    connection.send(request.as_bytes()).unwrap();
    let answer = connection.answer().unwrap();
    assert_eq!(answer.status, 200);
    let request = seen.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(request.body, b"Wikipedia in\r\n\r\nchunks.");
    assert_eq!(request.headers_named("transfer-encoding"), ["chunked"]);
    assert_eq!(request.header("content-length"), None);

    // A chunked answer reaches the client whole.
    let chunky = RawBackend::conversing(|mut reader, mut writer| {
        while let Some(head) = read_head(&mut reader) {
            let _ = read_body(&mut reader, &head, |_| {});
            let answer = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n1\r\nd\r\n0\r\n\r\n";
            if writer.write_all(answer.as_bytes()).is_err() {
                return;
            }
        }
    });
    site.daemon.add_cluster(harness::cluster("chunky"));
    site.daemon
        .add_frontend(harness::frontend(site.port, "chunky.test", Some("chunky")));
    site.daemon
        .add_backend(harness::backend("chunky", "chunky", chunky.address));
    let answer = connection.get("chunky.test", "/");
    assert_eq!(answer.status, 200);
    assert_eq!(answer.text(), "abcd");
}

#[test]
fn keep_alive_connections_are_reused_on_both_sides() {
    let site = Site::start(1, "");
    let backend = Backend::start("kept");
    site.daemon.serve(site.port, "app.test", "app", &[&backend]);

    // Several requests on one client connection.
    let mut connection = Connection::open(site.port);
    for _ in 0..5 {
        let answer = connection.get("app.test", "/");
        assert_eq!(answer.status, 200);
        assert_eq!(answer.text(), "kept");
        assert_eq!(answer.header("connection"), None);
    }
    // Several client connections, one after the other.
    for _ in 0..5 {
        assert_eq!(client::get(site.port, "app.test", "/").text(), "kept");
    }
    // The backend saw a single connection for all ten.
    assert_eq!(backend.served(), 10);
    assert_eq!(
        backend
            .connections
            .load(std::sync::atomic::Ordering::SeqCst),
        1
    );
}

#[test]
fn expect_100_continue_is_passed_through() {
    let site = Site::start(1, "");
    let (seen_tx, seen) = mpsc::channel();
    let backend = Backend::start_with("patient", Duration::ZERO, Some(seen_tx));
    site.daemon.serve(site.port, "app.test", "app", &[&backend]);

    let mut connection = Connection::open(site.port);
    connection
        .send(
            b"POST /upload HTTP/1.1\r\nHost: app.test\r\nContent-Length: 11\r\nExpect: 100-continue\r\n\r\n",
        )
        .unwrap();
    // The body is only sent once the client is told to go on.
    let interim = connection.head().unwrap();
    assert_eq!(interim.status, 100);
    connection.send(b"hello world").unwrap();
    let answer = connection.answer().unwrap();
    assert_eq!(answer.status, 200);
    let request = seen.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(request.header("expect"), Some("100-continue"));
    assert_eq!(request.body, b"hello world");

    // The connection goes on.
    assert_eq!(connection.get("app.test", "/").status, 200);
}

#[test]
fn an_upgraded_connection_relays_bytes_both_ways() {
    let site = Site::start(1, "");
    let (seen_tx, seen) = mpsc::channel();
    let echo = RawBackend::conversing(move |mut reader, mut writer| {
        let Some(head) = read_head(&mut reader) else {
            return;
        };
        let _ = seen_tx.send(head);
        let answer =
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n";
        if writer.write_all(answer.as_bytes()).is_err() {
            return;
        }
        // Then echo raw bytes, upper-cased, until the end.
        let mut buffer = [0; 1024];
        loop {
            match std::io::Read::read(&mut reader, &mut buffer) {
                Ok(0) | Err(_) => return,
                Ok(read) => {
                    if writer
                        .write_all(&buffer[..read].to_ascii_uppercase())
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }
    });
    site.daemon.add_cluster(harness::cluster("ws"));
    site.daemon
        .add_frontend(harness::frontend(site.port, "ws.test", Some("ws")));
    site.daemon
        .add_backend(harness::backend("ws", "echo", echo.address));

    let mut connection = Connection::open(site.port);
    connection
        .send(b"GET /socket HTTP/1.1\r\nHost: ws.test\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
        .unwrap();
    let head = connection.head().unwrap();
    assert_eq!(head.status, 101);
    assert_eq!(head.header("upgrade"), Some("echo"));
    let request = seen.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(request.header("upgrade"), Some("echo"));
    assert_eq!(
        request
            .header("connection")
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("upgrade")
    );
    for message in ["hello", "raw bytes\r\n\r\nno http here"] {
        connection.send(message.as_bytes()).unwrap();
        let mut back = vec![0; message.len()];
        std::io::Read::read_exact(&mut connection.reader, &mut back).unwrap();
        assert_eq!(back, message.to_ascii_uppercase().as_bytes());
    }
}
