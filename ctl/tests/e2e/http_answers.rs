//! What the proxy says itself and what it changes on the way: redirects,
//! every built-in answer it produces in practice, custom answer templates,
//! header edits, forwarding headers and request ids, hop-by-hop headers,
//! Basic authentication, and the metrics that count all of it.

use crate::harness;

use std::io::{Read, Write};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use harness::backend::{Backend, RawBackend, read_body, read_head};
use harness::client::{self, Connection};
use harness::{Daemon, Site, backend, cluster, config, count, free_port, frontend};
use sozu_command::proto::command::{
    Cluster, Header, HeaderPosition, RedirectPolicy, RedirectScheme, RequestHttpFrontend,
};

fn redirecting(
    port: u16,
    host: &str,
    policy: RedirectPolicy,
    scheme: RedirectScheme,
) -> RequestHttpFrontend {
    RequestHttpFrontend {
        redirect: Some(policy as i32),
        redirect_scheme: Some(scheme as i32),
        ..frontend(port, host, Some("app"))
    }
}

#[test]
fn frontend_redirects_answer_301_302_and_308_with_rewrites() {
    let site = Site::start(1, "");
    let backend = Backend::start("app");
    site.daemon.serve(site.port, "app.test", "app", &[&backend]);
    site.daemon.add_frontend(RequestHttpFrontend {
        rewrite_host: Some("new.test".into()),
        rewrite_port: Some(8443),
        rewrite_path: Some("/moved".into()),
        ..redirecting(
            site.port,
            "old.test",
            RedirectPolicy::Permanent,
            RedirectScheme::UseHttps,
        )
    });
    site.daemon.add_frontend(redirecting(
        site.port,
        "found.test",
        RedirectPolicy::Found,
        RedirectScheme::UseSame,
    ));
    site.daemon.add_frontend(RequestHttpFrontend {
        rewrite_port: Some(80),
        ..redirecting(
            site.port,
            "keep.test",
            RedirectPolicy::PermanentRedirect,
            RedirectScheme::UseHttp,
        )
    });

    // A frontend's own redirect template.
    site.daemon.add_frontend(RequestHttpFrontend {
        redirect_template: Some(
            "HTTP/1.1 302 Found\r\nLocation: %REDIRECT_LOCATION\r\nX-Template: frontend\r\n\r\ngo to %REDIRECT_LOCATION".into(),
        ),
        rewrite_path: Some("/elsewhere".into()),
        ..redirecting(
            site.port,
            "templated.test",
            RedirectPolicy::Found,
            RedirectScheme::UseHttps,
        )
    });
    let templated = client::get(site.port, "templated.test", "/");
    assert_eq!(templated.status, 302);
    assert_eq!(templated.header("x-template"), Some("frontend"));
    assert_eq!(templated.text(), "go to https://templated.test/elsewhere");

    let permanent = client::get(site.port, "old.test", "/page?x=1");
    assert_eq!(permanent.status, 301);
    assert_eq!(
        permanent.header("location"),
        Some("https://new.test:8443/moved")
    );
    assert_eq!(permanent.header("connection"), Some("close"));
    assert_eq!(permanent.header("sozu-id").map(str::len), Some(26));

    // The request's own scheme, host (without its port) and path.
    let host = format!("found.test:{}", site.port);
    let found = client::get(site.port, &host, "/a/b?c=d");
    assert_eq!(found.status, 302);
    assert_eq!(found.header("location"), Some("http://found.test/a/b?c=d"));

    // 308 keeps the method; port 80 is implicit for http.
    let kept = client::request(site.port, "POST", "keep.test", "/form", &[]);
    assert_eq!(kept.status, 308);
    assert_eq!(kept.header("location"), Some("http://keep.test/form"));

    assert_eq!(backend.served(), 0);
}

