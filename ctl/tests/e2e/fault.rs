//! Fault injection (doc/daemon.md, "What is atomic" and "What a crash
//! loses"): under steady traffic and a stream of valid and invalid changes,
//! workers and the main process are killed with SIGKILL at random moments,
//! the main process runs out of file descriptors, and (when the test runs
//! as root) the disk of the state directory fills up. At the end every
//! acknowledged change is in the saved state, no refused change is, the
//! daemon restarts from its own file, the main process and every worker
//! hold the same clusters, and no process of the daemon is left.
//!
//! `SOZU_FAULT_SECONDS` sets how long faults are injected (20 by default,
//! so the test stays within a minute in CI) and `SOZU_FAULT_SEED` replays
//! one run (the seed is printed at the start and in every failure):
//! `SOZU_FAULT_SECONDS=300 cargo test -p sozu-ctl --test e2e fault:: -- --nocapture`.

use crate::harness;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use harness::process::{children_of, cluster_hashes, gone, hashes_agree, sozu_processes_in};
use harness::{backend::Backend, client, cluster, free_port, wait_until};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use sozu_command::channel::CommandChannel;
use sozu_command::proto::command::{
    RemoveBackend, Request, RequestHttpFrontend, Response, ResponseStatus, request::RequestType,
};
use sozu_command::state::ConfigState;

/// A small seeded generator (splitmix64): one seed replays one run.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Where the state directory lives. As root, a small tmpfs (1 MiB for the
/// default run) mounted in a
/// mount namespace of its own (held open by a `sleep` started with
/// `unshare -m`), which the daemon enters with `nsenter` and the test
/// reaches through `/proc/HOLDER/root`; elsewhere a plain folder, and the
/// disk-full fault is skipped with a message.
struct StateDisk {
    /// The folder as the daemon names it.
    folder: PathBuf,
    /// The process holding the namespace with the tmpfs, if any.
    holder: Option<Child>,
}

impl StateDisk {
    /// A state folder for a run of `seconds` of faults (the tmpfs grows
    /// with the run: the state file does).
    fn new(folder: PathBuf, seconds: u64) -> StateDisk {
        std::fs::create_dir_all(&folder).unwrap();
        if !nix::unistd::geteuid().is_root() {
            eprintln!("fault injection: not root, the disk-full fault is skipped");
            return StateDisk {
                folder,
                holder: None,
            };
        }
        let holder = Command::new("unshare")
            .args(["-m", "--propagation", "private", "--", "sh", "-c"])
            .arg(format!(
                "mount -t tmpfs -o size={}m,mode=0700 sozu-fault \"$0\" && echo mounted && exec sleep {}",
                (seconds / 20).max(1),
                seconds * 4 + 600
            ))
            .arg(&folder)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        let Ok(mut holder) = holder else {
            eprintln!("fault injection: no `unshare`, the disk-full fault is skipped");
            return StateDisk {
                folder,
                holder: None,
            };
        };
        let mut line = String::new();
        let _ = BufReader::new(holder.stdout.take().unwrap()).read_line(&mut line);
        if line.trim() != "mounted" {
            let _ = holder.kill();
            let output = holder.wait_with_output().unwrap();
            eprintln!(
                "fault injection: no tmpfs in a mount namespace ({}), the disk-full fault is skipped",
                String::from_utf8_lossy(&output.stderr).trim()
            );
            return StateDisk {
                folder,
                holder: None,
            };
        }
        StateDisk {
            folder,
            holder: Some(holder),
        }
    }

    /// The path the test uses to reach `name` in the state folder.
    fn seen_by_test(&self, name: &str) -> PathBuf {
        match &self.holder {
            Some(holder) => {
                let inside = self.folder.strip_prefix("/").unwrap();
                PathBuf::from(format!("/proc/{}/root", holder.id()))
                    .join(inside)
                    .join(name)
            }
            None => self.folder.join(name),
        }
    }

