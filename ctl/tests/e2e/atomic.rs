//! A change is applied everywhere or nowhere (doc/daemon.md, "What is
//! atomic"): the main process refuses what a worker would refuse, takes
//! back what a worker could not apply or the automatic save could not
//! write, and every process comes back from the main state or the saved
//! file, skipping a bad record by name.
//!
//! Each test drives the real `sozu` binary with real workers.

use crate::harness;

use std::collections::BTreeMap;
use std::time::Duration;

use harness::{Daemon, basic_config, client, cluster, free_port, local, wait_until};
use sozu_command::proto::command::{
    AddBackend, FrontendFilters, HttpListenerConfig, ListenerType, RequestHttpFrontend,
    ResponseStatus, request::RequestType, response_content::ContentType,
};

/// The cluster hashes of the main process and of each worker, by source.
fn hashes(daemon: &Daemon) -> BTreeMap<String, BTreeMap<String, u64>> {
    harness::process::cluster_hashes(&daemon.socket).expect("an answer to QUERY_CLUSTERS_HASHES")
}

/// Whether the main process and every worker hold the same clusters.
fn agree(daemon: &Daemon) -> bool {
    harness::process::hashes_agree(&hashes(daemon), daemon.worker_pids().len())
}

fn assert_agree(daemon: &Daemon) {
    assert!(
        wait_until(Duration::from_secs(20), || agree(daemon)),
        "main and workers disagree: {:?}",
        hashes(daemon)
    );
}

/// The hostnames of the HTTP frontends the main process lists.
fn http_hostnames(daemon: &Daemon) -> Vec<String> {
    let answer = daemon.ok(RequestType::ListFrontends(FrontendFilters::default()));
    let Some(ContentType::FrontendList(list)) = answer.content.and_then(|c| c.content_type) else {
        panic!("unexpected answer to LIST_FRONTENDS")
    };
    list.http_frontends
        .into_iter()
        .map(|front| front.hostname)
        .collect()
}