#[test]
fn https_redirect_answers_301_with_and_without_port() {
    let site = Site::start(1, "");
    let backend = Backend::start("app");
    for (id, port) in [
        ("bare", None),
        ("ported", Some(8443)),
        ("default", Some(443)),
    ] {
        site.daemon.add_cluster(Cluster {
            https_redirect: true,
            https_redirect_port: port,
            ..cluster(id)
        });
        site.daemon
            .add_frontend(frontend(site.port, &format!("{id}.test"), Some(id)));
        site.daemon
            .add_backend(harness::backend(id, id, backend.address));
    }
    let host = format!("bare.test:{}", site.port);
    let bare = client::get(site.port, &host, "/a?b=c");
    assert_eq!(bare.status, 301);
    assert_eq!(bare.header("location"), Some("https://bare.test/a?b=c"));
    let ported = client::get(site.port, "ported.test", "/a");
    assert_eq!(
        ported.header("location"),
        Some("https://ported.test:8443/a")
    );
    let default = client::get(site.port, "default.test", "/");
    assert_eq!(default.header("location"), Some("https://default.test/"));
    assert_eq!(backend.served(), 0);
}

/// A backend that fails in the way its path says.
fn failing_backend() -> RawBackend {
    RawBackend::conversing(|mut reader, mut writer| {
        while let Some(head) = read_head(&mut reader) {
            if read_body(&mut reader, &head, |_| {}).is_none() {
                return;
            }
            let written = match head.target.as_str() {
                // Reads the request and closes without a word.
                "/nothing" => return,
                // Closes in the middle of the head.
                "/half-head" => {
                    let _ = writer.write_all(b"HTTP/1.1 200 OK\r\nContent-Le");
                    return;
                }
                // Closes in the middle of the body.
                "/half-body" => {
                    let _ = writer
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789");
                    return;
                }
                _ => writer.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
            };
            if written.is_err() {
                return;
            }
        }
    })
}

#[test]
fn a_backend_that_fails_mid_exchange_gets_a_502() {
    let site = Site::start(1, "");
    let failing = failing_backend();
    site.daemon.add_cluster(cluster("app"));
    site.daemon
        .add_frontend(frontend(site.port, "app.test", Some("app")));
    site.daemon
        .add_backend(backend("app", "failing", failing.address));

    for path in ["/nothing", "/half-head"] {
        let answer = client::get(site.port, "app.test", path);
        assert_eq!(answer.status, 502, "{path}");
        assert!(answer.text().contains("failing"), "{}", answer.text());
        assert_eq!(answer.header("connection"), Some("close"));
    }
    // Once the answer has started, the status cannot change: the client
    // gets what came and the connection is closed, not left hanging.
    let started = Instant::now();
    let bytes = client::raw(
        site.port,
        b"GET /half-body HTTP/1.1\r\nHost: app.test\r\n\r\n",
    )
    .unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    let answer = client::parse(&bytes).unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, b"0123456789");
    assert_eq!(client::get(site.port, "app.test", "/fine").text(), "ok");
}

#[test]
fn a_backend_slower_than_back_timeout_gets_a_504() {
    let site = Site::start(1, "back_timeout = 1");
    let slow = Backend::start_with("slow", Duration::from_secs(4), None);
    site.daemon.serve(site.port, "app.test", "app", &[&slow]);
    let started = Instant::now();
    let answer = client::get(site.port, "app.test", "/");
    assert_eq!(answer.status, 504);
    assert!(answer.text().contains("slow"), "{}", answer.text());
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_backend_that_stalls_mid_body_is_cut_off_after_back_timeout() {
    let site = Site::start(1, "back_timeout = 1");
    let stalling = RawBackend::conversing(|mut reader, mut writer| {
        if let Some(head) = read_head(&mut reader) {
            let _ = read_body(&mut reader, &head, |_| {});
            let _ = writer.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789");
            // Then nothing, for longer than the test.
            let _ = reader.read_to_end(&mut Vec::new());
        }
    });
    site.daemon.add_cluster(cluster("app"));
    site.daemon
        .add_frontend(frontend(site.port, "app.test", Some("app")));
    site.daemon
        .add_backend(backend("app", "stalling", stalling.address));
    let started = Instant::now();
    let bytes = client::raw(site.port, b"GET / HTTP/1.1\r\nHost: app.test\r\n\r\n").unwrap();
    let elapsed = started.elapsed();
    let answer = client::parse(&bytes).unwrap();
    assert_eq!(answer.body, b"0123456789");
    assert!(elapsed < Duration::from_secs(4), "cut after {elapsed:?}");
}

#[test]
fn an_idle_client_gets_a_408() {
    let site = Site::start(1, "request_timeout = 1");
    let started = Instant::now();
    let bytes = client::raw(site.port, b"").unwrap();
    let answer = client::parse(&bytes).unwrap();
    assert_eq!(answer.status, 408);
    assert_eq!(answer.header("sozu-id").map(str::len), Some(26));
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(5),
        "{elapsed:?}"
    );
}

