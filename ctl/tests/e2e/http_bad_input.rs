//! Clients that misbehave: malformed request lines, invalid or oversized
//! headers, slowloris, connections reset in the middle of an exchange.
//! Each gets a clear answer or a closed connection; the worker never
//! crashes and other clients never notice.

use crate::harness;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use harness::Site;
use harness::backend::{Backend, RawBackend, read_body, read_head};
use harness::client::{self, Connection};

/// A client that keeps asking `app.test` for `/` and counts what did not
/// come back a 200, until stopped.
struct Bystander {
    stop: Arc<AtomicBool>,
    done: Arc<AtomicUsize>,
    thread: std::thread::JoinHandle<Vec<String>>,
}

impl Bystander {
    fn start(port: u16) -> Bystander {
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicUsize::new(0));
        let (thread_stop, thread_done) = (stop.clone(), done.clone());
        let thread = std::thread::spawn(move || {
            let mut failures = Vec::new();
            while !thread_stop.load(Ordering::SeqCst) {
                match client::try_get(port, "app.test", "/") {
                    Some(200) => {}
                    other => failures.push(format!("{other:?}")),
                }
                thread_done.fetch_add(1, Ordering::SeqCst);
            }
            failures
        });
        Bystander { stop, done, thread }
    }

    /// Stops, after at least one more request, and returns the failures.
    fn finish(self) -> Vec<String> {
        let target = self.done.load(Ordering::SeqCst) + 1;
        assert!(harness::wait_until(Duration::from_secs(20), || {
            self.done.load(Ordering::SeqCst) > target
        }));
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().unwrap()
    }
}

/// A site serving `app.test`, the worker pids, and a bystander.
fn watched_site(listener: &str) -> (Site, Vec<i32>, Bystander) {
    let mut site = Site::start(2, listener);
    let backend = Backend::start("app");
    site.daemon.serve(site.port, "app.test", "app", &[&backend]);
    site.backends.push(backend);
    let pids = site.daemon.worker_pids();
    let bystander = Bystander::start(site.port);
    (site, pids, bystander)
}

