//! Large bodies between plain TCP sockets go through kernel pipes
//! (splice): uploads and downloads of a few MiB, framed by Content-Length,
//! chunked, and until close (sent on chunked), arrive byte-exact on one
//! keep-alive connection, the access log counts every byte once, and the
//! `http.spliced_bytes` counter shows the bytes did not go through the
//! relay's buffers.

use crate::harness;

use std::io::Write;
use std::time::Duration;

use harness::backend::{RawBackend, read_body, read_head};
use harness::client::{Answer, Connection};
use harness::tls::{HttpsSite, TlsConnection};
use harness::{Daemon, config, free_port, wait_until};
use sozu_command::proto::command::filtered_metrics::Inner;

/// Each body's size: well above the buffer (16393 bytes).
const SIZE: u64 = 4 << 20;
/// The chunks the backend and the client write: larger than the buffer,
/// so that most of each one's data goes by splice, around framing read by
/// the codec.
const CHUNK: usize = 300_000;
/// Chunks a little larger than the buffer, for `/chunked-small` and
/// `/up-chunked-small`.
const SMALL_CHUNK: usize = 40_000;
/// The buffer of these tests' workers (Sozu's default).
const BUFFER: u64 = 16_393;

/// The byte at `offset` of every body here.
fn byte_at(offset: u64) -> u8 {
    (offset % 251) as u8
}

fn pattern(offset: u64, len: usize) -> Vec<u8> {
    (0..len as u64).map(|i| byte_at(offset + i)).collect()
}

/// Counts a body's bytes and the offset of the first one out of place.
#[derive(Default)]
struct Checker {
    offset: u64,
    mismatch: Option<u64>,
}

impl Checker {
    fn feed(&mut self, piece: &[u8]) {
        for (index, &byte) in piece.iter().enumerate() {
            if self.mismatch.is_none() && byte != byte_at(self.offset + index as u64) {
                self.mismatch = Some(self.offset + index as u64);
            }
        }
        self.offset += piece.len() as u64;
    }
}

/// Writes `SIZE` bytes of the pattern, as chunks of `chunk` bytes when
/// given, the last chunk included.
fn write_body(out: &mut impl Write, chunk: Option<usize>) -> std::io::Result<()> {
    let chunked = chunk.is_some();
    let chunk = chunk.unwrap_or(SIZE as usize) as u64;
    let mut offset = 0;
    while offset < SIZE {
        let len = (SIZE - offset).min(chunk) as usize;
        if chunked {
            out.write_all(format!("{len:x}\r\n").as_bytes())?;
        }
        out.write_all(&pattern(offset, len))?;
        if chunked {
            out.write_all(b"\r\n")?;
        }
        offset += len as u64;
    }
    if chunked {
        out.write_all(b"0\r\n\r\n")?;
    }
    Ok(())
}

/// A daemon of one worker on a free port, whose cluster `big` (host
/// `big.test`) goes to a new [`backend`].
fn big_site() -> (u16, Daemon, RawBackend) {
    let port = free_port();
    let daemon = Daemon::start(&config(port, 1, "", ""));
    let backend = backend();
    daemon.add_cluster(harness::cluster("big"));
    daemon.add_frontend(harness::frontend(port, "big.test", Some("big")));
    daemon.add_backend(harness::backend("big", "big-0", backend.address));
    (port, daemon, backend)
}

