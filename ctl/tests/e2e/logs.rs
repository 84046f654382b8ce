//! `log_target` and the access logs: every target (stdout, stderr, a file
//! reopened after logrotate's rename and SIGUSR1, a UDP and a unix syslog
//! server of the test's own) and every access log format (ascii, JSON
//! parsed back, protobuf decoded against Sozu's schema).

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::Duration;

use prost::Message;
use sozu_command::proto::command::{ProtobufAccessLog, protobuf_endpoint};

use crate::harness::backend::Backend;
use crate::harness::{self, Daemon, basic_config, client, code, free_port, wait_until};

/// A daemon with `extra` configuration lines and one cluster `app` on
/// `app.test`.
fn daemon_with(extra: &str) -> (Daemon, u16, Backend) {
    let port = free_port();
    let daemon = Daemon::start(&basic_config(port, extra));
    let backend = Backend::start("app");
    daemon.serve(port, "app.test", "app", &[&backend]);
    (daemon, port, backend)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Sends `GET path` until an access line naming it shows up in `text()`
/// (a worker may not be serving yet when the frontend is acknowledged).
fn request_logged(port: u16, path: &str, mut text: impl FnMut() -> String) -> bool {
    assert_eq!(client::get(port, "app.test", path).status, 200);
    wait_until(Duration::from_secs(10), || text().contains(path))
}

#[test]
fn stdout_is_the_default_target_and_stderr_can_be_chosen() {
    let (daemon, port, _backend) = daemon_with("");
    assert!(request_logged(port, "/to-stdout", || read(&daemon.stdout)));
    let line = read(&daemon.stdout)
        .lines()
        .find(|line| line.contains("/to-stdout"))
        .unwrap()
        .to_owned();
    // Sozu's ascii layout: context, addresses, durations, bytes, endpoint.
    assert!(line.contains(" [") && line.contains(" app "), "{line}");
    assert!(line.contains("GET app.test /to-stdout 200"), "{line}");
    assert!(!read(&daemon.stderr).contains("/to-stdout"));

    let (daemon, port, _backend) = daemon_with("log_target = \"stderr\"");
    assert!(request_logged(port, "/to-stderr", || read(&daemon.stderr)));
    assert!(!read(&daemon.stdout).contains("/to-stderr"));
}

#[test]
fn a_file_target_is_reopened_after_a_rename_and_sigusr1() {
    let folder = tempfile::tempdir().unwrap();
    let log = folder.path().join("sozu.log");
    let rotated = folder.path().join("sozu.log.1");
    let port = free_port();
    let config = basic_config(port, &format!("log_target = \"file://{}\"", log.display()))
        .replace("log_level = \"warn\"", "log_level = \"info\"");
    let daemon = Daemon::start_in(folder, &config);
    let backend = Backend::start("app");
    daemon.serve(port, "app.test", "app", &[&backend]);
    let workers = daemon.worker_pids().len();
    assert!(request_logged(port, "/before", || read(&log)));
    assert!(!read(&daemon.stdout).contains("/before"));

    std::fs::rename(&log, &rotated).unwrap();
    let main_pid = daemon.child.as_ref().unwrap().id() as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(main_pid),
        nix::sys::signal::Signal::SIGUSR1,
    )
    .unwrap();
    // The main process and each worker reopen, each saying so in the new
    // file.
    assert!(
        wait_until(Duration::from_secs(10), || {
            read(&log).matches("log files reopened").count() > workers
        }),
        "new file:\n{}\nold file:\n{}",
        read(&log),
        read(&rotated)
    );
    for index in 0..6 {
        assert_eq!(
            client::get(port, "app.test", &format!("/after-{index}")).status,
            200
        );
    }
    assert!(wait_until(Duration::from_secs(10), || {
        (0..6).all(|index| read(&log).contains(&format!("/after-{index} ")))
    }));
    assert!(read(&rotated).contains("/before"));
    assert!(!read(&rotated).contains("/after-"), "{}", read(&rotated));
}

/// Receives datagrams until one contains `needle`.
fn received_containing(mut receive: impl FnMut() -> Option<String>, needle: &str) -> String {
    let mut seen = Vec::new();
    while let Some(datagram) = receive() {
        if datagram.contains(needle) {
            return datagram;
        }
        seen.push(datagram);
    }
    panic!(
        "no datagram with {needle:?}; received:\n{}",
        seen.join("\n")
    );
}

/// An RFC 5424 access record: `<30>` is facility daemon (3), severity info
/// (6); app name `sozu`, then the pid and the message id `access`.
fn assert_syslog_access(datagram: &str) {
    assert!(datagram.starts_with("<30>1 "), "{datagram}");
    let fields: Vec<&str> = datagram.splitn(8, ' ').collect();
    assert_eq!(fields[3], "sozu", "{datagram}");
    assert!(fields[4].parse::<u32>().is_ok(), "{datagram}");
    assert_eq!(fields[5], "access", "{datagram}");
    assert!(
        !fields[2].is_empty() && fields[1].ends_with('Z'),
        "{datagram}"
    );
}

