//! HTTP/2 through the real daemon: clients speaking HTTP/2 over TLS (curl
//! and an `h2` client opening many streams on one connection), the limits
//! the proxy sets, clients that open and reset streams in a loop, and
//! backends that speak HTTP/2 cleartext only (clusters with `http2`).

use crate::harness;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use harness::backend::Backend;
use harness::curl::{curl, https_args, supports_http2};
use harness::h2::{self as h2_client, H2Backend, runtime};
use harness::tls::{ClientSettings, HttpsSite, TlsConnection};
use harness::{client, wait_until};
use http::Request;
use sozu_command::proto::command::{
    AddBackend, Cluster, EventKind, HealthCheckConfig, RedirectPolicy, request::RequestType,
};

#[test]
fn curl_gets_every_answer_of_many_parallel_streams_on_one_connection() {
    assert!(supports_http2(), "this curl does not speak HTTP/2");
    let backend = Backend::start_with("par", Duration::from_millis(20), None);
    let site = HttpsSite::start(1, |_| {});
    site.certificate(&["par.test"]);
    site.serve("par.test", "par", backend.address);
    let ca = site.authority.write_pem(site.daemon.path());

    let mut args: Vec<String> = [
        "--http2",
        "--parallel",
        "--parallel-max",
        "50",
        "-o",
        "/dev/null",
        "-w",
        "%{size_download} %{http_code} %{http_version} %{num_connects}\\n",
    ]
    .iter()
    .map(|arg| (*arg).to_owned())
    .collect();
    args.extend(https_args(&ca, "par.test", site.https_port, "/[1-200]"));
    let run = curl(&args);
    assert!(run.success, "curl failed: {}", run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 200, "{}", run.stdout);
    let mut connects = 0;
    for line in &lines {
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(&fields[..3], ["3", "200", "2"], "{line}");
        connects += fields[3].parse::<u32>().unwrap();
    }
    // curl waits for the first connection to learn it multiplexes, then
    // puts every transfer on it.
    assert_eq!(connects, 1, "{}", run.stdout);
    assert_eq!(backend.served(), 200);
}

#[test]
fn one_connection_carries_a_hundred_concurrent_requests() {
    let delay = Duration::from_millis(300);
    let backend = Backend::start_with("many", delay, None);
    let site = HttpsSite::start(1, |_| {});
    site.certificate(&["many.test"]);
    site.serve("many.test", "many", backend.address);
    let port = site.https_port;

    runtime().block_on(async move {
        let (client, connection) = h2_client::connect(port, "many.test").await.unwrap();
        let started = Instant::now();
        let requests = (0..100).map(|i| {
            let client = client.clone();
            tokio::spawn(
                async move { h2_client::get(&client, "many.test", &format!("/{i}")).await },
            )
        });
        let answers = futures_join(requests.collect()).await;
        let elapsed = started.elapsed();
        for answer in &answers {
            let answer = answer.as_ref().unwrap();
            assert_eq!((answer.status, answer.text().as_str()), (200, "many"));
            assert_eq!(answer.header("sozu-id").map(str::len), Some(26));
        }
        // One after the other they would take 30 s.
        assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
        drop(client);
        assert!(!connection.is_finished());
    });
    assert_eq!(backend.served(), 100);
}

/// Awaits every task and returns their outputs in order.
async fn futures_join<T: 'static>(tasks: Vec<tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut outputs = Vec::with_capacity(tasks.len());
    for task in tasks {
        outputs.push(task.await.unwrap());
    }
    outputs
}

