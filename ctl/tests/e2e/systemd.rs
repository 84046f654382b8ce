//! Running under systemd: the daemon started with a `NOTIFY_SOCKET` of the
//! test's own tells it READY, RELOADING then READY around a reload and an
//! upgrade (naming its pid after the upgrade), and STOPPING, in that order;
//! the pid file is there while it runs and gone once it stopped.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use sozu_command::proto::command::{ResponseStatus, SoftStop, UpgradeMain, request::RequestType};

use crate::harness::{self, Daemon, basic_config, free_port, wait_until};

/// The next notification, within a few seconds.
fn next(socket: &UnixDatagram) -> String {
    let mut buffer = [0u8; 4096];
    let len = socket
        .recv(&mut buffer)
        .expect("a notification within the deadline");
    String::from_utf8_lossy(&buffer[..len]).into_owned()
}

fn lines(notification: &str) -> Vec<&str> {
    notification.lines().collect()
}

#[test]
fn notifications_follow_start_reload_upgrade_and_stop_in_order() {
    let folder = tempfile::tempdir().unwrap();
    let notify_path = folder.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let pid_file = folder.path().join("sozu.pid");
    let mut daemon = Daemon::prepare_in(
        folder,
        &basic_config(free_port(), "pid_file_path = \"sozu.pid\""),
    );
    let child = harness::sozu_command()
        .arg("start")
        .arg("-c")
        .arg(&daemon.config)
        .env("NOTIFY_SOCKET", &notify_path)
        .current_dir(daemon.path())
        .stdout(std::fs::File::create(&daemon.stdout).unwrap())
        .stderr(std::fs::File::create(&daemon.stderr).unwrap())
        .spawn()
        .unwrap();
    let pid = child.id();
    daemon.child = Some(child);

    // Start: READY once the workers serve and the socket answers.
    let ready = next(&notify);
    assert_eq!(
        lines(&ready),
        ["READY=1", "STATUS=2 workers running"],
        "{ready}"
    );
    assert!(std::os::unix::net::UnixStream::connect(&daemon.socket).is_ok());
    assert!(wait_until(Duration::from_secs(5), || pid_file.exists()));
    assert_eq!(
        std::fs::read_to_string(&pid_file).unwrap(),
        format!("{pid}\n")
    );

    // Reload: RELOADING (with the monotonic time systemd asks for), READY.
    daemon.ok(RequestType::ReloadConfiguration(String::new()));
    let reloading = next(&notify);
    assert_eq!(lines(&reloading)[0], "RELOADING=1", "{reloading}");
    let usec = lines(&reloading)[1]
        .strip_prefix("MONOTONIC_USEC=")
        .unwrap_or_else(|| panic!("{reloading}"));
    assert!(usec.parse::<u64>().unwrap() > 0);
    assert_eq!(lines(&next(&notify))[0], "READY=1");

    // Upgrade of the main process: RELOADING, then the new program names
    // itself (same pid: the program is replaced in place) and is READY.
    daemon.ok(RequestType::UpgradeMain(UpgradeMain {}));
    let reloading = next(&notify);
    assert_eq!(lines(&reloading)[0], "RELOADING=1", "{reloading}");
    let upgraded = next(&notify);
    assert_eq!(
        lines(&upgraded),
        [
            format!("MAINPID={pid}").as_str(),
            "READY=1",
            "STATUS=2 workers running"
        ],
        "{upgraded}"
    );
    assert_eq!(
        std::fs::read_to_string(&pid_file).unwrap(),
        format!("{pid}\n")
    );

    // Stop: STOPPING, then the pid file goes away with the process.
    let (_, answer) = daemon.exchange(RequestType::SoftStop(SoftStop {}));
    assert_eq!(
        answer.status,
        ResponseStatus::Ok as i32,
        "{}",
        answer.message
    );
    let stopping = next(&notify);
    assert_eq!(lines(&stopping)[0], "STOPPING=1", "{stopping}");
    assert!(daemon.wait_exit(Duration::from_secs(30)).is_some());
    assert!(!pid_file.exists());
    // Nothing after STOPPING.
    notify
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buffer = [0u8; 64];
    assert!(notify.recv(&mut buffer).is_err());
}