    /// The command that starts `sozu start -c CONFIG` where the state
    /// folder is this one.
    fn start_command(&self, config: &Path) -> Command {
        let sozu = env!("CARGO_BIN_EXE_sozu");
        let mut command = match &self.holder {
            Some(holder) => {
                let mut command = Command::new("nsenter");
                command
                    .args(["-t", &holder.id().to_string(), "-m", "--"])
                    .arg(sozu);
                command
            }
            None => Command::new(sozu),
        };
        command
            .arg("start")
            .arg("-c")
            .arg(config)
            .env_remove("SOZU_CONFIG")
            .env_remove("SOZU_SOCKET")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        command
    }

    /// Fills the state folder's disk; returns false when there is no
    /// disk of its own to fill.
    fn fill(&self) -> bool {
        if self.holder.is_none() {
            return false;
        }
        let mut filler = std::fs::File::create(self.seen_by_test("filler")).unwrap();
        let block = vec![0u8; 64 * 1024];
        loop {
            match filler.write(&block) {
                Ok(0) => break,
                Ok(_) => {}
                Err(error) if error.raw_os_error() == Some(nix::libc::ENOSPC) => break,
                Err(error) => panic!("filling the state disk: {error}"),
            }
        }
        // A few bytes may still fit in the last page.
        while filler.write(&[0u8; 512]).is_ok_and(|written| written > 0) {}
        true
    }

    fn empty(&self) {
        let _ = std::fs::remove_file(self.seen_by_test("filler"));
    }
}

impl Drop for StateDisk {
    fn drop(&mut self) {
        if let Some(mut holder) = self.holder.take() {
            let _ = holder.kill();
            let _ = holder.wait();
        }
    }
}

/// What the test expects of one thing it added or removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expected {
    Present,
    Absent,
    /// The answer never came (a process was killed, the main process was
    /// out of descriptors): either is right.
    Unknown,
}

/// One thing the changes touch, as the saved state names it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Thing {
    Cluster(String),
    Frontend { cluster: String, hostname: String },
    Backend { cluster: String, id: String },
}

/// What every change led the test to expect, and what happened.
#[derive(Default)]
struct Ledger {
    expected: BTreeMap<Thing, Expected>,
    /// Things only invalid (refused) changes named: never anywhere.
    never: BTreeSet<Thing>,
    acknowledged: u64,
    refused: u64,
    unanswered: u64,
}

impl Ledger {
    fn expect(&self, thing: &Thing) -> Expected {
        self.expected
            .get(thing)
            .copied()
            .unwrap_or(Expected::Absent)
    }

    fn present(&self, dice: &mut Dice, pick: impl Fn(&Thing) -> bool) -> Option<Thing> {
        let things: Vec<&Thing> = self
            .expected
            .iter()
            .filter(|(thing, expected)| **expected == Expected::Present && pick(thing))
            .map(|(thing, _)| thing)
            .collect();
        (!things.is_empty()).then(|| things[dice.below(things.len() as u64) as usize].clone())
    }

    /// Whether `cluster` has a frontend or backend that exists or may.
    fn has_children(&self, cluster: &str) -> bool {
        self.expected.iter().any(|(thing, expected)| {
            *expected != Expected::Absent
                && match thing {
                    Thing::Frontend { cluster: c, .. } | Thing::Backend { cluster: c, .. } => {
                        c == cluster
                    }
                    Thing::Cluster(_) => false,
                }
        })
    }
}

/// The outcome of one request sent over the command socket.
enum Outcome {
    Ok,
    Failure(String),
    /// No final answer: the connection failed, broke or timed out.
    Unanswered,
}