#[test]
fn the_listener_limits_concurrent_streams_and_header_lists() {
    let backend = Backend::start_with("lim", Duration::from_millis(300), None);
    let site = HttpsSite::start(1, |listener| {
        listener.h2_max_concurrent_streams = Some(10);
        listener.h2_max_header_list_size = Some(2048);
    });
    site.certificate(&["lim.test"]);
    site.serve("lim.test", "lim", backend.address);
    let port = site.https_port;

    runtime().block_on(async move {
        let (client, _connection) = h2_client::connect(port, "lim.test").await.unwrap();
        // Once a first answer came, the client knows the server's limit
        // (streams beyond it would be refused with REFUSED_STREAM) and
        // queues the rest.
        assert_eq!(
            h2_client::get(&client, "lim.test", "/")
                .await
                .unwrap()
                .status,
            200
        );
        let tasks = (0..30)
            .map(|i| {
                let client = client.clone();
                tokio::spawn(
                    async move { h2_client::get(&client, "lim.test", &format!("/{i}")).await },
                )
            })
            .collect();
        for answer in futures_join(tasks).await {
            assert_eq!(answer.unwrap().status, 200);
        }

        // A header list over the limit is answered 431; under it passes.
        let big = Request::get("https://lim.test/")
            .header("x-big", "b".repeat(3000))
            .body(())
            .unwrap();
        assert_eq!(h2_client::send(&client, big).await.unwrap().status, 431);
        let small = Request::get("https://lim.test/")
            .header("x-small", "s".repeat(1000))
            .body(())
            .unwrap();
        assert_eq!(h2_client::send(&client, small).await.unwrap().status, 200);
    });
    // The backend never had more than 10 requests at once: the proxy opened
    // at most 10 connections to it.
    let connections = backend
        .connections
        .load(std::sync::atomic::Ordering::SeqCst);
    assert!(connections <= 10, "{connections} backend connections");

    // What the server tells clients, and how a listener update changes it
    // for the connections that follow.
    let advertised =
        |port: u16| runtime().block_on(h2_client::advertised_max_streams(port, "lim.test"));
    assert_eq!(advertised(port), 10);
    site.daemon.ok(RequestType::UpdateHttpsListener(
        sozu_command::proto::command::UpdateHttpsListenerConfig {
            address: harness::local(port),
            h2_max_concurrent_streams: Some(7),
            ..Default::default()
        },
    ));
    assert_eq!(advertised(port), 7);
    let default_port = harness::free_port();
    site.daemon
        .add_https_listener(harness::tls::https_listener(default_port));
    site.daemon
        .add_certificate(default_port, &site.authority.issue(&["lim.test"]));
    site.daemon
        .add_https_frontend(harness::frontend(default_port, "lim.test", Some("lim")));
    assert_eq!(advertised(default_port), 100);

    // Limits the proxy cannot enforce are refused by name; zero is refused.
    let mut listener = harness::tls::https_listener(harness::free_port());
    listener.h2_max_ping_per_window = Some(5);
    let refusal = site.daemon.failure(RequestType::AddHttpsListener(listener));
    assert!(refusal.contains("'h2_max_ping_per_window'"), "{refusal}");
    let mut listener = harness::tls::https_listener(harness::free_port());
    listener.h2_max_concurrent_streams = Some(0);
    let refusal = site.daemon.failure(RequestType::AddHttpsListener(listener));
    assert!(refusal.contains("h2_max_concurrent_streams"), "{refusal}");
}

