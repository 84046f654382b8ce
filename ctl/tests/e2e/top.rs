//! `sozu top` in a real terminal (tmux) against a real daemon with live
//! traffic: views, filter, drill-down, an action, and the daemon going away
//! and coming back.

use crate::harness;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use harness::{Daemon, backend, client, config, free_port, sozu, wait_until};
use sozu_command::proto::command::request::RequestType;
use sozu_command::proto::command::response_content::ContentType;

/// A tmux server of the test's own, with one window running the console.
struct Tmux {
    socket: PathBuf,
}

impl Tmux {
    fn available() -> bool {
        Command::new("tmux")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success())
    }

    fn run(&self, arguments: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .arg("-f")
            .arg("/dev/null")
            .args(arguments)
            .env("TERM", "xterm-256color")
            .output()
            .unwrap()
    }

    /// Starts `command` in a detached 120x40 window.
    fn start(folder: &Path, command: &str) -> Tmux {
        let tmux = Tmux {
            socket: folder.join("tmux.sock"),
        };
        let output = tmux.run(&[
            "new-session",
            "-d",
            "-s",
            "top",
            "-x",
            "120",
            "-y",
            "40",
            command,
        ]);
        assert!(output.status.success(), "tmux: {output:?}");
        // Keep the pane once the console exits, to see how it ended.
        tmux.run(&["set-option", "-t", "top", "remain-on-exit", "on"]);
        tmux
    }

    fn keys(&self, keys: &[&str]) {
        let mut arguments = vec!["send-keys", "-t", "top"];
        arguments.extend_from_slice(keys);
        assert!(self.run(&arguments).status.success());
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-p", "-t", "top"]).stdout).into_owned()
    }

    /// Waits until the screen shows every needle; panics with the screen.
    fn wait_for(&self, needles: &[&str]) -> String {
        let mut screen = String::new();
        let found = wait_until(Duration::from_secs(30), || {
            screen = self.screen();
            needles.iter().all(|needle| screen.contains(needle))
        });
        assert!(found, "the console never showed {needles:?}:\n{screen}");
        screen
    }

    fn pane_dead(&self) -> bool {
        let output = self.run(&["display-message", "-p", "-t", "top", "#{pane_dead}"]);
        String::from_utf8_lossy(&output.stdout).trim() == "1"
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.run(&["kill-server"]);
    }
}

fn cluster_backends(daemon: &Daemon, cluster: &str) -> Vec<String> {
    let answer = daemon.ok(RequestType::QueryClusterById(cluster.to_owned()));
    let mut ids = Vec::new();
    if let Some(ContentType::WorkerResponses(responses)) =
        answer.content.and_then(|c| c.content_type)
    {
        for part in responses.map.into_values() {
            if let Some(ContentType::Clusters(list)) = part.content_type {
                for information in list.vec {
                    ids.extend(information.backends.into_iter().map(|b| b.backend_id));
                }
            }
        }
    }
    ids.sort();
    ids.dedup();
    ids
}