fn send(socket: &Path, request: Request, timeout: Duration) -> Outcome {
    let mut channel = match CommandChannel::connect(socket) {
        Ok(channel) => channel,
        Err(_) => return Outcome::Unanswered,
    };
    match channel.exchange(&request, Some(timeout), |_| {}) {
        Ok(Response { status, .. }) if status == ResponseStatus::Ok as i32 => Outcome::Ok,
        Ok(Response { message, .. }) => Outcome::Failure(message),
        Err(_) => Outcome::Unanswered,
    }
}

/// Whether the main process answers a status request within 2 s.
fn answers(socket: &Path) -> bool {
    let status = RequestType::Status(Default::default()).into();
    matches!(send(socket, status, Duration::from_secs(2)), Outcome::Ok)
}

/// The running daemon: its main process, restarted by the faults.
struct Daemon {
    disk: StateDisk,
    folder: tempfile::TempDir,
    config: PathBuf,
    socket: PathBuf,
    main: Option<Child>,
    /// Every pid of the daemon's processes the test saw.
    pids: BTreeSet<i32>,
    starts: u32,
}

impl Daemon {
    fn start(folder: tempfile::TempDir, disk: StateDisk, port: u16) -> Daemon {
        let config = folder.path().join("config.toml");
        let state = disk.folder.join("state.txt");
        std::fs::write(
            &config,
            format!(
                "command_socket = \"sozu.sock\"\nworker_count = 2\nworker_timeout = 3\n\
                 log_level = \"warn\"\nlog_target = \"stderr\"\nsaved_state = {:?}\nautomatic_state_save = true\n\n\
                 [[listeners]]\nprotocol = \"http\"\naddress = \"127.0.0.1:{port}\"\n",
                state.to_str().unwrap()
            ),
        )
        .unwrap();
        let mut daemon = Daemon {
            socket: folder.path().join("sozu.sock"),
            disk,
            folder,
            config,
            main: None,
            pids: BTreeSet::new(),
            starts: 0,
        };
        daemon.spawn();
        daemon
    }

    /// Starts the main process and waits until it answers.
    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.folder.path().join("stderr.log"))
            .unwrap();
        let child = self
            .disk
            .start_command(&self.config)
            .current_dir(self.folder.path())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.pids.insert(child.id() as i32);
        self.main = Some(child);
        self.starts += 1;
        let socket = self.socket.clone();
        let answered = wait_until(Duration::from_secs(30), || answers(&socket));
        if !answered {
            let status = self.main.as_mut().unwrap().try_wait().unwrap();
            panic!(
                "the daemon did not answer after start {} (exit: {status:?}):\n{}",
                self.starts,
                self.log()
            );
        }
        self.workers();
    }

    fn main_pid(&self) -> Option<i32> {
        self.main.as_ref().map(|child| child.id() as i32)
    }

    /// The main process's children (its workers), read from /proc.
    fn workers(&mut self) -> Vec<i32> {
        let Some(main) = self.main_pid() else {
            return Vec::new();
        };
        let workers = children_of(main);
        self.pids.extend(&workers);
        workers
    }

    /// Kills the main process with SIGKILL, checks that its workers
    /// follow it, and starts it again from its own files.
    fn crash_and_restart(&mut self) {
        let workers = self.workers();
        if let Some(mut main) = self.main.take() {
            let _ = main.kill();
            let _ = main.wait();
        }
        assert!(
            wait_until(Duration::from_secs(10), || workers
                .iter()
                .all(|&pid| gone(pid))),
            "workers {workers:?} outlived their main process"
        );
        self.spawn();
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.folder.path().join("stderr.log")).unwrap_or_default()
    }

    /// Waits until the main process and its two workers hold the same
    /// clusters; returns the main process's hashes.
    fn agreed(&mut self, seed: u64) -> BTreeMap<String, u64> {
        let mut last = None;
        let agreed = wait_until(Duration::from_secs(30), || {
            last = cluster_hashes(&self.socket);
            last.as_ref().is_some_and(|all| hashes_agree(all, 2))
        });
        assert!(
            agreed,
            "seed {seed}: main and workers disagree: {last:?}\n{}",
            self.log()
        );
        last.unwrap()
            .remove("main")
            .expect("the main process's hashes")
    }

    /// The saved state file, read into a state.
    fn saved(&self, seed: u64) -> ConfigState {
        let bytes = std::fs::read(self.disk.seen_by_test("state.txt")).unwrap();
        let mut state = ConfigState::new();
        let report = sozu_command::state::file::load(&mut state, &bytes);
        assert!(
            report.errors.is_empty(),
            "seed {seed}: the saved state has bad records: {:?}",
            report.errors
        );
        state
    }
}