#[test]
fn routing_answers_and_headers_are_the_same_over_http2() {
    let (seen_sender, seen) = std::sync::mpsc::channel();
    let api = Backend::start_with("api", Duration::ZERO, Some(seen_sender));
    let web = Backend::start("web");
    let site = HttpsSite::start(1, |_| {});
    site.certificate(&["site.test", "moved.test"]);
    site.daemon.add_cluster(harness::cluster("api"));
    site.daemon
        .add_backend(harness::backend("api", "api", api.address));
    site.daemon.add_cluster(harness::cluster("web"));
    site.daemon
        .add_backend(harness::backend("web", "web", web.address));
    let mut api_frontend = harness::frontend(site.https_port, "site.test", Some("api"));
    api_frontend.path = sozu_command::proto::command::PathRule {
        kind: sozu_command::proto::command::PathRuleKind::Prefix as i32,
        value: "/api".into(),
    };
    site.daemon.add_https_frontend(api_frontend);
    site.daemon
        .add_https_frontend(harness::frontend(site.https_port, "site.test", Some("web")));
    let mut moved = harness::frontend(site.https_port, "moved.test", Some("web"));
    moved.redirect = Some(RedirectPolicy::Permanent as i32);
    site.daemon.add_https_frontend(moved);
    let port = site.https_port;

    let answers = runtime().block_on(async move {
        let (client, _connection) = h2_client::connect(port, "site.test").await.unwrap();
        let mut answers = BTreeMap::new();
        for (name, path) in [("api", "/api/users?id=1"), ("web", "/index.html")] {
            answers.insert(
                name,
                h2_client::get(&client, "site.test", path).await.unwrap(),
            );
        }
        // A name the certificate covers but no frontend: 404, with the
        // proxy's answer.
        let (unknown, _c) = h2_client::connect(port, "nobody.test").await.unwrap();
        answers.insert(
            "unknown",
            h2_client::get(&unknown, "nobody.test", "/").await.unwrap(),
        );
        let (moved, _c) = h2_client::connect(port, "moved.test").await.unwrap();
        answers.insert(
            "moved",
            h2_client::get(&moved, "moved.test", "/a?b").await.unwrap(),
        );
        // Strict SNI holds for the :authority too.
        answers.insert(
            "other",
            h2_client::get(&client, "moved.test", "/").await.unwrap(),
        );
        // The proxy's own answers end a stream, not the connection (over
        // HTTP/1.1 they close it).
        answers.insert(
            "after",
            h2_client::get(&client, "site.test", "/").await.unwrap(),
        );
        answers
    });
    assert_eq!(answers["api"].text(), "api");
    assert_eq!(answers["web"].text(), "web");
    assert_eq!(answers["api"].header("x-backend"), Some("api"));
    assert_eq!(answers["api"].header("sozu-id").map(str::len), Some(26));
    assert_eq!(answers["unknown"].status, 404);
    assert_eq!(answers["moved"].status, 301);
    assert_eq!(
        answers["moved"].header("location"),
        Some("https://moved.test/a?b")
    );
    assert_eq!(answers["other"].status, 421);
    assert_eq!(answers["after"].text(), "web");
    for answer in answers.values() {
        // Connection-specific headers have no place in HTTP/2.
        assert!(answer.header("connection").is_none(), "{answer:?}");
        assert!(answer.header("transfer-encoding").is_none(), "{answer:?}");
    }

    // The backend got an HTTP/1.1 request with the host of the :authority
    // and the usual forwarding headers.
    let request = seen.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(request.method, "GET");
    assert_eq!(request.target, "/api/users?id=1");
    assert_eq!(request.header("host"), Some("site.test"));
    assert_eq!(request.header("x-forwarded-proto"), Some("https"));
    assert!(request.header("x-forwarded-for").is_some());
    assert_eq!(request.header("sozu-id").map(str::len), Some(26));
}

/// A cluster `id` whose backends speak HTTP/2.
fn http2_cluster(id: &str) -> Cluster {
    Cluster {
        cluster_id: id.into(),
        http2: Some(true),
        ..Default::default()
    }
}