fn stderr_of(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn saved_config(port: u16, extra: &str) -> String {
    basic_config(
        port,
        &format!("saved_state = \"state.txt\"\nautomatic_state_save = true\n{extra}"),
    )
}

#[test]
fn a_frontend_the_workers_cannot_route_is_refused_by_the_main_process_and_kept_nowhere() {
    let port = free_port();
    let daemon = Daemon::start(&saved_config(port, ""));
    daemon.add_cluster(cluster("app"));
    let address = format!("127.0.0.1:{port}");
    let cases: [(&[&str], &str); 2] = [
        (&["--hostname", "app.test", "--path-regex", "(["], "path"),
        (&["--hostname", "a b/c"], "hostname"),
    ];
    for (options, field) in cases {
        let mut arguments = vec!["frontend", "http", "add", "--address", &address];
        arguments.extend_from_slice(options);
        arguments.extend(["id", "app"]);
        let output = daemon.sozu(&arguments);
        assert_ne!(output.status.code(), Some(0), "{}", stderr_of(&output));
        let message = stderr_of(&output);
        assert!(
            message.contains(&format!("invalid {field}")),
            "the refusal names the field {field}: {message}"
        );
        // Refused by the main process itself: no worker was asked.
        assert!(!message.contains("worker 0"), "{message}");
    }
    assert!(http_hostnames(&daemon).is_empty());
    let saved = std::fs::read_to_string(daemon.path().join("state.txt")).unwrap();
    assert!(!saved.contains("a b/c") && !saved.contains("(["), "{saved}");
    assert_agree(&daemon);

    // A killed worker comes back from that state, and the daemon serves on.
    let victim = daemon.worker_pids()[0];
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(victim),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert!(wait_until(Duration::from_secs(20), || {
        let pids = daemon.worker_pids();
        pids.len() == 2 && !pids.contains(&victim)
    }));
    assert!(!daemon.stderr_text().contains("could not restart"));
    assert_agree(&daemon);
}

#[test]
fn a_listener_on_a_busy_address_is_rolled_back_and_can_be_added_once_the_address_is_free() {
    let port = free_port();
    let daemon = Daemon::start(&saved_config(port, ""));
    let busy_port = free_port();
    let squatter = std::net::TcpListener::bind(("127.0.0.1", busy_port)).unwrap();
    let listener = HttpListenerConfig {
        address: local(busy_port),
        active: true,
        front_timeout: 60,
        back_timeout: 30,
        connect_timeout: 3,
        request_timeout: 10,
        ..Default::default()
    };
    let message = daemon.failure(RequestType::AddHttpListener(listener.clone()));
    assert!(message.contains(&busy_port.to_string()), "{message}");
    assert!(message.contains("rolled back"), "{message}");
    let listed = daemon.sozu(&["--json", "listener", "list"]);
    assert!(
        !String::from_utf8_lossy(&listed.stdout).contains(&busy_port.to_string()),
        "the main process kept the refused listener: {}",
        String::from_utf8_lossy(&listed.stdout)
    );
    let saved = std::fs::read_to_string(daemon.path().join("state.txt")).unwrap_or_default();
    assert!(!saved.contains(&busy_port.to_string()), "{saved}");

    // The same with an inactive listener activated afterwards.
    let inactive = HttpListenerConfig {
        active: false,
        ..listener.clone()
    };
    daemon.ok(RequestType::AddHttpListener(inactive));
    let activate = || {
        RequestType::ActivateListener(sozu_command::proto::command::ActivateListener {
            address: local(busy_port),
            proxy: ListenerType::Http as i32,
            from_scm: false,
            interface: None,
        })
    };
    let message = daemon.failure(activate());
    assert!(message.contains("rolled back"), "{message}");
    let listed = daemon.sozu(&["--json", "listener", "list"]);
    let text = String::from_utf8_lossy(&listed.stdout).to_string();
    assert!(
        text.contains(&busy_port.to_string()),
        "the listener itself stays: {text}"
    );

    // Once the address is free, activating works on every worker and the
    // listener serves (before, each worker's state already said "active").
    drop(squatter);
    daemon.ok(activate());
    daemon.add_cluster(cluster("app"));
    daemon.add_frontend(harness::frontend(busy_port, "app.test", Some("app")));
    let backend = harness::backend::Backend::start("b1");
    daemon.add_backend(harness::backend("app", "b1", backend.address));
    for _ in 0..4 {
        assert_eq!(client::get(busy_port, "app.test", "/").status, 200);
    }
    assert_agree(&daemon);
}

#[test]
fn a_silent_worker_gets_the_change_taken_back_once_it_wakes() {
    let port = free_port();
    let config = basic_config(port, "").replace("worker_timeout = 5", "worker_timeout = 1");
    let daemon = Daemon::start(&config);
    let pids = daemon.worker_pids();
    let sleeper = nix::unistd::Pid::from_raw(pids[1]);
    nix::sys::signal::kill(sleeper, nix::sys::signal::Signal::SIGSTOP).unwrap();
    let message = daemon.failure(RequestType::AddCluster(cluster("late")));
    nix::sys::signal::kill(sleeper, nix::sys::signal::Signal::SIGCONT).unwrap();
    assert!(message.contains("worker 1"), "{message}");
    assert!(message.contains("rolled back"), "{message}");
    // The worker that answered took it back; the silent one applies the
    // change and then its undo, in order, once it runs again.
    assert_agree(&daemon);
    assert!(!hashes(&daemon).values().any(|map| map.contains_key("late")));
    daemon.add_cluster(cluster("later"));
    assert_agree(&daemon);
}

#[test]
fn a_failed_automatic_save_rolls_the_change_back_and_names_the_error() {
    let port = free_port();
    let folder = tempfile::tempdir().unwrap();
    let saves = folder.path().join("saves");
    std::fs::create_dir(&saves).unwrap();
    let config = basic_config(
        port,
        &format!(
            "saved_state = {:?}\nautomatic_state_save = true",
            saves.join("state.txt").to_str().unwrap()
        ),
    );
    let daemon = Daemon::start_in(folder, &config);
    daemon.add_cluster(cluster("kept"));
    std::fs::remove_dir_all(&saves).unwrap();

    let output = daemon.sozu(&[
        "cluster",
        "add",
        "--id",
        "lost",
        "--load-balancing-policy",
        "round_robin",
    ]);
    let message = stderr_of(&output);
    assert_ne!(output.status.code(), Some(0), "{message}");
    assert!(message.contains("automatic state save failed"), "{message}");
    assert!(message.contains("state.txt"), "names the file: {message}");
    assert!(message.contains("rolled back"), "{message}");
    let all = hashes(&daemon);
    assert!(all.values().all(|map| !map.contains_key("lost")), "{all:?}");
    assert!(all.values().all(|map| map.contains_key("kept")), "{all:?}");
    assert_agree(&daemon);

    // With the folder back, changes are saved again.
    std::fs::create_dir(&saves).unwrap();
    daemon.add_cluster(cluster("saved"));
    let written = std::fs::read_to_string(saves.join("state.txt")).unwrap();
    assert!(written.contains("\"saved\"") && !written.contains("\"lost\""));
}

/// A saved state whose frontend `app.test` has its hostname replaced by
/// `bad`, written by a daemon (so every other record is as a daemon writes
/// it), in `folder` as `state.txt`.
fn state_with_bad_frontend(folder: &std::path::Path, port: u16, bad: &str) {
    let daemon = Daemon::start(&basic_config(port, ""));
    daemon.add_cluster(cluster("app"));
    daemon.add_frontend(harness::frontend(port, "app.test", Some("app")));
    daemon.add_cluster(cluster("other"));
    let path = folder.join("state.txt");
    daemon.ok(RequestType::SaveState(path.display().to_string()));
    drop(daemon);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("\"app.test\""));
    std::fs::write(&path, text.replace("\"app.test\"", &format!("{bad:?}"))).unwrap();
}