/// Checks uploads (answering "COUNT MISMATCH"), and answers `GET /cl`,
/// `/chunked` and `/close` with `SIZE` bytes framed that way (closing after
/// the last).
fn backend() -> RawBackend {
    RawBackend::conversing(|mut reader, mut writer| {
        while let Some(head) = read_head(&mut reader) {
            let mut checker = Checker::default();
            if read_body(&mut reader, &head, |piece| checker.feed(piece)).is_none() {
                return;
            }
            let written = match head.target.as_str() {
                "/cl" => writer
                    .write_all(
                        format!("HTTP/1.1 200 OK\r\nContent-Length: {SIZE}\r\n\r\n").as_bytes(),
                    )
                    .and_then(|()| write_body(&mut writer, None)),
                "/chunked" | "/chunked-small" => {
                    let chunk = if head.target == "/chunked" {
                        CHUNK
                    } else {
                        SMALL_CHUNK
                    };
                    writer
                        .write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                        .and_then(|()| write_body(&mut writer, Some(chunk)))
                }
                "/close" => {
                    let _ = writer
                        .write_all(b"HTTP/1.1 200 OK\r\n\r\n")
                        .and_then(|()| write_body(&mut writer, None));
                    return;
                }
                _ => {
                    let body = format!("{} {:?}", checker.offset, checker.mismatch);
                    let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
                    writer.write_all((head + &body).as_bytes())
                }
            };
            if written.is_err() {
                return;
            }
        }
    })
}

/// The proxy-wide counter `name`, summed over workers.
fn proxy_count(daemon: &Daemon, name: &str) -> i64 {
    match daemon
        .metrics()
        .proxying
        .get(name)
        .and_then(|m| m.inner.clone())
    {
        Some(Inner::Count(count)) => count,
        _ => 0,
    }
}

#[test]
fn large_bodies_are_spliced_byte_exact_and_counted_once() {
    let folder = tempfile::tempdir().unwrap();
    let access = folder.path().join("access.json");
    let port = free_port();
    let global = format!(
        "access_logs_format = \"json\"\naccess_logs_target = \"file://{}\"\nsplice_pipe_capacity_bytes = 262144",
        access.display()
    );
    let daemon = Daemon::start_in(folder, &config(port, 1, &global, ""));
    let backend = backend();
    daemon.add_cluster(harness::cluster("big"));
    daemon.add_frontend(harness::frontend(port, "big.test", Some("big")));
    daemon.add_backend(harness::backend("big", "big-0", backend.address));

    // Each body went mostly by splice: all but its first buffer and, when
    // chunked, each chunk's first piece (read with its size line).
    let mut spliced = Spliced {
        daemon: &daemon,
        before: 0,
    };
    let mut connection = Connection::open(port);
    // Uploads, framed both ways, on one connection.
    for path in UPLOADS {
        let answer = upload(&mut connection, path);
        assert_eq!(answer.status, 200, "{path}");
        assert_eq!(answer.text(), format!("{SIZE} None"), "{path}");
        spliced.check(path);
    }
    // Downloads, the one until close last (it closes the backend's side;
    // the client's goes on, chunked).
    for path in ["/cl", "/chunked", "/close"] {
        let request = format!("GET {path} HTTP/1.1\r\nHost: big.test\r\n\r\n");
        connection.send(request.as_bytes()).unwrap();
        let head = connection.head().unwrap();
        assert_eq!(head.status, 200, "{path}");
        if path == "/close" {
            assert_eq!(head.header("transfer-encoding"), Some("chunked"));
        }
        let mut checker = Checker::default();
        let received = connection.body(&head, |piece| checker.feed(piece)).unwrap();
        assert_eq!(received, SIZE, "{path}");
        assert_eq!(checker.mismatch, None, "{path}");
        spliced.check(path);
    }
    // The connection still serves requests after all that.
    let answer = connection.get("big.test", "/after");
    assert_eq!(answer.text(), "0 None");

    // Each record counts the body's data bytes once.
    let read = || std::fs::read_to_string(&access).unwrap_or_default();
    assert!(
        wait_until(Duration::from_secs(10), || read().contains("/after")),
        "{}",
        read()
    );
    let records: Vec<serde_json::Value> = read()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    let record = |path: &str| {
        records
            .iter()
            .find(|record| record["path"] == path)
            .unwrap_or_else(|| panic!("no record of {path}: {records:?}"))
            .clone()
    };
    let answer_len = format!("{SIZE} None").len() as u64;
    // Uploads count what came on the wire, chunk framing included (as the
    // copy does); downloads count data bytes.
    let framing: u64 = (0..SIZE.div_ceil(CHUNK as u64))
        .map(|index| {
            let len = (SIZE - index * CHUNK as u64).min(CHUNK as u64);
            format!("{len:x}\r\n\r\n").len() as u64
        })
        .sum::<u64>()
        + "0\r\n\r\n".len() as u64;
    for (path, wire) in [("/up-cl", SIZE), ("/up-chunked", SIZE + framing)] {
        let record = record(path);
        assert_eq!(record["bytes_in"].as_u64(), Some(wire), "{record}");
        assert_eq!(record["bytes_out"].as_u64(), Some(answer_len), "{record}");
    }
    for path in ["/cl", "/chunked", "/close"] {
        let record = record(path);
        assert_eq!(record["bytes_in"].as_u64(), Some(0), "{record}");
        assert_eq!(record["bytes_out"].as_u64(), Some(SIZE), "{record}");
    }
}

