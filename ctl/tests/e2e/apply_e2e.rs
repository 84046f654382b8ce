//! `diff` and `apply --prune` against this project's daemon on a realistic
//! change set: clusters, frontends, backends and certificates added,
//! changed and removed, plus a new listener. The plan is printed, applying
//! it converges (the live state rebuilt from the listings equals the file,
//! and equals what a daemon started on that file holds), a second apply
//! sends nothing, and clients of an unchanged frontend never see an error
//! while the plan is applied.

use crate::harness;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use harness::backend::Backend;
use harness::{Daemon, client, code, free_port, stdout_json};
use serde_json::Value;

/// The listener ports of both configurations.
struct Ports {
    http: u16,
    https: u16,
    tcp: u16,
    /// An HTTPS listener only the desired file has.
    https_new: u16,
}

/// The real backends that answer with their names.
struct Backends {
    stable: Backend,
    c1: Backend,
    c2: Backend,
    c3: Backend,
    f1: Backend,
}

/// The starting configuration (`desired == false`) or the desired one.
///
/// - `stable`: the same in both (the one the client stream uses);
/// - `changed`: other policy and stickiness, a backend's weight changed,
///   one backend replaced by another, its frontend's path changed and a
///   second frontend added;
/// - `gone` and `legacy` (with its certificate on the HTTPS listener): only
///   at the start;
/// - `fresh` (an HTTP frontend, an HTTPS one on the new listener with a
///   certificate, two backends): only in the desired file;
/// - `secure`: its certificate's TLS versions change;
/// - `db` (TCP): its backend moves to another port.
fn config(ports: &Ports, backends: &Backends, desired: bool) -> String {
    let Ports {
        http,
        https,
        tcp,
        https_new,
    } = ports;
    let mut text = format!(
        r#"command_socket = "sozu.sock"
worker_count = 2
worker_timeout = 5
log_level = "warn"

[[listeners]]
protocol = "http"
address = "127.0.0.1:{http}"

[[listeners]]
protocol = "https"
address = "127.0.0.1:{https}"

[[listeners]]
protocol = "tcp"
address = "127.0.0.1:{tcp}"
"#
    );
    if desired {
        text.push_str(&format!(
            "\n[[listeners]]\nprotocol = \"https\"\naddress = \"127.0.0.1:{https_new}\"\n"
        ));
    }
    text.push_str(&format!(
        r#"
[clusters.stable]
protocol = "http"
frontends = [ {{ address = "127.0.0.1:{http}", hostname = "stable.test" }} ]
backends = [ {{ address = "{stable}", backend_id = "stable-1" }} ]
"#,
        stable = backends.stable.address
    ));
    if desired {
        text.push_str(&format!(
            r#"
[clusters.changed]
protocol = "http"
load_balancing = "RANDOM"
sticky_session = true
frontends = [
  {{ address = "127.0.0.1:{http}", hostname = "changed.test", path = "/v2" }},
  {{ address = "127.0.0.1:{http}", hostname = "changed2.test" }},
]
backends = [
  {{ address = "{c1}", backend_id = "c1", weight = 50 }},
  {{ address = "{c3}", backend_id = "c3" }},
]

[clusters.fresh]
protocol = "http"
frontends = [
  {{ address = "127.0.0.1:{http}", hostname = "fresh.test" }},
  {{ address = "127.0.0.1:{https_new}", hostname = "www.other.example.org", certificate = "other-cert.pem", key = "other-key.pem" }},
]
backends = [
  {{ address = "{f1}", backend_id = "f1" }},
  {{ address = "127.0.0.1:9801", backend_id = "f2" }},
]

[clusters.secure]
protocol = "http"
frontends = [ {{ address = "127.0.0.1:{https}", hostname = "secure.example.com", certificate = "cert.pem", key = "key.pem", tls_versions = ["TLS_V13"] }} ]
backends = [ {{ address = "127.0.0.1:9701", backend_id = "secure-1" }} ]

[clusters.db]
protocol = "tcp"
frontends = [ {{ address = "127.0.0.1:{tcp}" }} ]
backends = [ {{ address = "127.0.0.1:5433", backend_id = "db-1" }} ]
"#,
            c1 = backends.c1.address,
            c3 = backends.c3.address,
            f1 = backends.f1.address,
        ));
    } else {
        text.push_str(&format!(
            r#"
[clusters.changed]
protocol = "http"
load_balancing = "ROUND_ROBIN"
frontends = [ {{ address = "127.0.0.1:{http}", hostname = "changed.test", path = "/" }} ]
backends = [
  {{ address = "{c1}", backend_id = "c1", weight = 100 }},
  {{ address = "{c2}", backend_id = "c2" }},
]

[clusters.gone]
protocol = "http"
frontends = [ {{ address = "127.0.0.1:{http}", hostname = "gone.test" }} ]
backends = [ {{ address = "127.0.0.1:9501", backend_id = "gone-1" }} ]

[clusters.legacy]
protocol = "http"
frontends = [ {{ address = "127.0.0.1:{https}", hostname = "other.example.org", certificate = "other-cert.pem", key = "other-key.pem" }} ]
backends = [ {{ address = "127.0.0.1:9601", backend_id = "legacy-1" }} ]

[clusters.secure]
protocol = "http"
frontends = [ {{ address = "127.0.0.1:{https}", hostname = "secure.example.com", certificate = "cert.pem", key = "key.pem" }} ]
backends = [ {{ address = "127.0.0.1:9701", backend_id = "secure-1" }} ]

[clusters.db]
protocol = "tcp"
frontends = [ {{ address = "127.0.0.1:{tcp}" }} ]
backends = [ {{ address = "127.0.0.1:5432", backend_id = "db-1" }} ]
"#,
            c1 = backends.c1.address,
            c2 = backends.c2.address,
        ));
    }
    text
}

