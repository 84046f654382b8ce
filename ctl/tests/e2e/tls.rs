//! HTTPS through the real daemon: certificates chosen by SNI, replaced
//! live, strict SNI, TLS versions, forwarding headers, and clients that
//! misbehave during the handshake. Clients are rustls (to see which
//! certificate and version the server chose) and the system's curl.

use crate::harness;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use harness::backend::Backend;
use harness::curl::{curl, https_args};
use harness::tls::{self, ClientSettings, HttpsSite, TlsConnection};
use sozu_command::proto::command::response_content::ContentType;
use sozu_command::proto::command::{QueryCertificatesFilters, TlsVersion, request::RequestType};

/// `GET /` for `host` on a new connection with SNI `name`: the answer and
/// the certificate the server presented.
fn get_with_sni(port: u16, name: &str, host: &str) -> (u16, String, Vec<u8>) {
    let mut connection = TlsConnection::open(port, name, &ClientSettings::default()).unwrap();
    let certificate = connection.peer_certificate();
    let answer = connection
        .request(&format!(
            "GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        ))
        .unwrap();
    (answer.status, answer.text(), certificate)
}

/// The certificate presented to a client asking for `name`.
fn certificate_for(port: u16, name: &str) -> Vec<u8> {
    TlsConnection::open(port, name, &ClientSettings::default())
        .unwrap()
        .peer_certificate()
}

#[test]
fn certificates_are_chosen_by_sni_exact_names_then_wildcards() {
    let site = HttpsSite::start(1, |_| {});
    // Expiring last, alpha is also what names nobody claims get.
    let alpha = site.authority.issue_until(&["alpha.test"], 2045);
    site.daemon.add_certificate(site.https_port, &alpha);
    let beta = site.certificate(&["beta.test", "www.beta.test"]);
    let wildcard = site.certificate(&["*.wild.test"]);
    // An exact name wins over a wildcard covering it.
    let exact = site.certificate(&["exact.wild.test"]);
    let backend = Backend::start("app");
    site.daemon.add_cluster(harness::cluster("app"));
    site.daemon
        .add_backend(harness::backend("app", "app", backend.address));
    for host in [
        "alpha.test",
        "beta.test",
        "www.beta.test",
        "one.wild.test",
        "exact.wild.test",
    ] {
        site.route(host, "app");
    }

    let port = site.https_port;
    let (status, body, certificate) = get_with_sni(port, "alpha.test", "alpha.test");
    assert_eq!((status, body.as_str()), (200, "app"));
    assert_eq!(certificate, alpha.der);
    assert_eq!(certificate_for(port, "beta.test"), beta.der);
    assert_eq!(certificate_for(port, "www.beta.test"), beta.der);
    assert_eq!(certificate_for(port, "WWW.Beta.Test"), beta.der);
    let (status, _, certificate) = get_with_sni(port, "one.wild.test", "one.wild.test");
    assert_eq!(status, 200);
    assert_eq!(certificate, wildcard.der);
    assert_eq!(certificate_for(port, "exact.wild.test"), exact.der);
    // A wildcard covers exactly one label: not the bare domain, not two.
    assert_eq!(certificate_for(port, "wild.test"), alpha.der);
    assert_eq!(certificate_for(port, "a.b.wild.test"), alpha.der);

    // A client that checks names and chain accepts every one of them.
    let verifying = ClientSettings {
        authority: Some(site.authority.der()),
        ..Default::default()
    };
    for name in ["alpha.test", "www.beta.test", "one.wild.test"] {
        let mut connection = TlsConnection::open(port, name, &verifying)
            .unwrap_or_else(|error| panic!("{name}: {error}"));
        assert_eq!(connection.get(name, "/").unwrap().status, 200);
    }

    // curl, verifying against the authority, sees the same.
    let ca = site.authority.write_pem(site.daemon.path());
    let run = curl(
        &[
            vec!["-w".into(), " %{http_code}".into()],
            https_args(&ca, "one.wild.test", port, "/"),
        ]
        .concat(),
    );
    assert!(run.success, "curl failed: {}", run.stderr);
    assert_eq!(run.stdout, "app 200");
}

#[test]
fn an_unknown_server_name_gets_the_latest_expiring_certificate_or_the_listener_default() {
    let site = HttpsSite::start(1, |_| {});
    let authority = &site.authority;
    let early = authority.issue_until(&["early.test"], 2035);
    let late = authority.issue_until(&["late.test"], 2045);
    let middle = authority.issue_until(&["middle.test"], 2040);
    for issued in [&early, &late, &middle] {
        site.daemon.add_certificate(site.https_port, issued);
    }
    // Without a default of its own, the listener falls back to the
    // certificate that expires last, for unknown names and for clients
    // sending no SNI at all.
    assert_eq!(certificate_for(site.https_port, "nobody.test"), late.der);
    assert_eq!(certificate_for(site.https_port, "127.0.0.1"), late.der);
    assert_eq!(certificate_for(site.https_port, "early.test"), early.der);

    // A listener with its own certificate gives that one instead.
    let default = authority.issue_until(&["default.test"], 2030);
    let other_port = harness::free_port();
    let mut listener = tls::https_listener(other_port);
    listener.certificate = Some(default.certificate.clone());
    listener.key = Some(default.key.clone());
    listener.certificate_chain = default.chain.clone();
    site.daemon.add_https_listener(listener);
    site.daemon.add_certificate(other_port, &late);
    assert_eq!(certificate_for(other_port, "nobody.test"), default.der);
    assert_eq!(certificate_for(other_port, "127.0.0.1"), default.der);
    assert_eq!(certificate_for(other_port, "late.test"), late.der);
}

#[test]
fn a_replaced_certificate_serves_new_handshakes_while_open_connections_go_on() {
    let site = HttpsSite::start(2, |_| {});
    let old = site.certificate(&["live.test"]);
    let backend = Backend::start("live");
    site.serve("live.test", "live", backend.address);
    let port = site.https_port;

    // Enough connections that each worker holds some.
    let mut kept: Vec<TlsConnection> = (0..4)
        .map(|_| TlsConnection::open(port, "live.test", &ClientSettings::default()).unwrap())
        .collect();
    for connection in &mut kept {
        assert_eq!(connection.peer_certificate(), old.der);
        assert_eq!(connection.get("live.test", "/").unwrap().text(), "live");
    }

    let new = site.authority.issue(&["live.test"]);
    site.daemon.replace_certificate(port, &old, &new);

    for connection in &mut kept {
        let answer = connection.get("live.test", "/").unwrap();
        assert_eq!((answer.status, answer.text().as_str()), (200, "live"));
        assert_eq!(connection.peer_certificate(), old.der);
    }
    for _ in 0..4 {
        assert_eq!(certificate_for(port, "live.test"), new.der);
    }

    // The workers list the new certificate only.
    let answer = site.daemon.ok(RequestType::QueryCertificatesFromWorkers(
        QueryCertificatesFilters::default(),
    ));
    let Some(ContentType::WorkerResponses(workers)) = answer
        .content
        .clone()
        .and_then(|content| content.content_type)
    else {
        panic!("not an answer by worker: {answer:?}");
    };
    assert_eq!(workers.map.len(), 2, "{answer:?}");
    for (worker, listing) in &workers.map {
        let Some(ContentType::CertificatesByAddress(listing)) = &listing.content_type else {
            panic!("worker {worker} listed no certificates: {answer:?}");
        };
        let fingerprints: Vec<&str> = listing
            .certificates
            .iter()
            .flat_map(|address| &address.certificate_summaries)
            .map(|summary| summary.fingerprint.as_str())
            .collect();
        assert_eq!(fingerprints, [new.fingerprint()], "worker {worker}");
    }

    // Removed, the listener has no certificate left: new handshakes fail,
    // open connections still go on.
    site.daemon.ok(RequestType::RemoveCertificate(
        sozu_command::proto::command::RemoveCertificate {
            address: harness::local(port),
            fingerprint: new.fingerprint(),
        },
    ));
    assert!(TlsConnection::open(port, "live.test", &ClientSettings::default()).is_err());
    for connection in &mut kept {
        assert_eq!(connection.get("live.test", "/").unwrap().status, 200);
    }
}

#[test]
fn strict_sni_answers_421_to_a_host_other_than_the_server_name() {
    let site = HttpsSite::start(1, |_| {});
    site.certificate(&["one.test", "two.test"]);
    let backend = Backend::start("sni");
    site.serve("one.test", "sni", backend.address);
    site.route("two.test", "sni");
    let port = site.https_port;

    let (status, _, _) = get_with_sni(port, "one.test", "two.test");
    assert_eq!(status, 421);
    // Case and port do not matter.
    let (status, body, _) = get_with_sni(port, "one.test", "ONE.test:443");
    assert_eq!((status, body.as_str()), (200, "sni"));
    // A client sending no SNI is not held to one.
    let (status, _, _) = get_with_sni(port, "127.0.0.1", "two.test");
    assert_eq!(status, 200);

    // The same connection cannot switch hosts either.
    let mut connection = TlsConnection::open(port, "one.test", &ClientSettings::default()).unwrap();
    assert_eq!(connection.get("one.test", "/").unwrap().status, 200);
    let refused = connection.get("two.test", "/").unwrap();
    assert_eq!(refused.status, 421);

    // Without strict binding, any routed host is served.
    let loose_port = harness::free_port();
    let mut listener = tls::https_listener(loose_port);
    listener.strict_sni_binding = Some(false);
    site.daemon.add_https_listener(listener);
    site.daemon
        .add_certificate(loose_port, &site.authority.issue(&["one.test"]));
    site.daemon
        .add_https_frontend(harness::frontend(loose_port, "two.test", Some("sni")));
    let (status, body, _) = get_with_sni(loose_port, "one.test", "two.test");
    assert_eq!((status, body.as_str()), (200, "sni"));
}

/// Whether a handshake with only `version` offered succeeds.
fn handshake_with(port: u16, version: &'static rustls::SupportedProtocolVersion) -> bool {
    let settings = ClientSettings {
        versions: vec![version],
        ..Default::default()
    };
    match TlsConnection::open(port, "v.test", &settings) {
        Ok(mut connection) => {
            assert_eq!(connection.version(), version.version);
            connection.get("v.test", "/").unwrap().status == 200
        }
        Err(_) => false,
    }
}

#[test]
fn a_listener_offers_only_its_tls_versions() {
    let backend = Backend::start("v");
    let site = HttpsSite::start(1, |listener| {
        listener.versions = vec![TlsVersion::TlsV12 as i32];
    });
    site.certificate(&["v.test"]);
    site.serve("v.test", "v", backend.address);
    let only13_port = harness::free_port();
    let mut listener = tls::https_listener(only13_port);
    listener.versions = vec![TlsVersion::TlsV13 as i32];
    site.daemon.add_https_listener(listener);
    site.daemon
        .add_certificate(only13_port, &site.authority.issue(&["v.test"]));
    site.daemon
        .add_https_frontend(harness::frontend(only13_port, "v.test", Some("v")));

    assert!(handshake_with(site.https_port, &rustls::version::TLS12));
    assert!(!handshake_with(site.https_port, &rustls::version::TLS13));
    assert!(handshake_with(only13_port, &rustls::version::TLS13));
    assert!(!handshake_with(only13_port, &rustls::version::TLS12));

    // curl (OpenSSL) agrees.
    let ca = site.authority.write_pem(site.daemon.path());
    let with = |extra: &[&str], port: u16| {
        let mut args: Vec<String> = extra.iter().map(|arg| (*arg).to_owned()).collect();
        args.extend(https_args(&ca, "v.test", port, "/"));
        curl(&args)
    };
    assert!(with(&["--tls-max", "1.2"], site.https_port).success);
    assert!(!with(&["--tlsv1.3"], site.https_port).success);
    assert!(with(&["--tlsv1.3"], only13_port).success);
    assert!(!with(&["--tls-max", "1.2"], only13_port).success);
}

#[test]
fn forwarded_headers_say_https() {
    let (seen_sender, seen) = std::sync::mpsc::channel();
    let backend = Backend::start_with("fwd", Duration::ZERO, Some(seen_sender));
    let site = HttpsSite::start(1, |_| {});
    site.certificate(&["fwd.test"]);
    site.serve("fwd.test", "fwd", backend.address);

    let answer = tls::get(site.https_port, "fwd.test", "fwd.test", "/path?q=1").unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("sozu-id").map(str::len), Some(26));
    let request = seen.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(request.target, "/path?q=1");
    assert_eq!(request.header("x-forwarded-proto"), Some("https"));
    let https_port = site.https_port.to_string();
    assert_eq!(
        request.header("x-forwarded-port"),
        Some(https_port.as_str())
    );
    let forwarded = request.header("forwarded").unwrap();
    assert!(forwarded.contains("proto=https"), "{forwarded}");
    assert!(request.header("x-forwarded-for").is_some());

    // The HTTP listener, for comparison, says http.
    let plain = harness::client::get(site.http_port, "fwd.test", "/");
    assert_eq!(plain.status, 200);
    let request = seen.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(request.header("x-forwarded-proto"), Some("http"));
}

/// The first bytes of a TLS 1.3 ClientHello record whose header announces
/// 512 bytes: a handshake that never completes.
fn half_client_hello() -> Vec<u8> {
    let mut bytes = vec![
        0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
    ];
    bytes.extend_from_slice(&[0x42; 32]);
    bytes
}

/// Reads until the server closes; `None` if it still had not after
/// `within`.
fn closed_after(stream: &mut TcpStream, within: Duration) -> Option<Duration> {
    let started = Instant::now();
    stream.set_read_timeout(Some(within)).unwrap();
    let mut buffer = [0u8; 1024];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return Some(started.elapsed()),
            Ok(_) => {}
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return None;
            }
            Err(_) => return Some(started.elapsed()),
        }
        if started.elapsed() > within {
            return None;
        }
    }
}

