//! Sticky sessions and a frontend's host/path rewrites served by the
//! HTTP/1.1 relay (issue 15), compared with the hyper path that serves the
//! same frontends for HTTP/1.0 requests. The relay keeps a header name's
//! case as received and hyper lowercases it, so the backend can tell which
//! path forwarded each request.

use crate::harness;

use std::sync::mpsc;
use std::time::Duration;

use harness::backend::{Backend, SeenRequest};
use harness::client::{self, Connection};
use harness::{Site, cluster, frontend};

/// The header a client sends so that the backend can tell the paths apart.
const PROBE: &str = "X-Path-Probe";

fn next(seen: &mpsc::Receiver<SeenRequest>) -> SeenRequest {
    seen.recv_timeout(Duration::from_secs(10))
        .expect("the backend saw no request")
}

/// The name of the probe header as the backend received it.
fn probe_name(request: &SeenRequest) -> &str {
    request
        .headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(PROBE))
        .map(|(name, _)| name.as_str())
        .expect("the probe header reached the backend")
}

/// A request with the probe header, closed after; HTTP/1.0 goes to hyper.
fn send(port: u16, version: &str, path: &str, headers: &[(&str, &str)]) -> client::Answer {
    let mut request = format!(
        "GET {path} HTTP/{version}\r\nHost: app.test\r\nConnection: close\r\n{PROBE}: 1\r\n"
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    let bytes = client::raw(port, request.as_bytes()).unwrap();
    client::parse(&bytes).expect("a parsable answer")
}

#[test]
fn the_relay_serves_sticky_sessions_as_the_hyper_path_does() {
    let (site, _one, _two, seen) = Site::sticky();
    let cookies = [("Cookie", "a=1; LB=two; b=2"), ("Cookie", "LB=s1")];
    for (version, probe) in [("1.1", PROBE), ("1.0", "x-path-probe")] {
        // The last sticky cookie wins; the others stay, line by line.
        let answer = send(site.port, version, "/", &cookies);
        assert_eq!(answer.text(), "one", "HTTP/{version}");
        assert_eq!(answer.header("set-cookie"), None, "HTTP/{version}");
        let request = next(&seen);
        assert_eq!(probe_name(&request), probe, "HTTP/{version}");
        assert_eq!(
            request.headers_named("cookie"),
            ["a=1; b=2"],
            "HTTP/{version}"
        );
        // An unknown value: balanced, and told the new one.
        let answer = send(site.port, version, "/", &[("Cookie", "LB=gone; c=3")]);
        let expected = match answer.text().as_str() {
            "one" => "LB=s1; Path=/",
            _ => "LB=two; Path=/",
        };
        assert_eq!(answer.header("set-cookie"), Some(expected));
        let request = next(&seen);
        assert_eq!(probe_name(&request), probe, "HTTP/{version}");
        assert_eq!(request.headers_named("cookie"), ["c=3"]);
    }
}

/// Many requests on one connection: each finds its own backend by its
/// cookie, and the cookie of one never leaks into the next.
#[test]
fn sticky_requests_on_one_kept_alive_connection_each_go_their_way() {
    let (site, _one, _two, seen) = Site::sticky();
    let mut connection = Connection::open(site.port);
    for round in 0..6 {
        let (cookie, backend) = if round % 2 == 0 {
            ("LB=two", "two")
        } else {
            ("theme=dark; LB=s1", "one")
        };
        let head = format!("GET /{round} HTTP/1.1\r\nHost: app.test\r\nCookie: {cookie}\r\n\r\n");
        connection.send(head.as_bytes()).unwrap();
        let answer = connection.answer().unwrap();
        assert_eq!(answer.text(), backend, "round {round}");
        assert_eq!(answer.header("set-cookie"), None, "round {round}");
        let request = next(&seen);
        let expected: &[&str] = if round % 2 == 0 { &[] } else { &["theme=dark"] };
        assert_eq!(request.headers_named("Cookie"), expected, "round {round}");
        // The relay keeps the received name's case.
        assert!(
            request.headers.iter().all(|(name, _)| name != "cookie"),
            "round {round}: {:?}",
            request.headers
        );
    }
    // Without a cookie on the same connection: a Set-Cookie naming where
    // it went.
    connection
        .send(b"GET /last HTTP/1.1\r\nHost: app.test\r\n\r\n")
        .unwrap();
    let answer = connection.answer().unwrap();
    let expected = if answer.text() == "one" {
        "LB=s1; Path=/"
    } else {
        "LB=two; Path=/"
    };
    assert_eq!(answer.header("set-cookie"), Some(expected));
    assert_eq!(next(&seen).headers_named("cookie"), Vec::<&str>::new());
}

#[test]
fn the_relay_serves_host_and_path_rewrites_as_the_hyper_path_does() {
    let site = Site::start(1, "");
    site.daemon.add_cluster(cluster("app"));
    site.daemon
        .add_frontend(sozu_command::proto::command::RequestHttpFrontend {
            rewrite_host: Some("internal.test".into()),
            rewrite_path: Some("/inner?x=1".into()),
            ..frontend(site.port, "app.test", Some("app"))
        });
    let (seen_tx, seen) = mpsc::channel();
    let backend = Backend::start_with("app", Duration::ZERO, Some(seen_tx));
    site.daemon
        .add_backend(harness::backend("app", "app", backend.address));
    for (version, probe) in [("1.1", PROBE), ("1.0", "x-path-probe")] {
        let answer = send(
            site.port,
            version,
            "/outer?y=2",
            &[("X-Forwarded-Host", "spoofed")],
        );
        assert_eq!(answer.status, 200, "HTTP/{version}");
        let request = next(&seen);
        assert_eq!(probe_name(&request), probe, "HTTP/{version}");
        assert_eq!(request.target, "/inner?x=1", "HTTP/{version}");
        assert_eq!(request.headers_named("host"), ["internal.test"]);
        assert_eq!(request.headers_named("x-forwarded-host"), ["app.test"]);
    }

    // Pipelined on one connection, one with a body: each gets the
    // rewritten line, the body follows its head.
    let mut connection = Connection::open(site.port);
    let mut pipelined = Vec::new();
    pipelined
        .extend_from_slice(b"POST /a HTTP/1.1\r\nHost: app.test\r\nContent-Length: 5\r\n\r\nhello");
    pipelined.extend_from_slice(b"GET /b HTTP/1.1\r\nHost: app.test\r\n\r\n");
    connection.send(&pipelined).unwrap();
    for method in ["POST", "GET"] {
        assert_eq!(connection.answer().unwrap().status, 200);
        let request = next(&seen);
        assert_eq!(request.method, method);
        assert_eq!(request.target, "/inner?x=1");
        assert_eq!(request.headers_named("Host"), ["internal.test"]);
        let body: &[u8] = if method == "POST" { b"hello" } else { b"" };
        assert_eq!(request.body, body);
    }
}

/// A rewritten path the relay does not write itself (outside the URI
/// characters it accepts) is still served, by hyper.
#[test]
fn a_rewrite_the_relay_does_not_apply_goes_to_hyper() {
    let site = Site::start(1, "");
    site.daemon.add_cluster(cluster("app"));
    site.daemon
        .add_frontend(sozu_command::proto::command::RequestHttpFrontend {
            rewrite_path: Some("/a|b".into()),
            ..frontend(site.port, "app.test", Some("app"))
        });
    let (seen_tx, seen) = mpsc::channel();
    let backend = Backend::start_with("app", Duration::ZERO, Some(seen_tx));
    site.daemon
        .add_backend(harness::backend("app", "app", backend.address));
    let answer = send(site.port, "1.1", "/", &[]);
    assert_eq!(answer.status, 200);
    let request = next(&seen);
    assert_eq!(probe_name(&request), "x-path-probe");
}
