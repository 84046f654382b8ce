//! The daemon end to end: the real `sozu` binary in a temporary folder,
//! driven over its command socket, with real workers and backends.

use crate::harness;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use harness::backend::Backend;
use harness::{Daemon, basic_config, client, free_port, local, wait_until};
use sozu_command::channel::CommandChannel;
use sozu_command::proto::command::{
    AddBackend, Cluster, EventKind, FrontendFilters, PathRule, Request, RequestHttpFrontend,
    ResponseStatus, RulePosition, request::RequestType, response_content::ContentType,
};

fn add_cluster(daemon: &Daemon, id: &str) {
    daemon.ok(RequestType::AddCluster(Cluster {
        cluster_id: id.into(),
        ..Default::default()
    }));
}

fn add_frontend(daemon: &Daemon, port: u16, host: &str, cluster: &str) {
    daemon.ok(RequestType::AddHttpFrontend(RequestHttpFrontend {
        cluster_id: Some(cluster.into()),
        address: local(port),
        hostname: host.into(),
        path: PathRule::default(),
        position: RulePosition::Tree as i32,
        ..Default::default()
    }));
}

fn add_backend(daemon: &Daemon, cluster: &str, id: &str, backend: &Backend) {
    daemon.ok(RequestType::AddBackend(AddBackend {
        cluster_id: cluster.into(),
        backend_id: id.into(),
        address: backend.address.into(),
        ..Default::default()
    }));
}

/// A daemon with one cluster `app` on `app.test`, served by one backend.
fn daemon_with_app() -> (Daemon, u16, Backend) {
    let port = free_port();
    let daemon = Daemon::start(&basic_config(port, ""));
    let backend = Backend::start("one");
    add_cluster(&daemon, "app");
    add_frontend(&daemon, port, "app.test", "app");
    add_backend(&daemon, "app", "one", &backend);
    (daemon, port, backend)
}

#[test]
fn starts_and_proxies_a_request() {
    let (daemon, port, backend) = daemon_with_app();
    let answer = client::get(port, "app.test", "/hello");
    assert_eq!(answer.status, 200);
    assert_eq!(answer.text(), "one");
    assert_eq!(backend.served.load(std::sync::atomic::Ordering::SeqCst), 1);
    let stdout = std::fs::read_to_string(&daemon.stdout).unwrap();
    assert!(stdout.contains("sozu.sock"), "{stdout}");
    assert!(stdout.contains(&format!("127.0.0.1:{port}")), "{stdout}");
    assert_eq!(daemon.worker_pids().len(), 2);
}

#[test]
fn the_command_socket_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let daemon = Daemon::start(&basic_config(free_port(), ""));
    let mode = std::fs::metadata(&daemon.socket)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn the_built_in_default_runs_or_names_the_busy_address() {
    let folder = tempfile::tempdir().unwrap();
    let mut child = harness::sozu_command()
        .arg("start")
        .current_dir(folder.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let socket = folder.path().join("sozu.sock");
    let started = wait_until(Duration::from_secs(20), || {
        UnixStream::connect(&socket).is_ok() || child.try_wait().unwrap().is_some()
    });
    assert!(started);
    match child.try_wait().unwrap() {
        // 127.0.0.1:8080 was taken by something else on this machine.
        Some(status) => {
            let mut stderr = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut stderr)
                .unwrap();
            assert!(!status.success());
            assert!(stderr.contains("127.0.0.1:8080"), "{stderr}");
        }
        None => {
            let mut channel = CommandChannel::connect(&socket).unwrap();
            let listeners = channel
                .exchange(
                    &RequestType::ListListeners(Default::default()).into(),
                    Some(Duration::from_secs(10)),
                    |_| {},
                )
                .unwrap();
            let Some(ContentType::ListenersList(list)) =
                listeners.content.and_then(|c| c.content_type)
            else {
                panic!("no listener list");
            };
            assert!(list.http_listeners.contains_key("127.0.0.1:8080"));
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGINT,
            );
            let _ = child.wait();
        }
    }
}