#[test]
fn a_handshake_that_stalls_is_closed_after_the_request_timeout() {
    let site = HttpsSite::start(1, |listener| listener.request_timeout = 2);
    site.certificate(&["slow.test"]);
    let backend = Backend::start("slow");
    site.serve("slow.test", "slow", backend.address);
    let port = site.https_port;

    let opened = Instant::now();
    let mut stalled: Vec<TcpStream> = (0..5)
        .map(|_| {
            let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
            stream.write_all(&half_client_hello()).unwrap();
            stream
        })
        .collect();
    // Others are served meanwhile, handshakes included.
    for _ in 0..5 {
        let answer = tls::get(port, "slow.test", "slow.test", "/").unwrap();
        assert_eq!(answer.status, 200);
    }
    for stream in &mut stalled {
        let closed = closed_after(stream, Duration::from_secs(10));
        assert!(closed.is_some(), "a stalled handshake was kept open");
    }
    let waited = opened.elapsed();
    assert!(
        waited >= Duration::from_millis(1900),
        "closed before the request timeout: {waited:?}"
    );
    assert!(waited < Duration::from_secs(8), "closed late: {waited:?}");
    // Still serving.
    assert_eq!(
        tls::get(port, "slow.test", "slow.test", "/")
            .unwrap()
            .status,
        200
    );
}

