//! The Prometheus endpoint (`[metrics] prometheus_address`): a real
//! Prometheus server scraping it, `promtool check metrics` on the
//! exposition, `sozu metrics get --prometheus`, and scraping every 100 ms
//! while clients change the configuration.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sozu_command::proto::command::request::RequestType;

use crate::harness::{self, Daemon, backend::Backend, client, free_port, wait_until};

/// A daemon with the endpoint on `metrics_port` and one HTTP listener.
fn daemon(http_port: u16, metrics_port: u16) -> Daemon {
    Daemon::start(&harness::config(
        http_port,
        2,
        &format!("[metrics]\nprometheus_address = \"127.0.0.1:{metrics_port}\""),
        "",
    ))
}

/// `GET path` on 127.0.0.1:port: the status and the body.
fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|status| status.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

fn scrape(port: u16) -> String {
    let (status, body) = http_get(port, "/metrics").unwrap();
    assert_eq!(status, 200, "{body}");
    body
}

/// The value of the sample line `series` (name and labels) in `text`.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

/// A Prometheus server, stopped when dropped.
struct Prometheus {
    child: Child,
    port: u16,
    _folder: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// Starts the system's Prometheus scraping 127.0.0.1:target every
    /// second, or `None` (with a message) when it is not installed.
    fn start(target: u16) -> Option<Prometheus> {
        let binary = Path::new("/usr/bin/prometheus");
        if !binary.exists() {
            eprintln!("SKIPPED: /usr/bin/prometheus is not installed (Debian package prometheus)");
            return None;
        }
        let folder = tempfile::tempdir().unwrap();
        let config = folder.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\nscrape_configs:\n  - job_name: sozu\n    static_configs:\n      - targets: ['127.0.0.1:{target}']\n"
            ),
        )
        .unwrap();
        let port = free_port();
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                folder.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Some(Prometheus {
            child,
            port,
            _folder: folder,
        })
    }

    /// The single value of an instant query, if it has one.
    fn query(&self, query: &str) -> Option<String> {
        let encoded: String = query
            .bytes()
            .map(|byte| match byte {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'(' | b')' => {
                    (byte as char).to_string()
                }
                other => format!("%{other:02X}"),
            })
            .collect();
        let (status, body) = http_get(self.port, &format!("/api/v1/query?query={encoded}")).ok()?;
        if status != 200 {
            return None;
        }
        let json: serde_json::Value = serde_json::from_str(&body).ok()?;
        json["data"]["result"][0]["value"][1]
            .as_str()
            .map(str::to_owned)
    }
}

/// Runs `promtool check metrics` on `text`; `None` when promtool is absent.
fn promtool_check(text: &str) -> Option<(bool, String)> {
    let binary = Path::new("/usr/bin/promtool");
    if !binary.exists() {
        eprintln!("SKIPPED: /usr/bin/promtool is not installed (Debian package prometheus)");
        return None;
    }
    let mut child = Command::new(binary)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Some((output.status.success(), said))
}