/// Lowers the main process's soft descriptor limit to 3, below every
/// descriptor it has open past the standard ones, so that nothing it opens
/// or accepts from now on gets a descriptor (EMFILE); returns the previous
/// limits.
fn exhaust_descriptors(pid: i32) -> Option<nix::libc::rlimit> {
    let mut old = nix::libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: the pointer is to a live rlimit value the call fills.
    let read =
        unsafe { nix::libc::prlimit(pid, nix::libc::RLIMIT_NOFILE, std::ptr::null(), &mut old) };
    if read != 0 {
        return None;
    }
    let low = nix::libc::rlimit {
        rlim_cur: 3,
        rlim_max: old.rlim_max,
    };
    // SAFETY: the pointer is to a live, initialised rlimit value.
    let set =
        unsafe { nix::libc::prlimit(pid, nix::libc::RLIMIT_NOFILE, &low, std::ptr::null_mut()) };
    (set == 0).then_some(old)
}

fn restore_descriptors(pid: i32, old: nix::libc::rlimit) {
    // SAFETY: `old` is a live, initialised rlimit value.
    unsafe {
        nix::libc::prlimit(pid, nix::libc::RLIMIT_NOFILE, &old, std::ptr::null_mut());
    }
}

/// Sends one change and records what the answer means for `things`
/// (`Present` or `Absent` if acknowledged).
fn change(
    socket: &Path,
    ledger: &Mutex<Ledger>,
    request: RequestType,
    thing: Thing,
    if_acknowledged: Expected,
    seed: u64,
) -> Outcome {
    change_within(
        socket,
        ledger,
        request,
        (thing, if_acknowledged),
        CHANGE_TIMEOUT,
        seed,
    )
}

/// How long a change may take before the test counts it unanswered: well
/// past `worker_timeout` (3 s) and a worker's restart.
const CHANGE_TIMEOUT: Duration = Duration::from_secs(10);

/// As [`change`], waiting at most `timeout` for the answer.
fn change_within(
    socket: &Path,
    ledger: &Mutex<Ledger>,
    request: RequestType,
    (thing, if_acknowledged): (Thing, Expected),
    timeout: Duration,
    seed: u64,
) -> Outcome {
    let kind = Request::from(request.clone()).kind_name();
    let before = ledger.lock().unwrap().expect(&thing);
    let outcome = send(socket, request.into(), timeout);
    let mut ledger = ledger.lock().unwrap();
    match &outcome {
        Outcome::Ok => {
            ledger.acknowledged += 1;
            ledger.expected.insert(thing, if_acknowledged);
        }
        Outcome::Failure(message) => {
            ledger.refused += 1;
            // A valid change is only ever taken back, never refused.
            assert!(
                message.contains("rolled back"),
                "seed {seed}: {kind} of {thing:?} refused for an unexpected reason: {message}"
            );
            ledger.expected.insert(thing, before);
        }
        Outcome::Unanswered => {
            ledger.unanswered += 1;
            ledger.expected.insert(thing, Expected::Unknown);
        }
    }
    outcome
}

