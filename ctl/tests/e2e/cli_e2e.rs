//! Every command of the `sozu` command line against this project's daemon,
//! started as a real process on the Sozu fixture configuration (an HTTP, an
//! HTTPS and a TCP listener; clusters `web` and `db`): the human output (the
//! result line and the tables' contents), the `--json` output (one JSON
//! document with Sozu's top-level key), the exit codes, and every kind of
//! error (refused 1, usage and bad files 2, no daemon 3, timeout 4,
//! protocol 5). `top` is left to its own tests; `apply` and `diff` on a
//! realistic change set are in `apply_e2e.rs`.

use crate::harness;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use harness::fake::{Behaviour, FakeDaemon};
use harness::{Daemon, basic_config, free_port, sozu, wait_until};
use serde_json::Value;

/// A finished command.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(daemon: &Daemon, arguments: &[&str]) -> Run {
    let output = daemon.sozu(arguments);
    Run {
        code: harness::code(&output),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Runs a command for people; it must succeed. Returns its stdout.
fn ok(daemon: &Daemon, arguments: &[&str]) -> String {
    let run = run(daemon, arguments);
    assert_eq!(
        run.code, 0,
        "sozu {arguments:?} failed\nstdout: {}\nstderr: {}",
        run.stdout, run.stderr
    );
    run.stdout
}

/// Runs a command with `--json`; it must succeed and print exactly one
/// JSON document, which is returned.
fn ok_json(daemon: &Daemon, arguments: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(arguments);
    let run = run(daemon, &all);
    assert_eq!(
        run.code, 0,
        "sozu {all:?} failed\nstdout: {}\nstderr: {}",
        run.stdout, run.stderr
    );
    serde_json::from_str(&run.stdout).unwrap_or_else(|error| {
        panic!(
            "sozu {all:?}: not one JSON document ({error}): {}",
            run.stdout
        )
    })
}

/// Runs a command that must fail with `code` and error `kind`, both for
/// people (nothing on stdout, `error: …` on stderr) and with `--json`
/// (`{"error":{"kind":…,"message":…}}` and nothing else). Returns the
/// message.
fn fails(daemon: &Daemon, arguments: &[&str], code: i32, kind: &str) -> String {
    let human = run(daemon, arguments);
    assert_eq!(
        human.code, code,
        "sozu {arguments:?}\nstdout: {}\nstderr: {}",
        human.stdout, human.stderr
    );
    assert!(human.stdout.is_empty(), "{arguments:?}: {}", human.stdout);
    assert!(
        human.stderr.contains("error"),
        "{arguments:?}: {}",
        human.stderr
    );
    let mut all = vec!["--json"];
    all.extend_from_slice(arguments);
    let json = run(daemon, &all);
    assert_eq!(json.code, code, "sozu {all:?}: {}", json.stdout);
    let error: Value = serde_json::from_str(&json.stdout)
        .unwrap_or_else(|e| panic!("sozu {all:?}: not JSON ({e}): {}", json.stdout));
    assert_eq!(error["error"]["kind"], kind, "{error}");
    error["error"]["message"].as_str().unwrap().to_owned()
}

/// Whether a table of `text` has a row whose first cells are `cells`.
fn has_row(text: &str, cells: &[&str]) -> bool {
    text.lines().any(|line| {
        let row: Vec<&str> = line
            .trim()
            .trim_matches('│')
            .split('│')
            .map(str::trim)
            .collect();
        row.len() >= cells.len() && row[..cells.len()] == *cells
    })
}

fn assert_row(text: &str, cells: &[&str]) {
    assert!(has_row(text, cells), "no row {cells:?} in:\n{text}");
}

/// The fixture's listener addresses: HTTP, HTTPS, TCP.
fn listeners(daemon: &Daemon) -> (String, String, String) {
    let addresses = daemon.listener_addresses();
    (
        addresses[0].clone(),
        addresses[1].clone(),
        addresses[2].clone(),
    )
}

/// The certificates generated for the command library's tests.
fn test_data(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../command-lib/tests/data")
        .join(name)
        .to_str()
        .unwrap()
        .to_owned()
}

/// The SHA-256 fingerprint of a PEM certificate, as `certificate list` shows it.
fn fingerprint(pem: &str) -> String {
    sozu_command::certificate::fingerprint_hex(&std::fs::read_to_string(pem).unwrap()).unwrap()
}

/// A running `sozu` command whose stdout lines arrive on a channel.
struct Stream {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Stream {
    fn start(daemon: &Daemon, arguments: &[&str]) -> Stream {
        let mut child = harness::sozu_command()
            .arg("-c")
            .arg(&daemon.config)
            .args(arguments)
            .current_dir(daemon.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if sender.send(line).is_err() {
                    return;
                }
            }
        });
        Stream { child, lines }
    }

    /// The next line, waiting at most 20 s.
    fn next(&self) -> String {
        self.lines
            .recv_timeout(Duration::from_secs(20))
            .expect("a line within 20 s")
    }

    /// Reads lines until one satisfies `wanted`.
    fn until(&self, wanted: impl Fn(&str) -> bool) -> String {
        loop {
            let line = self.next();
            if wanted(&line) {
                return line;
            }
        }
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

#[test]
fn status_logging_reload_and_upgrade() {
    let daemon = Daemon::fixture();

    let text = ok(&daemon, &["status"]);
    assert!(text.starts_with("workers: "), "{text}");
    assert_row(&text, &["worker", "pid", "run state"]);
    assert_row(&text, &["0"]);
    assert_row(&text, &["1"]);
    assert_eq!(text.matches("RUNNING").count(), 2, "{text}");
    let status = ok_json(&daemon, &["status"]);
    let workers = status["WORKERS"]["vec"].as_array().unwrap();
    assert_eq!(workers.len(), 2, "{status}");
    assert!(workers.iter().all(|worker| worker["run_state"] == 0));

    let text = ok(&daemon, &["logging", "debug"]);
    assert!(text.starts_with("log filter set to debug"), "{text}");
    assert_eq!(
        ok_json(&daemon, &["logging", "info"]),
        serde_json::json!({})
    );
    fails(&daemon, &["logging", " "], 2, "usage");

    // `config check` reads the file alone, no daemon needed.
    let text = ok(&daemon, &["config", "check"]);
    assert!(
        text.contains(
            "is valid: 3 listener(s), 2 cluster(s), 5 frontend(s), 4 backend(s), 1 certificate(s)"
        ),
        "{text}"
    );
    assert_row(&text, &["1", "ADD_HTTP_LISTENER"]);
    let check = ok_json(&daemon, &["config", "check"]);
    assert_eq!(check["valid"], true);
    // The test's file sets none of the keys that only tune Sozu internals.
    assert_eq!(check["warnings"], serde_json::json!([]), "{check}");
    assert!(check["requests"].as_array().unwrap().len() > 10, "{check}");

    // reload -f: the difference with another file is applied.
    let other = daemon.path().join("other.toml");
    let mut config = std::fs::read_to_string(&daemon.config).unwrap();
    config.push_str(
        "\n[clusters.reloaded]\nprotocol = \"http\"\nbackends = [ { address = \"127.0.0.1:9301\" } ]\n",
    );
    std::fs::write(&other, config).unwrap();
    let text = ok(&daemon, &["reload", "-f", "other.toml"]);
    assert!(
        text.starts_with("configuration reloaded: Reloaded ") && text.contains("other.toml"),
        "{text}"
    );
    assert_row(&ok(&daemon, &["cluster", "list"]), &["reloaded"]);
    // The file the daemon runs on is now other.toml: nothing to change.
    assert_eq!(ok_json(&daemon, &["reload"]), serde_json::json!({}));
    // A file that does not parse is refused by the daemon; one that does
    // not exist is refused before sending.
    std::fs::write(daemon.path().join("broken.toml"), "worker_count = [").unwrap();
    let message = fails(&daemon, &["reload", "-f", "broken.toml"], 1, "failure");
    assert!(message.contains("not reloaded"), "{message}");
    fails(&daemon, &["reload", "-f", "missing.toml"], 2, "usage");

    // One worker, then the main process and every worker.
    let before = ok_json(&daemon, &["status"]);
    let text = ok(&daemon, &["upgrade", "--worker", "0"]);
    assert!(text.starts_with("worker 0 upgraded"), "{text}");
    let after = ok_json(&daemon, &["status"]);
    let pid = |status: &Value, id: u64| {
        status["WORKERS"]["vec"]
            .as_array()
            .unwrap()
            .iter()
            .find(|worker| worker["id"] == id && worker["run_state"] == 0)
            .map(|worker| worker["pid"].clone())
    };
    assert_ne!(pid(&before, 0), pid(&after, 0), "{before} {after}");
    assert_eq!(pid(&before, 1), pid(&after, 1));
    let text = ok(&daemon, &["upgrade"]);
    assert!(text.starts_with("main process upgraded"), "{text}");
    assert!(
        text.contains("upgrade done: 2 worker(s) replaced"),
        "{text}"
    );
    assert_eq!(ok_json(&daemon, &["upgrade"]), serde_json::json!({}));
    let text = ok(&daemon, &["status"]);
    assert_eq!(text.matches("RUNNING").count(), 2, "{text}");
    fails(&daemon, &["upgrade", "--worker", "7"], 1, "failure");
}

#[test]
fn shutdown_soft_and_hard() {
    let mut daemon = Daemon::fixture();
    let text = ok(&daemon, &["shutdown"]);
    assert!(
        text.starts_with("soft stop (connections drain first)"),
        "{text}"
    );
    assert!(daemon.wait_exit(Duration::from_secs(20)).is_some());
    let message = fails(&daemon, &["status"], 3, "connect");
    assert!(message.contains("sozu.sock"), "{message}");

    let mut daemon = Daemon::start(&basic_config(free_port(), ""));
    assert_eq!(
        ok_json(&daemon, &["shutdown", "--hard"]),
        serde_json::json!({})
    );
    assert!(daemon.wait_exit(Duration::from_secs(20)).is_some());
}

#[test]
fn events_stream_as_text_and_json_lines() {
    let daemon = Daemon::fixture();
    let json = Stream::start(&daemon, &["--json", "events"]);
    let first: Value = serde_json::from_str(&json.next()).unwrap();
    assert_eq!(first["EVENT"]["kind"], 26, "{first}");
    assert_eq!(first["worker"], "main");
    let text = Stream::start(&daemon, &["events"]);
    assert_eq!(text.next(), "main: EVENTS_SUBSCRIBED");

    ok(
        &daemon,
        &[
            "cluster",
            "add",
            "-i",
            "evt",
            "--load-balancing-policy",
            "random",
        ],
    );
    let added = json.until(|line| line.contains("\"kind\":4"));
    let added: Value = serde_json::from_str(&added).unwrap();
    assert_eq!(added["EVENT"]["cluster_id"], "evt", "{added}");
    assert_eq!(added["worker"], "main");
    assert_eq!(
        text.until(|line| line.contains("CLUSTER_ADDED")),
        "main: CLUSTER_ADDED cluster=evt"
    );
}

#[test]
fn state_save_load_and_stats() {
    let daemon = Daemon::fixture();
    let text = ok(&daemon, &["state", "save", "-f", "saved.state"]);
    let saved = daemon.path().join("saved.state");
    assert!(
        text.starts_with(&format!("state saved to {}", saved.display())),
        "{text}"
    );
    assert!(text.contains("Saved 18 config messages"), "{text}");
    let records = std::fs::read_to_string(&saved).unwrap();
    assert!(records.contains("\"ADD_CLUSTER\""), "{records}");
    assert_eq!(
        ok_json(&daemon, &["state", "save", "-f", "again.state"]),
        serde_json::json!({})
    );
    fails(
        &daemon,
        &["state", "save", "-f", "no/such/folder/x.state"],
        2,
        "usage",
    );

    let text = ok(&daemon, &["state", "stats"]);
    assert!(text.starts_with("requests received"), "{text}");
    assert_row(&text, &["SAVE_STATE", "2"]);
    let stats = ok_json(&daemon, &["state", "stats"]);
    assert_eq!(stats["REQUEST_COUNTS"]["map"]["SAVE_STATE"], 2, "{stats}");

    // Into a daemon that has none of it: everything applies.
    let empty = Daemon::start(&basic_config(free_port(), ""));
    let path = saved.to_str().unwrap();
    let text = ok(&empty, &["state", "load", "-f", path]);
    assert!(text.starts_with("state loaded from"), "{text}");
    assert!(text.contains("18 of 18 records"), "{text}");
    // Each record the state took counts as a configuration change: 15 of
    // the 18 (the three listener activations are found identical to the
    // state, as the listeners are saved active).
    let metrics = ok_json(&empty, &["metrics", "get"]);
    assert_eq!(
        metrics["METRICS"]["main"]["configuration.changes"]["inner"]["COUNT"], 15,
        "{metrics}"
    );
    assert_row(&ok(&empty, &["cluster", "list"]), &["web"]);
    assert_row(&ok(&empty, &["listener", "list"]), &[&listeners(&daemon).2]);
    // Into the daemon that holds it already: every record is identical to
    // what exists and changes nothing (as in Sozu 2.3.3).
    let changes = |daemon: &Daemon| {
        let metrics = ok_json(daemon, &["metrics", "get"]);
        metrics["METRICS"]["main"]["configuration.changes"]["inner"]["COUNT"].clone()
    };
    let before = changes(&daemon);
    let text = ok(&daemon, &["state", "load", "-f", path]);
    assert!(text.contains("18 of 18 records"), "{text}");
    // The change counter counts them as the same requests sent alone: the
    // listeners, activations and frontends found identical are not
    // counted; the clusters, backends and certificate (2 + 4 + 1), which
    // the state takes again as updates (that change nothing), are.
    let after = changes(&daemon).as_u64().unwrap();
    assert_eq!(after, before.as_u64().unwrap() + 7);
    // Files that cannot be loaded.
    fails(
        &daemon,
        &["state", "load", "-f", "missing.state"],
        2,
        "usage",
    );
    std::fs::write(daemon.path().join("garbage.state"), "not a state\n\0").unwrap();
    let message = fails(
        &daemon,
        &["state", "load", "-f", "garbage.state"],
        1,
        "failure",
    );
    assert!(message.contains("record"), "{message}");
}

#[test]
fn metrics_enable_disable_clear_and_get() {
    let daemon = Daemon::fixture();
    for (command, summary) in [
        ("enable", "metrics enabled"),
        ("clear", "metrics cleared"),
        ("disable", "metrics disabled"),
    ] {
        let text = ok(&daemon, &["metrics", command]);
        assert!(text.starts_with(summary), "{text}");
        assert_eq!(
            ok_json(&daemon, &["metrics", command]),
            serde_json::json!({})
        );
    }
    ok(&daemon, &["metrics", "enable"]);

    let text = ok(&daemon, &["metrics", "get"]);
    assert!(text.starts_with("metrics: "), "{text}");
    assert_row(&text, &["main process", "value"]);
    assert_row(&text, &["configuration.clusters", "2"]);
    assert_row(&text, &["cluster web", "value"]);
    assert_row(&text, &["cluster.total_backends", "3"]);
    let all = ok_json(&daemon, &["metrics", "get"]);
    let metrics = &all["METRICS"];
    assert_eq!(
        metrics["main"]["configuration.clusters"]["inner"]["GAUGE"], 2,
        "{all}"
    );
    assert!(
        metrics["proxying"]["client.connections"].is_object(),
        "{all}"
    );
    assert_eq!(
        metrics["clusters"]["web"]["cluster"]["cluster.total_backends"]["inner"]["GAUGE"],
        3
    );

    // The names of what can be asked for.
    let text = ok(&daemon, &["metrics", "get", "--list"]);
    assert_row(&text, &["proxy metrics", "cluster metrics"]);
    assert!(text.contains("client.connections"), "{text}");
    let list = ok_json(&daemon, &["metrics", "get", "-l"]);
    let names = |key: &str| -> Vec<String> {
        list["AVAILABLE_METRICS"][key]
            .as_array()
            .unwrap_or_else(|| panic!("{list}"))
            .iter()
            .map(|name| name.as_str().unwrap().to_owned())
            .collect()
    };
    assert!(names("proxy_metrics").contains(&"client.connections".to_owned()));
    assert!(names("cluster_metrics").contains(&"cluster.total_backends".to_owned()));

    // Filters.
    let one = ok_json(
        &daemon,
        &[
            "metrics",
            "get",
            "-k",
            "web",
            "-n",
            "cluster.total_backends",
        ],
    );
    let clusters = one["METRICS"]["clusters"].as_object().unwrap();
    assert_eq!(clusters.keys().collect::<Vec<_>>(), ["web"], "{one}");
    assert_eq!(
        clusters["web"]["cluster"].as_object().unwrap().len(),
        1,
        "{one}"
    );
    let proxy_only = ok_json(&daemon, &["metrics", "get", "--no-clusters"]);
    assert!(
        proxy_only["METRICS"]["clusters"]
            .as_object()
            .is_none_or(|clusters| clusters.is_empty()),
        "{proxy_only}"
    );
    let per_worker = ok_json(&daemon, &["metrics", "get", "-w", "-b", "spare"]);
    let workers = per_worker["METRICS"]["workers"].as_object().unwrap();
    assert!(
        workers.contains_key("0") && workers.contains_key("1"),
        "{per_worker}"
    );

    // Refreshed: one document per line, then more until stopped.
    let refresh = Stream::start(&daemon, &["--json", "metrics", "get", "-r", "1"]);
    let first: Value = serde_json::from_str(&refresh.next()).unwrap();
    assert!(first["METRICS"]["main"].is_object(), "{first}");
    let second: Value = serde_json::from_str(&refresh.next()).unwrap();
    assert!(second.get("METRICS").is_some(), "{second}");
    let human = Stream::start(&daemon, &["metrics", "get", "-r", "1"]);
    assert_eq!(human.next(), "metrics (every 1s, Ctrl-C to stop)");
    fails(&daemon, &["metrics", "get", "-r", "0"], 2, "usage");
}

/// The cluster configurations each process (`0`, `1`, `main`) gave in the
/// `--json` output of `cluster list` with a filter; fails when a process is
/// missing or answered something else.
fn listed_configurations(listed: &Value) -> Vec<(String, Vec<Value>)> {
    let answers = listed["WORKER_RESPONSES"]["map"]
        .as_object()
        .unwrap_or_else(|| panic!("no answers by process: {listed}"));
    let mut processes: Vec<&String> = answers.keys().collect();
    processes.sort_unstable();
    assert_eq!(processes, ["0", "1", "main"], "{listed}");
    answers
        .iter()
        .map(|(process, answer)| {
            let clusters = answer["content_type"]["CLUSTERS"]["vec"]
                .as_array()
                .unwrap_or_else(|| panic!("{process} listed no clusters: {listed}"));
            let configurations = clusters.iter().map(|c| c["configuration"].clone());
            (process.clone(), configurations.collect())
        })
        .collect()
}

#[test]
fn clusters_and_health_checks() {
    let daemon = Daemon::fixture();
    let (http, https, _) = listeners(&daemon);

    let text = ok(&daemon, &["cluster", "list"]);
    assert!(text.starts_with("clusters: "), "{text}");
    assert_row(
        &text,
        &["cluster", "hash on 0", "hash on 1", "hash on main"],
    );
    assert_row(&text, &["db"]);
    assert_row(&text, &["web"]);
    let hashes = ok_json(&daemon, &["cluster", "list"]);
    for worker in ["0", "1", "main"] {
        let map =
            &hashes["WORKER_RESPONSES"]["map"][worker]["content_type"]["CLUSTER_HASHES"]["map"];
        assert!(map["web"].is_u64() && map["db"].is_u64(), "{hashes}");
    }

    let text = ok(&daemon, &["cluster", "list", "-i", "web"]);
    assert_row(&text, &["cluster", "web"]);
    assert_row(&text, &["load balancing", "LEAST_LOADED"]);
    assert_row(&text, &["sticky session", "yes"]);
    assert_row(&text, &["answered by", "0, 1, main"]);
    assert_row(
        &text,
        &[
            &http,
            "www.example.com",
            "/",
            "*",
            "web",
            "env=prod, owner=team-a",
        ],
    );
    assert_row(
        &text,
        &[&http, "*.example.com", "~ ^/v[0-9]+/", "GET", "web"],
    );
    assert_row(&text, &[&https, "secure.example.com", "*", "*", "web"]);
    assert_row(&text, &["spare", "[::1]:9003", "100", "-", "yes"]);
    assert_row(
        &text,
        &["web-0-127.0.0.1:9001", "127.0.0.1:9001", "50", "s1", "no"],
    );
    let web = ok_json(&daemon, &["cluster", "list", "-i", "web"]);
    let main = &web["WORKER_RESPONSES"]["map"]["main"]["content_type"]["CLUSTERS"]["vec"][0];
    assert_eq!(main["configuration"]["cluster_id"], "web", "{web}");
    assert_eq!(main["backends"].as_array().unwrap().len(), 3);
    let by_domain = ok_json(&daemon, &["cluster", "list", "-d", "www.example.com"]);
    for (process, configurations) in listed_configurations(&by_domain) {
        let ids: Vec<&Value> = configurations.iter().map(|c| &c["cluster_id"]).collect();
        assert_eq!(ids, ["web"], "{process}: {by_domain}");
    }
    assert_row(
        &ok(
            &daemon,
            &["cluster", "list", "-d", "exact.example.com/health"],
        ),
        &["cluster", "web"],
    );

    let text = ok(
        &daemon,
        &[
            "cluster",
            "add",
            "-i",
            "app",
            "--load-balancing-policy",
            "power_of_two",
            "--sticky-session",
            "--https-redirect",
            "--https-redirect-port",
            "8443",
            "--send-proxy",
            "--answer",
            "503=HTTP/1.1 503 Busy\r\n\r\n",
            "--max-connection-attempts",
            "3",
        ],
    );
    assert!(text.starts_with("cluster app added"), "{text}");
    let text = ok(&daemon, &["cluster", "list", "-i", "app"]);
    assert_row(&text, &["load balancing", "POWER_OF_TWO"]);
    assert_row(&text, &["https redirect port", "8443"]);
    assert_row(&text, &["proxy protocol", "SEND_HEADER"]);
    assert_row(&text, &["answers", "503"]);
    assert_row(&text, &["max connection attempts", "3"]);
    assert_eq!(
        ok_json(
            &daemon,
            &[
                "cluster",
                "add",
                "-i",
                "other",
                "--load-balancing-policy",
                "ROUND_ROBIN"
            ]
        ),
        serde_json::json!({})
    );

    let text = ok(
        &daemon,
        &[
            "cluster",
            "health-check",
            "set",
            "-i",
            "app",
            "--uri",
            "/health",
            "--interval",
            "10",
            "--timeout",
            "2",
            "--accepted-statuses",
            "200-399,404",
        ],
    );
    assert!(text.starts_with("health check of app set"), "{text}");
    let text = ok(&daemon, &["cluster", "health-check", "list"]);
    assert_row(
        &text,
        &[
            "app",
            "http /health every 10s, timeout 2s, up after 3, down after 3",
            "200-399, 404",
            "backend's",
        ],
    );
    let checks = ok_json(&daemon, &["cluster", "health-check", "list", "-i", "app"]);
    let check = &checks["HEALTH_CHECKS_LIST"]["map"]["app"];
    assert_eq!(check["uri"], "/health", "{checks}");
    assert_eq!(check["timeout"], 2);
    assert_row(
        &ok(&daemon, &["cluster", "list", "-i", "app"]),
        &[
            "health check",
            "http /health every 10s, timeout 2s, up after 3, down after 3",
        ],
    );
    let text = ok(&daemon, &["cluster", "health-check", "remove", "-i", "app"]);
    assert!(text.starts_with("health check of app removed"), "{text}");
    assert!(ok(&daemon, &["cluster", "health-check", "list"]).contains("no health checks"));

    let text = ok(&daemon, &["cluster", "remove", "-i", "app"]);
    assert!(text.starts_with("cluster app removed"), "{text}");
    assert!(ok(&daemon, &["cluster", "list", "-i", "app"]).contains("no cluster matches"));
    assert_eq!(
        ok_json(&daemon, &["cluster", "remove", "-i", "other"]),
        serde_json::json!({})
    );

    // Refused by the daemon.
    let message = fails(
        &daemon,
        &[
            "cluster",
            "health-check",
            "set",
            "-i",
            "nosuch",
            "--uri",
            "/",
        ],
        1,
        "failure",
    );
    assert!(message.contains("nosuch"), "{message}");
    // A cluster served over HTTP/2 cleartext to its backends.
    let added = ok(
        &daemon,
        &[
            "cluster",
            "add",
            "-i",
            "h2",
            "--load-balancing-policy",
            "random",
            "--http2",
        ],
    );
    assert!(added.contains("h2"), "{added}");
    let listed = ok_json(&daemon, &["cluster", "list", "-i", "h2"]);
    for (process, configurations) in listed_configurations(&listed) {
        assert_eq!(configurations.len(), 1, "{process}: {listed}");
        assert_eq!(configurations[0]["cluster_id"], "h2", "{process}: {listed}");
        assert_eq!(configurations[0]["http2"], true, "{process}: {listed}");
    }
    // Refused before sending.
    fails(
        &daemon,
        &[
            "cluster",
            "add",
            "-i",
            "x",
            "--load-balancing-policy",
            "fastest",
        ],
        2,
        "usage",
    );
    fails(
        &daemon,
        &["cluster", "list", "-i", "a", "-d", "b.com"],
        2,
        "usage",
    );
}

#[test]
fn backends() {
    let daemon = Daemon::fixture();
    let text = ok(
        &daemon,
        &[
            "backend",
            "add",
            "-i",
            "web",
            "--backend-id",
            "web-extra",
            "-a",
            "127.0.0.1:9901",
            "-s",
            "sticky9",
            "-b",
            "--weight",
            "40",
        ],
    );
    assert!(
        text.starts_with("backend web-extra (127.0.0.1:9901) added to web"),
        "{text}"
    );
    assert_eq!(
        ok_json(
            &daemon,
            &[
                "backend",
                "add",
                "-i",
                "web",
                "--backend-id",
                "web-plain",
                "-a",
                "127.0.0.1:9902",
                "-b",
                "false"
            ]
        ),
        serde_json::json!({})
    );
    let text = ok(&daemon, &["cluster", "list", "-i", "web"]);
    assert_row(
        &text,
        &["web-extra", "127.0.0.1:9901", "40", "sticky9", "yes"],
    );
    // No --weight: weight 0, as Sozu's command line sends it.
    assert_row(&text, &["web-plain", "127.0.0.1:9902", "0", "-", "no"]);

    let text = ok(
        &daemon,
        &[
            "backend",
            "remove",
            "-i",
            "web",
            "--backend-id",
            "web-extra",
            "-a",
            "127.0.0.1:9901",
        ],
    );
    assert!(
        text.starts_with("backend web-extra (127.0.0.1:9901) removed from web"),
        "{text}"
    );
    assert!(!has_row(
        &ok(&daemon, &["cluster", "list", "-i", "web"]),
        &["web-extra"]
    ));

    let message = fails(
        &daemon,
        &[
            "backend",
            "add",
            "-i",
            "nosuch",
            "--backend-id",
            "b1",
            "-a",
            "127.0.0.1:9999",
        ],
        1,
        "failure",
    );
    assert!(message.contains("does not exist"), "{message}");
    fails(
        &daemon,
        &[
            "backend",
            "add",
            "-i",
            "web",
            "--backend-id",
            "b1",
            "-a",
            "localhost",
        ],
        2,
        "usage",
    );
}

#[test]
fn frontends() {
    let daemon = Daemon::fixture();
    let (http, https, tcp) = listeners(&daemon);
    ok(
        &daemon,
        &[
            "cluster",
            "add",
            "-i",
            "app",
            "--load-balancing-policy",
            "random",
        ],
    );

    let text = ok(
        &daemon,
        &[
            "frontend",
            "http",
            "add",
            "-a",
            &http,
            "--hostname",
            "api.example.com",
            "-p",
            "/api",
            "-m",
            "POST",
            "--tags",
            "owner=team-b, env=dev",
            "id",
            "app",
        ],
    );
    assert!(
        text.starts_with(&format!(
            "HTTP frontend {http} api.example.com/api -> cluster app added"
        )),
        "{text}"
    );
    let text = ok(
        &daemon,
        &[
            "frontend",
            "http",
            "add",
            "-a",
            &http,
            "--hostname",
            "re.example.com",
            "--path-regex",
            "^/v[0-9]+/",
            "id",
            "app",
        ],
    );
    assert!(
        text.starts_with(&format!(
            "HTTP frontend {http} re.example.com ~ ^/v[0-9]+/ -> cluster app added"
        )),
        "{text}"
    );
    assert_eq!(
        ok_json(
            &daemon,
            &[
                "frontend",
                "http",
                "add",
                "-a",
                &http,
                "--hostname",
                "eq.example.com",
                "--path-equals",
                "/ping",
                "id",
                "app"
            ]
        ),
        serde_json::json!({})
    );
    let text = ok(
        &daemon,
        &[
            "frontend",
            "http",
            "add",
            "-a",
            &http,
            "--hostname",
            "old.example.com",
            "deny",
        ],
    );
    assert!(
        text.starts_with(&format!(
            "HTTP frontend {http} old.example.com -> deny added"
        )),
        "{text}"
    );
    let text = ok(
        &daemon,
        &[
            "frontend",
            "https",
            "add",
            "-a",
            &https,
            "--hostname",
            "app.example.com",
            "id",
            "app",
        ],
    );
    assert!(
        text.starts_with(&format!(
            "HTTPS frontend {https} app.example.com -> cluster app added"
        )),
        "{text}"
    );

    let text = ok(&daemon, &["frontend", "list"]);
    assert!(text.starts_with("frontends: "), "{text}");
    assert_row(
        &text,
        &[
            "HTTP frontend",
            "hostname",
            "path",
            "method",
            "cluster",
            "tags",
        ],
    );
    assert_row(
        &text,
        &[
            &http,
            "api.example.com",
            "/api",
            "POST",
            "app",
            "env=dev, owner=team-b",
        ],
    );
    assert_row(
        &text,
        &[&http, "re.example.com", "~ ^/v[0-9]+/", "*", "app"],
    );
    assert_row(&text, &[&http, "eq.example.com", "= /ping", "*", "app"]);
    assert_row(&text, &[&http, "old.example.com", "*", "*", "(deny)"]);
    assert_row(&text, &[&https, "app.example.com", "*", "*", "app"]);
    assert_row(&text, &[&tcp, "*", "", "db"]);
    let list = ok_json(&daemon, &["frontend", "list"]);
    let listed = &list["FRONTEND_LIST"];
    assert_eq!(
        listed["http_frontends"].as_array().unwrap().len(),
        7,
        "{list}"
    );
    assert_eq!(listed["https_frontends"].as_array().unwrap().len(), 2);
    assert_eq!(listed["tcp_frontends"].as_array().unwrap().len(), 1);

    // Filters: kinds, domain, cluster.
    let text = ok(&daemon, &["frontend", "list", "--http", "-d", "api"]);
    assert_row(&text, &[&http, "api.example.com"]);
    assert!(
        !text.contains("re.example.com") && !text.contains("TCP frontend"),
        "{text}"
    );
    let text = ok(&daemon, &["frontend", "list", "--tcp"]);
    assert_row(&text, &[&tcp, "*", "", "db"]);
    assert!(!text.contains("HTTP"), "{text}");
    let text = ok(&daemon, &["frontend", "list", "--https", "-i", "app"]);
    assert_row(&text, &[&https, "app.example.com"]);
    assert!(!text.contains("secure.example.com"), "{text}");
    let only = ok_json(
        &daemon,
        &["frontend", "list", "--http", "--https", "-i", "web"],
    );
    let http_listed = only["FRONTEND_LIST"]["http_frontends"].as_array().unwrap();
    assert_eq!(http_listed.len(), 3, "{only}");
    assert!(
        only["FRONTEND_LIST"]["tcp_frontends"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert!(ok(&daemon, &["frontend", "list", "-d", "nothing.invalid"]).contains("no frontends"));

    // Removals.
    let text = ok(
        &daemon,
        &[
            "frontend",
            "http",
            "remove",
            "-a",
            &http,
            "--hostname",
            "api.example.com",
            "-p",
            "/api",
            "-m",
            "POST",
            "id",
            "app",
        ],
    );
    assert!(
        text.starts_with(&format!(
            "HTTP frontend {http} api.example.com/api -> cluster app removed"
        )),
        "{text}"
    );
    ok(
        &daemon,
        &[
            "frontend",
            "http",
            "remove",
            "-a",
            &http,
            "--hostname",
            "old.example.com",
            "deny",
        ],
    );
    ok(
        &daemon,
        &[
            "frontend",
            "https",
            "remove",
            "-a",
            &https,
            "--hostname",
            "app.example.com",
            "id",
            "app",
        ],
    );
    let text = ok(
        &daemon,
        &["frontend", "tcp", "remove", "-i", "db", "-a", &tcp],
    );
    assert!(
        text.starts_with(&format!("TCP frontend {tcp} -> cluster db removed")),
        "{text}"
    );
    let text = ok(
        &daemon,
        &[
            "frontend", "tcp", "add", "-i", "db", "-a", &tcp, "--tags", "k=v",
        ],
    );
    assert!(
        text.starts_with(&format!("TCP frontend {tcp} -> cluster db added")),
        "{text}"
    );
    let text = ok(&daemon, &["frontend", "list"]);
    assert_row(&text, &[&tcp, "*", "", "db", "k=v"]);
    assert!(
        !text.contains("api.example.com") && !text.contains("old.example.com"),
        "{text}"
    );
    assert!(!text.contains("app.example.com"), "{text}");

    // Refused by the daemon, and before sending.
    let message = fails(
        &daemon,
        &["frontend", "tcp", "add", "-i", "app", "-a", &tcp],
        1,
        "failure",
    );
    assert!(message.contains("already exists"), "{message}");
    fails(
        &daemon,
        &[
            "frontend",
            "http",
            "add",
            "-a",
            &http,
            "--hostname",
            "x.com",
            "-p",
            "/a",
            "--path-regex",
            "b",
            "id",
            "app",
        ],
        2,
        "usage",
    );
    fails(
        &daemon,
        &[
            "frontend",
            "http",
            "add",
            "-a",
            &http,
            "--hostname",
            "x.com",
            "id",
        ],
        2,
        "usage",
    );
}

#[test]
fn listeners_lifecycle() {
    let daemon = Daemon::fixture();
    let (http, https, tcp) = listeners(&daemon);
    let text = ok(&daemon, &["listener", "list"]);
    assert!(text.starts_with("listeners: "), "{text}");
    assert_row(&text, &[&http, "-", "yes", "no", "MYSTICKY", "60/30/3/10"]);
    assert_row(
        &text,
        &[
            &https,
            "-",
            "yes",
            "no",
            "SOZUBALANCEID",
            "TLSv1.2, TLSv1.3",
            "h2, http/1.1",
        ],
    );
    assert_row(&text, &[&tcp, "-", "yes", "no", "60/30/3"]);
    let list = ok_json(&daemon, &["listener", "list"]);
    assert!(
        list["LISTENERS_LIST"]["http_listeners"][&http].is_object(),
        "{list}"
    );
    assert!(list["LISTENERS_LIST"]["https_listeners"][&https].is_object());
    assert!(list["LISTENERS_LIST"]["tcp_listeners"][&tcp].is_object());

    for kind in ["http", "https", "tcp"] {
        let address = format!("127.0.0.1:{}", free_port());
        let title = kind.to_uppercase();
        let mut add = vec!["listener", kind, "add", "-a", &address];
        match kind {
            "http" => add.extend(["--sticky-name", "OTHER", "--front-timeout", "20"]),
            "https" => add.extend(["--front-timeout", "20"]),
            _ => add.extend(["--sni-preread-timeout", "4"]),
        }
        let text = ok(&daemon, &add);
        assert!(
            text.starts_with(&format!("{title} listener {address} added")),
            "{text}"
        );
        // Inactive until activated, as with Sozu.
        assert_row(&ok(&daemon, &["listener", "list"]), &[&address, "-", "no"]);
        if kind != "tcp" {
            let listed = ok_json(&daemon, &["listener", "list"]);
            assert_eq!(
                listed["LISTENERS_LIST"][format!("{kind}_listeners")][&address]["front_timeout"],
                20,
                "{listed}"
            );
        }
        let text = ok(&daemon, &["listener", kind, "activate", "-a", &address]);
        assert!(
            text.starts_with(&format!("{title} listener {address} activated")),
            "{text}"
        );
        // It accepts connections now.
        assert!(wait_until(Duration::from_secs(10), || {
            std::net::TcpStream::connect(&address).is_ok()
        }));
        assert_row(&ok(&daemon, &["listener", "list"]), &[&address, "-", "yes"]);

        let text = ok(
            &daemon,
            &["listener", kind, "deactivate", "--address", &address],
        );
        assert!(
            text.starts_with(&format!("{title} listener {address} deactivated")),
            "{text}"
        );
        assert_row(&ok(&daemon, &["listener", "list"]), &[&address, "-", "no"]);
        ok(&daemon, &["listener", kind, "activate", "-a", &address]);

        let text = ok(
            &daemon,
            &[
                "listener",
                kind,
                "update",
                "-a",
                &address,
                "--front-timeout",
                "99",
            ],
        );
        assert!(
            text.starts_with(&format!("{title} listener {address} updated")),
            "{text}"
        );
        let listed = ok_json(&daemon, &["listener", "list"]);
        let key = format!("{kind}_listeners");
        assert_eq!(
            listed["LISTENERS_LIST"][&key][&address]["front_timeout"], 99,
            "{listed}"
        );
        if kind == "http" {
            assert_eq!(
                listed["LISTENERS_LIST"][&key][&address]["sticky_name"],
                "OTHER"
            );
        }

        let text = ok(&daemon, &["listener", kind, "remove", "-a", &address]);
        assert!(
            text.starts_with(&format!("{title} listener {address} removed")),
            "{text}"
        );
        assert!(!ok(&daemon, &["listener", "list"]).contains(&address));
        assert_eq!(
            ok_json(&daemon, &["listener", kind, "add", "-a", &address]),
            serde_json::json!({})
        );
        ok_json(&daemon, &["listener", kind, "remove", "-a", &address]);
    }

    // An update of the HTTPS listener's TLS settings.
    ok(
        &daemon,
        &[
            "listener",
            "https",
            "update",
            "-a",
            &https,
            "--alpn-protocols",
            "http/1.1",
        ],
    );
    assert_row(
        &ok(&daemon, &["listener", "list"]),
        &[
            &https,
            "-",
            "yes",
            "no",
            "SOZUBALANCEID",
            "TLSv1.2, TLSv1.3",
            "http/1.1",
        ],
    );

    let message = fails(
        &daemon,
        &["listener", "http", "add", "-a", &http],
        1,
        "failure",
    );
    assert!(message.contains("already exists"), "{message}");
    let unknown = format!("127.0.0.1:{}", free_port());
    fails(
        &daemon,
        &["listener", "tcp", "remove", "-a", &unknown],
        1,
        "failure",
    );
    fails(
        &daemon,
        &["listener", "http", "add", "-a", "nowhere"],
        2,
        "usage",
    );
}

#[test]
fn certificates() {
    let daemon = Daemon::fixture();
    let (_, https, _) = listeners(&daemon);
    let fixture_cert = daemon.path().join("cert.pem").to_str().unwrap().to_owned();
    let fixture_key = daemon.path().join("key.pem").to_str().unwrap().to_owned();
    let fixture = fingerprint(&fixture_cert);
    let other_cert = test_data("other-cert.pem");
    let other_key = test_data("other-key.pem");
    let other = fingerprint(&other_cert);

    let text = ok(&daemon, &["certificate", "list"]);
    assert!(text.starts_with("certificates: "), "{text}");
    assert_row(
        &text,
        &["fingerprint", "names", "TLS versions", "valid until"],
    );
    assert_row(
        &text,
        &[&fixture, "secure.example.com, www.secure.example.com"],
    );

    let text = ok(
        &daemon,
        &[
            "certificate",
            "add",
            "-a",
            &https,
            "--certificate",
            &other_cert,
            "--certificate-chain",
            &other_cert,
            "--key",
            &other_key,
            "--tls-versions",
            "TLS_V13",
        ],
    );
    assert!(
        text.starts_with(&format!("certificate {other} added to {https}")),
        "{text}"
    );
    let list = ok_json(&daemon, &["certificate", "list"]);
    let certs = list["CERTIFICATES_WITH_FINGERPRINTS"]["certs"]
        .as_object()
        .unwrap();
    assert_eq!(certs.len(), 2, "{list}");
    assert_eq!(certs[&other]["versions"], serde_json::json!([5]));

    // By domain (an exact name), by fingerprint (either case), per worker.
    let text = ok(&daemon, &["certificate", "list", "-d", "other.example.org"]);
    assert_row(
        &text,
        &[&other, "other.example.org, *.other.example.org", "TLSv1.3"],
    );
    assert!(!text.contains(&fixture), "{text}");
    let by_fingerprint = ok_json(
        &daemon,
        &["certificate", "list", "-f", &other.to_uppercase()],
    );
    let certs = by_fingerprint["CERTIFICATES_WITH_FINGERPRINTS"]["certs"]
        .as_object()
        .unwrap();
    assert_eq!(
        certs.keys().collect::<Vec<_>>(),
        [&other],
        "{by_fingerprint}"
    );
    assert!(
        ok(&daemon, &["certificate", "list", "-d", "nothing.invalid"]).contains("no certificates")
    );
    let text = ok(&daemon, &["certificate", "list", "-w"]);
    assert_row(&text, &[&https, "other.example.org", &other]);
    assert_row(&text, &[&https, "secure.example.com", &fixture]);
    let workers = ok_json(&daemon, &["certificate", "list", "-w"]);
    let map = workers["WORKER_RESPONSES"]["map"].as_object().unwrap();
    assert!(map.contains_key("0") && map.contains_key("1"), "{workers}");

    // Remove by fingerprint.
    let text = ok(
        &daemon,
        &["certificate", "remove", "-a", &https, "-f", &other],
    );
    assert!(
        text.starts_with(&format!("certificate {other} removed from {https}")),
        "{text}"
    );
    assert!(!ok(&daemon, &["certificate", "list"]).contains(&other));

    // Replace the fixture's certificate (named by its file) by the other,
    // then back (named by fingerprint) with the test data's copy of it.
    let text = ok(
        &daemon,
        &[
            "certificate",
            "replace",
            "-a",
            &https,
            "--new-certificate",
            &other_cert,
            "--new-certificate-chain",
            &other_cert,
            "--new-key",
            &other_key,
            "--old-certificate",
            &fixture_cert,
        ],
    );
    assert!(
        text.starts_with(&format!("certificate {fixture} replaced on {https}")),
        "{text}"
    );
    let text = ok(&daemon, &["certificate", "list"]);
    assert!(text.contains(&other) && !text.contains(&fixture), "{text}");
    let secure_cert = test_data("secure-cert.pem");
    let secure_key = test_data("secure-key.pem");
    assert_eq!(fingerprint(&secure_cert), fixture);
    assert_eq!(
        ok_json(
            &daemon,
            &[
                "certificate",
                "replace",
                "-a",
                &https,
                "--new-certificate",
                &secure_cert,
                "--new-certificate-chain",
                &secure_cert,
                "--new-key",
                &secure_key,
                "-f",
                &other,
            ],
        ),
        serde_json::json!({})
    );
    let text = ok(&daemon, &["certificate", "list"]);
    assert!(!text.contains(&other) && text.contains(&fixture), "{text}");

    // Remove by file: none left.
    assert_eq!(
        ok_json(
            &daemon,
            &[
                "certificate",
                "remove",
                "-a",
                &https,
                "--certificate",
                &fixture_cert
            ]
        ),
        serde_json::json!({})
    );
    assert!(ok(&daemon, &["certificate", "list"]).contains("no certificates"));
    ok(
        &daemon,
        &[
            "certificate",
            "add",
            "-a",
            &https,
            "--certificate",
            &fixture_cert,
            "--certificate-chain",
            &fixture_cert,
            "--key",
            &fixture_key,
        ],
    );

    // Refused by the daemon: no listener there, or no such certificate.
    let nowhere = format!("127.0.0.1:{}", free_port());
    fails(
        &daemon,
        &[
            "certificate",
            "add",
            "-a",
            &nowhere,
            "--certificate",
            &other_cert,
            "--certificate-chain",
            &other_cert,
            "--key",
            &other_key,
        ],
        1,
        "failure",
    );
    fails(
        &daemon,
        &["certificate", "remove", "-a", &https, "-f", &other],
        1,
        "failure",
    );
    // Bad files: refused before sending, naming the flag.
    let garbage = daemon.path().join("garbage.pem");
    std::fs::write(&garbage, "-----BEGIN CERTIFICATE-----\nnot base64\n").unwrap();
    let garbage = garbage.to_str().unwrap();
    let message = fails(
        &daemon,
        &[
            "certificate",
            "add",
            "-a",
            &https,
            "--certificate",
            garbage,
            "--certificate-chain",
            &other_cert,
            "--key",
            &other_key,
        ],
        2,
        "usage",
    );
    assert!(message.starts_with("--certificate: "), "{message}");
    let message = fails(
        &daemon,
        &[
            "certificate",
            "add",
            "-a",
            &https,
            "--certificate",
            &other_cert,
            "--certificate-chain",
            &other_cert,
            "--key",
            "/nonexistent/key.pem",
        ],
        2,
        "usage",
    );
    assert!(message.starts_with("--key: "), "{message}");
    // A key that does not belong to the certificate.
    let message = fails(
        &daemon,
        &[
            "certificate",
            "add",
            "-a",
            &https,
            "--certificate",
            &other_cert,
            "--certificate-chain",
            &other_cert,
            "--key",
            &fixture_key,
        ],
        2,
        "usage",
    );
    assert!(message.contains("--key"), "{message}");
}

#[test]
fn connection_limit() {
    let daemon = Daemon::fixture();
    let text = ok(&daemon, &["connection-limit", "show"]);
    assert!(text.starts_with("connection limit: "), "{text}");
    assert_eq!(
        text.matches("connections per (cluster, source IP): unlimited")
            .count(),
        2,
        "{text}"
    );
    let text = ok(&daemon, &["connection-limit", "set", "100"]);
    assert!(text.starts_with("connection limit set to 100"), "{text}");
    let shown = ok_json(&daemon, &["connection-limit", "show"]);
    for worker in ["0", "1"] {
        assert_eq!(
            shown["WORKER_RESPONSES"]["map"][worker]["content_type"]["MAX_CONNECTIONS_PER_IP_LIMIT"]
                ["limit"],
            100,
            "{shown}"
        );
    }
    let text = ok(&daemon, &["connection-limit", "remove"]);
    assert!(text.starts_with("connection limit lifted"), "{text}");
    assert!(ok(&daemon, &["connection-limit", "show"]).contains("unlimited"));
    assert_eq!(
        ok_json(&daemon, &["connection-limit", "set", "0"]),
        serde_json::json!({})
    );
    fails(&daemon, &["connection-limit", "set", "-5"], 2, "usage");
}

#[test]
fn completions_and_man() {
    let folder = tempfile::tempdir().unwrap();
    for (shell, marker) in [
        ("bash", "complete"),
        ("zsh", "#compdef sozu"),
        ("fish", "complete -c sozu"),
        ("elvish", "edit:completion"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let output = sozu(folder.path(), &["completions", shell]);
        assert_eq!(harness::code(&output), 0, "{shell}");
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(text.contains(marker), "{shell}: {text}");
        // Every family is offered.
        assert!(text.contains("connection-limit"), "{shell}");
    }
    let output = sozu(folder.path(), &["completions", "tcsh"]);
    assert_eq!(harness::code(&output), 2);
    let output = sozu(folder.path(), &["man"]);
    assert_eq!(harness::code(&output), 0);
    let page = String::from_utf8_lossy(&output.stdout);
    assert!(
        page.contains(".TH sozu") && page.contains("certificate"),
        "{page}"
    );
}

/// `-c CONFIG` of a prepared daemon whose socket a fake daemon serves.
fn fake_behind(behaviour: Behaviour) -> Daemon {
    let daemon = Daemon::prepare_fixture();
    drop(FakeDaemon::serve_one(&daemon.socket, behaviour));
    daemon
}

#[test]
fn every_error_kind() {
    // 3: nothing listens on the configured socket.
    let absent = Daemon::prepare_fixture();
    let message = fails(&absent, &["status"], 3, "connect");
    assert!(
        message.contains(absent.socket.to_str().unwrap()),
        "{message}"
    );

    // 4: a daemon that accepts and never answers.
    let silent = fake_behind(Behaviour::Silent(Duration::from_secs(30)));
    let started = std::time::Instant::now();
    let output = silent.sozu(&["-t", "300", "--json", "status"]);
    assert_eq!(harness::code(&output), 4);
    assert_eq!(harness::stdout_json(&output)["error"]["kind"], "timeout");
    assert!(started.elapsed() < Duration::from_secs(10));
    let silent = fake_behind(Behaviour::Silent(Duration::from_secs(30)));
    let output = silent.sozu(&["-t", "300", "cluster", "list"]);
    assert_eq!(harness::code(&output), 4);
    assert!(output.stdout.is_empty());
    assert!(String::from_utf8_lossy(&output.stderr).contains("error"));

    // 5: an answer that is not the protocol.
    let garbage = fake_behind(Behaviour::Answer(
        b"HTTP/1.1 400 Bad Request\r\n\r\n".to_vec(),
    ));
    let output = garbage.sozu(&["--json", "status"]);
    assert_eq!(harness::code(&output), 5);
    assert_eq!(harness::stdout_json(&output)["error"]["kind"], "protocol");
    let hang_up = fake_behind(Behaviour::Answer(Vec::new()));
    let output = hang_up.sozu(&["listener", "list"]);
    assert_eq!(harness::code(&output), 5);
    assert!(output.stdout.is_empty());

    // 1, 2 and the rest against a real daemon.
    let daemon = Daemon::fixture();
    let message = fails(
        &daemon,
        &[
            "backend",
            "add",
            "-i",
            "nosuch",
            "--backend-id",
            "b",
            "-a",
            "127.0.0.1:1",
        ],
        1,
        "failure",
    );
    assert!(message.contains("nosuch"), "{message}");
    // Bad flags.
    fails(&daemon, &["cluster", "add", "-i", "x"], 2, "usage");
    fails(&daemon, &["status", "--no-such-flag"], 2, "usage");
    fails(&daemon, &["-t", "soon", "status"], 2, "usage");
    fails(&daemon, &["no-such-command"], 2, "usage");
    // Bad files.
    fails(&daemon, &["apply", "-f", "missing.toml"], 2, "usage");
    let output = sozu(daemon.path(), &["-c", "missing.toml", "--json", "status"]);
    assert_eq!(harness::code(&output), 2);
    assert_eq!(harness::stdout_json(&output)["error"]["kind"], "usage");
    // The daemon kept serving through all of it.
    ok(&daemon, &["status"]);
}

/// Paths given to the CLI: relative ones are taken against its working
/// directory, not the daemon's.
#[test]
fn relative_paths_are_the_command_lines() {
    let daemon = Daemon::fixture();
    let elsewhere = tempfile::tempdir().unwrap();
    let output = harness::sozu(
        elsewhere.path(),
        &[
            "-c",
            daemon.config.to_str().unwrap(),
            "state",
            "save",
            "-f",
            "here.state",
        ],
    );
    assert_eq!(harness::code(&output), 0);
    assert!(elsewhere.path().join("here.state").is_file());
    assert!(!Path::new(&daemon.path().join("here.state")).exists());
}