#[test]
fn a_saved_state_with_a_bad_record_starts_skipping_it_by_name_and_config_check_reports_it() {
    let port = free_port();
    let folder = tempfile::tempdir().unwrap();
    state_with_bad_frontend(folder.path(), port, "a b/c");
    let config = basic_config(port, "saved_state = \"state.txt\"");
    std::fs::write(folder.path().join("config.toml"), &config).unwrap();

    let check = harness::sozu(folder.path(), &["-c", "config.toml", "config", "check"]);
    let message = stderr_of(&check);
    assert_eq!(check.status.code(), Some(2), "{message}");
    assert!(message.contains("state.txt"), "{message}");
    assert!(message.contains("invalid hostname"), "{message}");

    let daemon = Daemon::start_in(folder, &config);
    let log = daemon.stderr_text();
    assert!(log.contains("ADD_HTTP_FRONTEND"), "{log}");
    assert!(log.contains("invalid hostname"), "{log}");
    // The rest of the file applied.
    let all = hashes(&daemon);
    assert!(all.values().all(|map| map.contains_key("other")), "{all:?}");
    assert!(http_hostnames(&daemon).is_empty());
    assert_agree(&daemon);
}

#[test]
fn config_check_refuses_what_start_refuses() {
    // Valid for the state, but nothing an HTTP (HTTP/1.1 only) listener can
    // enforce: `sozu start` refuses it, and `config check` says so first.
    let port = free_port();
    let folder = tempfile::tempdir().unwrap();
    let config = format!("{}h2_max_concurrent_streams = 10\n", basic_config(port, ""));
    std::fs::write(folder.path().join("config.toml"), &config).unwrap();

    let check = harness::sozu(folder.path(), &["-c", "config.toml", "config", "check"]);
    let message = stderr_of(&check);
    assert_eq!(check.status.code(), Some(2), "{message}");
    assert!(message.contains("h2_max_concurrent_streams"), "{message}");
    assert!(message.contains("HTTP/1.1 only"), "{message}");

    let start = harness::sozu(folder.path(), &["start", "-c", "config.toml"]);
    let refusal = stderr_of(&start);
    assert_eq!(start.status.code(), Some(2), "{refusal}");
    assert!(refusal.contains("h2_max_concurrent_streams"), "{refusal}");
}

#[test]
fn a_reload_with_a_bad_frontend_changes_nothing_anywhere() {
    let port = free_port();
    let mut daemon = Daemon::start(&basic_config(port, ""));
    let good = std::fs::read_to_string(&daemon.config).unwrap();
    let bad = format!(
        "{good}\n[clusters.app]\nprotocol = \"http\"\nfrontends = [ {{ address = \"127.0.0.1:{port}\", hostname = \"app.test\", path = \"([\", path_type = \"REGEX\" }} ]\nbackends = [ {{ address = \"127.0.0.1:9\" }} ]\n"
    );
    std::fs::write(&daemon.config, bad).unwrap();
    let output = daemon.sozu(&["reload"]);
    let message = stderr_of(&output);
    assert_ne!(output.status.code(), Some(0), "{message}");
    assert!(message.contains("invalid path"), "{message}");
    assert!(hashes(&daemon).values().all(BTreeMap::is_empty));
    assert_agree(&daemon);
    // `config check` says the file is invalid, and why.
    let check = daemon.sozu(&["config", "check"]);
    assert_eq!(check.status.code(), Some(2), "{}", stderr_of(&check));
    assert!(stderr_of(&check).contains("invalid path"));
    // The daemon restarts from the same file too: it refuses it whole.
    daemon.stop();
    let start = harness::sozu_command()
        .args(["start", "-c"])
        .arg(&daemon.config)
        .current_dir(daemon.path())
        .output()
        .unwrap();
    assert_eq!(start.status.code(), Some(2), "{}", stderr_of(&start));
    assert!(stderr_of(&start).contains("invalid path"));
}