#[test]
fn the_console_follows_a_live_daemon_acts_on_it_and_survives_its_restart() {
    if !Tmux::available() {
        eprintln!("SKIPPED: tmux is not installed (.ci/run installs it)");
        return;
    }
    let port = free_port();
    let mut daemon = Daemon::start(&config(port, 2, "", ""));
    let first = backend::Backend::start("shop-a");
    let second = backend::Backend::start("shop-b");
    let blog = backend::Backend::start("blog-a");
    daemon.serve(port, "shop.test", "shop", &[&first, &second]);
    daemon.serve(port, "blog.test", "blog", &[&blog]);

    // Live traffic for the whole test, bounded in count and time.
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let started = Instant::now();
            let mut sent = 0;
            while (sent < 300 || !stop.load(Ordering::Relaxed))
                && sent < 3000
                && started.elapsed() < Duration::from_secs(90)
            {
                let _ = client::try_get(
                    port,
                    if sent % 3 == 0 {
                        "blog.test"
                    } else {
                        "shop.test"
                    },
                    "/",
                );
                sent += 1;
                // Paces the traffic (about 100 requests/s); nothing waits on it.
                std::thread::sleep(Duration::from_millis(10));
            }
            sent
        })
    };

    let command = format!(
        "exec {} top --socket {} --refresh-ms 250",
        env!("CARGO_BIN_EXE_sozu"),
        daemon.socket.display()
    );
    let tmux = Tmux::start(daemon.path(), &command);

    // Overview: live, with a real request rate.
    let mut screen = String::new();
    let busy = wait_until(Duration::from_secs(30), || {
        screen = tmux.screen();
        screen.contains("live")
            && screen
                .lines()
                .find(|line| line.contains("requests/s   "))
                .is_some_and(|line| {
                    let value = line.split("requests/s").nth(1).unwrap_or("").trim();
                    let value = value.split_whitespace().next().unwrap_or("0");
                    value != "0" && value != "-"
                })
    });
    assert!(busy, "no request rate on the overview:\n{screen}");
    assert!(screen.contains("workers      2   running 2"), "{screen}");

    // Clusters, then a filter.
    tmux.keys(&["2"]);
    tmux.wait_for(&["clusters (2)", "shop", "blog"]);
    tmux.keys(&["/", "sho", "Enter"]);
    let screen = tmux.wait_for(&["clusters 1 of 2", "filter: sho"]);
    assert!(!screen.contains("blog "), "{screen}");

    // Drill into the cluster, select its second backend, remove it.
    tmux.keys(&["Enter"]);
    tmux.wait_for(&[
        "cluster shop",
        "backends of shop (2)",
        "frontends of shop (1)",
        "shop-b",
    ]);
    tmux.keys(&["End", "d"]);
    tmux.wait_for(&["remove backend shop-b", "y: yes"]);
    tmux.keys(&["y"]);
    tmux.wait_for(&["remove backend shop-b", ": done", "backends of shop (1)"]);
    assert_eq!(cluster_backends(&daemon, "shop"), vec!["shop-a".to_owned()]);
    let listed = daemon.sozu(&["cluster", "list", "-i", "shop"]);
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.contains("shop-a") && !listed.contains("shop-b"),
        "{listed}"
    );

    // Back to the events view: what happened since the console started.
    // Esc leaves the drill-down, then clears the filter.
    tmux.keys(&["Escape"]);
    tmux.wait_for(&["clusters 1 of 2"]);
    tmux.keys(&["Escape"]);
    tmux.wait_for(&["clusters (2)"]);
    tmux.keys(&["9"]);
    tmux.wait_for(&["EVENTS_SUBSCRIBED"]);

    // The daemon goes away: the console says so and keeps its data.
    stop.store(true, Ordering::Relaxed);
    let sent = traffic.join().unwrap();
    assert!(sent >= 300, "only {sent} requests sent");
    daemon.stop();
    tmux.wait_for(&[
        "DISCONNECTED",
        "failing since",
        "reconnecting",
        "EVENTS_SUBSCRIBED",
        "[not receiving since",
    ]);
    // The other views keep their data, greyed, with its age.
    tmux.keys(&["2"]);
    tmux.wait_for(&["[stale, ", "shop", "blog"]);
    tmux.keys(&["9"]);

    // It comes back: the console reconnects by itself, events included.
    daemon.spawn();
    tmux.wait_for(&["live", "(SUBSCRIPTION LOST)", "connected | refreshed"]);
    let added = sozu(
        daemon.path(),
        &[
            "--socket",
            daemon.socket.to_str().unwrap(),
            "cluster",
            "add",
            "-i",
            "after-restart",
            "--load-balancing-policy",
            "random",
        ],
    );
    assert!(added.status.success(), "{added:?}");
    tmux.wait_for(&["CLUSTER_ADDED", "after-restart"]);
    tmux.keys(&["2"]);
    tmux.wait_for(&["after-restart"]);

    // q quits and gives the terminal back.
    tmux.keys(&["q"]);
    assert!(
        wait_until(Duration::from_secs(5), || tmux.pane_dead()),
        "the console did not quit:\n{}",
        tmux.screen()
    );
    let screen = tmux.screen();
    assert!(
        !screen.contains("sozu top "),
        "the alternate screen was left:\n{screen}"
    );
}

