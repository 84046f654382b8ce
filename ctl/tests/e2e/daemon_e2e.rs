//! The command line against this project's own daemon, started as a real
//! process with `sozu start -c <temporary config>` on the Sōzu fixture
//! configuration (HTTP, HTTPS and TCP listeners). The command families are
//! covered one by one in `cli_e2e.rs`; this is the short round trip.

use crate::harness;

use harness::{Daemon, code, stdout_json};
use serde_json::json;
use sozu_command::proto::command::{LoadBalancingAlgorithms, RunState};

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
    // Two workers, ids 0 and 1, both running, each a process of its own.
    let status = stdout_json(&status);
    let workers = status["WORKERS"]["vec"].as_array().unwrap();
    let mut ids: Vec<u64> = workers.iter().filter_map(|w| w["id"].as_u64()).collect();
    ids.sort_unstable();
    assert_eq!(ids, [0, 1], "{status}");
    for worker in workers {
        assert_eq!(worker["run_state"], RunState::Running as i32, "{status}");
        assert!(
            worker["pid"].as_i64().is_some_and(|pid| pid > 0),
            "{status}"
        );
    }

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
    // Every worker and the main process list it, with the policy asked for
    // and no backend yet.
    let listed = stdout_json(&run(&["cluster", "list", "-i", "e2e"]));
    let answers = listed["WORKER_RESPONSES"]["map"]
        .as_object()
        .unwrap_or_else(|| panic!("no answers by process: {listed}"));
    let mut processes: Vec<&str> = answers.keys().map(String::as_str).collect();
    processes.sort_unstable();
    assert_eq!(processes, ["0", "1", "main"], "{listed}");
    for (process, answer) in answers {
        let clusters = answer["content_type"]["CLUSTERS"]["vec"]
            .as_array()
            .unwrap_or_else(|| panic!("{process} lists no clusters: {listed}"));
        assert_eq!(clusters.len(), 1, "{process}: {listed}");
        let configuration = &clusters[0]["configuration"];
        assert_eq!(configuration["cluster_id"], "e2e", "{process}: {listed}");
        assert_eq!(
            configuration["load_balancing"],
            LoadBalancingAlgorithms::Random as i32,
            "{process}: {listed}"
        );
        assert_eq!(
            clusters[0]["backends"].as_array().map(Vec::len),
            Some(0),
            "{process}: {listed}"
        );
    }

    // The daemon holds exactly the file plus the new cluster.
    let plan = stdout_json(&run(&[
        "diff",
        "--prune",
        "-f",
        daemon.config.to_str().unwrap(),
    ]));
    assert_eq!(
        plan["summary"],
        json!({"add": 0, "change": 0, "remove": 1, "kept": 0}),
        "{plan}"
    );
    let steps = plan["plan"].as_array().unwrap();
    assert_eq!(steps.len(), 1, "{plan}");
    assert_eq!(steps[0]["action"], "remove", "{plan}");
    assert_eq!(steps[0]["kind"], "REMOVE_CLUSTER", "{plan}");
    assert!(
        steps[0]["description"]
            .as_str()
            .is_some_and(|what| what.starts_with("cluster e2e ")),
        "{plan}"
    );
}