#[test]
fn a_state_load_over_the_live_state_skips_what_is_identical_and_names_what_differs() {
    let port = free_port();
    let folder = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(&basic_config(port, ""));
    daemon.add_cluster(cluster("app"));
    daemon.add_cluster(cluster("other"));
    daemon.add_frontend(harness::frontend(port, "app.test", Some("app")));
    let same = folder.path().join("same.txt");
    daemon.ok(RequestType::SaveState(same.display().to_string()));
    let (_, loaded) = daemon.exchange(RequestType::LoadState(same.display().to_string()));
    assert_eq!(
        loaded.status,
        ResponseStatus::Ok as i32,
        "{}",
        loaded.message
    );

    // The same frontend routed to another cluster: a conflict, named.
    let text = std::fs::read_to_string(&same).unwrap();
    let conflicting = folder.path().join("conflicting.txt");
    let edited = text.replacen(
        "\"cluster_id\":\"app\",\"address\"",
        "\"cluster_id\":\"other\",\"address\"",
        1,
    );
    assert_ne!(edited, text, "the frontend record was not found: {text}");
    std::fs::write(&conflicting, edited).unwrap();
    let (_, loaded) = daemon.exchange(RequestType::LoadState(conflicting.display().to_string()));
    assert_eq!(loaded.status, ResponseStatus::Failure as i32);
    assert!(loaded.message.contains("cluster_id"), "{}", loaded.message);
    assert!(loaded.message.contains("\"app\"") && loaded.message.contains("\"other\""));
    assert_eq!(http_hostnames(&daemon), ["app.test"]);
    assert_agree(&daemon);
}

#[test]
fn bounds_and_templates_are_checked_on_arrival_and_refused_by_name() {
    let port = free_port();
    let daemon = Daemon::start(&basic_config(port, ""));
    daemon.add_cluster(cluster("app"));

    // An answer template that is not an HTTP answer.
    let page = daemon.path().join("page.html");
    std::fs::write(&page, "<html>sorry</html>").unwrap();
    let answer = format!("503=file://{}", page.display());
    let output = daemon.sozu(&[
        "cluster",
        "add",
        "--id",
        "templated",
        "--load-balancing-policy",
        "round_robin",
        "--answer",
        &answer,
    ]);
    let message = stderr_of(&output);
    assert_ne!(output.status.code(), Some(0), "{message}");
    assert!(message.contains("not an HTTP answer"), "{message}");

    // A backend on port 0.
    let message = daemon.failure(RequestType::AddBackend(AddBackend {
        cluster_id: "app".into(),
        backend_id: "zero".into(),
        address: local(0),
        ..Default::default()
    }));
    assert!(message.contains("port 0"), "{message}");

    // A 1 MB id, and a hostname of 254 bytes.
    let message = daemon.failure(RequestType::AddCluster(cluster(&"x".repeat(1 << 20))));
    assert!(
        message.contains("cluster_id") && message.contains("256"),
        "{message}"
    );
    let long_host = format!("{}.test", "h".repeat(249));
    assert_eq!(long_host.len(), 254);
    let message = daemon.failure(RequestType::AddHttpFrontend(RequestHttpFrontend {
        ..harness::frontend(port, &long_host, Some("app"))
    }));
    assert!(
        message.contains("hostname") && message.contains("253"),
        "{message}"
    );

    // Nothing of it anywhere; the cluster list still fits in an answer.
    let all = hashes(&daemon);
    assert!(all.values().all(|map| map.len() == 1), "{all:?}");
    let listed = daemon.sozu(&["cluster", "list"]);
    assert_eq!(listed.status.code(), Some(0), "{}", stderr_of(&listed));
}

