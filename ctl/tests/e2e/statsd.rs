//! StatsD (`[metrics] address`): a UDP listener of the test's own receives
//! the lines of real traffic, plain and tagged, and their counts add up to
//! the requests sent.

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use crate::harness::{self, Daemon, backend::Backend, client, free_port};

/// Sends `sent` requests through a daemon whose `[metrics]` holds `metrics`
/// (the UDP address is added), and returns every datagram received until
/// `done` says the lines add up, or 20 s passed.
fn traffic_and_lines(
    metrics: &str,
    sent: usize,
    done: impl Fn(&[String]) -> bool,
) -> (Vec<Vec<u8>>, Vec<String>) {
    let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
    receiver
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let address = receiver.local_addr().unwrap();
    let http_port = free_port();
    let daemon = Daemon::start(&harness::config(
        http_port,
        2,
        &format!("[metrics]\naddress = \"{address}\"\n{metrics}"),
        "",
    ));
    let backend = Backend::start("web-0");
    daemon.serve(http_port, "web.test", "web", &[&backend]);
    for _ in 0..sent {
        assert_eq!(client::get(http_port, "web.test", "/").status, 200);
    }
    let (mut datagrams, mut lines) = (Vec::new(), Vec::new());
    let end = Instant::now() + Duration::from_secs(20);
    let mut buffer = [0u8; 65536];
    while Instant::now() < end && !done(&lines) {
        if let Ok(size) = receiver.recv(&mut buffer) {
            let datagram = buffer[..size].to_vec();
            lines.extend(
                String::from_utf8_lossy(&datagram)
                    .lines()
                    .map(str::to_owned),
            );
            datagrams.push(datagram);
        }
    }
    (datagrams, lines)
}

/// The sum of the `|c` values of lines named `name`.
fn counted(lines: &[String], name: impl Fn(&str) -> bool) -> u64 {
    lines
        .iter()
        .filter_map(|line| {
            let (metric, rest) = line.rsplit_once(':')?;
            let value = rest.strip_suffix("|c")?;
            name(metric).then(|| value.parse::<u64>().ok())?
        })
        .sum()
}

fn plain_cluster_requests(metric: &str) -> bool {
    // sozu.WRK-NN.cluster.web.requests
    metric.starts_with("sozu.WRK-") && metric.ends_with(".cluster.web.requests")
}

#[test]
fn plain_lines_count_the_requests_sent() {
    const SENT: usize = 12;
    let (datagrams, lines) = traffic_and_lines("", SENT, |lines| {
        counted(lines, plain_cluster_requests) >= SENT as u64
    });
    assert_eq!(
        counted(&lines, plain_cluster_requests),
        SENT as u64,
        "{lines:#?}"
    );
    let status = counted(&lines, |metric| {
        metric.starts_with("sozu.WRK-") && metric.ends_with(".cluster.web.http.status.2xx")
    });
    assert_eq!(status, SENT as u64);
    // Response times travel as timings.
    assert!(
        lines
            .iter()
            .any(|line| line.contains(".cluster.web.backend_response_time:")
                && line.ends_with("|ms")),
        "{lines:#?}"
    );
    // Sozu's default detail (cluster): no backend lines.
    assert!(lines.iter().all(|line| !line.contains(".backend.web-0.")));
    assert!(datagrams.iter().all(|datagram| datagram.len() <= 1432));
}

#[test]
fn tagged_lines_with_a_prefix_and_backend_detail_count_the_requests_sent() {
    const SENT: usize = 9;
    let cluster = |metric: &str| {
        metric.starts_with("edge.cluster.requests,origin=WRK-")
            && metric.ends_with(",cluster_id=web")
    };
    let backend = |metric: &str| {
        metric.starts_with("edge.backend.requests,origin=WRK-")
            && metric.ends_with(",cluster_id=web,backend_id=web-0")
    };
    let (_, lines) = traffic_and_lines(
        "tagged_metrics = true\nprefix = \"edge\"\ndetail = \"backend\"",
        SENT,
        |lines| counted(lines, cluster) >= SENT as u64 && counted(lines, backend) >= SENT as u64,
    );
    assert_eq!(counted(&lines, cluster), SENT as u64, "{lines:#?}");
    assert_eq!(counted(&lines, backend), SENT as u64, "{lines:#?}");
    assert!(
        lines.iter().all(|line| line.starts_with("edge.")),
        "{lines:#?}"
    );
}