#[test]
fn clusters_with_http2_reach_h2c_backends_on_one_multiplexed_connection() {
    let backend = H2Backend::start("h2c", Duration::from_millis(200));
    let site = HttpsSite::start(1, |_| {});
    site.certificate(&["h2c.test"]);
    site.daemon.add_cluster(http2_cluster("h2c"));
    site.daemon
        .add_backend(harness::backend("h2c", "h2c", backend.address));
    site.route("h2c.test", "h2c");

    // From an HTTP/1.1 client on the HTTP listener.
    let answer = client::get(site.http_port, "h2c.test", "/plain?x=1");
    assert_eq!((answer.status, answer.text().as_str()), (200, "h2c"));
    assert_eq!(answer.header("x-backend"), Some("h2c"));
    let first = backend.requests().pop().unwrap();
    assert_eq!(first.version, http::Version::HTTP_2);
    assert_eq!(first.authority.as_deref(), Some("h2c.test"));
    assert_eq!(first.path, "/plain?x=1");
    assert_eq!(first.method, "GET");
    assert!(first.headers.get("host").is_none());
    assert!(first.headers.get("connection").is_none());
    assert_eq!(first.headers["x-forwarded-proto"], "http");

    // A body goes through.
    let bytes = client::raw(
        site.http_port,
        b"POST /upload HTTP/1.1\r\nHost: h2c.test\r\nContent-Length: 11\r\nConnection: close\r\n\r\nhello world",
    )
    .unwrap();
    assert_eq!(client::parse(&bytes).unwrap().status, 200);
    let upload = backend.requests().pop().unwrap();
    assert_eq!(upload.method, "POST");
    assert_eq!(upload.body, b"hello world");

    // Fifty at once from an HTTP/2 client: one backend connection, many
    // streams on it at the same time.
    let port = site.https_port;
    runtime().block_on(async move {
        let (client, _connection) = h2_client::connect(port, "h2c.test").await.unwrap();
        let tasks = (0..50)
            .map(|i| {
                let client = client.clone();
                tokio::spawn(
                    async move { h2_client::get(&client, "h2c.test", &format!("/{i}")).await },
                )
            })
            .collect();
        for answer in futures_join(tasks).await {
            let answer = answer.unwrap();
            assert_eq!((answer.status, answer.text().as_str()), (200, "h2c"));
        }
    });
    assert_eq!(
        backend
            .connections
            .load(std::sync::atomic::Ordering::SeqCst),
        1
    );
    let peak = backend
        .peak_in_flight
        .load(std::sync::atomic::Ordering::SeqCst);
    assert!(peak >= 10, "at most {peak} requests at once on the backend");
    let https = backend.requests().pop().unwrap();
    assert_eq!(https.headers["x-forwarded-proto"], "https");

    // Response heads as large as HTTP/1.1 backends may send pass.
    backend
        .big_header
        .store(30_000, std::sync::atomic::Ordering::SeqCst);
    let answer = client::get(site.http_port, "h2c.test", "/big");
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("x-big").map(str::len), Some(30_000));
}

#[test]
fn an_h2c_connection_that_goes_away_is_opened_again() {
    let backend = H2Backend::start("again", Duration::ZERO);
    let site = HttpsSite::start(1, |_| {});
    site.daemon.add_cluster(http2_cluster("again"));
    site.daemon
        .add_backend(harness::backend("again", "again", backend.address));
    site.route("again.test", "again");
    let connections = || {
        backend
            .connections
            .load(std::sync::atomic::Ordering::SeqCst)
    };

    for _ in 0..3 {
        assert_eq!(client::get(site.http_port, "again.test", "/").status, 200);
    }
    assert_eq!(connections(), 1);
    backend.go_away();
    // Every request is answered, on a new connection once the proxy saw
    // the old one go.
    assert!(wait_until(Duration::from_secs(10), || {
        assert_eq!(client::get(site.http_port, "again.test", "/").status, 200);
        connections() == 2
    }));
    for _ in 0..5 {
        assert_eq!(client::get(site.http_port, "again.test", "/").status, 200);
    }
    assert_eq!(connections(), 2);

    // A backend that is down gives 503 like any other, and is reached
    // again once it is back.
    let port = backend.address.port();
    drop(backend);
    assert!(wait_until(Duration::from_secs(10), || {
        client::get(site.http_port, "again.test", "/").status == 503
    }));
    // Many at once: one of them tries to connect, the others learn of its
    // failure; every one is answered.
    let http_port = site.http_port;
    let statuses: Vec<u16> = (0..20)
        .map(|_| std::thread::spawn(move || client::get(http_port, "again.test", "/").status))
        .collect::<Vec<_>>()
        .into_iter()
        .map(|thread| thread.join().unwrap())
        .collect();
    assert!(statuses.iter().all(|&status| status == 503), "{statuses:?}");
    let back = H2Backend::start_at(port, "back");
    assert!(wait_until(Duration::from_secs(20), || {
        let answer = client::get(site.http_port, "again.test", "/");
        answer.status == 200 && answer.text() == "back"
    }));
    drop(back);
}