#[test]
fn a_real_prometheus_reads_the_request_count_of_a_cluster() {
    let (http_port, metrics_port) = (free_port(), free_port());
    let daemon = daemon(http_port, metrics_port);
    let backend = Backend::start("web-0");
    daemon.serve(http_port, "web.test", "web", &[&backend]);
    const SENT: usize = 25;
    for _ in 0..SENT {
        assert_eq!(client::get(http_port, "web.test", "/").status, 200);
    }

    // The endpoint converges on the count (snapshots are up to a second
    // old).
    let series = "sozu_cluster_requests_total{cluster_id=\"web\"}";
    assert!(
        wait_until(Duration::from_secs(15), || value(
            &scrape(metrics_port),
            series
        ) == Some(SENT as f64)),
        "{}",
        scrape(metrics_port)
    );
    let text = scrape(metrics_port);
    assert_eq!(
        value(
            &text,
            "sozu_backend_requests_total{cluster_id=\"web\",backend_id=\"web-0\"}"
        ),
        Some(SENT as f64)
    );
    assert_eq!(
        value(
            &text,
            "sozu_cluster_responses_total{cluster_id=\"web\",status_class=\"2xx\"}"
        ),
        Some(SENT as f64)
    );
    assert_eq!(
        value(
            &text,
            "sozu_cluster_response_seconds_count{cluster_id=\"web\"}"
        ),
        Some(SENT as f64)
    );
    assert_eq!(value(&text, "sozu_state_clusters"), Some(1.0));
    assert_eq!(value(&text, "sozu_worker_up{worker_id=\"0\"}"), Some(1.0));
    assert_eq!(value(&text, "sozu_worker_up{worker_id=\"1\"}"), Some(1.0));
    // serve() made 3 changes: cluster, frontend, backend.
    assert_eq!(value(&text, "sozu_configuration_changes_total"), Some(3.0));

    // `metrics get --prometheus` prints the same exposition.
    let output = daemon.sozu(&["metrics", "get", "--prometheus"]);
    assert_eq!(harness::code(&output), 0);
    let printed = String::from_utf8(output.stdout).unwrap();
    assert_eq!(value(&printed, series), Some(SENT as f64));
    let families = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|line| line.starts_with("# TYPE"))
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(families(&printed), families(&text));

    // promtool accepts both.
    if let Some((ok, said)) = promtool_check(&text) {
        assert!(
            ok,
            "promtool check metrics refused the endpoint's text: {said}\n{text}"
        );
        let (ok, said) = promtool_check(&printed).unwrap();
        assert!(ok, "promtool refused metrics get --prometheus: {said}");
    }

    // A real Prometheus scrapes it and answers the same count.
    let Some(prometheus) = Prometheus::start(metrics_port) else {
        return;
    };
    let query = "sum(sozu_cluster_requests_total{cluster_id=\"web\"})";
    let mut last = None;
    let converged = wait_until(Duration::from_secs(60), || {
        last = prometheus.query(query);
        last.as_deref() == Some(&SENT.to_string())
    });
    assert!(converged, "Prometheus answered {last:?} for {query}");
    let up = prometheus.query("up{job=\"sozu\"}");
    assert_eq!(up.as_deref(), Some("1"));
}

#[test]
fn the_endpoint_refuses_other_paths_and_methods() {
    let (http_port, metrics_port) = (free_port(), free_port());
    let _daemon = daemon(http_port, metrics_port);
    let (status, _) = http_get(metrics_port, "/").unwrap();
    assert_eq!(status, 404);
    let mut stream = TcpStream::connect(("127.0.0.1", metrics_port)).unwrap();
    write!(
        stream,
        "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");
}

#[test]
fn start_flag_serves_the_endpoint_and_a_taken_port_stops_the_start() {
    let (http_port, metrics_port) = (free_port(), free_port());
    let mut daemon = Daemon::prepare(&harness::basic_config(http_port, ""));
    let output = harness::sozu_command()
        .args(["-c", daemon.config.to_str().unwrap(), "start"])
        .args(["--prometheus-address", &format!("127.0.0.1:{metrics_port}")])
        .current_dir(daemon.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    daemon.child = Some(output);
    assert!(
        wait_until(Duration::from_secs(20), || http_get(
            metrics_port,
            "/metrics"
        )
        .is_ok_and(
            |(status, body)| status == 200 && body.contains("sozu_worker_up")
        )),
        "no endpoint from --prometheus-address"
    );

    // A second daemon asked for the same port does not start.
    let other = Daemon::prepare(&format!(
        "{}\n[metrics]\nprometheus_address = \"127.0.0.1:{metrics_port}\"\n",
        harness::basic_config(free_port(), "")
    ));
    let output = other.sozu(&["start"]);
    assert_ne!(harness::code(&output), 0);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot serve Prometheus metrics"),
        "{stderr}"
    );
}