#[test]
fn bad_starts_exit_with_a_clear_message() {
    // A configuration that does not parse.
    let folder = tempfile::tempdir().unwrap();
    let config = folder.path().join("config.toml");
    std::fs::write(&config, "worker_count = \"two\"\n").unwrap();
    let output = harness::sozu_command()
        .args(["start", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("worker_count"), "{stderr}");

    // An address that is already taken.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    std::fs::write(&config, basic_config(port, "")).unwrap();
    let output = harness::sozu_command()
        .args(["start", "-c"])
        .arg(&config)
        .current_dir(folder.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&format!("127.0.0.1:{port}")), "{stderr}");
}

#[test]
fn a_live_socket_is_kept_and_a_stale_one_replaced() {
    let daemon = Daemon::start(&basic_config(free_port(), ""));
    // A second daemon on the same socket refuses to start.
    let second_config = daemon.path().join("second.toml");
    std::fs::write(&second_config, basic_config(free_port(), "")).unwrap();
    let output = harness::sozu_command()
        .args(["start", "-c"])
        .arg(&second_config)
        .current_dir(daemon.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("already listening"));
    daemon.ok(RequestType::Status(Default::default()));

    // A socket file nobody listens on is replaced.
    let folder = tempfile::tempdir().unwrap();
    let stale = std::os::unix::net::UnixListener::bind(folder.path().join("sozu.sock")).unwrap();
    drop(stale);
    let daemon = Daemon::start_in(folder, &basic_config(free_port(), ""));
    daemon.ok(RequestType::Status(Default::default()));
}

