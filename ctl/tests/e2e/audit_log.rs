//! The audit log: one record per change of every kind (cluster, frontend,
//! backend, listener, certificate, state load, reload, upgrade, shutdown),
//! in text to `audit_logs_target` and in JSON to `audit_logs_json_target`,
//! naming this test process (its uid, gid and pid), the request, what it
//! is about and the outcome; control characters from clients escaped.

use std::time::Duration;

use serde_json::Value;
use sozu_command::proto::command::{
    ActivateListener, HttpListenerConfig, ListenerType, RemoveBackend, SoftStop, UpgradeMain,
    request::RequestType,
};

use crate::harness::backend::Backend;
use crate::harness::tls::{Authority, https_listener};
use crate::harness::{Daemon, basic_config, cluster, free_port, local};

fn records(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

#[test]
fn every_kind_of_change_is_audited_with_the_clients_credentials() {
    let folder = tempfile::tempdir().unwrap();
    let json = folder.path().join("audit.json");
    let text = folder.path().join("audit.log");
    let port = free_port();
    let config = basic_config(
        port,
        &format!(
            // The text target as Sozu's sample writes it: a bare path,
            // relative to the daemon's folder.
            "audit_logs_target = \"audit.log\"\naudit_logs_json_target = \"file://{}\"",
            json.display()
        ),
    );
    let mut daemon = Daemon::start_in(folder, &config);
    let backend = Backend::start("app");
    daemon.serve(port, "app.test", "app", &[&backend]);
    daemon.ok(RequestType::RemoveBackend(RemoveBackend {
        cluster_id: "app".into(),
        backend_id: "app".into(),
        address: backend.address.into(),
    }));
    let http_port = free_port();
    daemon.ok(RequestType::AddHttpListener(HttpListenerConfig {
        address: local(http_port),
        front_timeout: 60,
        back_timeout: 30,
        connect_timeout: 3,
        request_timeout: 10,
        ..Default::default()
    }));
    daemon.ok(RequestType::ActivateListener(ActivateListener {
        address: local(http_port),
        proxy: ListenerType::Http as i32,
        from_scm: false,
        interface: None,
    }));
    let https_port = free_port();
    daemon.add_https_listener(https_listener(https_port));
    let issued = Authority::new().issue(&["secure.test"]);
    daemon.add_certificate(https_port, &issued);
    // A refused change, with control characters in what the client sent.
    daemon.failure(RequestType::RemoveCluster("never\nadded\u{1b}[31m".into()));
    daemon.add_cluster(cluster("second"));
    // State load, reload, upgrades.
    let state = daemon.path().join("state.bin");
    daemon.ok(RequestType::SaveState(state.to_str().unwrap().into()));
    daemon.ok(RequestType::LoadState(state.to_str().unwrap().into()));
    daemon.ok(RequestType::ReloadConfiguration(String::new()));
    daemon.ok(RequestType::UpgradeWorker(0));
    daemon.ok(RequestType::UpgradeMain(UpgradeMain {}));
    daemon.ok(RequestType::SoftStop(SoftStop {}));
    assert!(daemon.wait_exit(Duration::from_secs(30)).is_some());

    let me = std::process::id() as i64;
    let uid = i64::from(nix::unistd::getuid().as_raw());
    let gid = i64::from(nix::unistd::getgid().as_raw());
    let all = records(&json);
    let find = |request: &str, target: &str| -> Value {
        all.iter()
            .find(|record| {
                record["request"] == request
                    && record["target"].as_str().unwrap_or("").contains(target)
            })
            .cloned()
            .unwrap_or_else(|| panic!("no {request} record about {target:?}: {all:#?}"))
    };
    let expected = [
        ("ADD_CLUSTER", "cluster=app"),
        ("ADD_HTTP_FRONTEND", "host=app.test"),
        ("ADD_BACKEND", "backend=app"),
        ("REMOVE_BACKEND", "backend=app"),
        (
            "ADD_HTTP_LISTENER",
            &format!("listener=127.0.0.1:{http_port}"),
        ),
        (
            "ACTIVATE_LISTENER",
            &format!("listener=127.0.0.1:{http_port}"),
        ),
        (
            "ADD_HTTPS_LISTENER",
            &format!("listener=127.0.0.1:{https_port}"),
        ),
        ("ADD_CERTIFICATE", "names=secure.test"),
        ("LOAD_STATE", "state.bin"),
        ("RELOAD_CONFIGURATION", ""),
        ("UPGRADE_WORKER", "worker=0"),
        ("UPGRADE_MAIN", ""),
        ("SOFT_STOP", ""),
    ];
    for (request, target) in expected {
        let record = find(request, target);
        assert_eq!(record["result"], "ok", "{record}");
        assert_eq!(record["pid"], me, "{record}");
        assert_eq!(record["uid"], uid, "{record}");
        assert_eq!(record["gid"], gid, "{record}");
        assert!(record["time"].as_str().unwrap().ends_with('Z'), "{record}");
    }
    let refused = find("REMOVE_CLUSTER", "never");
    assert_eq!(refused["result"], "failure");
    assert_eq!(refused["target"], "cluster=never\nadded\u{1b}[31m");
    assert!(refused["reason"].as_str().unwrap().contains("never"));
    // No private key anywhere.
    let json_text = std::fs::read_to_string(&json).unwrap();
    assert!(!json_text.contains("PRIVATE KEY"));

    // The text file: one line per record, the same credentials, and the
    // client's control characters escaped (no forged line).
    let text = std::fs::read_to_string(&text).unwrap();
    assert_eq!(text.lines().count(), all.len(), "{text}");
    let line = text
        .lines()
        .find(|line| line.contains("request=REMOVE_CLUSTER"))
        .unwrap();
    assert!(
        line.contains(&format!("uid={uid} gid={gid} pid={me} ")),
        "{line}"
    );
    assert!(line.contains("never\\x0aadded\\x1b[31m"), "{line}");
    assert!(line.contains("result=failure"), "{line}");
    assert!(!text.contains('\u{1b}'));
    assert!(!text.lines().any(|line| line.starts_with("added")));
}