#[test]
fn a_restarted_worker_skips_a_record_it_cannot_apply_and_names_it() {
    let port = free_port();
    let config = basic_config(port, "").replace("worker_count = 2", "worker_count = 1");
    let daemon = Daemon::start(&config);
    daemon.add_cluster(cluster("app"));
    let victim = daemon.worker_pids()[0];
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(victim),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    // Take the listener's address while the worker is down.
    let mut squatter = None;
    assert!(wait_until(Duration::from_secs(10), || {
        squatter = std::net::TcpListener::bind(("127.0.0.1", port)).ok();
        squatter.is_some()
    }));
    // The worker comes back anyway, with everything else, and says what it
    // skipped (before, each restart failed on the listener, forever).
    assert!(
        wait_until(Duration::from_secs(20), || {
            let pids = daemon.worker_pids();
            pids.len() == 1 && !pids.contains(&victim)
        }),
        "{}",
        daemon.stderr_text()
    );
    let log = daemon.stderr_text();
    assert!(log.contains("skipped a record"), "{log}");
    assert!(log.contains("ADD_HTTP_LISTENER"), "{log}");
    assert!(log.contains(&port.to_string()), "{log}");
    assert_agree(&daemon);
    drop(squatter);
}

#[test]
fn acknowledged_changes_survive_a_crash_of_every_process() {
    let port = free_port();
    let mut daemon = Daemon::start(&saved_config(port, ""));
    let backend = harness::backend::Backend::start("b1");
    daemon.serve(port, "app.test", "app", &[&backend]);
    // A refused change is in no file either.
    daemon.failure(RequestType::AddCluster(cluster(&"x".repeat(300))));
    for pid in daemon.worker_pids() {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let mut main = daemon.child.take().unwrap();
    main.kill().unwrap();
    main.wait().unwrap();

    // Restarted from its own file, with everything that was acknowledged.
    daemon.spawn();
    assert_eq!(http_hostnames(&daemon), ["app.test"]);
    assert!(wait_until(Duration::from_secs(10), || client::get(
        port, "app.test", "/"
    )
    .status
        == 200));
    let all = hashes(&daemon);
    assert!(
        all.values()
            .all(|map| map.len() == 1 && map.contains_key("app")),
        "{all:?}"
    );
    assert_agree(&daemon);
}

#[test]
fn a_loaded_record_a_worker_cannot_apply_is_rolled_back_everywhere() {
    // A state file from another daemon: its active listener, and a cluster.
    let folder = tempfile::tempdir().unwrap();
    let other_port = free_port();
    let other = Daemon::start(&basic_config(other_port, ""));
    other.add_cluster(cluster("other"));
    let path = folder.path().join("other.txt");
    other.ok(RequestType::SaveState(path.display().to_string()));
    drop(other);

    let port = free_port();
    let daemon = Daemon::start(&basic_config(port, ""));
    let squatter = std::net::TcpListener::bind(("127.0.0.1", other_port)).unwrap();
    let (_, loaded) = daemon.exchange(RequestType::LoadState(path.display().to_string()));
    assert_eq!(
        loaded.status,
        ResponseStatus::Failure as i32,
        "{}",
        loaded.message
    );
    assert!(
        loaded.message.contains("Address already in use"),
        "{}",
        loaded.message
    );
    assert!(loaded.message.contains("rolled back"), "{}", loaded.message);
    let listed = daemon.sozu(&["--json", "listener", "list"]);
    let text = String::from_utf8_lossy(&listed.stdout).to_string();
    assert!(!text.contains(&other_port.to_string()), "{text}");
    let all = hashes(&daemon);
    assert!(all.values().all(|map| map.contains_key("other")), "{all:?}");
    assert_agree(&daemon);
    drop(squatter);
}

#[test]
fn a_load_whose_automatic_save_fails_is_rolled_back_whole() {
    let folder = tempfile::tempdir().unwrap();
    let source = Daemon::start(&basic_config(free_port(), ""));
    source.add_cluster(cluster("one"));
    source.add_cluster(cluster("two"));
    let path = folder.path().join("two-clusters.txt");
    source.ok(RequestType::SaveState(path.display().to_string()));
    drop(source);

    let saves = folder.path().join("saves");
    std::fs::create_dir(&saves).unwrap();
    let daemon = Daemon::start(&basic_config(
        free_port(),
        &format!(
            "saved_state = {:?}\nautomatic_state_save = true",
            saves.join("state.txt").to_str().unwrap()
        ),
    ));
    std::fs::remove_dir_all(&saves).unwrap();
    let (_, loaded) = daemon.exchange(RequestType::LoadState(path.display().to_string()));
    assert_eq!(
        loaded.status,
        ResponseStatus::Failure as i32,
        "{}",
        loaded.message
    );
    assert!(
        loaded.message.contains("automatic state save failed")
            && loaded.message.contains("state.txt")
            && loaded.message.contains("rolled back"),
        "{}",
        loaded.message
    );
    assert!(hashes(&daemon).values().all(BTreeMap::is_empty));
    assert_agree(&daemon);
}
