//! The command line against this project's own daemon, started as a real
//! process with `sozu start -c <temporary config>`.
//!
//! It starts the daemon on the Sōzu fixture configuration (HTTP, HTTPS and
//! TCP listeners). New end-to-end tests go here, built on `common::Daemon`
//! and `common::sozu`.

mod common;

use std::time::Duration;

use common::{Daemon, TestConfig, code, sozu, stdout_json};

#[test]
fn status_and_a_cluster_round_trip() {
    let config = TestConfig::from_fixture();
    let _daemon = Daemon::start(&config, Duration::from_secs(20)).expect("the daemon starts");
    let run = |arguments: &[&str]| {
        let mut all = vec!["-c", config.path.to_str().unwrap(), "--json"];
        all.extend_from_slice(arguments);
        sozu(config.folder.path(), &all)
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
        config.path.to_str().unwrap(),
    ]));
    assert_eq!(plan["summary"]["remove"], 1, "{plan}");
}