#[test]
fn a_udp_syslog_server_receives_rfc5424_lines() {
    let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    server
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let address = server.local_addr().unwrap();
    let (_daemon, port, _backend) = daemon_with(&format!("log_target = \"udp://{address}\""));
    assert_eq!(client::get(port, "app.test", "/over-udp").status, 200);
    let mut buffer = vec![0u8; 65536];
    let datagram = received_containing(
        || {
            let len = server.recv(&mut buffer).ok()?;
            Some(String::from_utf8_lossy(&buffer[..len]).into_owned())
        },
        "/over-udp",
    );
    assert_syslog_access(&datagram);
    assert!(!datagram.ends_with('\n'), "{datagram:?}");
}

#[test]
fn a_unix_syslog_socket_receives_rfc5424_lines() {
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("syslog.sock");
    let server = UnixDatagram::bind(&path).unwrap();
    server
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let port = free_port();
    let daemon = Daemon::start_in(
        folder,
        &basic_config(port, &format!("log_target = \"unix://{}\"", path.display())),
    );
    let backend = Backend::start("app");
    daemon.serve(port, "app.test", "app", &[&backend]);
    assert_eq!(client::get(port, "app.test", "/over-unix").status, 200);
    let mut buffer = vec![0u8; 65536];
    let datagram = received_containing(
        || {
            let len = server.recv(&mut buffer).ok()?;
            Some(String::from_utf8_lossy(&buffer[..len]).into_owned())
        },
        "/over-unix",
    );
    assert_syslog_access(&datagram);
}

#[test]
fn unsupported_targets_are_refused_by_name() {
    for (key, value) in [
        ("log_target", "tcp://127.0.0.1:514"),
        ("access_logs_target", "http://example.invalid/"),
        ("log_target", "somewhere"),
    ] {
        let folder = tempfile::tempdir().unwrap();
        let config = folder.path().join("config.toml");
        std::fs::write(
            &config,
            basic_config(free_port(), &format!("{key} = {value:?}")),
        )
        .unwrap();
        for command in ["start", "config check"] {
            let mut arguments: Vec<&str> = command.split(' ').collect();
            arguments.extend(["-c", config.to_str().unwrap()]);
            let output = harness::sozu(folder.path(), &arguments);
            assert_eq!(code(&output), 2, "{command}: {key} = {value}");
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(
                stderr.contains(key) && stderr.contains(value),
                "{command}: {key} = {value}: {stderr}"
            );
        }
    }
}

/// [`daemon_with`], writing its access records in `format` to the file
/// `name` in the daemon's folder (whose path it returns).
fn access_logs_to_file(format: &str, name: &str) -> (Daemon, std::path::PathBuf, u16, Backend) {
    let folder = tempfile::tempdir().unwrap();
    let access = folder.path().join(name);
    let port = free_port();
    let daemon = Daemon::start_in(
        folder,
        &basic_config(
            port,
            &format!(
                "access_logs_format = \"{format}\"\naccess_logs_target = \"file://{}\"",
                access.display()
            ),
        ),
    );
    let backend = Backend::start("app");
    daemon.serve(port, "app.test", "app", &[&backend]);
    (daemon, access, port, backend)
}

#[test]
fn json_access_logs_parse_back_with_every_field() {
    let (daemon, access, port, _backend) = access_logs_to_file("json", "access.json");
    for index in 0..4 {
        assert!(request_logged(port, &format!("/json-{index}"), || read(
            &access
        )));
    }
    assert_eq!(client::get(port, "nobody.test", "/unrouted").status, 404);
    assert!(wait_until(Duration::from_secs(10), || read(&access)
        .contains("/unrouted")));
    let records: Vec<serde_json::Value> = read(&access)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    for index in 0..4 {
        let path = format!("/json-{index}");
        let record = records
            .iter()
            .find(|record| record["path"] == path.as_str())
            .unwrap_or_else(|| panic!("no record of {path}: {records:?}"));
        assert_eq!(record["status"], 200, "{record}");
        assert_eq!(record["host"], "app.test", "{record}");
        assert_eq!(record["method"], "GET", "{record}");
        assert_eq!(record["cluster"], "app", "{record}");
        assert_eq!(record["backend"], "app", "{record}");
        assert!(record["service_ms"].as_f64().unwrap() >= 0.0, "{record}");
        assert!(record["bytes_out"].as_u64().unwrap() > 0, "{record}");
        assert!(
            record["tag"].as_str().unwrap().starts_with("worker-"),
            "{record}"
        );
        assert!(
            record["request_id"].as_str().unwrap().len() == 26,
            "{record}"
        );
    }
    let unrouted = records
        .iter()
        .find(|record| record["path"] == "/unrouted")
        .unwrap();
    assert_eq!(unrouted["status"], 404, "{unrouted}");
    // Not written to the log target.
    assert!(!read(&daemon.stdout).contains("/json-0"));
}