#[test]
fn health_checks_of_http2_clusters_speak_h2c() {
    let good = H2Backend::start("good", Duration::ZERO);
    let bad = H2Backend::start("bad", Duration::ZERO);
    bad.status.store(503, std::sync::atomic::Ordering::SeqCst);
    let site = HttpsSite::start(1, |_| {});
    let mut events = site.daemon.subscribe();
    site.daemon.add_cluster(Cluster {
        health_check: Some(HealthCheckConfig {
            uri: "/health".into(),
            interval: 1,
            timeout: 2,
            healthy_threshold: 1,
            unhealthy_threshold: 1,
            ..Default::default()
        }),
        ..http2_cluster("checked")
    });
    for (id, backend) in [("good", &good), ("bad", &bad)] {
        site.daemon.add_backend(AddBackend {
            cluster_id: "checked".into(),
            backend_id: id.into(),
            address: backend.address.into(),
            ..Default::default()
        });
    }
    let healthy = events.wait_for(Duration::from_secs(20), |event| {
        event.kind == EventKind::HealthCheckHealthy as i32
            && event.backend_id.as_deref() == Some("good")
    });
    assert!(healthy.is_some(), "events: {:?}", events.seen);
    let unhealthy = events.wait_for(Duration::from_secs(20), |event| {
        event.kind == EventKind::HealthCheckUnhealthy as i32
            && event.backend_id.as_deref() == Some("bad")
    });
    assert!(unhealthy.is_some(), "events: {:?}", events.seen);
    let probe = good.requests().into_iter().next().unwrap();
    assert_eq!(probe.version, http::Version::HTTP_2);
    assert_eq!(probe.path, "/health");
    assert_eq!(
        probe.authority.as_deref(),
        Some(good.address.to_string().as_str())
    );
    assert_eq!(probe.headers["user-agent"], "sozu-health-check");
}

#[test]
fn a_client_resetting_streams_in_a_loop_is_cut_off_and_others_are_served() {
    let backend = Backend::start_with("calm", Duration::from_millis(50), None);
    let site = HttpsSite::start(1, |_| {});
    site.certificate(&["calm.test"]);
    site.serve("calm.test", "calm", backend.address);
    let port = site.https_port;
    let pids = site.daemon.worker_pids();

    let (sent, ended) = runtime().block_on(async move {
        let (client, connection) = h2_client::connect(port, "calm.test").await.unwrap();
        let mut sent = 0;
        for _ in 0..5000 {
            let Ok(mut ready) = client.clone().ready().await else {
                break;
            };
            let request = Request::get("https://calm.test/").body(()).unwrap();
            match ready.send_request(request, true) {
                Ok((_, mut stream)) => {
                    stream.send_reset(h2::Reason::CANCEL);
                    sent += 1;
                }
                Err(_) => break,
            }
            // Let the connection task write what is queued.
            tokio::task::yield_now().await;
        }
        let ended = tokio::time::timeout(Duration::from_secs(10), connection).await;
        (sent, ended)
    });
    // The server closed the connection (GOAWAY ENHANCE_YOUR_CALM, which
    // the client may not get to read before its next write fails) well
    // before the client was done.
    let ended = ended.expect("the connection was still open");
    let error = ended.unwrap().expect_err("the connection ended cleanly");
    assert!(
        error.reason() == Some(h2::Reason::ENHANCE_YOUR_CALM) || error.is_io(),
        "{error}"
    );
    assert!(sent < 5000, "all {sent} streams were taken");
    eprintln!("streams opened and reset before the server hung up: {sent}");

    // The worker is the same and serves everyone else.
    assert_eq!(site.daemon.worker_pids(), pids);
    let answer = harness::tls::get(port, "calm.test", "calm.test", "/").unwrap();
    assert_eq!(answer.status, 200);
    let port = site.https_port;
    runtime().block_on(async move {
        let (client, _connection) = h2_client::connect(port, "calm.test").await.unwrap();
        let answer = h2_client::get(&client, "calm.test", "/").await.unwrap();
        assert_eq!(answer.status, 200);
    });
}