/// Sends a change that must be refused for its content.
fn invalid(socket: &Path, ledger: &Mutex<Ledger>, request: RequestType, thing: Thing, seed: u64) {
    let kind = Request::from(request.clone()).kind_name();
    let outcome = send(socket, request.into(), CHANGE_TIMEOUT);
    let mut ledger = ledger.lock().unwrap();
    ledger.never.insert(thing.clone());
    match outcome {
        Outcome::Ok => panic!("seed {seed}: the invalid {kind} of {thing:?} was acknowledged"),
        Outcome::Failure(_) => ledger.refused += 1,
        Outcome::Unanswered => ledger.unanswered += 1,
    }
}

/// One change picked at random: mostly valid additions and removals, one
/// in four invalid.
fn random_change(
    socket: &Path,
    ledger: &Mutex<Ledger>,
    dice: &mut Dice,
    number: u64,
    port: u16,
    backend: SocketAddr,
    seed: u64,
) {
    let (cluster_pick, frontend_pick, backend_pick) = {
        let ledger = ledger.lock().unwrap();
        (
            ledger.present(
                dice,
                |thing| matches!(thing, Thing::Cluster(id) if id != "base"),
            ),
            // The route the traffic takes stays.
            ledger.present(
                dice,
                |thing| matches!(thing, Thing::Frontend { cluster, .. } if cluster != "base"),
            ),
            ledger.present(
                dice,
                |thing| matches!(thing, Thing::Backend { cluster, .. } if cluster != "base"),
            ),
        )
    };
    match (dice.below(8), cluster_pick) {
        (0, Some(Thing::Cluster(id))) => {
            let hostname = format!("f{number}.test");
            let thing = Thing::Frontend {
                cluster: id.clone(),
                hostname: hostname.clone(),
            };
            let frontend = harness::frontend(port, &hostname, Some(&id));
            change(
                socket,
                ledger,
                RequestType::AddHttpFrontend(frontend),
                thing,
                Expected::Present,
                seed,
            );
        }
        (1, Some(Thing::Cluster(id))) => {
            let backend_id = format!("b{number}");
            let thing = Thing::Backend {
                cluster: id.clone(),
                id: backend_id.clone(),
            };
            let add = harness::backend(&id, &backend_id, backend);
            change(
                socket,
                ledger,
                RequestType::AddBackend(add),
                thing,
                Expected::Present,
                seed,
            );
        }
        (2, Some(Thing::Cluster(id))) if !ledger.lock().unwrap().has_children(&id) => {
            change(
                socket,
                ledger,
                RequestType::RemoveCluster(id.clone()),
                Thing::Cluster(id),
                Expected::Absent,
                seed,
            );
        }
        (3, _) if frontend_pick.is_some() => {
            let Some(Thing::Frontend { cluster, hostname }) = frontend_pick else {
                unreachable!()
            };
            let frontend = harness::frontend(port, &hostname, Some(&cluster));
            change(
                socket,
                ledger,
                RequestType::RemoveHttpFrontend(frontend),
                Thing::Frontend { cluster, hostname },
                Expected::Absent,
                seed,
            );
        }
        (4, _) if backend_pick.is_some() => {
            let Some(Thing::Backend { cluster, id }) = backend_pick else {
                unreachable!()
            };
            let remove = RemoveBackend {
                cluster_id: cluster.clone(),
                backend_id: id.clone(),
                address: backend.into(),
            };
            change(
                socket,
                ledger,
                RequestType::RemoveBackend(remove),
                Thing::Backend { cluster, id },
                Expected::Absent,
                seed,
            );
        }
        (5, _) => {
            // Invalid: a path regex that does not compile, a hostname with a
            // space, a backend on port 0, an id past the documented bound.
            let cluster_id = format!("bad{number}");
            match dice.below(4) {
                0 => {
                    let hostname = format!("r{number}.test");
                    let frontend = RequestHttpFrontend {
                        path: sozu_command::proto::command::PathRule {
                            kind: sozu_command::proto::command::PathRuleKind::Regex as i32,
                            value: "([".into(),
                        },
                        ..harness::frontend(port, &hostname, Some("base"))
                    };
                    let thing = Thing::Frontend {
                        cluster: "base".into(),
                        hostname,
                    };
                    invalid(
                        socket,
                        ledger,
                        RequestType::AddHttpFrontend(frontend),
                        thing,
                        seed,
                    );
                }
                1 => {
                    let hostname = format!("a b/{number}");
                    let frontend = harness::frontend(port, &hostname, Some("base"));
                    let thing = Thing::Frontend {
                        cluster: "base".into(),
                        hostname,
                    };
                    invalid(
                        socket,
                        ledger,
                        RequestType::AddHttpFrontend(frontend),
                        thing,
                        seed,
                    );
                }
                2 => {
                    let add = harness::backend("base", &cluster_id, "127.0.0.1:0".parse().unwrap());
                    let thing = Thing::Backend {
                        cluster: "base".into(),
                        id: cluster_id,
                    };
                    invalid(socket, ledger, RequestType::AddBackend(add), thing, seed);
                }
                _ => {
                    let id = format!("{cluster_id}-{}", "x".repeat(300));
                    invalid(
                        socket,
                        ledger,
                        RequestType::AddCluster(cluster(&id)),
                        Thing::Cluster(id),
                        seed,
                    );
                }
            }
        }
        _ => {
            let id = format!("c{number}");
            change(
                socket,
                ledger,
                RequestType::AddCluster(cluster(&id)),
                Thing::Cluster(id),
                Expected::Present,
                seed,
            );
        }
    }
}

