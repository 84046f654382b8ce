//! Active health checks through the real daemon.

use crate::harness;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use harness::{Daemon, client, free_port, local, wait_until};
use sozu_command::channel::CommandChannel;
use sozu_command::proto::command::{
    AddBackend, Cluster, EventKind, HealthCheckConfig, PathRule, RequestHttpFrontend, RulePosition,
    SetHealthCheck, request::RequestType, response_content::ContentType,
};

/// A backend whose answer status the test controls; the body is its name.
fn switchable_backend(name: &'static str, status: Arc<AtomicU16>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let status = status.clone();
            std::thread::spawn(move || {
                let mut writer = stream.try_clone().unwrap();
                let mut reader = BufReader::new(stream);
                loop {
                    let mut line = String::new();
                    // Read one request head.
                    loop {
                        line.clear();
                        match reader.read_line(&mut line) {
                            Ok(0) | Err(_) => return,
                            Ok(_) if line == "\r\n" => break,
                            Ok(_) => {}
                        }
                    }
                    let code = status.load(Ordering::SeqCst);
                    let answer = format!(
                        "HTTP/1.1 {code} X\r\nContent-Length: {}\r\n\r\n{name}",
                        name.len()
                    );
                    if writer.write_all(answer.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    address
}

fn next_health_event(events: &mut CommandChannel) -> Option<(i32, String)> {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::time::Instant::now() < deadline {
        if let Ok(Some(response)) = events.read_message(Some(Duration::from_millis(500)))
            && let Some(ContentType::Event(event)) = response.content.and_then(|c| c.content_type)
            && (event.kind == EventKind::HealthCheckHealthy as i32
                || event.kind == EventKind::HealthCheckUnhealthy as i32)
        {
            return Some((event.kind, event.backend_id.unwrap_or_default()));
        }
    }
    None
}

#[test]
fn health_checks_take_a_backend_out_and_bring_it_back() {
    let port = free_port();
    let config = format!(
        "command_socket = \"sozu.sock\"\nworker_count = 1\nlog_level = \"warn\"\n\n[[listeners]]\nprotocol = \"http\"\naddress = \"127.0.0.1:{port}\"\n"
    );
    let daemon = Daemon::start(&config);
    let (good_status, flaky_status) =
        (Arc::new(AtomicU16::new(200)), Arc::new(AtomicU16::new(200)));
    let good = switchable_backend("good", good_status.clone());
    let flaky = switchable_backend("flaky", flaky_status.clone());
    daemon.ok(RequestType::AddCluster(Cluster {
        cluster_id: "app".into(),
        ..Default::default()
    }));
    daemon.ok(RequestType::AddHttpFrontend(RequestHttpFrontend {
        cluster_id: Some("app".into()),
        address: local(port),
        hostname: "app.test".into(),
        path: PathRule::default(),
        position: RulePosition::Tree as i32,
        ..Default::default()
    }));
    for (id, address) in [("good", good), ("flaky", flaky)] {
        daemon.ok(RequestType::AddBackend(AddBackend {
            cluster_id: "app".into(),
            backend_id: id.into(),
            address: address.into(),
            ..Default::default()
        }));
    }
    let mut events = CommandChannel::connect(&daemon.socket).unwrap();
    events
        .write_message(&RequestType::SubscribeEvents(Default::default()).into())
        .unwrap();
    events.read_message(Some(Duration::from_secs(5))).unwrap();

    daemon.ok(RequestType::SetHealthCheck(SetHealthCheck {
        cluster_id: "app".into(),
        config: HealthCheckConfig {
            uri: "/health".into(),
            interval: 1,
            timeout: 1,
            healthy_threshold: 1,
            unhealthy_threshold: 2,
            expected_status: 0,
            ..Default::default()
        },
    }));
    // Both start healthy.
    let mut first = [
        next_health_event(&mut events),
        next_health_event(&mut events),
    ];
    first.sort();
    assert_eq!(
        first,
        [
            Some((EventKind::HealthCheckHealthy as i32, "flaky".into())),
            Some((EventKind::HealthCheckHealthy as i32, "good".into()))
        ]
    );

    flaky_status.store(500, Ordering::SeqCst);
    assert_eq!(
        next_health_event(&mut events),
        Some((EventKind::HealthCheckUnhealthy as i32, "flaky".into()))
    );
    // Only the healthy backend gets traffic now.
    for _ in 0..20 {
        assert_eq!(client::get(port, "app.test", "/").text(), "good");
    }

    // Fail-open: with every backend unhealthy, they still get the traffic.
    good_status.store(503, Ordering::SeqCst);
    assert_eq!(
        next_health_event(&mut events),
        Some((EventKind::HealthCheckUnhealthy as i32, "good".into()))
    );
    let answer = client::get(port, "app.test", "/");
    assert!(
        answer.text() == "good" || answer.text() == "flaky",
        "{answer:?}"
    );

    good_status.store(200, Ordering::SeqCst);
    flaky_status.store(200, Ordering::SeqCst);
    let mut back = [
        next_health_event(&mut events),
        next_health_event(&mut events),
    ];
    back.sort();
    assert_eq!(
        back,
        [
            Some((EventKind::HealthCheckHealthy as i32, "flaky".into())),
            Some((EventKind::HealthCheckHealthy as i32, "good".into()))
        ]
    );
    assert!(wait_until(Duration::from_secs(5), || client::get(
        port, "app.test", "/"
    )
    .text()
        == "flaky"));

    // The check is part of the configuration: listed, saved, removable.
    let listed = daemon.ok(RequestType::QueryHealthChecks(Default::default()));
    assert!(format!("{listed:?}").contains("/health"));
    daemon.ok(RequestType::RemoveHealthCheck("app".into()));
    let listed = daemon.ok(RequestType::QueryHealthChecks(Default::default()));
    assert!(!format!("{listed:?}").contains("/health"));
}
