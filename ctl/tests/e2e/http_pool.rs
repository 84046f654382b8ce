//! One pool of HTTP/1.1 backend connections per worker: the relay (HTTP/1.1
//! clients) and the hyper path (HTTP/2 clients, requests the relay hands
//! over) take turns on the same keep-alive connection to a backend, and the
//! hyper path keeps none its backend said it would close.

use crate::harness;

use std::io::Write;
use std::sync::atomic::Ordering;
use std::time::Duration;

use harness::backend::{Backend, RawBackend, read_request};
use harness::h2::{self as h2_client, runtime};
use harness::tls::HttpsSite;
use harness::{Daemon, client, count, wait_until};

const WAIT: Duration = Duration::from_secs(10);

/// Idle backend connections the (single) worker holds.
fn pool_size(daemon: &Daemon) -> i64 {
    count(&daemon.metrics().proxying, "backend.pool.size")
}

/// Backend connections the worker counts open for `cluster`, idle or not.
fn open_connections(daemon: &Daemon, cluster: &str) -> i64 {
    let metrics = daemon.metrics();
    metrics.clusters.get(cluster).map_or(0, |cluster| {
        cluster
            .backends
            .iter()
            .map(|backend| count(&backend.metrics, "connections"))
            .sum()
    })
}

/// Waits until the worker holds `expected` idle backend connections: the
/// exchange just answered gave its connection back.
fn wait_pool(daemon: &Daemon, expected: i64) {
    assert!(
        wait_until(WAIT, || pool_size(daemon) == expected),
        "the pool holds {} idle connections, not {expected}",
        pool_size(daemon)
    );
}

/// `GET path` from an HTTP/2 client over TLS: status and body.
fn h2_get(port: u16, host: &str, path: &str) -> (u16, String) {
    runtime().block_on(async {
        let (client, _connection) = h2_client::connect(port, host).await.unwrap();
        let answer = h2_client::get(&client, host, path).await.unwrap();
        (answer.status, answer.text())
    })
}

#[test]
fn http1_and_http2_clients_take_turns_on_one_backend_connection() {
    let backend = Backend::start("turns");
    let site = HttpsSite::start(1, |_| {});
    site.certificate(&["turns.test"]);
    site.serve("turns.test", "turns", backend.address);

    for round in 0..3 {
        // The hyper path first: in round 0 it opens the connection the
        // relay then reuses.
        let (status, body) = h2_get(site.https_port, "turns.test", "/h2");
        assert_eq!((status, body.as_str()), (200, "turns"), "round {round}");
        wait_pool(&site.daemon, 1);
        let answer = client::get(site.http_port, "turns.test", "/h1");
        assert_eq!((answer.status, answer.text().as_str()), (200, "turns"));
        wait_pool(&site.daemon, 1);
    }
    assert_eq!(backend.served(), 6);
    assert_eq!(
        backend.connections.load(Ordering::SeqCst),
        1,
        "one backend connection serves both kinds of client"
    );
    assert_eq!(open_connections(&site.daemon, "turns"), 1);
}

#[test]
fn a_request_the_relay_hands_over_reuses_the_connection_the_relay_pooled() {
    let backend = Backend::start("old");
    let site = HttpsSite::start(1, |_| {});
    site.serve("old.test", "old", backend.address);

    let answer = client::get(site.http_port, "old.test", "/relayed");
    assert_eq!((answer.status, answer.text().as_str()), (200, "old"));
    wait_pool(&site.daemon, 1);
    // HTTP/1.0: the relay hands the connection over to hyper.
    let bytes = client::raw(
        site.http_port,
        b"GET /handed-over HTTP/1.0\r\nHost: old.test\r\n\r\n",
    )
    .unwrap();
    let answer = client::parse(&bytes).unwrap();
    assert_eq!((answer.status, answer.text().as_str()), (200, "old"));
    assert_eq!(backend.connections.load(Ordering::SeqCst), 1);
    // And the hyper path gives it back for the relay's next request.
    wait_pool(&site.daemon, 1);
    let answer = client::get(site.http_port, "old.test", "/relayed-again");
    assert_eq!((answer.status, answer.text().as_str()), (200, "old"));
    assert_eq!(backend.served(), 3);
    assert_eq!(backend.connections.load(Ordering::SeqCst), 1);
}

/// Answers each request with how many this connection has carried, with
/// `Connection: close` to `/close`, and keeps reading afterwards all the
/// same (a proxy that sent another request there would see it counted).
fn counting_backend() -> RawBackend {
    RawBackend::conversing(|mut reader, mut writer| {
        let mut carried = 0;
        while let Some(request) = read_request(&mut reader) {
            carried += 1;
            let body = carried.to_string();
            let close = if request.target == "/close" {
                "Connection: close\r\n"
            } else {
                ""
            };
            let answer = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n{close}\r\n{body}",
                body.len()
            );
            if writer.write_all(answer.as_bytes()).is_err() {
                break;
            }
        }
    })
}

#[test]
fn the_hyper_path_keeps_no_connection_its_backend_closes() {
    let backend = counting_backend();
    let site = HttpsSite::start(1, |_| {});
    site.certificate(&["count.test"]);
    site.serve("count.test", "count", backend.address);

    let closing = h2_get(site.https_port, "count.test", "/close");
    assert_eq!(closing, (200, "1".to_owned()));
    // The worker lets go of that connection rather than pool it.
    assert!(
        wait_until(WAIT, || open_connections(&site.daemon, "count") == 0),
        "the connection the backend closes is still open"
    );
    assert_eq!(pool_size(&site.daemon), 0);

    // The next request opens a fresh connection, which is kept and reused
    // by both paths.
    assert_eq!(
        h2_get(site.https_port, "count.test", "/keep"),
        (200, "1".to_owned())
    );
    wait_pool(&site.daemon, 1);
    assert_eq!(
        h2_get(site.https_port, "count.test", "/keep"),
        (200, "2".to_owned())
    );
    wait_pool(&site.daemon, 1);
    let answer = client::get(site.http_port, "count.test", "/keep");
    assert_eq!((answer.status, answer.text().as_str()), (200, "3"));
    assert_eq!(backend.connections.load(Ordering::SeqCst), 2);
}

#[test]
fn a_connection_the_hyper_path_pooled_closes_when_its_backend_is_removed() {
    use sozu_command::proto::command::{EventKind, RemoveBackend, request::RequestType};
    let backend = Backend::start("gone");
    let site = HttpsSite::start(1, |_| {});
    site.certificate(&["gone.test"]);
    site.serve("gone.test", "gone", backend.address);
    let mut events = site.daemon.subscribe();

    let (status, body) = h2_get(site.https_port, "gone.test", "/");
    assert_eq!((status, body.as_str()), (200, "gone"));
    wait_pool(&site.daemon, 1);
    assert_eq!(open_connections(&site.daemon, "gone"), 1);
    site.daemon.ok(RequestType::RemoveBackend(RemoveBackend {
        cluster_id: "gone".into(),
        backend_id: "gone".into(),
        address: backend.address.into(),
    }));
    // The idle connection is closed and counted as such: the backend is
    // drained.
    let drained = events.wait_for(WAIT, |event| {
        event.kind == EventKind::RemovedBackendHasNoConnections as i32
            && event.backend_id.as_deref() == Some("gone")
    });
    assert!(drained.is_some(), "events: {:?}", events.seen);
    assert_eq!(pool_size(&site.daemon), 0);
}