#[test]
fn a_hundred_clients_at_once_each_get_their_own_answers() {
    let (daemon, port, _backend) = daemon_with_app();
    let socket = daemon.socket.clone();
    let threads: Vec<_> = (0..100)
        .map(|index| {
            let socket = socket.clone();
            std::thread::spawn(move || {
                let mut channel = CommandChannel::connect(&socket).unwrap();
                // Each client asks for its own cluster id; only "app" exists.
                let id = if index % 2 == 0 {
                    "app".to_owned()
                } else {
                    format!("missing-{index}")
                };
                let answer = channel
                    .exchange(
                        &RequestType::QueryClusterById(id.clone()).into(),
                        Some(Duration::from_secs(30)),
                        |_| {},
                    )
                    .unwrap();
                assert_eq!(
                    answer.status,
                    ResponseStatus::Ok as i32,
                    "{}",
                    answer.message
                );
                let Some(ContentType::WorkerResponses(responses)) =
                    answer.content.and_then(|c| c.content_type)
                else {
                    panic!("no worker responses");
                };
                for (source, content) in responses.map {
                    let Some(ContentType::Clusters(clusters)) = content.content_type else {
                        panic!("no clusters from {source}");
                    };
                    let found: Vec<_> = clusters
                        .vec
                        .iter()
                        .filter_map(|c| c.configuration.as_ref())
                        .map(|c| c.cluster_id.clone())
                        .collect();
                    if id == "app" {
                        assert_eq!(found, ["app"], "{source}");
                    } else {
                        assert!(found.is_empty(), "{source}");
                    }
                }
                let listeners = channel
                    .exchange(
                        &RequestType::ListListeners(Default::default()).into(),
                        Some(Duration::from_secs(30)),
                        |_| {},
                    )
                    .unwrap();
                assert_eq!(listeners.status, ResponseStatus::Ok as i32);
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(client::get(port, "app.test", "/").status, 200);
}

/// Writes raw bytes on a command connection and reads one response frame.
fn read_response(stream: &mut UnixStream) -> Option<sozu_command::proto::command::Response> {
    let mut prefix = [0u8; 8];
    stream.read_exact(&mut prefix).ok()?;
    let length = u64::from_le_bytes(prefix) as usize;
    let mut payload = vec![0; length - 8];
    stream.read_exact(&mut payload).ok()?;
    prost::Message::decode(&payload[..]).ok()
}

#[test]
fn malformed_frames_are_answered_while_others_keep_working() {
    let daemon = Daemon::start(&basic_config(free_port(), ""));
    let mut bad = UnixStream::connect(&daemon.socket).unwrap();
    bad.set_read_timeout(Some(Duration::from_secs(10))).unwrap();

    // An undecodable payload: FAILURE, and the connection stays usable.
    let garbage = [0xffu8; 5];
    let mut frame = ((garbage.len() + 8) as u64).to_le_bytes().to_vec();
    frame.extend_from_slice(&garbage);
    bad.write_all(&frame).unwrap();
    let answer = read_response(&mut bad).unwrap();
    assert_eq!(answer.status, ResponseStatus::Failure as i32);
    assert!(answer.message.contains("decode"), "{}", answer.message);

    // An empty request: FAILURE too.
    bad.write_all(&8u64.to_le_bytes()).unwrap();
    let answer = read_response(&mut bad).unwrap();
    assert_eq!(answer.status, ResponseStatus::Failure as i32);
    assert!(answer.message.contains("empty"), "{}", answer.message);

    // Meanwhile another client works normally.
    daemon.ok(RequestType::ListListeners(Default::default()));

    // Still usable: a valid request on the same connection.
    let status: Request = RequestType::ListWorkers(Default::default()).into();
    let payload = prost::Message::encode_to_vec(&status);
    let mut frame = ((payload.len() + 8) as u64).to_le_bytes().to_vec();
    frame.extend_from_slice(&payload);
    bad.write_all(&frame).unwrap();
    assert_eq!(
        read_response(&mut bad).unwrap().status,
        ResponseStatus::Ok as i32
    );

    // A declared length beyond the maximum: FAILURE, then closed.
    bad.write_all(&u64::MAX.to_le_bytes()).unwrap();
    let answer = read_response(&mut bad).unwrap();
    assert_eq!(answer.status, ResponseStatus::Failure as i32);
    assert!(answer.message.contains("max"), "{}", answer.message);
    assert!(
        read_response(&mut bad).is_none(),
        "the connection should be closed"
    );
    daemon.ok(RequestType::Status(Default::default()));
}

#[test]
fn refused_changes_name_the_reason_and_change_nothing() {
    let (daemon, _port, _backend) = daemon_with_app();
    let message = daemon.failure(RequestType::AddBackend(AddBackend {
        cluster_id: "nosuchcluster".into(),
        backend_id: "b1".into(),
        address: local(9999),
        ..Default::default()
    }));
    assert!(message.contains("nosuchcluster"), "{message}");
    let message = daemon.failure(RequestType::AddUdpListener(Default::default()));
    assert!(message.contains("UDP"), "{message}");
    let message = daemon.failure(RequestType::LaunchWorker("x".into()));
    assert!(message.contains("internal"), "{message}");
}

#[test]
fn a_killed_worker_is_relaunched_with_the_whole_state() {
    let (daemon, port, _backend) = daemon_with_app();
    let mut events = CommandChannel::connect(&daemon.socket).unwrap();
    events
        .write_message(&RequestType::SubscribeEvents(Default::default()).into())
        .unwrap();
    let first = events
        .read_message(Some(Duration::from_secs(10)))
        .unwrap()
        .unwrap();
    assert!(
        matches!(first.content.and_then(|c| c.content_type), Some(ContentType::Event(e)) if e.kind == EventKind::EventsSubscribed as i32)
    );

    let before = daemon.worker_pids();
    let victim = before[0];
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(victim),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();

    let mut seen = Vec::new();
    let relaunched = wait_until(Duration::from_secs(30), || {
        if let Ok(Some(response)) = events.read_message(Some(Duration::from_millis(200)))
            && let Some(ContentType::Event(event)) = response.content.and_then(|c| c.content_type)
        {
            seen.push(event.kind);
        }
        seen.contains(&(EventKind::WorkerRelaunched as i32))
    });
    assert!(relaunched, "events seen: {seen:?}");
    assert!(seen.contains(&(EventKind::WorkerKilled as i32)), "{seen:?}");
    let after = daemon.worker_pids();
    assert_eq!(after.len(), 2);
    assert!(!after.contains(&victim));

    // Every worker, the new one included, knows the cluster and proxies.
    let answer = daemon.ok(RequestType::QueryClusterById("app".into()));
    let Some(ContentType::WorkerResponses(responses)) = answer.content.and_then(|c| c.content_type)
    else {
        panic!()
    };
    assert_eq!(responses.map.len(), 3);
    for (source, content) in responses.map {
        let Some(ContentType::Clusters(clusters)) = content.content_type else {
            panic!()
        };
        assert_eq!(clusters.vec.len(), 1, "{source} lost the cluster");
        assert_eq!(
            clusters.vec[0].backends.len(),
            1,
            "{source} lost the backend"
        );
    }
    for _ in 0..10 {
        assert_eq!(client::get(port, "app.test", "/").status, 200);
    }
}

#[test]
fn state_saved_then_loaded_into_a_restarted_daemon() {
    let (mut daemon, port, _backend) = daemon_with_app();
    let path = daemon.path().join("saved.txt");
    let (_, saved) = daemon.exchange(RequestType::SaveState(path.display().to_string()));
    assert_eq!(saved.status, ResponseStatus::Ok as i32, "{}", saved.message);
    // Sozu's wording, record count included.
    assert!(
        saved.message.starts_with("Saved 5 config messages to "),
        "{}",
        saved.message
    );

    daemon.stop();
    daemon.spawn();
    // The restarted daemon has only its configuration.
    assert_eq!(client::get(port, "app.test", "/").status, 404);
    let (progress, loaded) = daemon.exchange(RequestType::LoadState(path.display().to_string()));
    // The listener record is the one the configuration made: loading it
    // again changes nothing and is no error (as in Sozu 2.3.3).
    assert_eq!(
        loaded.status,
        ResponseStatus::Ok as i32,
        "{}",
        loaded.message
    );
    assert!(
        loaded.message.contains("5 of 5 records"),
        "{}",
        loaded.message
    );
    assert!(!progress.is_empty());
    assert_eq!(client::get(port, "app.test", "/").status, 200);

    let frontends = daemon.ok(RequestType::ListFrontends(FrontendFilters::default()));
    let Some(ContentType::FrontendList(list)) = frontends.content.and_then(|c| c.content_type)
    else {
        panic!()
    };
    assert_eq!(list.http_frontends.len(), 1);
}

#[test]
fn a_state_load_with_a_hung_worker_ends_after_the_worker_timeout() {
    // worker_timeout = 5 (basic_config), two workers, one of them stopped.
    let daemon = Daemon::start(&basic_config(free_port(), ""));
    let path = daemon.path().join("many.txt");
    // More records than the load keeps answers in flight for.
    let records: String = (0..2100)
        .map(|index| {
            format!(
                "{{\"id\":\"SAVE-{index}\",\"content\":{{\"request_type\":{{\"ADD_CLUSTER\":{{\"cluster_id\":\"c{index}\",\"sticky_session\":false,\"https_redirect\":false,\"load_balancing\":0}}}}}}}}\n\0"
            )
        })
        .collect();
    std::fs::write(&path, records).unwrap();
    let pids = daemon.worker_pids();
    let hung = nix::unistd::Pid::from_raw(pids[0]);
    nix::sys::signal::kill(hung, nix::sys::signal::Signal::SIGSTOP).unwrap();
    let started = std::time::Instant::now();
    let (_, loaded) = daemon.exchange(RequestType::LoadState(path.display().to_string()));
    let took = started.elapsed();
    nix::sys::signal::kill(hung, nix::sys::signal::Signal::SIGCONT).unwrap();
    // One wait of the worker timeout for the silent worker, not one per
    // record (which would take hours).
    assert!(took < Duration::from_secs(25), "the load took {took:?}");
    assert_eq!(loaded.status, ResponseStatus::Failure as i32);
    assert!(
        loaded.message.contains("2100 of 2100 records"),
        "{}",
        loaded.message
    );
    assert!(
        loaded.message.contains("did not answer in time"),
        "{}",
        loaded.message
    );
    // The worker catches up once it runs again; nothing was lost.
    // The main process and both workers know the last cluster.
    let mut last = String::new();
    let caught_up = wait_until(Duration::from_secs(20), || {
        let (_, answer) = daemon.exchange(RequestType::QueryClusterById("c2099".into()));
        last = format!("{answer:?}");
        let Some(ContentType::WorkerResponses(responses)) =
            answer.content.and_then(|c| c.content_type)
        else {
            return false;
        };
        responses.map.len() == 3
            && responses.map.values().all(|content| {
                matches!(
                    &content.content_type,
                    Some(ContentType::Clusters(clusters)) if clusters.vec.len() == 1
                )
            })
    });
    assert!(caught_up, "{last}");
}

#[test]
fn a_state_file_with_bad_records_loads_the_rest_and_names_each_problem() {
    let daemon = Daemon::start(&basic_config(free_port(), ""));
    let path = daemon.path().join("broken.txt");
    let good = r#"{"id":"SAVE-0","content":{"request_type":{"ADD_CLUSTER":{"cluster_id":"ok","sticky_session":false,"https_redirect":false,"load_balancing":0}}}}"#;
    let orphan = r#"{"id":"SAVE-1","content":{"request_type":{"ADD_BACKEND":{"cluster_id":"ghost","backend_id":"b","address":{"ip":{"inner":{"V4":2130706433}},"port":1}}}}}"#;
    std::fs::write(&path, format!("{good}\n\0not json at all\n\0{orphan}\n\0")).unwrap();
    let (_, loaded) = daemon.exchange(RequestType::LoadState(path.display().to_string()));
    assert_eq!(loaded.status, ResponseStatus::Failure as i32);
    assert!(
        loaded.message.contains("1 of 3 records"),
        "{}",
        loaded.message
    );
    assert!(loaded.message.contains("record 2"), "{}", loaded.message);
    assert!(
        loaded.message.contains("record 3") && loaded.message.contains("ghost"),
        "{}",
        loaded.message
    );
    let answer = daemon.ok(RequestType::QueryClusterById("ok".into()));
    assert!(format!("{answer:?}").contains("\"ok\""));
}

#[test]
fn automatic_state_save_writes_every_change() {
    let port = free_port();
    let daemon = Daemon::start(&basic_config(
        port,
        "saved_state = \"state.txt\"\nautomatic_state_save = true",
    ));
    add_cluster(&daemon, "saved");
    let path = daemon.path().join("state.txt");
    let written = std::fs::read_to_string(&path).unwrap();
    assert!(written.contains("\"saved\""), "{written}");
    daemon.ok(RequestType::RemoveCluster("saved".into()));
    let written = std::fs::read_to_string(&path).unwrap();
    assert!(!written.contains("\"saved\""), "{written}");
}

#[test]
fn soft_stop_lets_an_in_flight_request_finish() {
    let port = free_port();
    let mut daemon = Daemon::start(&basic_config(port, ""));
    let (seen_tx, seen) = std::sync::mpsc::channel();
    let slow = Backend::start_with("slow", Duration::from_millis(1500), Some(seen_tx));
    add_cluster(&daemon, "app");
    add_frontend(&daemon, port, "app.test", "app");
    add_backend(&daemon, "app", "slow", &slow);

    let request = std::thread::spawn(move || client::get(port, "app.test", "/slow"));
    // The backend has the request in hand (it answers 1.5 s later).
    seen.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(slow.served.load(std::sync::atomic::Ordering::SeqCst), 0);
    let (_, stopped) = daemon.exchange(RequestType::SoftStop(Default::default()));
    assert_eq!(
        stopped.status,
        ResponseStatus::Ok as i32,
        "{}",
        stopped.message
    );
    let answer = request.join().unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(answer.text(), "slow");
    assert!(
        daemon
            .wait_exit(Duration::from_secs(10))
            .is_some_and(|s| s.success())
    );
    assert!(!daemon.socket.exists());
}

/// Ctrl-C in a terminal, or a service manager stopping the group, signals
/// the main process and its workers at once. Workers that die before the
/// main process asks them to stop must not make it wait: the soft stop has
/// no deadline, and a request sent to a worker whose channel had already
/// closed used to wait forever (the daemon never exited).
#[test]
fn a_signal_to_the_whole_process_group_stops_the_daemon() {
    use std::os::unix::process::CommandExt;
    for signal in [
        nix::sys::signal::Signal::SIGTERM,
        nix::sys::signal::Signal::SIGINT,
    ]
    .iter()
    .cycle()
    .take(10)
    {
        let folder = tempfile::tempdir().unwrap();
        let config = folder.path().join("config.toml");
        std::fs::write(&config, basic_config(free_port(), "")).unwrap();
        let mut child = harness::sozu_command()
            .arg("start")
            .arg("-c")
            .arg(&config)
            .current_dir(folder.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap();
        let socket = folder.path().join("sozu.sock");
        assert!(wait_until(Duration::from_secs(20), || {
            UnixStream::connect(&socket).is_ok()
        }));
        // Workers up and answering.
        let mut channel = CommandChannel::connect(&socket).unwrap();
        channel
            .exchange(
                &RequestType::Status(Default::default()).into(),
                Some(Duration::from_secs(10)),
                |_| {},
            )
            .unwrap();
        let group = nix::unistd::Pid::from_raw(child.id() as i32);
        nix::sys::signal::killpg(group, *signal).unwrap();
        let exited = wait_until(Duration::from_secs(8), || {
            child.try_wait().unwrap().is_some()
        });
        if !exited {
            let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
            let _ = child.wait();
        }
        assert!(
            exited,
            "{signal} to the process group: the daemon is still running"
        );
    }
}

#[test]
fn events_reach_every_subscriber() {
    let daemon = Daemon::start(&basic_config(free_port(), ""));
    let mut subscribers: Vec<CommandChannel> = (0..3)
        .map(|_| {
            let mut channel = CommandChannel::connect(&daemon.socket).unwrap();
            channel
                .write_message(&RequestType::SubscribeEvents(Default::default()).into())
                .unwrap();
            let first = channel
                .read_message(Some(Duration::from_secs(10)))
                .unwrap()
                .unwrap();
            assert_eq!(first.message, "main");
            channel
        })
        .collect();
    add_cluster(&daemon, "evented");
    for channel in &mut subscribers {
        let event = channel
            .read_message(Some(Duration::from_secs(10)))
            .unwrap()
            .unwrap();
        assert_eq!(event.status, ResponseStatus::Processing as i32);
        let Some(ContentType::Event(event)) = event.content.and_then(|c| c.content_type) else {
            panic!()
        };
        assert_eq!(event.kind, EventKind::ClusterAdded as i32);
        assert_eq!(event.cluster_id.as_deref(), Some("evented"));
    }
}

#[test]
fn reload_applies_additions_changes_and_removals() {
    let port = free_port();
    let backend = Backend::start("reloaded");
    let first = format!(
        "{}\n[clusters.old]\nprotocol = \"http\"\nfrontends = [{{ address = \"127.0.0.1:{port}\", hostname = \"old.test\" }}]\nbackends = [{{ address = \"{}\" }}]\n",
        basic_config(port, ""),
        backend.address
    );
    let daemon = Daemon::start(&first);
    assert_eq!(client::get(port, "old.test", "/").status, 200);
    let second = format!(
        "{}\n[clusters.new]\nprotocol = \"http\"\nfrontends = [{{ address = \"127.0.0.1:{port}\", hostname = \"new.test\" }}]\nbackends = [{{ address = \"{}\" }}]\n",
        basic_config(port, ""),
        backend.address
    );
    std::fs::write(&daemon.config, second).unwrap();
    let (progress, reloaded) = daemon.exchange(RequestType::ReloadConfiguration(String::new()));
    assert_eq!(
        reloaded.status,
        ResponseStatus::Ok as i32,
        "{}",
        reloaded.message
    );
    assert!(!progress.is_empty());
    assert_eq!(client::get(port, "new.test", "/").status, 200);
    assert_eq!(client::get(port, "old.test", "/").status, 404);

    std::fs::write(&daemon.config, "this is not toml [").unwrap();
    let (_, refused) = daemon.exchange(RequestType::ReloadConfiguration(String::new()));
    assert_eq!(refused.status, ResponseStatus::Failure as i32);
    assert!(
        refused.message.contains("config.toml"),
        "{}",
        refused.message
    );
    assert_eq!(
        client::get(port, "new.test", "/").status,
        200,
        "a bad reload changes nothing"
    );
}

#[test]
fn every_change_leaves_an_audit_line_naming_who_what_and_the_result() {
    let daemon = Daemon::start(&basic_config(free_port(), ""));
    add_cluster(&daemon, "audited");
    daemon.failure(RequestType::RemoveCluster("never-added".into()));
    let me = std::process::id();
    let found = wait_until(Duration::from_secs(10), || {
        let log = daemon.stderr_text();
        log.contains(&format!("pid={me}"))
            && log.contains("request=ADD_CLUSTER result=ok")
            && log.contains("request=REMOVE_CLUSTER result=failure")
            && log.contains("never-added")
    });
    assert!(found, "{}", daemon.stderr_text());
    let log = daemon.stderr_text();
    let line = log
        .lines()
        .find(|line| line.contains("request=ADD_CLUSTER"))
        .unwrap();
    assert!(
        line.contains(&format!("uid={}", nix::unistd::getuid())),
        "{line}"
    );
    assert!(line.contains("command="), "{line}");
}

#[test]
fn an_answer_larger_than_a_frame_is_refused_by_name_and_the_connection_goes_on() {
    let daemon = Daemon::start(&basic_config(
        free_port(),
        "command_buffer_size = 4096\nmax_command_buffer_size = 8192",
    ));
    for index in 0..200 {
        daemon.ok(RequestType::AddCluster(Cluster {
            cluster_id: format!("a-cluster-with-a-long-name-{index:04}"),
            ..Default::default()
        }));
    }
    let mut channel = CommandChannel::connect(&daemon.socket).unwrap();
    let hashes = channel
        .exchange(
            &RequestType::QueryClustersHashes(Default::default()).into(),
            Some(Duration::from_secs(30)),
            |_| {},
        )
        .unwrap();
    assert_eq!(hashes.status, ResponseStatus::Failure as i32);
    assert!(hashes.message.contains("too large"), "{}", hashes.message);
    // The same connection goes on, and a narrower question is answered.
    let one = channel
        .exchange(
            &RequestType::QueryClusterById("a-cluster-with-a-long-name-0007".into()).into(),
            Some(Duration::from_secs(30)),
            |_| {},
        )
        .unwrap();
    assert_eq!(one.status, ResponseStatus::Ok as i32, "{}", one.message);
}