/// A folder holding both certificates and their keys.
fn folder_with_certificates() -> tempfile::TempDir {
    let folder = tempfile::tempdir().unwrap();
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../command-lib/tests/data");
    for (from, to) in [
        (harness::fixtures().join("cert.pem"), "cert.pem"),
        (harness::fixtures().join("key.pem"), "key.pem"),
        (data.join("other-cert.pem"), "other-cert.pem"),
        (data.join("other-key.pem"), "other-key.pem"),
    ] {
        std::fs::copy(from, folder.path().join(to)).unwrap();
    }
    folder
}

fn json(daemon: &Daemon, arguments: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(arguments);
    let output = daemon.sozu(&all);
    assert_eq!(
        code(&output),
        0,
        "sozu {all:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    stdout_json(&output)
}

fn text(daemon: &Daemon, arguments: &[&str]) -> String {
    let output = daemon.sozu(arguments);
    assert_eq!(
        code(&output),
        0,
        "sozu {arguments:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn plan_size(plan: &Value) -> u64 {
    ["add", "change", "remove"]
        .iter()
        .map(|key| plan["summary"][key].as_u64().unwrap())
        .sum()
}

/// The plan's steps as (action, kind, description).
fn steps(plan: &Value) -> Vec<(String, String, String)> {
    plan["plan"]
        .as_array()
        .unwrap()
        .iter()
        .map(|step| {
            (
                step["action"].as_str().unwrap().to_owned(),
                step["kind"].as_str().unwrap().to_owned(),
                step["description"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The index of the step of `kind` whose description contains `what`.
fn step(steps: &[(String, String, String)], kind: &str, what: &str) -> usize {
    steps
        .iter()
        .position(|(_, k, description)| k == kind && description.contains(what))
        .unwrap_or_else(|| panic!("no {kind} step for {what:?} in {steps:#?}"))
}

/// A state file's records, ids dropped, in a set.
fn records(path: &Path) -> BTreeSet<String> {
    let bytes = std::fs::read(path).unwrap();
    String::from_utf8(bytes)
        .unwrap()
        .split('\0')
        .map(str::trim)
        .filter(|record| !record.is_empty())
        .map(|record| {
            let mut value: Value = serde_json::from_str(record).unwrap();
            value.as_object_mut().unwrap().remove("id");
            value.to_string()
        })
        .collect()
}

/// Clients of `host` on `port` until stopped: one thread opens a new
/// connection per request, another keeps one connection alive. Counts
/// answers and failures (anything but a 200).
struct ClientStream {
    stop: Arc<AtomicBool>,
    answered: Arc<AtomicUsize>,
    failures: Arc<std::sync::Mutex<Vec<String>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl ClientStream {
    fn start(port: u16, host: &'static str) -> ClientStream {
        let stop = Arc::new(AtomicBool::new(false));
        let answered = Arc::new(AtomicUsize::new(0));
        let failures = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut threads = Vec::new();
        for keep_alive in [false, true] {
            let (stop, answered, failures) = (
                Arc::clone(&stop),
                Arc::clone(&answered),
                Arc::clone(&failures),
            );
            threads.push(std::thread::spawn(move || {
                let mut connection = keep_alive.then(|| client::Connection::open(port));
                while !stop.load(Ordering::SeqCst) {
                    let status = match connection.as_mut() {
                        Some(connection) => connection
                            .send(format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes())
                            .and_then(|()| connection.answer())
                            .map(|answer| answer.status)
                            .ok(),
                        None => client::try_get(port, host, "/"),
                    };
                    match status {
                        Some(200) => {
                            answered.fetch_add(1, Ordering::SeqCst);
                        }
                        other => {
                            let kind = if keep_alive {
                                "keep-alive"
                            } else {
                                "new connection"
                            };
                            failures.lock().unwrap().push(format!("{kind}: {other:?}"));
                            if keep_alive {
                                // Carry on with a new connection.
                                connection = Some(client::Connection::open(port));
                            }
                        }
                    }
                }
            }));
        }
        ClientStream {
            stop,
            answered,
            failures,
            threads,
        }
    }

    fn answered(&self) -> usize {
        self.answered.load(Ordering::SeqCst)
    }

    fn finish(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        for thread in self.threads {
            thread.join().unwrap();
        }
        let failures = self.failures.lock().unwrap().clone();
        (self.answered.load(Ordering::SeqCst), failures)
    }
}

#[test]
fn apply_converges_on_a_realistic_change_set_without_a_routing_gap() {
    let ports = Ports {
        http: free_port(),
        https: free_port(),
        tcp: free_port(),
        https_new: free_port(),
    };
    let backends = Backends {
        stable: Backend::start("stable"),
        c1: Backend::start("c1"),
        c2: Backend::start("c2"),
        c3: Backend::start("c3"),
        f1: Backend::start("f1"),
    };
    let folder = folder_with_certificates();
    let desired_path = folder.path().join("desired.toml");
    std::fs::write(&desired_path, config(&ports, &backends, true)).unwrap();
    let mut daemon = Daemon::start_in(folder, &config(&ports, &backends, false));
    let desired = desired_path.to_str().unwrap();
    let https = format!("127.0.0.1:{}", ports.https);
    let https_new = format!("127.0.0.1:{}", ports.https_new);
    let tcp = format!("127.0.0.1:{}", ports.tcp);

    // Before: the starting configuration routes.
    assert_eq!(client::get(ports.http, "changed.test", "/").status, 200);

    // -- the plan, for people and for scripts
    let shown = text(&daemon, &["diff", "--prune", "-f", desired]);
    assert!(shown.starts_with("plan: "), "{shown}");
    for what in [
        "cluster fresh",
        "cluster gone",
        "cluster legacy",
        "backend changed/c3",
    ] {
        assert!(shown.contains(what), "{what} is not in the plan:\n{shown}");
    }
    let plan = json(&daemon, &["diff", "--prune", "-f", desired]);
    let planned = steps(&plan);
    let add_listener = step(&planned, "ADD_HTTPS_LISTENER", &https_new);
    let add_fresh = step(&planned, "ADD_CLUSTER", "cluster fresh");
    let change_changed = step(&planned, "ADD_CLUSTER", "cluster changed");
    let add_c3 = step(&planned, "ADD_BACKEND", "changed/c3");
    let weight_c1 = step(&planned, "ADD_BACKEND", "changed/c1");
    let add_f1 = step(&planned, "ADD_BACKEND", "fresh/f1");
    let add_db = step(&planned, "ADD_BACKEND", "db/db-1 127.0.0.1:5433");
    let add_v2 = step(&planned, "ADD_HTTP_FRONTEND", "changed.test /v2");
    let add_changed2 = step(&planned, "ADD_HTTP_FRONTEND", "changed2.test");
    let add_fresh_https = step(&planned, "ADD_HTTPS_FRONTEND", "www.other.example.org");
    let add_certificate = step(&planned, "ADD_CERTIFICATE", &https_new);
    let replace_certificate = step(&planned, "REPLACE_CERTIFICATE", &https);
    let remove_certificate = step(&planned, "REMOVE_CERTIFICATE", &https);
    let remove_gone = step(&planned, "REMOVE_CLUSTER", "cluster gone");
    let remove_legacy = step(&planned, "REMOVE_CLUSTER", "cluster legacy");
    let remove_c2 = step(&planned, "REMOVE_BACKEND", "changed/c2");
    let remove_old_db = step(&planned, "REMOVE_BACKEND", "db/db-1 127.0.0.1:5432");
    let remove_root = step(&planned, "REMOVE_HTTP_FRONTEND", "changed.test / ->");
    assert_eq!(planned[change_changed].0, "change");
    assert_eq!(planned[weight_c1].0, "change");
    assert_eq!(planned[replace_certificate].0, "change");
    assert_eq!(planned[remove_certificate].0, "remove");
    assert!(
        !planned.iter().any(|(_, _, what)| what.contains("stable")),
        "{planned:#?}"
    );
    // What is added comes first, what is removed last; a listener before
    // the frontends and certificates that use it, a cluster before its
    // backends, a certificate before the HTTPS frontend that needs it.
    let last_add = planned
        .iter()
        .rposition(|(action, ..)| action == "add")
        .unwrap();
    let first_remove = planned
        .iter()
        .position(|(action, ..)| action == "remove")
        .unwrap();
    assert!(last_add < first_remove, "{planned:#?}");
    assert!(add_listener < add_certificate && add_listener < add_fresh_https);
    assert!(add_fresh < add_f1 && add_certificate < add_fresh_https);
    assert!(add_c3 < remove_c2 && add_db < remove_old_db && add_v2 < remove_root);
    assert!(add_changed2 < remove_gone && add_fresh < remove_legacy);
    assert_eq!(
        plan["summary"]["kept"], 0,
        "with --prune nothing is kept: {plan}"
    );
    let total = plan_size(&plan);
    assert_eq!(total as usize, planned.len());

    // -- apply, with clients of the unchanged frontend running
    let before = json(&daemon, &["state", "stats"]);
    let stream = ClientStream::start(ports.http, "stable.test");
    assert!(harness::wait_until(Duration::from_secs(10), || stream
        .answered()
        >= 20));
    let during_start = stream.answered();
    let output = daemon.sozu(&["apply", "--prune", "-f", desired]);
    let during = stream.answered() - during_start;
    // A little more traffic after the last step.
    let after_start = stream.answered();
    assert!(harness::wait_until(Duration::from_secs(10), || {
        stream.answered() >= after_start + 20
    }));
    let (answered, failures) = stream.finish();
    let shown = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        code(&output),
        0,
        "{shown}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(shown.starts_with("plan: "), "{shown}");
    assert!(shown.contains(&format!("[1/{total}] add ")), "{shown}");
    assert!(
        shown.contains(&format!("[{total}/{total}] remove ")),
        "{shown}"
    );
    assert!(
        shown
            .trim_end()
            .ends_with(&format!("applied {total} step(s)")),
        "{shown}"
    );
    // (How many ran during the apply itself depends on the scheduler of a
    // loaded machine; the stream runs before, during and after it.)
    assert!(
        failures.is_empty(),
        "{} of {answered} requests failed ({during} during the apply): {failures:?}",
        failures.len()
    );

    // -- converged: nothing left to do, the listings show the file
    let again = json(&daemon, &["diff", "--prune", "-f", desired]);
    assert_eq!(plan_size(&again), 0, "{again}");
    assert_eq!(
        text(&daemon, &["diff", "--prune", "-f", desired])
            .lines()
            .next(),
        Some("nothing to do: the live configuration matches the file")
    );
    let hashes = json(&daemon, &["cluster", "list"]);
    let ids: Vec<&String> =
        hashes["WORKER_RESPONSES"]["map"]["main"]["content_type"]["CLUSTER_HASHES"]["map"]
            .as_object()
            .unwrap()
            .keys()
            .collect();
    assert_eq!(
        ids,
        ["changed", "db", "fresh", "secure", "stable"],
        "{hashes}"
    );
    let changed = json(&daemon, &["cluster", "list", "-i", "changed"]);
    let changed = &changed["WORKER_RESPONSES"]["map"]["main"]["content_type"]["CLUSTERS"]["vec"][0];
    assert_eq!(changed["configuration"]["load_balancing"], 1, "{changed}");
    assert_eq!(changed["configuration"]["sticky_session"], true);
    let backend_ids: BTreeSet<(String, u64)> = changed["backends"]
        .as_array()
        .unwrap()
        .iter()
        .map(|backend| {
            (
                backend["backend_id"].as_str().unwrap().to_owned(),
                backend["load_balancing_parameters"]["weight"]
                    .as_u64()
                    .unwrap(),
            )
        })
        .collect();
    assert_eq!(
        backend_ids,
        [("c1".to_owned(), 50), ("c3".to_owned(), 100)]
            .into_iter()
            .collect()
    );
    let frontends = json(&daemon, &["frontend", "list"]);
    let listed = frontends.to_string();
    for absent in ["gone.test", "\"other.example.org\""] {
        assert!(
            !listed.contains(absent),
            "{absent} still listed: {frontends}"
        );
    }
    for present in ["changed2.test", "fresh.test", "www.other.example.org"] {
        assert!(
            listed.contains(present),
            "{present} not listed: {frontends}"
        );
    }
    let listeners = json(&daemon, &["listener", "list"]);
    assert_eq!(
        listeners["LISTENERS_LIST"]["https_listeners"][&https_new]["active"], true,
        "{listeners}"
    );
    let placed = text(&daemon, &["certificate", "list", "-w"]);
    assert!(
        placed
            .lines()
            .any(|line| line.contains(&https_new) && line.contains("other.example.org")),
        "{placed}"
    );
    assert!(
        !placed
            .lines()
            .any(|line| line.contains(&https) && line.contains("other.example.org")),
        "{placed}"
    );
    let certificates = json(
        &daemon,
        &["certificate", "list", "-d", "secure.example.com"],
    );
    let secure = certificates["CERTIFICATES_WITH_FINGERPRINTS"]["certs"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap()
        .clone();
    assert_eq!(secure["versions"], serde_json::json!([5]), "{certificates}");
    assert!(text(&daemon, &["frontend", "list", "--tcp"]).contains(&tcp));

    // Traffic follows the new routes.
    let who = |host: &str, path: &str| {
        let answer = client::get(ports.http, host, path);
        if answer.status == 200 {
            answer.text()
        } else {
            answer.status.to_string()
        }
    };
    assert!(["c1", "c3"].contains(&who("changed2.test", "/").as_str()));
    assert!(["c1", "c3"].contains(&who("changed.test", "/v2/x").as_str()));
    assert_eq!(who("changed.test", "/"), "404");
    assert_eq!(who("fresh.test", "/"), "f1");
    assert_eq!(who("gone.test", "/"), "404");
    assert_eq!(
        backends.c2.served(),
        0,
        "the removed backend was never chosen after"
    );

    // -- a second apply sends nothing
    let second = json(&daemon, &["apply", "--prune", "-f", desired]);
    assert_eq!(plan_size(&second), 0, "{second}");
    assert_eq!(second["applied"], 0);
    let after = json(&daemon, &["state", "stats"]);
    let counts = |stats: &Value| stats["REQUEST_COUNTS"]["map"].as_object().unwrap().clone();
    let (first_counts, second_counts) = (counts(&before), counts(&after));
    let listing = [
        "LIST_LISTENERS",
        "LIST_FRONTENDS",
        "QUERY_CLUSTERS_HASHES",
        "QUERY_CLUSTER_BY_ID",
        "QUERY_CERTIFICATES_FROM_THE_STATE",
        "QUERY_CERTIFICATES_FROM_WORKERS",
        "COUNT_REQUESTS",
        "SAVE_STATE",
    ];
    let sent: u64 = second_counts
        .iter()
        .filter(|(kind, _)| !listing.contains(&kind.as_str()))
        .map(|(kind, count)| {
            count.as_u64().unwrap() - first_counts.get(kind).and_then(Value::as_u64).unwrap_or(0)
        })
        .sum();
    // Only the first apply's steps changed anything.
    assert_eq!(sent, total, "{first_counts:?} -> {second_counts:?}");

    // -- the same state as a daemon started on the desired file
    json(&daemon, &["state", "save", "-f", "applied.state"]);
    let applied = records(&daemon.path().join("applied.state"));
    daemon.stop();
    let started = Daemon::start_in(
        folder_with_certificates(),
        &std::fs::read_to_string(&desired_path).unwrap(),
    );
    json(&started, &["state", "save", "-f", "started.state"]);
    let reference = records(&started.path().join("started.state"));
    assert_eq!(
        applied.symmetric_difference(&reference).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "the applied state differs from the desired file's"
    );
}
