//! A fleet on a real etcd: three real daemons (one worker each), each with
//! its real `sozu fleet agent` process, each node's listeners on its own
//! loopback address through its override. A push reaches every node; a
//! node whose change fails keeps its last good state while the others
//! converge; a daemon and an agent killed with SIGKILL converge after
//! their restart; etcd stopped and restarted mid-rollout loses nothing and
//! applies nothing twice or out of order; two pushes expecting the same
//! revision: one wins.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Output};
use std::time::Duration;

use serde_json::Value;

use crate::harness::{self, Daemon, etcd::Etcd, wait_until};

const PREFIX: &str = "/sozu/e2e";
const ROLLOUT: Duration = Duration::from_secs(30);

struct Node {
    name: String,
    ip: String,
    daemon: Daemon,
    agent: Option<Child>,
    /// One log per agent run.
    logs: Vec<PathBuf>,
}

fn daemon_config() -> String {
    "command_socket = \"sozu.sock\"\nworker_count = 1\nworker_timeout = 5\nlog_level = \"warn\"\n"
        .to_owned()
}

fn fleet(folder: &Path, etcd: &Etcd, arguments: &[&str]) -> Output {
    let mut all = vec!["fleet"];
    all.extend_from_slice(arguments);
    all.extend(["--etcd", &etcd.url, "--prefix", PREFIX]);
    harness::sozu(folder, &all)
}