/// The `http.spliced_bytes` counter, body after body.
struct Spliced<'a> {
    daemon: &'a Daemon,
    before: u64,
}

impl Spliced<'_> {
    /// Checks that most of the last body (`SIZE` bytes) went by splice, and
    /// no byte was counted twice.
    fn check(&mut self, path: &str) {
        self.check_at_least(path, SIZE * 3 / 4 + 1);
    }

    /// Checks that at least `least` bytes of the last body went by splice,
    /// and no byte was counted twice.
    fn check_at_least(&mut self, path: &str, least: u64) {
        let mut now = 0;
        let mostly = wait_until(Duration::from_secs(10), || {
            now = proxy_count(self.daemon, "http.spliced_bytes") as u64;
            now - self.before >= least
        });
        assert!(mostly, "{path}: {} bytes spliced", now - self.before);
        assert!(now - self.before <= SIZE, "{path}: {}", now - self.before);
        self.before = now;
    }
}

#[test]
fn bodies_over_tls_are_copied() {
    let site = HttpsSite::start(1, |_| {});
    site.certificate(&["big.test"]);
    let backend = backend();
    site.serve("big.test", "big", backend.address);
    let mut connection =
        TlsConnection::open(site.https_port, "big.test", &Default::default()).unwrap();
    let answer = connection
        .request("GET /cl HTTP/1.1\r\nHost: big.test\r\n\r\n")
        .unwrap();
    assert_eq!(answer.status, 200);
    let mut checker = Checker::default();
    checker.feed(&answer.body);
    assert_eq!((checker.offset, checker.mismatch), (SIZE, None));
    // The bytes were decrypted in the worker: no pipe could carry them.
    assert_eq!(proxy_count(&site.daemon, "http.spliced_bytes"), 0);
}