#[test]
fn oversized_headers_are_refused() {
    let site = Site::start(1, "");
    let backend = Backend::start("app");
    site.daemon.serve(site.port, "app.test", "app", &[&backend]);
    let big = "x".repeat(80 * 1024);
    let request = format!("GET / HTTP/1.1\r\nHost: app.test\r\nX-Big: {big}\r\n\r\n");
    let bytes = client::raw(site.port, request.as_bytes()).unwrap();
    let answer = client::parse(&bytes)
        .unwrap_or_else(|| panic!("unparsable {:?}", String::from_utf8_lossy(&bytes)));
    assert!(matches!(answer.status, 413 | 431), "{answer:?}");
    assert_eq!(backend.served(), 0);
    assert_eq!(client::get(site.port, "app.test", "/").status, 200);
}

#[test]
fn custom_answers_come_from_the_cluster_then_the_listener() {
    let listener = r#"answers = { "404" = "HTTP/1.1 404 Not Found\r\nX-Template: listener\r\n\r\nno route for %ROUTE (request %REQUEST_ID)", "503" = "HTTP/1.1 503 Service Unavailable\r\nX-Template: listener\r\n\r\nlistener says %CLUSTER_ID is down" }"#;
    let site = Site::start(1, listener);
    let mut busy = cluster("busy");
    busy.answers.insert(
        "503".into(),
        "HTTP/1.1 503 Service Unavailable\r\nX-Template: cluster\r\nRetry-After: %RETRY_AFTER\r\n\r\ncluster %CLUSTER_ID is busy, request %REQUEST_ID".into(),
    );
    site.daemon.add_cluster(busy);
    site.daemon
        .add_frontend(frontend(site.port, "busy.test", Some("busy")));
    site.daemon.add_cluster(cluster("plain"));
    site.daemon
        .add_frontend(frontend(site.port, "plain.test", Some("plain")));

    let missing = client::get(site.port, "nowhere.test", "/x");
    assert_eq!(missing.status, 404);
    assert_eq!(missing.header("x-template"), Some("listener"));
    let id = missing.header("sozu-id").unwrap().to_owned();
    assert_eq!(
        missing.text(),
        format!("no route for nowhere.test/x (request {id})")
    );
    assert_eq!(
        missing.header("content-length"),
        Some(missing.body.len().to_string().as_str())
    );

    let busy = client::get(site.port, "busy.test", "/");
    assert_eq!(busy.status, 503);
    assert_eq!(busy.header("x-template"), Some("cluster"));
    assert_eq!(busy.header("retry-after"), Some("60"));
    let id = busy.header("sozu-id").unwrap().to_owned();
    assert_eq!(busy.text(), format!("cluster busy is busy, request {id}"));

    let plain = client::get(site.port, "plain.test", "/");
    assert_eq!(plain.status, 503);
    assert_eq!(plain.header("x-template"), Some("listener"));
    assert_eq!(plain.text(), "listener says plain is down");
}

#[test]
fn too_many_connections_from_one_address_get_a_429() {
    let port = free_port();
    let daemon = Daemon::start(&config(port, 1, "max_connections_per_ip = 1", ""));
    let backend = Backend::start("app");
    for (id, limit) in [("app", Some(2)), ("inherited", None), ("free", Some(0))] {
        daemon.add_cluster(Cluster {
            max_connections_per_ip: limit,
            ..cluster(id)
        });
        daemon.add_frontend(frontend(port, &format!("{id}.test"), Some(id)));
        daemon.add_backend(harness::backend(id, id, backend.address));
    }

    // Two connections may talk to `app` at once, and keep doing so.
    let mut first = Connection::open(port);
    let mut second = Connection::open(port);
    assert_eq!(first.get("app.test", "/").status, 200);
    assert_eq!(second.get("app.test", "/").status, 200);
    let refused = client::get(port, "app.test", "/");
    assert_eq!(refused.status, 429);
    assert_eq!(refused.header("retry-after"), Some("60"));
    assert_eq!(refused.header("connection"), Some("close"));
    assert_eq!(first.get("app.test", "/again").status, 200);
    // Other clusters count apart: one connection for the server's limit,
    // none for a cluster without limit.
    let mut third = Connection::open(port);
    assert_eq!(third.get("inherited.test", "/").status, 200);
    assert_eq!(client::get(port, "inherited.test", "/").status, 429);
    let free: Vec<Connection> = (0..5)
        .map(|_| {
            let mut connection = Connection::open(port);
            assert_eq!(connection.get("free.test", "/").status, 200);
            connection
        })
        .collect();
    // A connection that closes gives its slot back.
    drop(first);
    assert!(harness::wait_until(Duration::from_secs(10), || {
        client::get(port, "app.test", "/").status == 200
    }));
    drop((second, third, free));
}