#[test]
fn http11_clients_over_tls_can_still_be_told_apart() {
    // ALPN: a client offering only http/1.1 gets it, one offering both
    // gets h2, on the same listener.
    let backend = Backend::start("alpn");
    let site = HttpsSite::start(1, |_| {});
    site.certificate(&["alpn.test"]);
    site.serve("alpn.test", "alpn", backend.address);
    let old =
        TlsConnection::open(site.https_port, "alpn.test", &ClientSettings::default()).unwrap();
    assert_eq!(old.alpn().as_deref(), Some("http/1.1"));
    let both = ClientSettings {
        alpn: vec!["h2", "http/1.1"],
        ..Default::default()
    };
    let new = TlsConnection::open(site.https_port, "alpn.test", &both).unwrap();
    assert_eq!(new.alpn().as_deref(), Some("h2"));
    // A listener without HTTP/1.1 refuses a client that speaks only that.
    let port = harness::free_port();
    let mut listener = harness::tls::https_listener(port);
    listener.disable_http11 = Some(true);
    site.daemon.add_https_listener(listener);
    site.daemon
        .add_certificate(port, &site.authority.issue(&["alpn.test"]));
    assert!(TlsConnection::open(port, "alpn.test", &ClientSettings::default()).is_err());
    assert_eq!(
        TlsConnection::open(port, "alpn.test", &both)
            .unwrap()
            .alpn()
            .as_deref(),
        Some("h2")
    );
}

/// A backend that reads a whole request and answers with as many bytes as
/// its path says (`/<size>`), telling in headers how much body it got.
fn sizing_backend() -> harness::backend::RawBackend {
    use std::io::Write;
    harness::backend::RawBackend::conversing(|mut reader, mut writer| {
        while let Some(request) = harness::backend::read_request(&mut reader) {
            let size: usize = request.target.trim_start_matches('/').parse().unwrap_or(0);
            let sum: u64 = request.body.iter().map(|&b| u64::from(b)).sum();
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {size}\r\nX-Received: {}\r\nX-Sum: {sum}\r\n\r\n",
                request.body.len()
            );
            if writer.write_all(head.as_bytes()).is_err() {
                return;
            }
            let chunk: Vec<u8> = (0..64 * 1024).map(|i| (i % 253) as u8).collect();
            let mut left = size;
            while left > 0 {
                let n = left.min(chunk.len());
                if writer.write_all(&chunk[..n]).is_err() {
                    return;
                }
                left -= n;
            }
        }
    })
}

#[test]
fn large_bodies_flow_both_ways_over_http2() {
    let backend = sizing_backend();
    let h2c = H2Backend::start("h2c-big", Duration::ZERO);
    let site = HttpsSite::start(1, |_| {});
    site.certificate(&["big.test", "h2c-big.test"]);
    site.serve("big.test", "big", backend.address);
    site.daemon.add_cluster(http2_cluster("h2c-big"));
    site.daemon
        .add_backend(harness::backend("h2c-big", "h2c-big", h2c.address));
    site.route("h2c-big.test", "h2c-big");
    let port = site.https_port;
    let upload: Vec<u8> = (0..8 * 1024 * 1024).map(|i| (i % 241) as u8).collect();
    let expected_sum: u64 = upload.iter().map(|&b| u64::from(b)).sum();

    let upload_for_task = bytes::Bytes::from(upload.clone());
    runtime().block_on(async move {
        let (client, _connection) = h2_client::connect(port, "big.test").await.unwrap();
        // 8 MiB down, well past every flow-control window.
        let down = h2_client::get(&client, "big.test", "/8388608")
            .await
            .unwrap();
        assert_eq!(down.status, 200);
        assert_eq!(down.body.len(), 8 * 1024 * 1024);
        assert!(
            down.body
                .iter()
                .enumerate()
                .all(|(i, &b)| b == ((i % (64 * 1024)) % 253) as u8)
        );
        // 8 MiB up, to an HTTP/1.1 backend.
        let request = Request::post("https://big.test/0").body(()).unwrap();
        let up = h2_client::send_with_body(&client, request, upload_for_task.clone())
            .await
            .unwrap();
        assert_eq!(up.status, 200);
        assert_eq!(up.header("x-received"), Some("8388608"));
        assert_eq!(up.header("x-sum"), Some(expected_sum.to_string().as_str()));

        // And to an HTTP/2 one, HTTP/2 on both sides.
        let (client, _connection) = h2_client::connect(port, "h2c-big.test").await.unwrap();
        let request = Request::post("https://h2c-big.test/up").body(()).unwrap();
        let up = h2_client::send_with_body(&client, request, upload_for_task)
            .await
            .unwrap();
        assert_eq!(up.status, 200);
    });
    let received = h2c.requests().pop().unwrap();
    assert_eq!(received.body.len(), upload.len());
    assert!(received.body == upload);
}