#[test]
fn a_body_within_one_buffer_is_copied() {
    // The backend lives as long as the test.
    let (port, daemon, _backend) = big_site();
    let mut connection = Connection::open(port);
    // A body within one buffer: no pipe.
    let body = pattern(0, 10_000);
    let head = format!(
        "POST /small HTTP/1.1\r\nHost: big.test\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    connection.send(head.as_bytes()).unwrap();
    connection.send(&body).unwrap();
    let answer = connection.answer().unwrap();
    assert_eq!(answer.text(), "10000 None");
    assert_eq!(proxy_count(&daemon, "http.spliced_bytes"), 0);
}

/// The lowest soft limit of open files that leaves `free` descriptors
/// below it for process `pid`, given the ones it has open now.
fn limit_leaving(pid: i32, free: usize) -> usize {
    let open: Vec<usize> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    (1..)
        .find(|&limit| limit - open.iter().filter(|&&fd| fd < limit).count() == free)
        .unwrap()
}

#[test]
fn a_worker_that_cannot_open_a_pipe_copies() {
    // The backend lives as long as the test.
    let (port, daemon, _backend) = big_site();
    let pids = daemon.worker_pids();
    assert_eq!(pids.len(), 1);
    // Room for the client's socket and the backend's, none for a pipe.
    let limit = limit_leaving(pids[0], 2);
    let status = std::process::Command::new("prlimit")
        .args(["--pid", &pids[0].to_string(), &format!("--nofile={limit}:")])
        .status()
        .expect("prlimit (util-linux)");
    assert!(status.success());
    let mut connection = Connection::open(port);
    for path in ["/cl", "/chunked"] {
        let request = format!("GET {path} HTTP/1.1\r\nHost: big.test\r\n\r\n");
        connection.send(request.as_bytes()).unwrap();
        let head = connection.head().unwrap();
        assert_eq!(head.status, 200, "{path}");
        let mut checker = Checker::default();
        let received = connection.body(&head, |piece| checker.feed(piece)).unwrap();
        assert_eq!((received, checker.mismatch), (SIZE, None), "{path}");
    }
    for path in UPLOADS {
        let answer = upload(&mut connection, path);
        assert_eq!(answer.text(), format!("{SIZE} None"), "{path}");
    }
    assert_eq!(proxy_count(&daemon, "http.spliced_bytes"), 0);
}

/// The upload paths: a body framed by Content-Length, then chunked.
const UPLOADS: [&str; 2] = ["/up-cl", "/up-chunked"];

/// Uploads SIZE bytes to `path` (chunked for `/up-chunked`) on
/// `connection`, and reads the answer.
fn upload(connection: &mut Connection, path: &str) -> Answer {
    let chunk = match path {
        "/up-chunked" => Some(CHUNK),
        "/up-chunked-small" => Some(SMALL_CHUNK),
        _ => None,
    };
    let chunked = chunk.is_some();
    let framing = if chunked {
        "Transfer-Encoding: chunked".to_owned()
    } else {
        format!("Content-Length: {SIZE}")
    };
    let head = format!("POST {path} HTTP/1.1\r\nHost: big.test\r\n{framing}\r\n\r\n");
    connection.send(head.as_bytes()).unwrap();
    write_body(&mut connection.writer, chunk).unwrap();
    connection.answer().unwrap()
}

/// Chunks a little larger than the buffer, both ways: after a chunk's
/// spliced data only its CRLF and the next size line are read (with a few
/// bytes of data), so each chunk's data but those few bytes goes by
/// splice. (Reading a whole buffer there would copy 16 KB of each 40 KB
/// chunk.)
#[test]
fn chunk_data_is_spliced_from_chunk_to_chunk() {
    // The backend lives as long as the test.
    let (port, daemon, _backend) = big_site();
    let mut spliced = Spliced {
        daemon: &daemon,
        before: 0,
    };
    // Copied at most: the first buffer of the body, and 64 bytes (the read
    // after spliced data) of each chunk.
    let chunks = SIZE.div_ceil(SMALL_CHUNK as u64);
    let least = SIZE - BUFFER - chunks * 64;
    let mut connection = Connection::open(port);
    let answer = upload(&mut connection, "/up-chunked-small");
    assert_eq!(answer.text(), format!("{SIZE} None"));
    spliced.check_at_least("/up-chunked-small", least);
    let request = "GET /chunked-small HTTP/1.1\r\nHost: big.test\r\n\r\n";
    connection.send(request.as_bytes()).unwrap();
    let head = connection.head().unwrap();
    assert_eq!(head.header("transfer-encoding"), Some("chunked"));
    let mut checker = Checker::default();
    let received = connection.body(&head, |piece| checker.feed(piece)).unwrap();
    assert_eq!((received, checker.mismatch), (SIZE, None));
    spliced.check_at_least("/chunked-small", least);
}