fn edit(position: HeaderPosition, key: &str, val: &str) -> Header {
    Header {
        position: position as i32,
        key: key.into(),
        val: val.into(),
    }
}

#[test]
fn header_edits_apply_to_requests_responses_or_both() {
    let site = Site::start(1, "");
    let (seen_tx, seen) = mpsc::channel();
    let backend = Backend::start_with("app", Duration::ZERO, Some(seen_tx));
    site.daemon.add_cluster(cluster("app"));
    site.daemon
        .add_backend(harness::backend("app", "app", backend.address));
    site.daemon.add_frontend(RequestHttpFrontend {
        headers: vec![
            edit(HeaderPosition::Request, "X-Tenant", "blue"),
            edit(HeaderPosition::Request, "X-Secret", ""),
            edit(HeaderPosition::Response, "X-Frame-Options", "DENY"),
            edit(HeaderPosition::Response, "X-Backend", ""),
            edit(HeaderPosition::Both, "X-Trace", "on"),
        ],
        ..frontend(site.port, "app.test", Some("app"))
    });

    let answer = client::get_with(
        site.port,
        "app.test",
        "/",
        &[
            ("X-Secret", "hunter2"),
            ("X-Tenant", "red"),
            ("X-Kept", "1"),
        ],
    );
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("x-frame-options"), Some("DENY"));
    assert_eq!(answer.header("x-backend"), None);
    assert_eq!(answer.header("x-trace"), Some("on"));
    assert_eq!(answer.header("x-tenant"), None);
    let request = seen.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(request.headers_named("x-tenant"), ["blue"]);
    assert_eq!(request.header("x-secret"), None);
    assert_eq!(request.header("x-trace"), Some("on"));
    assert_eq!(request.header("x-kept"), Some("1"));
    assert_eq!(request.header("x-frame-options"), None);
}