#[test]
fn an_http2_cluster_whose_backend_speaks_only_http11_fails_fast() {
    let backend = Backend::start("old");
    let site = HttpsSite::start(1, |_| {});
    site.daemon.add_cluster(http2_cluster("old"));
    site.daemon
        .add_backend(harness::backend("old", "old", backend.address));
    site.route("old.test", "old");
    let started = Instant::now();
    let answer = client::get(site.http_port, "old.test", "/");
    assert!(
        answer.status == 502 || answer.status == 503,
        "{}",
        answer.status
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn an_http2_connection_without_new_requests_is_asked_to_go_away() {
    let backend = Backend::start("quiet");
    let site = HttpsSite::start(1, |listener| listener.front_timeout = 2);
    site.certificate(&["quiet.test"]);
    site.serve("quiet.test", "quiet", backend.address);
    let port = site.https_port;
    runtime().block_on(async move {
        let (client, connection) = h2_client::connect(port, "quiet.test").await.unwrap();
        // A request every half second keeps it open past the idle timeout.
        for _ in 0..7 {
            let answer = h2_client::get(&client, "quiet.test", "/").await.unwrap();
            assert_eq!(answer.status, 200);
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        // Then silence: GOAWAY, and the connection ends (the client's own
        // last write may find the socket closed already).
        let started = Instant::now();
        let ended = tokio::time::timeout(Duration::from_secs(10), connection)
            .await
            .expect("an idle connection was kept open");
        assert!(
            ended.as_ref().unwrap().as_ref().is_ok_and(|()| true)
                || ended.as_ref().unwrap().as_ref().unwrap_err().is_io(),
            "{ended:?}"
        );
        let elapsed = started.elapsed();
        assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
        assert!(
            client.clone().ready().await.is_err(),
            "new streams are still accepted"
        );
    });
}

#[test]
fn an_h2c_backend_that_resets_streams_or_goes_away_mid_request_is_handled() {
    let backend = H2Backend::start("flaky", Duration::ZERO);
    let site = HttpsSite::start(1, |_| {});
    site.daemon.add_cluster(http2_cluster("flaky"));
    site.daemon
        .add_backend(harness::backend("flaky", "flaky", backend.address));
    site.route("flaky.test", "flaky");
    assert_eq!(client::get(site.http_port, "flaky.test", "/").status, 200);

    // Every stream reset: a bad gateway, answered, not retried forever.
    backend
        .reset
        .store(true, std::sync::atomic::Ordering::SeqCst);
    for _ in 0..3 {
        let started = Instant::now();
        let answer = client::get(site.http_port, "flaky.test", "/");
        assert_eq!(answer.status, 502);
        assert!(started.elapsed() < Duration::from_secs(5));
    }
    backend
        .reset
        .store(false, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(client::get(site.http_port, "flaky.test", "/").status, 200);

    // A slow request is under way when the backend says GOAWAY: it
    // finishes there, and the requests that follow go to a new connection
    // at once instead of waiting for the old one to close.
    let slow_backend = H2Backend::start("slow", Duration::from_secs(3));
    *slow_backend.delayed_prefix.lock().unwrap() = Some("/slow".into());
    site.daemon.add_cluster(http2_cluster("slow"));
    site.daemon
        .add_backend(harness::backend("slow", "slow", slow_backend.address));
    site.route("slow.test", "slow");
    let http_port = site.http_port;
    let slow = std::thread::spawn(move || client::get(http_port, "slow.test", "/slow"));
    assert!(wait_until(Duration::from_secs(10), || {
        slow_backend
            .in_flight
            .load(std::sync::atomic::Ordering::SeqCst)
            == 1
    }));
    slow_backend.go_away();
    let connections = || {
        slow_backend
            .connections
            .load(std::sync::atomic::Ordering::SeqCst)
    };
    // Requests sent before the proxy saw the GOAWAY may still be taken by
    // the old connection; the ones after go to a new one.
    let moved_on = wait_until(Duration::from_secs(10), || {
        assert_eq!(client::get(http_port, "slow.test", "/fast").status, 200);
        connections() == 2
    });
    assert!(moved_on);
    assert!(
        !slow.is_finished(),
        "the new connection waited for the old one to finish"
    );
    let first = slow.join().unwrap();
    assert_eq!((first.status, first.text().as_str()), (200, "slow"));
    assert_eq!(connections(), 2);
}

#[test]
fn soft_stop_lets_the_streams_under_way_finish() {
    let (seen_sender, seen) = std::sync::mpsc::channel();
    let backend = Backend::start_with("stop", Duration::from_millis(1500), Some(seen_sender));
    let mut site = HttpsSite::start(1, |_| {});
    site.certificate(&["stop.test"]);
    site.serve("stop.test", "stop", backend.address);
    let port = site.https_port;

    let (client_ready, ready) = std::sync::mpsc::channel();
    let streams = std::thread::spawn(move || {
        runtime().block_on(async move {
            let (client, connection) = h2_client::connect(port, "stop.test").await.unwrap();
            let tasks: Vec<_> = (0..3)
                .map(|i| {
                    let client = client.clone();
                    tokio::spawn(async move {
                        h2_client::get(&client, "stop.test", &format!("/{i}")).await
                    })
                })
                .collect();
            client_ready.send(()).unwrap();
            let answers = futures_join(tasks).await;
            drop(client);
            let ended = tokio::time::timeout(Duration::from_secs(10), connection).await;
            (answers, ended.is_ok())
        })
    });
    ready.recv_timeout(Duration::from_secs(10)).unwrap();
    for _ in 0..3 {
        seen.recv_timeout(Duration::from_secs(10)).unwrap();
    }
    let (_, stopped) = site
        .daemon
        .exchange(RequestType::SoftStop(Default::default()));
    assert_eq!(
        stopped.status,
        sozu_command::proto::command::ResponseStatus::Ok as i32,
        "{}",
        stopped.message
    );
    let (answers, ended) = streams.join().unwrap();
    for answer in answers {
        let answer = answer.unwrap();
        assert_eq!((answer.status, answer.text().as_str()), (200, "stop"));
    }
    assert!(ended, "the connection stayed open after the stop");
    assert!(
        site.daemon
            .wait_exit(Duration::from_secs(10))
            .is_some_and(|status| status.success())
    );
}

#[test]
fn grpc_style_exchanges_reach_h2c_backends_with_te_and_trailers() {
    let backend = H2Backend::start("grpc", Duration::ZERO);
    backend
        .trailers
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let site = HttpsSite::start(1, |_| {});
    site.certificate(&["grpc.test"]);
    site.daemon.add_cluster(http2_cluster("grpc"));
    site.daemon
        .add_backend(harness::backend("grpc", "grpc", backend.address));
    site.route("grpc.test", "grpc");
    let port = site.https_port;

    let answer = runtime().block_on(async move {
        let (client, _connection) = h2_client::connect(port, "grpc.test").await.unwrap();
        let request = Request::post("https://grpc.test/helloworld.Greeter/SayHello")
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(())
            .unwrap();
        let message = bytes::Bytes::from_static(b"\x00\x00\x00\x00\x05hello");
        h2_client::send_with_body(&client, request, message)
            .await
            .unwrap()
    });
    assert_eq!(answer.status, 200);
    assert_eq!(answer.text(), "grpc");
    let trailers = answer.trailers.expect("the trailers were lost");
    assert_eq!(trailers["grpc-status"], "0");
    assert_eq!(trailers["grpc-message"], "done");
    let seen = backend.requests().pop().unwrap();
    assert_eq!(seen.path, "/helloworld.Greeter/SayHello");
    assert_eq!(seen.headers["te"], "trailers");
    assert_eq!(seen.headers["content-type"], "application/grpc");
    assert_eq!(seen.body, b"\x00\x00\x00\x00\x05hello");
}