#[test]
fn garbage_instead_of_a_client_hello_closes_the_connection() {
    let site = HttpsSite::start(1, |listener| listener.request_timeout = 30);
    site.certificate(&["junk.test"]);
    let backend = Backend::start("junk");
    site.serve("junk.test", "junk", backend.address);
    let port = site.https_port;

    let junk: [&[u8]; 3] = [
        b"GET / HTTP/1.1\r\nHost: junk.test\r\n\r\n",
        &[0x16, 0x03, 0x01, 0x00, 0x05, 0xff, 0xff, 0xff, 0xff, 0xff],
        &[0u8; 64],
    ];
    for bytes in junk {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.write_all(bytes).unwrap();
        // Well before the request timeout: the handshake failed at once.
        let closed = closed_after(&mut stream, Duration::from_secs(10));
        assert!(closed.is_some(), "{bytes:?} left the connection open");
    }
    assert_eq!(
        tls::get(port, "junk.test", "junk.test", "/")
            .unwrap()
            .status,
        200
    );
}

#[test]
fn a_listener_from_the_configuration_file_serves_its_certificates() {
    let authority = harness::tls::Authority::new();
    let issued = authority.issue(&["file.test"]);
    let backend = Backend::start("file");
    let folder = tempfile::tempdir().unwrap();
    std::fs::write(folder.path().join("file.pem"), &issued.certificate).unwrap();
    std::fs::write(folder.path().join("file.key"), &issued.key).unwrap();
    std::fs::write(folder.path().join("chain.pem"), authority.pem()).unwrap();
    let (http_port, https_port) = (harness::free_port(), harness::free_port());
    let extra = format!(
        "[[listeners]]\nprotocol = \"https\"\naddress = \"127.0.0.1:{https_port}\"\n\n\
         [clusters.file]\nprotocol = \"http\"\n\
         frontends = [{{ address = \"127.0.0.1:{https_port}\", hostname = \"file.test\", certificate = \"file.pem\", key = \"file.key\", certificate_chain = \"chain.pem\" }}]\n\
         backends = [{{ address = \"{}\" }}]\n",
        backend.address
    );
    let config = format!(
        "command_socket = \"sozu.sock\"\nworker_count = 1\nlog_level = \"warn\"\n\n[[listeners]]\nprotocol = \"http\"\naddress = \"127.0.0.1:{http_port}\"\n\n{extra}"
    );
    let daemon = harness::Daemon::start_in(folder, &config);

    let verifying = ClientSettings {
        authority: Some(authority.der()),
        alpn: vec!["h2", "http/1.1"],
        ..Default::default()
    };
    let connection = TlsConnection::open(https_port, "file.test", &verifying).unwrap();
    assert_eq!(connection.peer_certificate(), issued.der);
    // Asked for both, the server prefers HTTP/2.
    assert_eq!(connection.alpn().as_deref(), Some("h2"));
    let ca = authority.write_pem(daemon.path());
    let run = curl(
        &[
            vec!["-w".into(), " %{http_version}".into()],
            https_args(&ca, "file.test", https_port, "/"),
        ]
        .concat(),
    );
    assert!(run.success, "{}", run.stderr);
    assert_eq!(run.stdout, "file 2");
}