#[test]
fn a_snapshot_prints_one_frame_with_real_rates() {
    let port = free_port();
    let daemon = Daemon::start(&config(port, 2, "", ""));
    let web = backend::Backend::start("web-a");
    daemon.serve(port, "web.test", "web", &[&web]);
    for _ in 0..50 {
        assert_eq!(client::get(port, "web.test", "/").status, 200);
    }
    let output = daemon.sozu(&[
        "top",
        "--snapshot",
        "--view",
        "clusters",
        "--size",
        "100x30",
        "--refresh-ms",
        "200",
    ]);
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(text.lines().count(), 30, "{text}");
    assert!(
        text.lines().all(|line| line.chars().count() <= 100),
        "{text}"
    );
    assert!(text.contains("clusters (1)"), "{text}");
    assert!(text.contains("web "), "{text}");
    assert!(text.contains("1/1"), "{text}");
    assert!(!text.contains('\u{1b}'), "no escape sequence in a snapshot");

    // Bad flags are refused by name.
    for (arguments, wanted) in [
        (vec!["top", "--refresh-ms", "0"], "--refresh-ms 0"),
        (vec!["top", "--view", "nope"], "--view nope"),
        (vec!["top", "--snapshot", "--size", "10x10"], "--size 10x10"),
    ] {
        let output = daemon.sozu(&arguments);
        assert_eq!(output.status.code(), Some(2), "{arguments:?}: {output:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(wanted), "{arguments:?}: {stderr}");
    }

    // Without a daemon: the frame says so, and the exit code too.
    let nowhere = daemon.path().join("nothing.sock");
    let output = sozu(
        daemon.path(),
        &[
            "--socket",
            nowhere.to_str().unwrap(),
            "top",
            "--snapshot",
            "--refresh-ms",
            "100",
            "-t",
            "500",
        ],
    );
    assert_eq!(output.status.code(), Some(3), "{output:?}");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("failing since"), "{text}");
    assert!(text.contains("cannot connect: No such file"), "{text}");
}

#[test]
fn sigterm_and_sighup_give_the_terminal_back() {
    if !Tmux::available() {
        eprintln!("SKIPPED: tmux is not installed (.ci/run installs it)");
        return;
    }
    let port = free_port();
    let daemon = Daemon::start(&config(port, 1, "", ""));
    for signal in [
        nix::sys::signal::Signal::SIGTERM,
        nix::sys::signal::Signal::SIGHUP,
    ] {
        let command = format!(
            "exec {} top --socket {} --no-mouse",
            env!("CARGO_BIN_EXE_sozu"),
            daemon.socket.display()
        );
        let folder = tempfile::tempdir().unwrap();
        let tmux = Tmux::start(folder.path(), &command);
        tmux.wait_for(&["live", "workers      1   running 1"]);
        let pid = tmux.run(&["display-message", "-p", "-t", "top", "#{pane_pid}"]);
        let pid: i32 = String::from_utf8_lossy(&pid.stdout).trim().parse().unwrap();
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal).unwrap();
        assert!(
            wait_until(Duration::from_secs(5), || tmux.pane_dead()),
            "{signal:?} did not stop the console:\n{}",
            tmux.screen()
        );
        let screen = tmux.screen();
        assert!(
            !screen.contains("sozu top "),
            "{signal:?} left the console's screen:\n{screen}"
        );
    }
}

/// How many requests of each kind the daemon received.
fn request_counts(daemon: &Daemon) -> std::collections::BTreeMap<String, i32> {
    let answer = daemon.ok(RequestType::CountRequests(Default::default()));
    match answer.content.and_then(|c| c.content_type) {
        Some(ContentType::RequestCounts(counts)) => counts.map,
        other => panic!("unexpected count_requests answer: {other:?}"),
    }
}

#[test]
fn cluster_details_are_fetched_only_when_their_hash_changes() {
    if !Tmux::available() {
        eprintln!("SKIPPED: tmux is not installed (.ci/run installs it)");
        return;
    }
    let port = free_port();
    let daemon = Daemon::start(&config(port, 1, "", ""));
    for index in 0..150 {
        daemon.add_cluster(harness::cluster(&format!("c{index:03}")));
    }
    let command = format!(
        "exec {} top --socket {} --refresh-ms 100 --view clusters",
        env!("CARGO_BIN_EXE_sozu"),
        daemon.socket.display()
    );
    let tmux = Tmux::start(daemon.path(), &command);
    tmux.wait_for(&["clusters (150)", "c000"]);
    let count = |kind: &str| request_counts(&daemon).get(kind).copied().unwrap_or(0);
    let hashes_before = count("QUERY_CLUSTERS_HASHES");
    // Twenty more refreshes: one hash query each, no detail query.
    assert!(wait_until(Duration::from_secs(30), || count(
        "QUERY_CLUSTERS_HASHES"
    ) >= hashes_before
        + 20));
    assert_eq!(count("QUERY_CLUSTER_BY_ID"), 150);

    // One cluster changes: its details, and only its, are fetched again.
    daemon.add_backend(harness::backend(
        "c007",
        "c007-new",
        "127.0.0.1:9999".parse().unwrap(),
    ));
    tmux.keys(&["/", "c007", "Enter"]);
    tmux.wait_for(&["clusters 1 of 150", "1/1"]);
    assert_eq!(count("QUERY_CLUSTER_BY_ID"), 151);
    tmux.keys(&["q"]);
    assert!(wait_until(Duration::from_secs(5), || tmux.pane_dead()));
}
