//! The command line against this project's own daemon, started as a real
//! process with `sozu start -c <temporary config>` on the Sōzu fixture
//! configuration (HTTP, HTTPS and TCP listeners). The command families are
//! covered one by one in `cli_e2e.rs`; this is the short round trip.

use crate::harness;

use harness::{Daemon, code, stdout_json};

#[test]
fn status_and_a_cluster_round_trip() {
    let daemon = Daemon::fixture();
    let run = |arguments: &[&str]| {
        let mut all = vec!["--json"];
        all.extend_from_slice(arguments);
        daemon.sozu(&all)
    };
    let status = run(&["status"]);
    assert_eq!(code(&status), 0);
    assert_eq!(
        stdout_json(&status)["WORKERS"]["vec"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    let added = run(&[
        "cluster",
        "add",
        "-i",
        "e2e",
        "--load-balancing-policy",
        "random",
    ]);
    assert_eq!(
        code(&added),
        0,
        "{}",
        String::from_utf8_lossy(&added.stdout)
    );
    let listed = stdout_json(&run(&["cluster", "list", "-i", "e2e"]));
    assert!(listed.to_string().contains("\"e2e\""), "{listed}");

    // The daemon holds exactly the file plus the new cluster.
    let plan = stdout_json(&run(&[
        "diff",
        "--prune",
        "-f",
        daemon.config.to_str().unwrap(),
    ]));
    assert_eq!(plan["summary"]["remove"], 1, "{plan}");
}