#[test]
fn a_tls_client_that_sends_no_request_is_cut_off_by_the_request_timeout() {
    let site = HttpsSite::start(1, |listener| listener.request_timeout = 2);
    site.certificate(&["idle.test"]);
    let backend = Backend::start("idle");
    site.serve("idle.test", "idle", backend.address);
    let port = site.https_port;

    // HTTP/1.1: nothing after the handshake, then a head that trickles.
    let started = Instant::now();
    let mut idle = TlsConnection::open(port, "idle.test", &ClientSettings::default()).unwrap();
    let answer = tls::read_answer(idle.reader());
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(5), "cut after {elapsed:?}");
    assert_eq!(answer.map(|answer| answer.status).ok(), Some(408));

    // The head never ends: between bytes, the test looks for the answer,
    // which must be the 408, about 2 s after the head began, before the
    // whole head went through.
    let mut slow = TlsConnection::open(port, "idle.test", &ClientSettings::default()).unwrap();
    let started = Instant::now();
    slow.send(b"GET / HTTP/1.1\r\nHost: idle.test\r\n").unwrap();
    let trickle = b"X-Slow: aaaaaaaaaaaaaaaaaaaaaaaa";
    let mut sent = 0;
    while sent < trickle.len() && !slow.answered_within(Duration::from_millis(500)) {
        slow.send(&trickle[sent..=sent]).unwrap();
        sent += 1;
    }
    let elapsed = started.elapsed();
    assert!(
        sent < trickle.len(),
        "the whole head went through unanswered in {elapsed:?}"
    );
    let answer = tls::read_answer(slow.reader())
        .unwrap_or_else(|error| panic!("the trickling head got no answer ({error})"));
    assert_eq!(answer.status, 408);
    assert!(
        elapsed >= Duration::from_millis(1900) && elapsed < Duration::from_secs(5),
        "answered after {elapsed:?}"
    );

    // HTTP/2: the preface and settings, then nothing.
    let started = Instant::now();
    let ended = harness::h2::runtime().block_on(async move {
        let (_client, connection) = harness::h2::connect(port, "idle.test").await.unwrap();
        tokio::time::timeout(Duration::from_secs(10), connection).await
    });
    let elapsed = started.elapsed();
    assert!(ended.is_ok(), "an idle HTTP/2 connection was kept open");
    assert!(
        elapsed >= Duration::from_millis(1900) && elapsed < Duration::from_secs(5),
        "cut after {elapsed:?}"
    );
    assert_eq!(
        tls::get(port, "idle.test", "idle.test", "/")
            .unwrap()
            .status,
        200
    );
}