/// Checks that nothing broke: same workers, no failure for the bystander,
/// no panic in the logs.
fn nothing_broke(site: &Site, pids: Vec<i32>, bystander: Bystander) {
    let failures = bystander.finish();
    assert!(failures.is_empty(), "the bystander saw {failures:?}");
    assert_eq!(site.daemon.worker_pids(), pids, "a worker was replaced");
    let stderr = site.daemon.stderr_text();
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// The status of the answer to raw `bytes`, or `None` when the connection
/// closed without one.
fn status_of(port: u16, bytes: &[u8]) -> Option<u16> {
    let answer = client::raw(port, bytes).ok()?;
    client::parse(&answer).map(|answer| answer.status)
}

#[test]
fn malformed_request_lines_are_answered_400() {
    let (site, pids, bystander) = watched_site("");
    for request in [
        &b"GARBAGE\r\n\r\n"[..],
        b"GET\r\n\r\n",
        b"GET /\r\nHost: app.test\r\n\r\n",
        b"GET / HTTP/1.1 extra\r\nHost: app.test\r\n\r\n",
        b"G ET / HTTP/1.1\r\nHost: app.test\r\n\r\n",
        b"GET /a b HTTP/1.1\r\nHost: app.test\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
        b"\x00\x00\x00\x00\r\n\r\n",
    ] {
        let status = status_of(site.port, request);
        assert_eq!(status, Some(400), "{:?}", String::from_utf8_lossy(request));
    }
    // An unknown version is refused too.
    let status = status_of(site.port, b"GET / HTTP/9.9\r\nHost: app.test\r\n\r\n");
    assert!(matches!(status, Some(400 | 505)), "{status:?}");
    // Each refusal is counted.
    let metrics = site.daemon.metrics();
    assert!(
        harness::count(&metrics.proxying, "http.status.400") >= 8,
        "{:?}",
        metrics.proxying.get("http.status.400")
    );
    nothing_broke(&site, pids, bystander);
}

#[test]
fn invalid_headers_are_answered_400() {
    let (site, pids, bystander) = watched_site("");
    for request in [
        &b"GET / HTTP/1.1\r\nHost app.test\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: app.test\r\nBad Header: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: app.test\r\n: empty name\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: app.test\r\nX-Nul: a\x00b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: app.test\r\nX-Folded: a\r\n folded\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        b"POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: five\r\n\r\nhello",
        b"POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: -1\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: gzip\r\n\r\nhello",
        b"POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    ] {
        let status = status_of(site.port, request);
        assert_eq!(status, Some(400), "{:?}", String::from_utf8_lossy(request));
    }
    nothing_broke(&site, pids, bystander);
}

#[test]
fn oversized_heads_are_refused() {
    let (site, pids, bystander) = watched_site("");
    // Too many headers.
    let mut many = String::from("GET / HTTP/1.1\r\nHost: app.test\r\n");
    for index in 0..200 {
        many.push_str(&format!("X-Header-{index}: {index}\r\n"));
    }
    many.push_str("\r\n");
    // One header too large, a target too long.
    let large = format!(
        "GET / HTTP/1.1\r\nHost: app.test\r\nX-Large: {}\r\n\r\n",
        "y".repeat(70 * 1024)
    );
    let long = format!(
        "GET /{} HTTP/1.1\r\nHost: app.test\r\n\r\n",
        "z".repeat(70 * 1024)
    );
    for request in [many, large, long] {
        let status = status_of(site.port, request.as_bytes());
        assert!(
            matches!(status, Some(413 | 414 | 431)),
            "{}… got {status:?}",
            &request[..60]
        );
    }
    // Just under the limit is fine.
    let fits = format!(
        "GET / HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\nX-Fits: {}\r\n\r\n",
        "f".repeat(60 * 1024)
    );
    assert_eq!(status_of(site.port, fits.as_bytes()), Some(200));
    nothing_broke(&site, pids, bystander);
}

#[test]
fn a_slowloris_client_is_cut_off_by_the_request_timeout() {
    let (site, pids, bystander) = watched_site("request_timeout = 2");
    let mut stream = TcpStream::connect(("127.0.0.1", site.port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let started = Instant::now();
    // One header byte a second, never the end of the head.
    let trickle = std::thread::spawn(move || {
        let head = b"GET / HTTP/1.1\r\nHost: app.test\r\nX-Slow: aaaaaaaaaaaaaaaaaaaa";
        let mut sent = 0;
        for byte in head.chunks(1) {
            if writer.write_all(byte).is_err() {
                break;
            }
            sent += 1;
            if sent > 32 {
                // Send the request line and the host at once, then slow down.
                std::thread::sleep(Duration::from_secs(1));
            }
        }
        sent
    });
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(5), "cut after {elapsed:?}");
    let answer = client::parse(&answer)
        .unwrap_or_else(|| panic!("no answer: {:?}", String::from_utf8_lossy(&answer)));
    assert_eq!(answer.status, 408);
    let sent = trickle.join().unwrap();
    assert!(sent < 60, "the whole head went through ({sent} bytes)");
    nothing_broke(&site, pids, bystander);
}

/// Closes a socket with a reset rather than a clean end.
fn reset(stream: TcpStream) {
    let linger = nix::libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt on a valid socket with a properly sized linger.
    let result = unsafe {
        nix::libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&stream.as_fd()),
            nix::libc::SOL_SOCKET,
            nix::libc::SO_LINGER,
            (&linger as *const nix::libc::linger).cast(),
            std::mem::size_of::<nix::libc::linger>() as nix::libc::socklen_t,
        )
    };
    assert_eq!(result, 0);
    drop(stream);
}

#[test]
fn connections_reset_mid_request_and_mid_response() {
    let (site, pids, bystander) = watched_site("");
    // A backend that streams a large body, and one that reads bodies.
    let streamer = RawBackend::conversing(|mut reader, mut writer| {
        while let Some(head) = read_head(&mut reader) {
            if read_body(&mut reader, &head, |_| {}).is_none() {
                return;
            }
            let piece = vec![b'x'; 64 * 1024];
            if writer
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 104857600\r\n\r\n")
                .is_err()
            {
                return;
            }
            for _ in 0..1600 {
                if writer.write_all(&piece).is_err() {
                    return;
                }
            }
        }
    });
    site.daemon.add_cluster(harness::cluster("big"));
    site.daemon
        .add_frontend(harness::frontend(site.port, "big.test", Some("big")));
    site.daemon
        .add_backend(harness::backend("big", "streamer", streamer.address));

    for _ in 0..5 {
        // In the middle of the head.
        let mut connection = Connection::open(site.port);
        connection
            .send(b"GET / HTTP/1.1\r\nHost: app.test\r\nX-Half: ")
            .unwrap();
        reset(connection.writer);

        // In the middle of a request body.
        let mut connection = Connection::open(site.port);
        connection
            .send(b"POST /upload HTTP/1.1\r\nHost: app.test\r\nContent-Length: 1000000\r\n\r\n")
            .unwrap();
        connection.send(&[b'u'; 10_000]).unwrap();
        reset(connection.writer);

        // In the middle of a response body.
        let mut connection = Connection::open(site.port);
        connection
            .send(b"GET /large HTTP/1.1\r\nHost: big.test\r\n\r\n")
            .unwrap();
        let head = connection.head().unwrap();
        assert_eq!(head.status, 200);
        let mut piece = [0; 100_000];
        connection.reader.read_exact(&mut piece).unwrap();
        reset(connection.writer);
    }
    // The streamer is asked again and answers: its connections were closed,
    // not left stuck behind the abandoned bodies.
    let mut connection = Connection::open(site.port);
    connection
        .send(b"GET /again HTTP/1.1\r\nHost: big.test\r\n\r\n")
        .unwrap();
    let head = connection.head().unwrap();
    assert_eq!(head.status, 200);
    assert_eq!(connection.body(&head, |_| {}).unwrap(), 104_857_600);
    nothing_broke(&site, pids, bystander);
}