fn ok(output: Output) -> Output {
    assert!(
        output.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

impl Node {
    fn start_agent(&mut self, etcd: &Etcd) {
        let log = self
            .daemon
            .path()
            .join(format!("agent-{}.log", self.logs.len()));
        let child = harness::sozu_command()
            .args(["-t", "30000", "--socket"])
            .arg(&self.daemon.socket)
            .args(["fleet", "agent", "--node", &self.name])
            .args([
                "--resync",
                "300ms",
                "--heartbeat",
                "300ms",
                "--lease-ttl",
                "3",
            ])
            .args(["--etcd", &etcd.url, "--prefix", PREFIX])
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(log.with_extension("err")).unwrap())
            .spawn()
            .unwrap();
        self.agent = Some(child);
        self.logs.push(log);
    }

    fn kill_agent(&mut self) {
        if let Some(mut agent) = self.agent.take() {
            agent.kill().unwrap();
            agent.wait().unwrap();
        }
    }

    /// The agent's events, every run in order.
    fn events(&self) -> Vec<Value> {
        self.logs
            .iter()
            .flat_map(|log| {
                std::fs::read_to_string(log)
                    .unwrap_or_default()
                    .lines()
                    .filter_map(|line| serde_json::from_str::<Value>(line).ok())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    fn applied(&self) -> Vec<i64> {
        self.events()
            .iter()
            .filter(|event| event["event"] == "applied")
            .map(|event| event["revision"].as_i64().unwrap())
            .collect()
    }

    fn clusters(&self) -> BTreeSet<String> {
        harness::process::cluster_hashes(&self.daemon.socket)
            .and_then(|all| all.get("main").cloned())
            .map(|clusters| clusters.into_keys().collect())
            .unwrap_or_default()
    }

    fn listeners(&self) -> String {
        String::from_utf8_lossy(&self.daemon.sozu(&["--json", "listener", "list"]).stdout)
            .into_owned()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill_agent();
    }
}

fn shared(folder: &Path, port: u16, extra_port: Option<u16>, clusters: &[&str]) -> PathBuf {
    let mut text = format!("[[listeners]]\nprotocol = \"http\"\naddress = \"127.0.0.1:{port}\"\n");
    if let Some(extra) = extra_port {
        text.push_str(&format!(
            "\n[[listeners]]\nprotocol = \"http\"\naddress = \"127.0.0.1:{extra}\"\n"
        ));
    }
    for cluster in clusters {
        text.push_str(&format!(
            "\n[clusters.{cluster}]\nprotocol = \"http\"\nfrontends = [{{ address = \"127.0.0.1:{port}\", hostname = \"{cluster}.example.com\" }}]\nbackends = [{{ address = \"127.0.0.1:9\" }}]\n"
        ));
    }
    let path = folder.join(format!("shared-{}.toml", clusters.len()));
    std::fs::write(&path, text).unwrap();
    path
}

fn push(folder: &Path, etcd: &Etcd, file: &Path) -> i64 {
    let output = ok(fleet(
        folder,
        etcd,
        &["--json", "push", file.to_str().unwrap()],
    ));
    harness::stdout_json(&output)["revision"].as_i64().unwrap()
}

/// The status document: stdout holds it alone, converged or not (a lagging
/// fleet exits 1 and says why on stderr).
fn status(folder: &Path, etcd: &Etcd) -> Value {
    let output = fleet(folder, etcd, &["--json", "status"]);
    let status: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|error| panic!("stdout is not one JSON document ({error}): {output:?}"));
    let converged = status["converged"] == Value::Bool(true);
    assert_eq!(output.status.success(), converged, "{output:?}");
    if !converged {
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("lag or failed"),
            "{output:?}"
        );
    }
    status
}

fn node_status(status: &Value, node: &str) -> Value {
    status["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["node"] == node)
        .cloned()
        .unwrap_or(Value::Null)
}

fn converged(folder: &Path, etcd: &Etcd, nodes: &[&Node], revision: i64) -> bool {
    let status = status(folder, etcd);
    nodes.iter().all(|node| {
        let row = node_status(&status, &node.name);
        row["revision"] == revision && row["converged"] == true
    })
}

fn wait_converged(folder: &Path, etcd: &Etcd, nodes: &[&Node], revision: i64, what: &str) {
    assert!(
        wait_until(ROLLOUT, || converged(folder, etcd, nodes, revision)),
        "{what}: not every node reached revision {revision}: {}\n{}",
        status(folder, etcd),
        nodes
            .iter()
            .map(|node| format!("{}: {:?}", node.name, node.events()))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn a_fleet_converges_through_failures_restarts_and_an_etcd_outage() {
    let Some(mut etcd) = Etcd::start() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let folder = work.path();
    let port = harness::free_port();
    let extra = harness::free_port();

    let mut nodes: Vec<Node> = (0..3)
        .map(|index| Node {
            name: format!("node{}", index + 1),
            ip: format!("127.0.0.{}", index + 2),
            daemon: Daemon::start(&daemon_config()),
            agent: None,
            logs: Vec::new(),
        })
        .collect();
    // Each node's listeners on its own loopback address.
    for node in &nodes {
        let path = folder.join(format!("{}.toml", node.name));
        std::fs::write(
            &path,
            format!(
                "[fleet.addresses]\n\"127.0.0.1:{port}\" = \"{ip}:{port}\"\n\"127.0.0.1:{extra}\" = \"{ip}:{extra}\"\n",
                ip = node.ip
            ),
        )
        .unwrap();
        ok(fleet(
            folder,
            &etcd,
            &["push", "--node", &node.name, path.to_str().unwrap()],
        ));
    }
    let first = push(folder, &etcd, &shared(folder, port, None, &["a"]));
    for node in &mut nodes {
        node.start_agent(&etcd);
    }
    // A push reaches every node; status --wait says so with exit 0.
    ok(fleet(
        folder,
        &etcd,
        &["status", "--wait", "30s", "--nodes", "3"],
    ));
    wait_converged(
        folder,
        &etcd,
        &nodes.iter().collect::<Vec<_>>(),
        first,
        "first push",
    );
    for node in &nodes {
        assert_eq!(node.clusters(), BTreeSet::from(["a".to_owned()]));
        assert!(
            node.listeners().contains(&format!("{}:{port}", node.ip)),
            "{}",
            node.listeners()
        );
    }

    // node3's new listener address is held by another process: its change
    // fails there and is rolled back; the others converge.
    let blocker = std::net::TcpListener::bind(format!("{}:{extra}", nodes[2].ip)).unwrap();
    let second = push(
        folder,
        &etcd,
        &shared(folder, port, Some(extra), &["a", "b"]),
    );
    wait_converged(
        folder,
        &etcd,
        &[&nodes[0], &nodes[1]],
        second,
        "second push",
    );
    assert!(
        wait_until(ROLLOUT, || {
            let row = node_status(&status(folder, &etcd), "node3");
            row["failed_revision"] == second && row["revision"] == first
        }),
        "node3 did not report its failure: {}",
        status(folder, &etcd)
    );
    let row = node_status(&status(folder, &etcd), "node3");
    assert!(
        row["error"].as_str().unwrap().contains(&extra.to_string()),
        "{row}"
    );
    assert_eq!(harness::code(&fleet(folder, &etcd, &["status"])), 1);
    assert_eq!(nodes[2].clusters(), BTreeSet::from(["a".to_owned()]));
    assert!(!nodes[2].listeners().contains(&extra.to_string()));
    // Not retried in a loop: several resync periods later, one failure.
    std::thread::sleep(Duration::from_secs(1));
    let failures = nodes[2]
        .events()
        .iter()
        .filter(|event| event["event"] == "failed")
        .count();
    assert_eq!(failures, 1, "{:?}", nodes[2].events());
    drop(blocker);

    // kill -9 of node1's daemon and node2's agent, two pushes meanwhile.
    let pid = nodes[0].daemon.child.as_ref().unwrap().id() as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    nodes[0].daemon.wait_exit(Duration::from_secs(10));
    nodes[1].kill_agent();
    push(
        folder,
        &etcd,
        &shared(folder, port, Some(extra), &["a", "b", "c"]),
    );
    let fourth = push(
        folder,
        &etcd,
        &shared(folder, port, Some(extra), &["a", "b", "c", "d"]),
    );
    assert!(wait_until(Duration::from_secs(10), || {
        harness::process::sozu_processes_in(nodes[0].daemon.path()).is_empty()
    }));
    let _ = std::fs::remove_file(&nodes[0].daemon.socket);
    nodes[0].daemon.spawn();
    nodes[1].start_agent(&etcd);
    wait_converged(
        folder,
        &etcd,
        &nodes.iter().collect::<Vec<_>>(),
        fourth,
        "after the kills",
    );
    let expected: BTreeSet<String> = ["a", "b", "c", "d"].map(str::to_owned).into();
    for node in &nodes {
        assert_eq!(node.clusters(), expected, "{}", node.name);
    }
    // The restarted agent went straight to the latest revision.
    let restarted = std::fs::read_to_string(nodes[1].logs.last().unwrap()).unwrap();
    assert!(
        restarted.contains(&format!("\"revision\":{fourth}")),
        "{restarted}"
    );

    // etcd stopped and restarted in the middle of a rollout.
    let fifth = push(
        folder,
        &etcd,
        &shared(folder, port, Some(extra), &["a", "b", "c", "d", "e"]),
    );
    etcd.stop();
    // Meanwhile every node keeps serving what it has.
    for node in &nodes {
        assert!(node.clusters().is_superset(&expected), "{}", node.name);
    }
    std::thread::sleep(Duration::from_millis(1500));
    etcd.spawn();
    let sixth = push(
        folder,
        &etcd,
        &shared(folder, port, Some(extra), &["a", "b", "c", "d", "e", "f"]),
    );
    wait_converged(
        folder,
        &etcd,
        &nodes.iter().collect::<Vec<_>>(),
        sixth,
        "after etcd's restart",
    );
    let history = harness::stdout_json(&ok(fleet(folder, &etcd, &["--json", "history"])));
    let revisions: Vec<i64> = history["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["revision"].as_i64().unwrap())
        .collect();
    assert!(
        revisions.contains(&fifth) && revisions.contains(&sixth),
        "{history}"
    );
    for node in &nodes {
        let applied = node.applied();
        assert!(
            applied.windows(2).all(|pair| pair[0] < pair[1]),
            "{}: applied out of order or twice: {applied:?}",
            node.name
        );
        assert_eq!(node.clusters().len(), 6, "{}", node.name);
    }

    // Two pushes expecting the same revision: one wins.
    let file = shared(folder, port, None, &["x"]);
    let expect = sixth.to_string();
    let pushes: Vec<Child> = (0..2)
        .map(|_| {
            harness::sozu_command()
                .args([
                    "fleet",
                    "push",
                    file.to_str().unwrap(),
                    "--expect-revision",
                    &expect,
                ])
                .args(["--etcd", &etcd.url, "--prefix", PREFIX])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs: Vec<Output> = pushes
        .into_iter()
        .map(|child| child.wait_with_output().unwrap())
        .collect();
    let codes: Vec<i32> = outputs.iter().map(harness::code).collect();
    assert!(codes.contains(&0) && codes.contains(&1), "{outputs:?}");
    let refused = outputs
        .iter()
        .find(|output| !output.status.success())
        .unwrap();
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("someone else pushed"),
        "{refused:?}"
    );
}

#[test]
fn rollback_history_and_diff() {
    let Some(etcd) = Etcd::start() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let folder = work.path();
    let port = harness::free_port();
    let one = push(folder, &etcd, &shared(folder, port, None, &["a"]));
    let file = shared(folder, port, None, &["a", "b"]);
    let diff = harness::stdout_json(&ok(fleet(
        folder,
        &etcd,
        &["--json", "diff", file.to_str().unwrap()],
    )));
    assert_eq!(diff["summary"]["add"], 3, "{diff}");
    let two = push(folder, &etcd, &file);
    let back = harness::stdout_json(&ok(fleet(
        folder,
        &etcd,
        &["--json", "push", "--revision", &one.to_string()],
    )));
    let three = back["revision"].as_i64().unwrap();
    assert!(three > two);
    let history = harness::stdout_json(&ok(fleet(folder, &etcd, &["--json", "history"])));
    assert_eq!(history["current"], three);
    assert_eq!(history["history"][2]["rollback_of"], one, "{history}");
    // The desired state is revision one's again: its file diffs to nothing.
    let first = shared(folder, port, None, &["a"]);
    let diff = harness::stdout_json(&ok(fleet(
        folder,
        &etcd,
        &["--json", "diff", first.to_str().unwrap()],
    )));
    assert_eq!(diff["plan"].as_array().unwrap().len(), 0, "{diff}");
    // Bad input is named.
    let missing = fleet(folder, &etcd, &["push", "--revision", "999999"]);
    assert_eq!(harness::code(&missing), 2);
    assert!(String::from_utf8_lossy(&missing.stderr).contains("--revision 999999"));
    let bad = folder.join("bad.toml");
    std::fs::write(&bad, "[fleet]\nnodes = 3\n").unwrap();
    let refused = fleet(
        folder,
        &etcd,
        &["push", "--node", "n1", bad.to_str().unwrap()],
    );
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("fleet.nodes"),
        "{refused:?}"
    );
    // No node reports yet: status is not converged.
    assert_eq!(harness::code(&fleet(folder, &etcd, &["status"])), 1);
}

/// Certificates end up in etcd: the fleet works with an etcd that requires
/// a user and password and TLS with client certificates, and says what is
/// wrong when a credential is missing.
#[test]
fn an_etcd_with_authentication_and_tls() {
    let Some(mut etcd) = Etcd::start() else {
        return;
    };
    etcd.enable_auth("s3cret");
    let tls = etcd.restart_with_tls();
    let work = tempfile::tempdir().unwrap();
    let folder = work.path();
    let file = shared(folder, harness::free_port(), None, &["a"]);
    let (ca, cert, key) = (
        tls.ca.to_str().unwrap(),
        tls.cert.to_str().unwrap(),
        tls.key.to_str().unwrap(),
    );
    let secured = |extra: &[&str]| {
        let mut arguments = vec!["--etcd-ca", ca, "--etcd-cert", cert, "--etcd-key", key];
        arguments.extend_from_slice(extra);
        fleet(folder, &etcd, &arguments)
    };
    // Without a password: refused by etcd, and said so (once it answers).
    let mut refused = None;
    assert!(wait_until(ROLLOUT, || {
        let output = secured(&["history"]);
        let done = harness::code(&output) == 1;
        refused = Some(output);
        done
    }));
    let refused = refused.unwrap();
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("etcd refused"),
        "{refused:?}"
    );
    // Without the client certificate: no connection.
    let no_cert = fleet(folder, &etcd, &["--etcd-ca", ca, "history"]);
    assert_eq!(harness::code(&no_cert), 3, "{no_cert:?}");
    // A half-given certificate pair is a usage error naming the flags.
    let half = fleet(
        folder,
        &etcd,
        &["--etcd-ca", ca, "--etcd-cert", cert, "history"],
    );
    assert_eq!(harness::code(&half), 2);
    assert!(String::from_utf8_lossy(&half.stderr).contains("--etcd-key"));

    let user = ["--etcd-user", "root", "--etcd-password", "s3cret"];
    let mut push = vec!["--json", "push", file.to_str().unwrap()];
    push.extend(user);
    let revision = harness::stdout_json(&ok(secured(&push)))["revision"]
        .as_i64()
        .unwrap();
    let mut node = Node {
        name: "secure".to_owned(),
        ip: "127.0.0.1".to_owned(),
        daemon: Daemon::start(&daemon_config()),
        agent: None,
        logs: Vec::new(),
    };
    let log = node.daemon.path().join("agent-0.log");
    node.agent = Some(
        harness::sozu_command()
            .args(["-t", "30000", "--socket"])
            .arg(&node.daemon.socket)
            .args(["fleet", "agent", "--node", "secure", "--resync", "300ms"])
            .args(["--heartbeat", "300ms", "--lease-ttl", "3"])
            .args(["--etcd", &etcd.url, "--prefix", PREFIX])
            .args(["--etcd-ca", ca, "--etcd-cert", cert, "--etcd-key", key])
            .env("SOZU_ETCD_USER", "root")
            .env("SOZU_ETCD_PASSWORD", "s3cret")
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(log.with_extension("err")).unwrap())
            .spawn()
            .unwrap(),
    );
    node.logs.push(log);
    let mut wait = vec!["status", "--wait", "30s"];
    wait.extend(user);
    ok(secured(&wait));
    assert_eq!(node.applied(), vec![revision]);
    assert_eq!(node.clusters(), BTreeSet::from(["a".to_owned()]));
}