#[test]
fn forwarding_headers_and_request_ids() {
    let site = Site::start(1, "public_address = \"203.0.113.7:80\"");
    let (seen_tx, seen) = mpsc::channel();
    let backend = Backend::start_with("app", Duration::ZERO, Some(seen_tx));
    site.daemon.serve(site.port, "app.test", "app", &[&backend]);

    // A first request, as a client sends it directly.
    let mut connection = Connection::open(site.port);
    let client_port = connection.writer.local_addr().unwrap().port();
    let first = connection.get("app.test", "/one");
    let request = seen.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(request.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(
        request.header("forwarded"),
        Some(format!("proto=http;for=\"127.0.0.1:{client_port}\";by=\"203.0.113.7:80\"").as_str())
    );
    assert_eq!(request.header("x-forwarded-proto"), Some("http"));
    assert_eq!(request.header("x-forwarded-port"), Some("80"));
    let id = first.header("sozu-id").unwrap();
    assert_eq!(id.len(), 26);
    assert_eq!(request.header("sozu-id"), Some(id));
    assert_eq!(request.header("x-request-id"), Some(id));

    // A second one on the same connection, as another proxy forwards it.
    connection
        .send(
            concat!(
                "GET /two HTTP/1.1\r\nHost: app.test\r\n",
                "X-Forwarded-For: 10.0.0.1\r\nForwarded: for=10.0.0.1\r\n",
                "X-Forwarded-Proto: https\r\nX-Forwarded-Port: 443\r\n",
                "X-Request-Id: upstream-42\r\n\r\n"
            )
            .as_bytes(),
        )
        .unwrap();
    let second = connection.answer().unwrap();
    let request = seen.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(
        request.header("x-forwarded-for"),
        Some("10.0.0.1, 127.0.0.1")
    );
    assert_eq!(
        request.header("forwarded"),
        Some(
            format!(
                "for=10.0.0.1, proto=http;for=\"127.0.0.1:{client_port}\";by=\"203.0.113.7:80\""
            )
            .as_str()
        )
    );
    assert_eq!(request.header("x-forwarded-proto"), Some("https"));
    assert_eq!(request.header("x-forwarded-port"), Some("443"));
    assert_eq!(request.header("x-request-id"), Some("upstream-42"));
    // One id per request, even on one connection.
    let second_id = second.header("sozu-id").unwrap();
    assert_eq!(request.header("sozu-id"), Some(second_id));
    assert_ne!(second_id, id);
}

#[test]
fn the_request_id_header_and_x_real_ip_follow_the_listener() {
    let (plain_port, real_port) = (free_port(), free_port());
    let second = format!(
        "sozu_id_header = \"X-Trace-Id\"\n\n[[listeners]]\nprotocol = \"http\"\naddress = \"127.0.0.1:{real_port}\"\nelide_x_real_ip = true\nsend_x_real_ip = true\nforwarded_headers = \"x_forwarded\"\n"
    );
    let daemon = Daemon::start(&config(plain_port, 1, "", &second));
    let (seen_tx, seen) = mpsc::channel();
    let backend = Backend::start_with("app", Duration::ZERO, Some(seen_tx));
    daemon.serve(plain_port, "app.test", "app", &[&backend]);
    daemon.add_frontend(frontend(real_port, "app.test", Some("app")));

    let spoofed = [("X-Real-IP", "6.6.6.6")];
    let answer = client::get_with(plain_port, "app.test", "/", &spoofed);
    let request = seen.recv_timeout(Duration::from_secs(5)).unwrap();
    // Without the flags, X-Real-IP is the client's business.
    assert_eq!(request.headers_named("x-real-ip"), ["6.6.6.6"]);
    // The id header is renamed on both sides.
    let id = answer.header("x-trace-id").unwrap();
    assert_eq!(answer.header("sozu-id"), None);
    assert_eq!(request.header("x-trace-id"), Some(id));
    assert_eq!(request.header("sozu-id"), None);

    client::get_with(real_port, "app.test", "/", &spoofed);
    let request = seen.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(request.headers_named("x-real-ip"), ["127.0.0.1"]);
    // Only the X-Forwarded-* family on this listener.
    assert_eq!(request.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(request.header("forwarded"), None);
    assert_eq!(request.header("sozu-id").map(str::len), Some(26));
}

#[test]
fn hop_by_hop_headers_are_removed_both_ways() {
    let site = Site::start(1, "");
    let (seen_tx, seen) = mpsc::channel();
    let chatty = RawBackend::conversing(move |mut reader, mut writer| {
        while let Some(head) = read_head(&mut reader) {
            let _ = read_body(&mut reader, &head, |_| {});
            let _ = seen_tx.send(head);
            let answer = concat!(
                "HTTP/1.1 200 OK\r\nConnection: X-Private-Answer\r\nX-Private-Answer: 1\r\n",
                "Keep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nX-Public: 1\r\n",
                "Content-Length: 2\r\n\r\nok"
            );
            if writer.write_all(answer.as_bytes()).is_err() {
                return;
            }
        }
    });
    site.daemon.add_cluster(cluster("app"));
    site.daemon
        .add_frontend(frontend(site.port, "app.test", Some("app")));
    site.daemon
        .add_backend(backend("app", "chatty", chatty.address));

    let mut connection = Connection::open(site.port);
    connection
        .send(
            concat!(
                "GET / HTTP/1.1\r\nHost: app.test\r\nConnection: keep-alive, X-Private\r\n",
                "X-Private: secret\r\nKeep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\n",
                "TE: trailers\r\nX-Public: 1\r\n\r\n"
            )
            .as_bytes(),
        )
        .unwrap();
    let answer = connection.answer().unwrap();
    assert_eq!(answer.text(), "ok");
    let request = seen.recv_timeout(Duration::from_secs(5)).unwrap();
    for name in ["x-private", "keep-alive", "proxy-connection", "te"] {
        assert_eq!(request.header(name), None, "{name} reached the backend");
    }
    assert_eq!(request.header("x-public"), Some("1"));
    for name in ["x-private-answer", "keep-alive", "proxy-connection"] {
        assert_eq!(answer.header(name), None, "{name} reached the client");
    }
    assert_eq!(answer.header("x-public"), Some("1"));
    // Both connections stayed alive all the same.
    assert_eq!(connection.get("app.test", "/").text(), "ok");
    assert_eq!(
        chatty.connections.load(std::sync::atomic::Ordering::SeqCst),
        1
    );
}

#[test]
fn basic_auth_challenges_then_admits() {
    let site = Site::start(1, "");
    let (seen_tx, seen) = mpsc::channel();
    let backend = Backend::start_with("private", Duration::ZERO, Some(seen_tx));
    site.daemon.add_cluster(Cluster {
        // sha256("secret")
        authorized_hashes: vec![
            "alice:2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b".into(),
        ],
        ..cluster("app")
    });
    site.daemon
        .add_backend(harness::backend("app", "private", backend.address));
    site.daemon.add_frontend(RequestHttpFrontend {
        required_auth: Some(true),
        ..frontend(site.port, "app.test", Some("app"))
    });

    let challenged = client::get(site.port, "app.test", "/");
    assert_eq!(challenged.status, 401);
    assert_eq!(
        challenged.header("www-authenticate"),
        Some("Basic realm=\"app\"")
    );
    // base64("alice:wrong")
    let wrong = client::get_with(
        site.port,
        "app.test",
        "/",
        &[("Authorization", "Basic YWxpY2U6d3Jvbmc=")],
    );
    assert_eq!(wrong.status, 401);
    // base64("alice:secret")
    let admitted = client::get_with(
        site.port,
        "app.test",
        "/",
        &[("Authorization", "Basic YWxpY2U6c2VjcmV0")],
    );
    assert_eq!(admitted.status, 200);
    assert_eq!(admitted.text(), "private");
    assert_eq!(backend.served(), 1);
    let request = seen.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(
        request.header("authorization"),
        Some("Basic YWxpY2U6c2VjcmV0")
    );
}

#[test]
fn metrics_count_every_request_across_workers() {
    let port = free_port();
    let daemon = Daemon::start(&config(port, 2, "", ""));
    let (one, two) = (Backend::start("one"), Backend::start("two"));
    daemon.serve(port, "app.test", "app", &[&one, &two]);
    daemon.add_frontend(RequestHttpFrontend {
        redirect: Some(RedirectPolicy::Permanent as i32),
        ..frontend(port, "old.test", Some("app"))
    });
    daemon.add_cluster(cluster("empty"));
    daemon.add_frontend(frontend(port, "empty.test", Some("empty")));

    for _ in 0..12 {
        assert_eq!(client::get(port, "app.test", "/").status, 200);
    }
    for _ in 0..3 {
        assert_eq!(client::get(port, "old.test", "/").status, 301);
    }
    for _ in 0..2 {
        assert_eq!(client::get(port, "empty.test", "/").status, 503);
    }
    for _ in 0..4 {
        assert_eq!(client::get(port, "nowhere.test", "/").status, 404);
    }

    let metrics = daemon.metrics();
    let app = &metrics.clusters["app"];
    // As in Sozu, `requests` counts what reached a backend; every answer
    // counts in its status.
    assert_eq!(count(&app.cluster, "requests"), 12);
    assert_eq!(count(&app.cluster, "http.status.200"), 12);
    assert_eq!(count(&app.cluster, "http.status.301"), 3);
    assert_eq!(count(&app.cluster, "http.status.2xx"), 12);
    assert_eq!(count(&app.cluster, "cluster.total_backends"), 2);
    let served: i64 = app
        .backends
        .iter()
        .map(|backend| count(&backend.metrics, "requests"))
        .sum();
    assert_eq!(served, 12);
    for backend in &app.backends {
        let expected = if backend.backend_id == "one" {
            one.served()
        } else {
            two.served()
        };
        assert_eq!(
            count(&backend.metrics, "requests"),
            expected as i64,
            "{}",
            backend.backend_id
        );
        assert_eq!(count(&backend.metrics, "http.status.200"), expected as i64);
    }
    let empty = &metrics.clusters["empty"];
    assert_eq!(count(&empty.cluster, "requests"), 0);
    assert_eq!(count(&empty.cluster, "http.status.503"), 2);
    assert_eq!(count(&metrics.proxying, "http.requests"), 21);
    assert_eq!(count(&metrics.proxying, "http.status.404"), 4);
    assert_eq!(count(&metrics.proxying, "http.failed_backend_matching"), 4);
}