/// Whether `state` holds `thing`.
fn holds(state: &ConfigState, thing: &Thing) -> bool {
    match thing {
        Thing::Cluster(id) => state.clusters.contains_key(id),
        Thing::Frontend { cluster, hostname } => {
            state
                .generate_requests()
                .iter()
                .any(|request| match &request.request_type {
                    Some(RequestType::AddHttpFrontend(front)) => {
                        front.hostname == *hostname && front.cluster_id.as_deref() == Some(cluster)
                    }
                    _ => false,
                })
        }
        Thing::Backend { cluster, id } => state
            .backends
            .get(cluster)
            .is_some_and(|backends| backends.iter().any(|b| b.backend_id == *id)),
    }
}

/// The faults, each at least once, in an order the seed picks.
#[derive(Debug, Clone, Copy)]
enum Fault {
    KillWorker,
    KillMain,
    Descriptors,
    DiskFull,
}

#[test]
fn acknowledged_changes_survive_random_crashes_descriptor_exhaustion_and_a_full_disk() {
    let seed = std::env::var("SOZU_FAULT_SEED")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    let seconds: u64 = std::env::var("SOZU_FAULT_SECONDS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(20);
    eprintln!("fault injection: seed {seed} (SOZU_FAULT_SEED), {seconds} s of faults");
    let mut dice = Dice(seed);

    let folder = tempfile::tempdir().unwrap();
    let disk = StateDisk::new(folder.path().join("state"), seconds);
    let port = free_port();
    let backend = Backend::start("base");
    let mut daemon = Daemon::start(folder, disk, port);
    let socket = daemon.socket.clone();
    let ledger = Arc::new(Mutex::new(Ledger::default()));

    // The route the traffic takes, acknowledged before any fault.
    for (request, thing) in [
        (
            RequestType::AddCluster(cluster("base")),
            Thing::Cluster("base".into()),
        ),
        (
            RequestType::AddHttpFrontend(harness::frontend(port, "base.test", Some("base"))),
            Thing::Frontend {
                cluster: "base".into(),
                hostname: "base.test".into(),
            },
        ),
        (
            RequestType::AddBackend(harness::backend("base", "base", backend.address)),
            Thing::Backend {
                cluster: "base".into(),
                id: "base".into(),
            },
        ),
    ] {
        change(&socket, &ledger, request, thing, Expected::Present, seed);
    }
    assert_eq!(ledger.lock().unwrap().acknowledged, 3, "seed {seed}");
    assert!(wait_until(Duration::from_secs(10), || client::try_get(
        port,
        "base.test",
        "/"
    ) == Some(200)));

    // Steady traffic through the whole run.
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicU64::new(0));
    let traffic = {
        let (stop, served) = (stop.clone(), served.clone());
        std::thread::spawn(move || {
            let mut failed = 0u64;
            while !stop.load(Ordering::Relaxed) {
                match client::try_get(port, "base.test", "/") {
                    Some(200) => {
                        served.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        failed += 1;
                        // Nothing listens while the daemon restarts.
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
            }
            failed
        })
    };

    // A stream of changes on its own thread while the faults happen.
    let changes = {
        let (stop, ledger, socket) = (stop.clone(), ledger.clone(), socket.clone());
        let mut dice = Dice(dice.next());
        let backend_address = backend.address;
        std::thread::spawn(move || {
            let mut number = 0;
            while !stop.load(Ordering::Relaxed) {
                number += 1;
                let unanswered = ledger.lock().unwrap().unanswered;
                random_change(
                    &socket,
                    &ledger,
                    &mut dice,
                    number,
                    port,
                    backend_address,
                    seed,
                );
                // Back off while the main process is down or deaf.
                if ledger.lock().unwrap().unanswered > unanswered {
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        })
    };

    // The faults: each kind at least once, more worker kills, in an order
    // and at moments the seed picks.
    let mut faults = vec![
        Fault::KillWorker,
        Fault::KillWorker,
        Fault::KillWorker,
        Fault::KillMain,
        Fault::KillMain,
        Fault::Descriptors,
        Fault::DiskFull,
    ];
    // Longer runs get more: about one fault every three seconds.
    while (faults.len() as u64) < seconds / 3 {
        faults.push(match dice.below(20) {
            0..10 => Fault::KillWorker,
            10..15 => Fault::KillMain,
            15..18 => Fault::Descriptors,
            _ => Fault::DiskFull,
        });
    }
    for index in (1..faults.len()).rev() {
        faults.swap(index, dice.below(index as u64 + 1) as usize);
    }
    let pause = Duration::from_millis(seconds * 1000 / faults.len() as u64);
    let mut disk_filled = false;
    for fault in faults {
        std::thread::sleep(pause / 2 + pause.mul_f64(dice.below(100) as f64 / 200.0));
        eprintln!("fault injection: {fault:?}");
        match fault {
            Fault::KillWorker => {
                let workers = daemon.workers();
                if let Some(&victim) = workers.get(dice.below(workers.len().max(1) as u64) as usize)
                {
                    let _ = kill(Pid::from_raw(victim), Signal::SIGKILL);
                }
            }
            Fault::KillMain => daemon.crash_and_restart(),
            Fault::Descriptors => {
                let main = daemon.main_pid().unwrap();
                let logged_before = daemon.log().len();
                let old = exhaust_descriptors(main).expect("prlimit on the main process");
                // Out of descriptors, the main process cannot take a new
                // client (it waits in the socket's queue)...
                let deaf = send(
                    &socket,
                    RequestType::Status(Default::default()).into(),
                    Duration::from_millis(1500),
                );
                restore_descriptors(main, old);
                assert!(
                    matches!(deaf, Outcome::Unanswered),
                    "seed {seed}: the main process answered without descriptors"
                );
                // Served again once descriptors are free.
                assert!(
                    wait_until(Duration::from_secs(15), || answers(&socket)),
                    "seed {seed}: the main process stayed deaf after its descriptors came back"
                );
                let log = daemon.log();
                assert!(
                    log[logged_before..].contains("could not accept a command connection"),
                    "seed {seed}: the main process did not run out of descriptors:\n{log}"
                );
            }
            Fault::DiskFull => {
                if daemon.disk.fill() {
                    disk_filled = true;
                    // While the disk is full, a change is refused naming the
                    // save, and rolled back.
                    let id = format!("while-full-{}", dice.below(1 << 32));
                    let outcome = change_within(
                        &socket,
                        &ledger,
                        RequestType::AddCluster(cluster(&id)),
                        (Thing::Cluster(id.clone()), Expected::Present),
                        Duration::from_secs(30),
                        seed,
                    );
                    assert!(
                        matches!(&outcome, Outcome::Failure(message)
                            if message.contains("automatic state save failed")),
                        "seed {seed}: a change was not refused naming the save while the state disk was full"
                    );
                    std::thread::sleep(Duration::from_millis(500));
                    daemon.disk.empty();
                }
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    changes.join().expect("the change stream");
    let failed_requests = traffic.join().expect("the traffic");

    // Quiet now: whatever was in flight has settled.
    let live = daemon.agreed(seed);
    let saved = daemon.saved(seed);
    let ledger = Arc::try_unwrap(ledger).ok().unwrap().into_inner().unwrap();
    eprintln!(
        "fault injection: {} changes acknowledged, {} refused, {} unanswered; \
         {} requests served, {failed_requests} failed while processes restarted; \
         {} daemon starts; disk filled: {disk_filled}",
        ledger.acknowledged,
        ledger.refused,
        ledger.unanswered,
        served.load(Ordering::Relaxed),
        daemon.starts
    );
    assert!(
        ledger.acknowledged > 10,
        "seed {seed}: too few changes went through"
    );
    assert!(
        served.load(Ordering::Relaxed) > 0,
        "seed {seed}: no traffic"
    );
    for (thing, expected) in &ledger.expected {
        match expected {
            Expected::Present => assert!(
                holds(&saved, thing),
                "seed {seed}: acknowledged {thing:?} is not in the saved state"
            ),
            Expected::Absent => assert!(
                !holds(&saved, thing),
                "seed {seed}: {thing:?}, refused or acknowledged as removed, is in the saved state"
            ),
            Expected::Unknown => {}
        }
    }
    for thing in &ledger.never {
        assert!(
            !holds(&saved, thing),
            "seed {seed}: the invalid {thing:?} is in the saved state"
        );
    }
    assert_eq!(
        saved.cluster_hashes(),
        live,
        "seed {seed}: the saved state and the main process differ"
    );

    // Every process killed at once: the daemon comes back from its own
    // file, the same everywhere, and serves.
    for pid in daemon.workers() {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    daemon.crash_and_restart();
    assert_eq!(
        daemon.agreed(seed),
        live,
        "seed {seed}: the daemon did not come back from its own file"
    );
    assert!(
        wait_until(Duration::from_secs(10), || client::try_get(
            port,
            "base.test",
            "/"
        ) == Some(200)),
        "seed {seed}: no traffic after the restart"
    );

    // A shutdown leaves nothing behind: no process the test saw, and none
    // naming this daemon's configuration.
    daemon.workers();
    let shutdown = send(
        &socket,
        RequestType::SoftStop(Default::default()).into(),
        Duration::from_secs(15),
    );
    assert!(
        !matches!(shutdown, Outcome::Failure(_)),
        "seed {seed}: the shutdown was refused"
    );
    if let Some(mut main) = daemon.main.take() {
        let end = Instant::now() + Duration::from_secs(15);
        while main.try_wait().unwrap().is_none() && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(10));
        }
        if main.try_wait().unwrap().is_none() {
            let _ = main.kill();
            let _ = main.wait();
            panic!("seed {seed}: the main process did not stop");
        }
    }
    let pids = daemon.pids.clone();
    let folder = daemon.folder.path().to_owned();
    assert!(
        wait_until(Duration::from_secs(10), || pids
            .iter()
            .all(|&pid| gone(pid))
            && sozu_processes_in(&folder).is_empty()),
        "seed {seed}: processes left behind: {:?}",
        sozu_processes_in(&folder)
    );
}
