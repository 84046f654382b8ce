//! What an operator (or a hostile user of the command socket) can do to the
//! daemon, and what it must survive: stops that leave nothing behind,
//! malformed requests, files that are not files, runaway descriptors, log
//! levels changed live. The real `sozu` binary, real workers, real backends
//! on 127.0.0.1.

use crate::harness;

use std::time::Duration;

use harness::backend::Backend;
use harness::process::gone;
use harness::{Daemon, basic_config, client, code, free_port, wait_until};

/// A daemon with 2 workers serving `app.test` from a backend that keeps
/// every connection open between requests, and enough traffic that both
/// workers hold idle pooled connections to it.
fn daemon_with_idle_backend_connections() -> (Daemon, Backend, Vec<i32>) {
    let port = free_port();
    let daemon = Daemon::start(&basic_config(port, ""));
    let backend = Backend::start("app");
    daemon.serve(port, "app.test", "app", &[&backend]);
    for _ in 0..40 {
        assert_eq!(client::get(port, "app.test", "/").status, 200);
    }
    assert!(
        backend
            .connections
            .load(std::sync::atomic::Ordering::SeqCst)
            > 0
    );
    let workers = daemon.worker_pids();
    assert_eq!(workers.len(), 2);
    (daemon, backend, workers)
}