#[test]
fn protobuf_access_logs_decode_against_sozus_schema() {
    let (daemon, access, port, backend) = access_logs_to_file("protobuf", "access.pb");
    let decode = || {
        let bytes = std::fs::read(&access).unwrap_or_default();
        let mut rest = &bytes[..];
        let mut records = Vec::new();
        while !rest.is_empty() {
            let record = ProtobufAccessLog::decode_length_delimited(&mut rest)
                .unwrap_or_else(|e| panic!("undecodable record: {e}"));
            // Sozu frames each record with two zero bytes after it.
            assert_eq!(&rest[..2], &[0, 0]);
            rest = &rest[2..];
            records.push(record);
        }
        records
    };
    let path_of = |record: &ProtobufAccessLog| match &record.endpoint.inner {
        Some(protobuf_endpoint::Inner::Http(http)) => http.path.clone(),
        _ => None,
    };
    for index in 0..3 {
        let path = format!("/pb-{index}");
        assert_eq!(client::get(port, "app.test", &path).status, 200);
        assert!(wait_until(Duration::from_secs(10), || {
            decode()
                .iter()
                .any(|record| path_of(record).as_deref() == Some(path.as_str()))
        }));
    }
    let records = decode();
    assert_eq!(records.len(), 3, "{records:?}");
    for record in &records {
        assert_eq!(record.cluster_id.as_deref(), Some("app"));
        assert_eq!(record.backend_id.as_deref(), Some("app"));
        assert_eq!(record.protocol, "http");
        assert!(record.bytes_out > 0);
        assert!(record.tag.starts_with("worker-"));
        assert_ne!(record.request_id.low | record.request_id.high, 0);
        assert_eq!(
            record.backend_address.as_ref().unwrap().to_socket_addr(),
            backend.address
        );
        match &record.endpoint.inner {
            Some(protobuf_endpoint::Inner::Http(http)) => {
                assert_eq!(http.status, Some(200));
                assert_eq!(http.method.as_deref(), Some("GET"));
                assert_eq!(http.authority.as_deref(), Some("app.test"));
            }
            other => panic!("{other:?}"),
        }
    }
    drop(daemon);
}

#[test]
fn a_tcp_session_leaves_one_json_record_with_its_bytes() {
    use sozu_command::proto::command::{
        ActivateListener, ListenerType, RequestTcpFrontend, TcpListenerConfig, request::RequestType,
    };
    use std::io::{Read, Write};

    // An echo backend.
    let backend = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let backend_address = backend.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in backend.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let mut buffer = [0u8; 1024];
                while let Ok(len) = stream.read(&mut buffer) {
                    if len == 0 || stream.write_all(&buffer[..len]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    let folder = tempfile::tempdir().unwrap();
    let access = folder.path().join("access.json");
    let daemon = Daemon::start_in(
        folder,
        &basic_config(
            free_port(),
            &format!(
                "access_logs_format = \"json\"\naccess_logs_target = \"file://{}\"",
                access.display()
            ),
        ),
    );
    let tcp_port = free_port();
    daemon.ok(RequestType::AddTcpListener(TcpListenerConfig {
        address: harness::local(tcp_port),
        front_timeout: 60,
        back_timeout: 30,
        connect_timeout: 3,
        ..Default::default()
    }));
    daemon.ok(RequestType::ActivateListener(ActivateListener {
        address: harness::local(tcp_port),
        proxy: ListenerType::Tcp as i32,
        from_scm: false,
        interface: None,
    }));
    daemon.add_cluster(harness::cluster("echo"));
    daemon.ok(RequestType::AddTcpFrontend(RequestTcpFrontend {
        cluster_id: "echo".into(),
        address: harness::local(tcp_port),
        ..Default::default()
    }));
    daemon.add_backend(harness::backend("echo", "echo-0", backend_address));
    let mut client = std::net::TcpStream::connect(("127.0.0.1", tcp_port)).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    client.write_all(b"hello tcp").unwrap();
    let mut echoed = [0u8; 9];
    client.read_exact(&mut echoed).unwrap();
    assert_eq!(&echoed, b"hello tcp");
    drop(client);
    assert!(
        wait_until(Duration::from_secs(10), || read(&access)
            .contains("\"tcp\"")),
        "{}",
        read(&access)
    );
    let record: serde_json::Value = read(&access)
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .find(|record| record["protocol"] == "tcp")
        .unwrap();
    assert_eq!(record["cluster"], "echo", "{record}");
    assert_eq!(record["backend"], "echo-0", "{record}");
    assert_eq!(
        record["backend_address"],
        backend_address.to_string(),
        "{record}"
    );
    assert_eq!(record["bytes_in"], 9, "{record}");
    assert_eq!(record["bytes_out"], 9, "{record}");
    assert!(record["duration_ms"].as_f64().unwrap() >= 0.0, "{record}");
}