#[test]
fn a_client_that_stops_reading_is_cut_off_by_the_front_timeout() {
    let (site, pids, bystander) = watched_site("front_timeout = 2");
    // A backend that streams a body far larger than the socket buffers,
    // and notes when the proxy hangs up on it.
    let hung_up = Arc::new(AtomicBool::new(false));
    let noted = hung_up.clone();
    let streamer = RawBackend::conversing(move |mut reader, mut writer| {
        if let Some(head) = read_head(&mut reader) {
            if read_body(&mut reader, &head, |_| {}).is_none() {
                return;
            }
            let piece = vec![b'x'; 64 * 1024];
            let mut result =
                writer.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1073741824\r\n\r\n");
            for _ in 0..16_384 {
                if result.is_err() {
                    break;
                }
                result = writer.write_all(&piece);
            }
            if result.is_err() {
                noted.store(true, Ordering::SeqCst);
            }
        }
    });
    site.daemon.add_cluster(harness::cluster("big"));
    site.daemon
        .add_frontend(harness::frontend(site.port, "big.test", Some("big")));
    site.daemon
        .add_backend(harness::backend("big", "streamer", streamer.address));

    let mut connection = Connection::open(site.port);
    connection
        .send(b"GET /large HTTP/1.1\r\nHost: big.test\r\n\r\n")
        .unwrap();
    let head = connection.head().unwrap();
    assert_eq!(head.status, 200);
    // Then it reads nothing more, and keeps its socket open.
    let stopped = Instant::now();
    assert!(
        harness::wait_until(Duration::from_secs(15), || hung_up.load(Ordering::SeqCst)),
        "the backend was still held {:?} after the client stopped reading",
        stopped.elapsed()
    );
    // What the client finds when it reads again: the bytes that were under
    // way, then the end of the connection, far short of the whole body.
    connection
        .reader
        .get_ref()
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut received = 0u64;
    let mut piece = [0; 64 * 1024];
    loop {
        match connection.reader.read(&mut piece) {
            Ok(0) | Err(_) => break,
            Ok(read) => received += read as u64,
        }
    }
    assert!(received < 1 << 30, "the whole body arrived");
    drop(connection);
    nothing_broke(&site, pids, bystander);
}

/// RFC 9112, 3.2: a request with more than one Host line, or a Host that is
/// not a valid `host[:port]`, is answered 400 and reaches no backend (it was
/// routed on the first Host and forwarded with both).
#[test]
fn a_request_with_two_hosts_or_a_bad_host_port_is_answered_400() {
    let (site, pids, bystander) = watched_site("");
    let echo = Backend::start("echo");
    site.daemon
        .serve(site.port, "echo.localhost", "echo", &[&echo]);
    for request in [
        &b"GET / HTTP/1.1\r\nHost: echo.localhost\r\nHost: app.test\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: echo.localhost\r\nX-Other: 1\r\nhost: echo.localhost\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: echo.localhost:abc\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: echo.localhost:80a\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: echo.localhost:99999\r\n\r\n",
        b"GET http://echo.localhost/ HTTP/1.1\r\nHost: echo.localhost\r\nHost: echo.localhost\r\n\r\n",
    ] {
        let status = status_of(site.port, request);
        assert_eq!(status, Some(400), "{:?}", String::from_utf8_lossy(request));
    }
    assert_eq!(echo.served(), 0, "a refused request reached the backend");
    // One Host, with or without a numeric port, is routed as before.
    for request in [
        &b"GET / HTTP/1.1\r\nHost: echo.localhost\r\nConnection: close\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: echo.localhost:8080\r\nConnection: close\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: echo.localhost:\r\nConnection: close\r\n\r\n",
    ] {
        let status = status_of(site.port, request);
        assert_eq!(status, Some(200), "{:?}", String::from_utf8_lossy(request));
    }
    // An IPv6 literal is a host like any other (no frontend for it here).
    let status = status_of(
        site.port,
        b"GET / HTTP/1.1\r\nHost: [::1]:8080\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, Some(404));
    nothing_broke(&site, pids, bystander);
}