#[test]
fn scraping_every_100ms_never_keeps_commands_from_being_answered() {
    let seconds: u64 = std::env::var("SOZU_SCRAPE_SECONDS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(10);
    let (http_port, metrics_port) = (free_port(), free_port());
    let daemon = daemon(http_port, metrics_port);
    let backend = Backend::start("b");

    // Two scrapers that never send a request hold connections meanwhile.
    let stuck: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect(("127.0.0.1", metrics_port)).unwrap())
        .collect();

    let end = Instant::now() + Duration::from_secs(seconds);
    let scraper = std::thread::spawn(move || {
        let (mut scrapes, mut failures) = (0u64, Vec::new());
        while Instant::now() < end {
            match http_get(metrics_port, "/metrics") {
                Ok((200, body)) if body.contains("sozu_state_clusters") => scrapes += 1,
                other => failures.push(format!("{other:?}")),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        (scrapes, failures)
    });

    let mut commands = 0u64;
    let mut round = 0u64;
    while Instant::now() < end {
        let id = format!("c{round}");
        let started = Instant::now();
        daemon.add_cluster(harness::cluster(&id));
        daemon.add_frontend(harness::frontend(
            http_port,
            &format!("{id}.test"),
            Some(&id),
        ));
        daemon.add_backend(harness::backend(&id, &format!("{id}-0"), backend.address));
        daemon.ok(RequestType::RemoveCluster(id.clone()));
        commands += 4;
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "four commands took {:?}",
            started.elapsed()
        );
        round += 1;
    }
    let (scrapes, failures) = scraper.join().unwrap();
    assert!(failures.is_empty(), "failed scrapes: {failures:?}");
    // At 100 ms apart plus the scrape itself, at least a few per second.
    assert!(scrapes >= seconds * 3, "{scrapes} scrapes in {seconds} s");
    assert!(commands >= 4, "{commands} commands answered");
    let text = scrape(metrics_port);
    assert!(
        wait_until(Duration::from_secs(5), || value(
            &scrape(metrics_port),
            "sozu_configuration_changes_total"
        ) == Some(commands as f64)),
        "{text}"
    );
    eprintln!("{scrapes} scrapes and {commands} commands in {seconds} s");
    drop(stuck);
}

#[test]
fn certificate_expiry_and_the_last_state_save_are_exposed() {
    // Sozu's fixture: an HTTPS listener with a certificate.
    let metrics_port = free_port();
    let mut daemon = Daemon::prepare_fixture();
    let child = harness::sozu_command()
        .args(["-c", daemon.config.to_str().unwrap(), "start"])
        .args(["--prometheus-address", &format!("127.0.0.1:{metrics_port}")])
        .current_dir(daemon.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    daemon.child = Some(child);
    let mut text = String::new();
    assert!(
        wait_until(Duration::from_secs(20), || {
            text = http_get(metrics_port, "/metrics")
                .map(|(_, body)| body)
                .unwrap_or_default();
            text.contains("sozu_certificate_expiry_timestamp_seconds{fingerprint=\"")
        }),
        "{text}"
    );
    assert!(value(&text, "sozu_state_certificates").is_some_and(|count| count >= 1.0));
    assert!(!text.contains("sozu_state_last_save_timestamp_seconds "));
    let expiry: f64 = text
        .lines()
        .find(|line| line.starts_with("sozu_certificate_expiry_timestamp_seconds{"))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
        .unwrap();
    // The fixture's certificate ends some time after 2020.
    assert!(expiry > 1_577_836_800.0, "{expiry}");

    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let output = daemon.sozu(&["state", "save", "-f", "saved.state"]);
    assert_eq!(harness::code(&output), 0);
    assert!(
        wait_until(Duration::from_secs(10), || {
            text = scrape(metrics_port);
            value(&text, "sozu_state_last_save_timestamp_seconds")
                .is_some_and(|saved| saved >= before.floor())
        }),
        "{text}"
    );
}

#[test]
fn a_killed_worker_counts_as_a_restart() {
    let (http_port, metrics_port) = (free_port(), free_port());
    let daemon = daemon(http_port, metrics_port);
    let restarts = |text: &str| {
        value(text, "sozu_worker_restarts_total{worker_id=\"0\"}").unwrap_or(0.0)
            + value(text, "sozu_worker_restarts_total{worker_id=\"1\"}").unwrap_or(0.0)
    };
    assert_eq!(restarts(&scrape(metrics_port)), 0.0);
    let pid = daemon.worker_pids()[0];
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let mut text = String::new();
    assert!(
        wait_until(Duration::from_secs(30), || {
            text = scrape(metrics_port);
            restarts(&text) == 1.0
                && value(&text, "sozu_worker_up{worker_id=\"0\"}") == Some(1.0)
                && value(&text, "sozu_worker_up{worker_id=\"1\"}") == Some(1.0)
        }),
        "{text}"
    );
}