fn assert_all_gone(workers: &[i32], what: &str) {
    let all_gone = wait_until(Duration::from_secs(15), || {
        workers.iter().all(|pid| gone(*pid))
    });
    if !all_gone {
        let left: Vec<_> = workers.iter().filter(|pid| !gone(**pid)).collect();
        // Leave nothing running behind the test either.
        for pid in &left {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(**pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        panic!("{what}: workers {left:?} still running");
    }
}

/// `sozu shutdown` while backends keep idle pooled connections open: the
/// soft stop closes them, and every worker exits with the main process.
#[test]
fn shutdown_leaves_no_worker_running_while_backends_keep_idle_connections() {
    let (mut daemon, _backend, workers) = daemon_with_idle_backend_connections();
    let output = daemon.sozu(&["shutdown"]);
    assert_eq!(
        code(&output),
        0,
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        daemon
            .wait_exit(Duration::from_secs(15))
            .is_some_and(|status| status.success()),
        "the main process did not exit"
    );
    assert_all_gone(&workers, "after `sozu shutdown`");
}

/// The same with `--hard`.
#[test]
fn hard_shutdown_leaves_no_worker_running() {
    let (mut daemon, _backend, workers) = daemon_with_idle_backend_connections();
    let output = daemon.sozu(&["shutdown", "--hard"]);
    assert_eq!(
        code(&output),
        0,
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(daemon.wait_exit(Duration::from_secs(15)).is_some());
    assert_all_gone(&workers, "after `sozu shutdown --hard`");
}

/// A main process killed with SIGKILL (no chance to stop anything): its
/// workers notice and exit on their own.
#[test]
fn workers_exit_when_the_main_process_is_killed() {
    let (mut daemon, _backend, workers) = daemon_with_idle_backend_connections();
    let mut child = daemon.child.take().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert_all_gone(&workers, "after kill -9 of the main process");
}

/// Whether the daemon's log (main and workers) mentions `text`.
fn logged(daemon: &Daemon, text: &str) -> bool {
    daemon.stderr_text().contains(text)
}

/// `sozu logging LEVEL` changes the filter of the main process and of every
/// worker, live: access lines (written whatever the level, unless the filter
/// says `access=off`) appear after `logging info` and stop after `logging
/// warn,access=off`; a filter that is not one is refused by name and
/// changes nothing.
#[test]
fn logging_changes_the_level_of_every_process_live() {
    let port = free_port();
    let daemon = Daemon::start(
        &basic_config(port, "").replace("log_level = \"warn\"", "log_level = \"warn,access=off\""),
    );
    let backend = Backend::start("app");
    daemon.serve(port, "app.test", "app", &[&backend]);
    let workers = daemon.worker_pids();
    // With `access=off`, requests leave no access line.
    for _ in 0..4 {
        assert_eq!(client::get(port, "app.test", "/quiet-1").status, 200);
    }
    let output = daemon.sozu(&["logging", "info"]);
    assert_eq!(
        code(&output),
        0,
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Every process says so at its new level: the main one and each worker.
    assert!(wait_until(Duration::from_secs(10), || {
        daemon.stderr_text().matches("log filter changed").count() > workers.len()
    }));
    // Several requests, so that both workers serve some.
    for _ in 0..8 {
        assert_eq!(client::get(port, "app.test", "/loud-1").status, 200);
    }
    assert!(
        wait_until(Duration::from_secs(10), || logged(&daemon, "/loud-1")),
        "no access line after `sozu logging info`:\n{}",
        daemon.stderr_text()
    );
    assert!(!logged(&daemon, "/quiet-1"), "{}", daemon.stderr_text());

    // Back to warn: quiet again (checked once a later line at info shows
    // the quiet requests were handled before it).
    assert_eq!(code(&daemon.sozu(&["logging", "warn,access=off"])), 0);
    for _ in 0..4 {
        assert_eq!(client::get(port, "app.test", "/quiet-2").status, 200);
    }
    // A bad filter is refused by name, before any process changes.
    let output = daemon.sozu(&["logging", "sozu_proxy=loud"]);
    assert_ne!(code(&output), 0);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(text.contains("sozu_proxy=loud"), "{text}");
    assert_eq!(code(&daemon.sozu(&["logging", "info"])), 0);
    for _ in 0..8 {
        assert_eq!(client::get(port, "app.test", "/loud-2").status, 200);
    }
    assert!(wait_until(Duration::from_secs(10), || logged(
        &daemon, "/loud-2"
    )));
    assert!(!logged(&daemon, "/quiet-2"), "{}", daemon.stderr_text());
    assert_eq!(daemon.worker_pids(), workers);
}

/// Runs `sozu -c CONFIG ARGUMENTS…` in the daemon's folder, killed if it
/// has not ended within `deadline` (then `None`).
fn sozu_within(
    daemon: &Daemon,
    arguments: &[&str],
    deadline: Duration,
) -> Option<std::process::Output> {
    let mut child = harness::sozu_command()
        .arg("-c")
        .arg(&daemon.config)
        .args(["-t", "30000"])
        .args(arguments)
        .current_dir(daemon.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let ended = wait_until(deadline, || child.try_wait().unwrap().is_some());
    if !ended {
        let _ = child.kill();
        let _ = child.wait();
        return None;
    }
    Some(child.wait_with_output().unwrap())
}

fn all_text(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Makes a FIFO at `path`.
fn mkfifo(path: &std::path::Path) {
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
}

/// `load_state` of a FIFO, of an endless device or of a file above
/// `max_state_file_size`: refused by name at once, by the daemon and by the
/// command line, and the daemon keeps answering with its memory intact.
#[test]
fn loading_a_state_that_is_not_a_regular_file_or_too_large_is_refused() {
    use sozu_command::proto::command::request::RequestType;
    let port = free_port();
    let daemon = Daemon::start(&basic_config(port, "max_state_file_size = 4096"));
    let main_pid = daemon.child.as_ref().unwrap().id() as i32;
    let fifo = daemon.path().join("state.fifo");
    mkfifo(&fifo);
    let large = daemon.path().join("large.state");
    std::fs::write(&large, vec![b' '; 5000]).unwrap();
    let fifo = fifo.to_str().unwrap();
    let large = large.to_str().unwrap();

    // Straight to the daemon, as any client may send it.
    for (path, expected) in [
        (fifo, "a FIFO"),
        ("/dev/zero", "character device"),
        (large, "max_state_file_size"),
    ] {
        let message = daemon.failure(RequestType::LoadState(path.to_owned()));
        assert!(message.contains(expected), "{path}: {message}");
        assert!(message.contains(path), "{path}: {message}");
    }
    assert!(Daemon::peak_rss(main_pid) < 200 << 20);

    // Through the command line, which reads the file first.
    for (path, expected) in [
        (fifo, "a FIFO"),
        ("/dev/zero", "character device"),
        (large, "max_state_file_size"),
    ] {
        let output = sozu_within(
            &daemon,
            &["state", "load", "-f", path],
            Duration::from_secs(20),
        )
        .unwrap_or_else(|| panic!("`sozu state load -f {path}` did not end"));
        assert_ne!(code(&output), 0);
        let text = all_text(&output);
        assert!(text.contains(expected), "{path}: {text}");
    }

    // A regular file within the limit loads, and the daemon still answers.
    let small = daemon.path().join("small.state");
    std::fs::write(&small, b"").unwrap();
    daemon.ok(RequestType::LoadState(small.to_str().unwrap().to_owned()));
    assert_eq!(daemon.worker_pids().len(), 2);
}

/// Starts a prepared daemon with umask `mask` (the harness's own start
/// keeps the test's umask).
fn spawn_with_umask(daemon: &mut Daemon, mask: u32) {
    use std::os::unix::process::CommandExt;
    let mut command = harness::sozu_command();
    command
        .arg("start")
        .arg("-c")
        .arg(&daemon.config)
        .current_dir(daemon.path())
        .stdout(std::fs::File::create(&daemon.stdout).unwrap())
        .stderr(std::fs::File::create(&daemon.stderr).unwrap());
    // SAFETY: umask is async-signal-safe and allocates nothing.
    unsafe {
        command.pre_exec(move || {
            set_umask(mask);
            Ok(())
        });
    }
    daemon.child = Some(command.spawn().unwrap());
    let socket = daemon.socket.clone();
    assert!(
        wait_until(Duration::from_secs(20), || {
            std::os::unix::net::UnixStream::connect(&socket).is_ok()
        }),
        "{}",
        daemon.stderr_text()
    );
}

fn set_umask(mask: u32) {
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mask));
}

fn mode_of(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// State files hold private keys: `state save` and automatic saves write
/// them 0600 even under umask 000, and a rewrite keeps a tighter mode an
/// operator set (an automatic save used to turn 0600 back into 0644).
#[test]
fn state_files_are_written_0600_and_keep_a_tighter_mode() {
    use sozu_command::proto::command::request::RequestType;
    let port = free_port();
    let mut daemon = Daemon::prepare(&basic_config(
        port,
        "saved_state = \"saved.state\"\nautomatic_state_save = true",
    ));
    spawn_with_umask(&mut daemon, 0o000);
    let saved = daemon.path().join("saved.state");
    daemon.add_cluster(harness::cluster("one"));
    assert_eq!(mode_of(&saved), 0o600);

    let explicit = daemon.path().join("explicit.state");
    let output = daemon.sozu(&["state", "save", "-f", explicit.to_str().unwrap()]);
    assert_eq!(code(&output), 0, "{}", all_text(&output));
    assert_eq!(mode_of(&explicit), 0o600);

    // Tighter than 0600: kept by the next automatic save.
    std::fs::set_permissions(&saved, std::os::unix::fs::PermissionsExt::from_mode(0o400)).unwrap();
    daemon.add_cluster(harness::cluster("two"));
    assert!(std::fs::read_to_string(&saved).unwrap().contains("\"two\""));
    assert_eq!(mode_of(&saved), 0o400);
    // Looser: tightened.
    std::fs::set_permissions(&saved, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    daemon.ok(RequestType::RemoveCluster("one".into()));
    assert!(!std::fs::read_to_string(&saved).unwrap().contains("\"one\""));
    assert_eq!(mode_of(&saved), 0o600);
}

/// Descriptors process `pid` has open.
fn open_descriptors(pid: i32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|entries| entries.count() as u64)
        .unwrap_or(0)
}

/// CPU time process `pid` used so far, in clock ticks (user + system).
fn cpu_ticks(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    // After the name: state is field 3, utime 14 and stime 15 (1-based).
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// A main process out of descriptors (RLIMIT_NOFILE lowered with prlimit,
/// then more clients than it can hold) neither spins nor floods its log:
/// accepting pauses and the repeated line is rate-limited; once clients
/// leave, `sozu status` answers again.
#[test]
fn a_main_process_out_of_descriptors_backs_off_and_recovers() {
    let port = free_port();
    let daemon = Daemon::start(&basic_config(port, ""));
    let main_pid = daemon.child.as_ref().unwrap().id() as i32;
    let limit = open_descriptors(main_pid) + 8;
    let lowered = nix::libc::rlimit {
        rlim_cur: limit,
        rlim_max: limit,
    };
    // SAFETY: valid pointers to a limit and to nothing.
    let result = unsafe {
        nix::libc::prlimit(
            main_pid,
            nix::libc::RLIMIT_NOFILE,
            &lowered,
            std::ptr::null_mut(),
        )
    };
    assert_eq!(result, 0, "prlimit: {}", std::io::Error::last_os_error());

    let clients: Vec<_> = (0..40)
        .map(|_| std::os::unix::net::UnixStream::connect(&daemon.socket).unwrap())
        .collect();
    assert!(
        wait_until(Duration::from_secs(10), || open_descriptors(main_pid)
            >= limit),
        "the main process never ran out of descriptors"
    );
    // Over a measured window, while clients keep waiting in the queue.
    let log_before = std::fs::metadata(&daemon.stderr).unwrap().len();
    let cpu_before = cpu_ticks(main_pid);
    let window = Duration::from_secs(2);
    std::thread::sleep(window);
    let cpu = cpu_ticks(main_pid) - cpu_before;
    let logged = std::fs::metadata(&daemon.stderr).unwrap().len() - log_before;
    // SAFETY: sysconf has no memory-safety requirement.
    let ticks_per_second = unsafe { nix::libc::sysconf(nix::libc::_SC_CLK_TCK) } as u64;
    assert!(
        cpu * 4 < ticks_per_second * window.as_secs(),
        "the main process used {cpu} ticks of CPU in {window:?} ({ticks_per_second}/s)"
    );
    assert!(
        logged < 8 * 1024,
        "{logged} bytes of log in {window:?}:\n{}",
        daemon.stderr_text().chars().take(2000).collect::<String>()
    );
    assert!(
        daemon.stderr_text().contains("could not accept"),
        "{}",
        daemon.stderr_text()
    );

    drop(clients);
    assert!(
        wait_until(Duration::from_secs(20), || code(
            &daemon.sozu(&["-t", "2000", "status"])
        ) == 0),
        "`sozu status` never answered again"
    );
    assert_eq!(daemon.worker_pids().len(), 2);
}

/// A user created for one test (removed when dropped), when the tests run
/// as root; `None` otherwise, after saying that the test is skipped.
struct TestUser {
    name: String,
    uid: u32,
    gid: u32,
}

impl TestUser {
    fn create(test: &str) -> Option<TestUser> {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("{test}: skipped, creating a test user needs root");
            return None;
        }
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let name = format!(
            "sozut{}x{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        );
        let created = std::process::Command::new("useradd")
            .args([
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                "--user-group",
            ])
            .arg(&name)
            .status();
        if !created.is_ok_and(|status| status.success()) {
            eprintln!("{test}: skipped, useradd could not create a test user");
            return None;
        }
        let id = |flag: &str| -> u32 {
            let output = std::process::Command::new("id")
                .args([flag, &name])
                .output()
                .unwrap();
            String::from_utf8_lossy(&output.stdout)
                .trim()
                .parse()
                .unwrap()
        };
        let (uid, gid) = (id("-u"), id("-g"));
        Some(TestUser { name, uid, gid })
    }

    /// Runs `sozu -c CONFIG ARGUMENTS…` as this user.
    fn sozu(&self, daemon: &Daemon, arguments: &[&str]) -> std::process::Output {
        use std::os::unix::process::CommandExt;
        harness::sozu_command()
            .uid(self.uid)
            .gid(self.gid)
            .arg("-c")
            .arg(&daemon.config)
            .args(["-t", "30000"])
            .args(arguments)
            .current_dir(daemon.path())
            .output()
            .unwrap()
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _ = std::process::Command::new("userdel")
            .arg(&self.name)
            .status();
    }
}

/// A daemon (running as root) whose socket another user may use, in a
/// folder that user can reach.
fn daemon_for(user: &TestUser, extra: &str) -> Daemon {
    use std::os::unix::fs::PermissionsExt;
    let folder = tempfile::tempdir().unwrap();
    std::fs::set_permissions(folder.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = basic_config(
        free_port(),
        &format!(
            "command_socket_mode = \"0666\"\ncommand_allowed_uids = [0, {}]\n{extra}",
            user.uid
        ),
    );
    Daemon::start_in(folder, &config)
}

fn owner_of(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path).unwrap().uid()
}

/// A client running as another user than the daemon cannot make it read or
/// write files by path, unless they are inside `state_directory`, reached
/// without following links; the daemon's own user is not confined.
#[test]
fn other_users_name_state_files_only_inside_the_state_directory() {
    use std::os::unix::fs::PermissionsExt;
    let Some(user) =
        TestUser::create("other_users_name_state_files_only_inside_the_state_directory")
    else {
        return;
    };

    // Without state_directory: no path at all for that user.
    let daemon = daemon_for(&user, "");
    let folder = daemon.path().to_path_buf();
    let readable = folder.join("readable.state");
    std::fs::write(&readable, b"").unwrap();
    std::fs::set_permissions(&readable, std::fs::Permissions::from_mode(0o644)).unwrap();
    let target = folder.join("written.state");
    for arguments in [
        ["state", "save", "-f", target.to_str().unwrap()],
        ["state", "load", "-f", readable.to_str().unwrap()],
    ] {
        let output = user.sozu(&daemon, &arguments);
        assert_ne!(code(&output), 0, "{arguments:?}");
        let text = all_text(&output);
        assert!(text.contains("state_directory"), "{arguments:?}: {text}");
        assert!(text.contains(&user.uid.to_string()), "{text}");
    }
    assert!(!target.exists());
    // The daemon's own user is not confined.
    let output = daemon.sozu(&["state", "save", "-f", target.to_str().unwrap()]);
    assert_eq!(code(&output), 0, "{}", all_text(&output));
    drop(daemon);

    // With state_directory.
    let daemon = daemon_for(&user, "state_directory = \"states\"");
    let folder = daemon.path().to_path_buf();
    let states = folder.join("states");
    std::fs::create_dir(&states).unwrap();
    std::fs::set_permissions(&states, std::fs::Permissions::from_mode(0o755)).unwrap();
    let private = folder.join("private");
    std::fs::create_dir(&private).unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
    let secret = folder.join("secret.state");
    std::fs::write(&secret, b"").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::os::unix::fs::symlink(&private, states.join("to-private")).unwrap();
    std::os::unix::fs::symlink(&secret, states.join("to-secret")).unwrap();
    daemon.add_cluster(harness::cluster("app"));

    // Inside: written, by the daemon's user, 0600; and loaded back.
    let inside = states.join("mine.state");
    let output = user.sozu(&daemon, &["state", "save", "-f", inside.to_str().unwrap()]);
    assert_eq!(code(&output), 0, "{}", all_text(&output));
    assert_eq!(owner_of(&inside), 0);
    assert_eq!(mode_of(&inside), 0o600);
    // The daemon reads it (its records overlap the live state, which a
    // load reports as it does for any user: only the reading is checked).
    let output = user.sozu(&daemon, &["state", "load", "-f", inside.to_str().unwrap()]);
    let text = all_text(&output);
    assert!(
        text.contains(&format!("of 3 records from {}", inside.display())),
        "{text}"
    );

    // Outside, through '..', through a link to a folder, or a link to a
    // file: refused by name, nothing written or read there.
    let escapes = [
        folder.join("outside.state"),
        states.join("../outside.state"),
        states.join("to-private/x.state"),
    ];
    for path in &escapes {
        let output = user.sozu(&daemon, &["state", "save", "-f", path.to_str().unwrap()]);
        assert_ne!(code(&output), 0, "{}", path.display());
        let text = all_text(&output);
        assert!(
            text.contains("state directory") || text.contains("state_directory"),
            "{}: {text}",
            path.display()
        );
    }
    assert!(!folder.join("outside.state").exists());
    assert!(!private.join("x.state").exists());
    let output = user.sozu(
        &daemon,
        &[
            "state",
            "load",
            "-f",
            states.join("to-secret").to_str().unwrap(),
        ],
    );
    assert_ne!(code(&output), 0);
    assert!(all_text(&output).contains("link"), "{}", all_text(&output));
    // Saving onto the link replaces the link, never the file it named.
    let output = user.sozu(
        &daemon,
        &[
            "state",
            "save",
            "-f",
            states.join("to-secret").to_str().unwrap(),
        ],
    );
    assert_eq!(code(&output), 0, "{}", all_text(&output));
    assert_eq!(std::fs::read(&secret).unwrap(), b"");
    assert_eq!(mode_of(&secret), 0o644);
    // Still serving everyone.
    assert_eq!(daemon.worker_pids().len(), 2);
}

/// A user the socket lets connect but `command_allowed_uids` refuses reads
/// the refusal (it used to see "Broken pipe" and exit 5).
#[test]
fn a_refused_user_reads_why() {
    let Some(user) = TestUser::create("a_refused_user_reads_why") else {
        return;
    };
    use std::os::unix::fs::PermissionsExt;
    let folder = tempfile::tempdir().unwrap();
    std::fs::set_permissions(folder.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = basic_config(
        free_port(),
        "command_socket_mode = \"0666\"\ncommand_allowed_uids = [0]",
    );
    let daemon = Daemon::start_in(folder, &config);
    for _ in 0..5 {
        let output = user.sozu(&daemon, &["status"]);
        let text = all_text(&output);
        assert!(
            text.contains("not allowed") && text.contains(&user.uid.to_string()),
            "{text}"
        );
        assert!(!text.contains("Broken pipe"), "{text}");
        assert_ne!(code(&output), 5, "{text}");
        assert_ne!(code(&output), 0, "{text}");
    }
}

/// An argument that is not UTF-8 is refused by its position, and nothing
/// reaches the daemon (it used to become U+FFFD silently).
#[test]
fn a_non_utf8_argument_is_refused_by_name() {
    use std::os::unix::ffi::OsStrExt;
    let daemon = Daemon::start(&basic_config(free_port(), ""));
    let output = harness::sozu_command()
        .arg("-c")
        .arg(&daemon.config)
        .args(["cluster", "add", "--id"])
        .arg(std::ffi::OsStr::from_bytes(b"app\xff"))
        .current_dir(daemon.path())
        .output()
        .unwrap();
    assert_eq!(code(&output), 2, "{}", all_text(&output));
    let text = all_text(&output);
    assert!(
        text.contains("argument 6") && text.contains("not valid UTF-8"),
        "{text}"
    );
    let listed = daemon.sozu(&["--json", "cluster", "list"]);
    assert!(
        !String::from_utf8_lossy(&listed.stdout).contains("app"),
        "{}",
        all_text(&listed)
    );
}

/// An event subscriber that never reads is cut off once 4096 events wait
/// for it (doc/daemon.md), instead of holding the main process's memory
/// without bound; everyone else goes on.
#[test]
fn an_event_subscriber_that_never_reads_is_cut_off() {
    use sozu_command::channel::frame;
    use sozu_command::proto::command::{Request, request::RequestType};
    use std::io::{Read, Write};
    let port = free_port();
    let daemon = Daemon::start(&harness::config(port, 1, "", ""));
    let mut subscriber = std::os::unix::net::UnixStream::connect(&daemon.socket).unwrap();
    let subscribe: Request = RequestType::SubscribeEvents(Default::default()).into();
    subscriber
        .write_all(&frame::encode_to_vec(&subscribe, usize::MAX).unwrap())
        .unwrap();
    // Its first answer says it is subscribed; then it stops reading.
    let mut channel = sozu_command::channel::CommandChannel::connect(&daemon.socket).unwrap();
    assert!(wait_until(Duration::from_secs(10), || {
        channel
            .exchange(
                &RequestType::Status(Default::default()).into(),
                Some(Duration::from_secs(10)),
                |_| {},
            )
            .is_ok()
    }));

    // Well over 4096 events (and whatever the socket buffers), from one
    // client that sends its requests without waiting for each answer.
    let changes = 6000;
    let mut writer = std::os::unix::net::UnixStream::connect(&daemon.socket).unwrap();
    let mut reader = writer.try_clone().unwrap();
    let drain = std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = reader.read_to_end(&mut sink);
    });
    for index in 0..changes {
        let request: Request =
            RequestType::AddCluster(harness::cluster(&format!("c{index}"))).into();
        writer
            .write_all(&frame::encode_to_vec(&request, usize::MAX).unwrap())
            .unwrap();
    }
    // The subscriber's connection is closed by the daemon: reading it
    // now reaches the end instead of waiting for more.
    subscriber
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut received = Vec::new();
    let result = subscriber.read_to_end(&mut received);
    assert!(
        result.is_ok(),
        "the subscriber was never cut off ({} bytes read): {result:?}",
        received.len()
    );
    // What it holds is what the socket buffered: a few hundred events.
    assert!(received.len() < 1 << 20, "{} bytes", received.len());
    // The writer's own answers end once the daemon has read everything.
    writer.shutdown(std::net::Shutdown::Write).unwrap();
    drain.join().unwrap();
    // Everyone else is served, and the changes all applied.
    let listed = daemon.sozu(&["--json", "cluster", "list"]);
    assert_eq!(code(&listed), 0, "{}", all_text(&listed));
    assert!(String::from_utf8_lossy(&listed.stdout).contains(&format!("c{}", changes - 1)));
}
