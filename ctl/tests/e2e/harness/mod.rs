//! Shared pieces of the tests that run the real `sozu` binary: a real
//! daemon in a temporary folder ([`Daemon`]), the one way to run the binary
//! ([`sozu`], [`sozu_command`]), fake daemons for the command line alone
//! ([`fake`]), real backends on 127.0.0.1 ([`backend`]) and a small HTTP
//! client ([`client`]).
//!
//! Nothing here sleeps to wait for readiness: every wait polls a condition
//! with a deadline.

pub mod backend;
pub mod client;
pub mod curl;
pub mod etcd;
pub mod fake;
pub mod h2;
pub mod process;
pub mod tls;
pub mod websocket;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use sozu_command::channel::CommandChannel;
use sozu_command::proto::command::{Request, Response, ResponseStatus, request::RequestType};

/// A `sozu` command (the binary under test) with a clean environment: no
/// configuration or socket inherited from the caller, no colour.
pub fn sozu_command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sozu"));
    command
        .env_remove("SOZU_CONFIG")
        .env_remove("SOZU_SOCKET")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    command
}

/// Runs `sozu ARGUMENTS…` in `folder` and waits for it.
pub fn sozu(folder: &Path, arguments: &[&str]) -> Output {
    sozu_command()
        .args(arguments)
        .current_dir(folder)
        .output()
        .unwrap()
}

/// The single JSON document a command printed on stdout.
pub fn stdout_json(output: &Output) -> serde_json::Value {
    let text = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(&text).unwrap_or_else(|error| {
        panic!(
            "stdout is not one JSON document ({error}):\n{text}\nstderr:\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// The exit code.
pub fn code(output: &Output) -> i32 {
    output.status.code().expect("exited, not killed")
}

/// The folder of the Sozu 2.3.3 fixtures.
pub fn fixtures() -> PathBuf {
    sozu_command::fixtures_dir().join("sozu-2.3")
}

/// The Sozu fixture configuration (HTTP, HTTPS and TCP listeners, clusters
/// `web` and `db`) for a daemon in `folder`: `cert.pem` and `key.pem` are
/// copied there, every listener port is replaced by a free one and the
/// command socket is `folder/sozu.sock`.
pub fn fixture_config(folder: &Path) -> String {
    for file in ["cert.pem", "key.pem"] {
        std::fs::copy(fixtures().join(file), folder.join(file)).unwrap();
    }
    let mut text = std::fs::read_to_string(fixtures().join("config.toml")).unwrap();
    for port in ["28080", "28443", "28081"] {
        text = text.replace(port, &free_port().to_string());
    }
    text.replace(
        "command_socket = \"sozu.sock\"",
        &format!(
            "command_socket = {:?}",
            folder.join("sozu.sock").to_str().unwrap()
        ),
    )
}

/// A port nobody listens on right now, and never handed out before in this
/// test process (the kernel may give the port it just released again, and a
/// test that takes two ports must get two).
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// Polls `condition` every few milliseconds until it holds or `deadline`
/// passes; returns whether it held.
pub fn wait_until(deadline: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + deadline;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A daemon started from a configuration text, in its own folder. A
/// prepared one ([`Daemon::prepare`]) has its folder and configuration but
/// no process until [`Daemon::spawn`] (a fake daemon may serve its socket).
pub struct Daemon {
    pub folder: tempfile::TempDir,
    pub socket: PathBuf,
    pub config: PathBuf,
    pub child: Option<Child>,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
}

/// The minimal configuration: a command socket in the folder, 2 workers,
/// one HTTP listener, plus whatever `extra` adds.
pub fn basic_config(http_port: u16, extra: &str) -> String {
    format!(
        "command_socket = \"sozu.sock\"\nworker_count = 2\nworker_timeout = 5\nlog_level = \"warn\"\n{extra}\n\n[[listeners]]\nprotocol = \"http\"\naddress = \"127.0.0.1:{http_port}\"\n"
    )
}

/// The configuration the data-plane tests use: `workers` workers, `global`
/// lines before the listener, and
/// `listener` lines inside the one HTTP listener's table (which comes last,
/// so cluster tables may follow in `listener` too).
pub fn config(http_port: u16, workers: u16, global: &str, listener: &str) -> String {
    format!(
        "command_socket = \"sozu.sock\"\nworker_count = {workers}\nworker_timeout = 5\nlog_level = \"warn\"\n{global}\n\n[[listeners]]\nprotocol = \"http\"\naddress = \"127.0.0.1:{http_port}\"\n{listener}\n"
    )
}

impl Daemon {
    /// Writes `config` (its `command_socket` should be `sozu.sock`) in a new
    /// folder, starts `sozu start -c` there and waits for the socket.
    pub fn start(config: &str) -> Daemon {
        let folder = tempfile::tempdir().unwrap();
        Self::start_in(folder, config)
    }

    /// Like [`Daemon::start`] in a given folder (files may be there already).
    pub fn start_in(folder: tempfile::TempDir, config: &str) -> Daemon {
        let mut daemon = Self::prepare_in(folder, config);
        daemon.spawn();
        daemon
    }

    /// A daemon on the Sozu fixture configuration (see [`fixture_config`]).
    pub fn fixture() -> Daemon {
        let mut daemon = Self::prepare_fixture();
        daemon.spawn();
        daemon
    }

    /// The folder and configuration of [`Daemon::fixture`], not started.
    pub fn prepare_fixture() -> Daemon {
        let folder = tempfile::tempdir().unwrap();
        let config = fixture_config(folder.path());
        Self::prepare_in(folder, &config)
    }

    /// Writes `config` in a new folder without starting anything.
    pub fn prepare(config: &str) -> Daemon {
        Self::prepare_in(tempfile::tempdir().unwrap(), config)
    }

    /// Writes `config` as `config.toml` in `folder` without starting
    /// anything.
    pub fn prepare_in(folder: tempfile::TempDir, config: &str) -> Daemon {
        let config_path = folder.path().join("config.toml");
        std::fs::write(&config_path, config).unwrap();
        Daemon {
            socket: folder.path().join("sozu.sock"),
            config: config_path,
            stdout: folder.path().join("stdout.log"),
            stderr: folder.path().join("stderr.log"),
            folder,
            child: None,
        }
    }

    /// The addresses of the configuration's `[[listeners]]` tables, in file
    /// order (for the fixture: HTTP, HTTPS, TCP).
    pub fn listener_addresses(&self) -> Vec<String> {
        let text = std::fs::read_to_string(&self.config).unwrap();
        let mut in_listener = false;
        let mut addresses = Vec::new();
        for line in text.lines().map(str::trim) {
            if line.starts_with('[') {
                in_listener = line == "[[listeners]]";
            } else if in_listener && let Some(value) = line.strip_prefix("address = ") {
                addresses.push(value.trim_matches('"').to_owned());
            }
        }
        addresses
    }

    /// Runs `sozu -c CONFIG ARGUMENTS…` in the daemon's folder: the command
    /// line as a script on the daemon's machine runs it.
    pub fn sozu(&self, arguments: &[&str]) -> Output {
        let mut all = vec!["-c", self.config.to_str().unwrap()];
        // The default wait between answers (1 s, `ctl_command_timeout`) is
        // short for a loaded test machine (an upgrade starts a debug-built
        // process between two answers); tests that check the wait give
        // their own.
        if !arguments.contains(&"-t") {
            all.extend(["-t", "30000"]);
        }
        all.extend_from_slice(arguments);
        sozu(self.folder.path(), &all)
    }

    /// Starts the process (again) with the same configuration and waits
    /// until the command socket answers.
    pub fn spawn(&mut self) {
        let child = sozu_command()
            .arg("start")
            .arg("-c")
            .arg(&self.config)
            .current_dir(self.folder.path())
            .stdout(std::fs::File::create(&self.stdout).unwrap())
            .stderr(std::fs::File::create(&self.stderr).unwrap())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let socket = self.socket.clone();
        let started = wait_until(Duration::from_secs(20), || {
            std::os::unix::net::UnixStream::connect(&socket).is_ok()
        });
        if !started {
            let status = self.child.as_mut().unwrap().try_wait().unwrap();
            panic!(
                "the daemon did not open its socket (exit: {status:?})\nstdout: {}\nstderr: {}",
                std::fs::read_to_string(&self.stdout).unwrap_or_default(),
                std::fs::read_to_string(&self.stderr).unwrap_or_default()
            );
        }
    }

    /// Sends one request and returns the progress answers and the final one.
    pub fn exchange(&self, request: impl Into<Request>) -> (Vec<Response>, Response) {
        let mut channel = CommandChannel::connect(&self.socket).unwrap();
        let mut progress = Vec::new();
        let last = channel
            .exchange(&request.into(), Some(Duration::from_secs(30)), |answer| {
                progress.push(answer.clone())
            })
            .unwrap();
        (progress, last)
    }

    /// Sends one request and expects OK; returns the final answer.
    pub fn ok(&self, request: impl Into<Request>) -> Response {
        let request = request.into();
        let kind = request.kind_name();
        let (_, last) = self.exchange(request);
        assert_eq!(
            last.status,
            ResponseStatus::Ok as i32,
            "{kind} failed: {}",
            last.message
        );
        last
    }

    /// Sends one request and expects FAILURE; returns its message.
    pub fn failure(&self, request: impl Into<Request>) -> String {
        let (_, last) = self.exchange(request);
        assert_eq!(
            last.status,
            ResponseStatus::Failure as i32,
            "expected a failure, got {last:?}"
        );
        last.message
    }

    /// The worker pids from `status`.
    pub fn worker_pids(&self) -> Vec<i32> {
        let last = self.ok(RequestType::Status(Default::default()));
        match last.content.and_then(|c| c.content_type) {
            Some(sozu_command::proto::command::response_content::ContentType::Workers(infos)) => {
                infos.vec.iter().map(|w| w.pid).collect()
            }
            other => panic!("unexpected status content: {other:?}"),
        }
    }

    /// Waits for the process to exit by itself.
    pub fn wait_exit(&mut self, deadline: Duration) -> Option<std::process::ExitStatus> {
        let child = self.child.as_mut()?;
        let end = Instant::now() + deadline;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                return Some(status);
            }
            if Instant::now() >= end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops the daemon now (SIGINT: hard stop) and waits for it.
    pub fn stop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGINT,
            );
            if self.wait_exit(Duration::from_secs(10)).is_none()
                && let Some(mut child) = self.child.take()
            {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }

    /// What the daemon wrote on standard error and standard output so far
    /// (its logs go to `log_target`, `stdout` by default).
    pub fn stderr_text(&self) -> String {
        let mut text = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        text.push_str(&std::fs::read_to_string(&self.stdout).unwrap_or_default());
        text
    }

    /// The folder's path.
    pub fn path(&self) -> &Path {
        self.folder.path()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `127.0.0.1:port` as a protocol address.
pub fn local(port: u16) -> sozu_command::proto::command::SocketAddress {
    SocketAddr::from(([127, 0, 0, 1], port)).into()
}

/// A cluster with every setting at its default.
pub fn cluster(id: &str) -> sozu_command::proto::command::Cluster {
    sozu_command::proto::command::Cluster {
        cluster_id: id.into(),
        ..Default::default()
    }
}

/// A TREE frontend of `cluster` for `host` on the listener at `port`,
/// any path, any method.
pub fn frontend(
    port: u16,
    host: &str,
    cluster: Option<&str>,
) -> sozu_command::proto::command::RequestHttpFrontend {
    sozu_command::proto::command::RequestHttpFrontend {
        cluster_id: cluster.map(str::to_owned),
        address: local(port),
        hostname: host.into(),
        path: Default::default(),
        position: sozu_command::proto::command::RulePosition::Tree as i32,
        ..Default::default()
    }
}

/// A backend of `cluster` at `address`.
pub fn backend(
    cluster: &str,
    id: &str,
    address: SocketAddr,
) -> sozu_command::proto::command::AddBackend {
    sozu_command::proto::command::AddBackend {
        cluster_id: cluster.into(),
        backend_id: id.into(),
        address: address.into(),
        ..Default::default()
    }
}

impl Daemon {
    pub fn add_cluster(&self, cluster: sozu_command::proto::command::Cluster) {
        self.ok(RequestType::AddCluster(cluster));
    }

    pub fn add_frontend(&self, frontend: sozu_command::proto::command::RequestHttpFrontend) {
        self.ok(RequestType::AddHttpFrontend(frontend));
    }

    pub fn add_backend(&self, backend: sozu_command::proto::command::AddBackend) {
        self.ok(RequestType::AddBackend(backend));
    }

    /// One cluster on one host served by the given backends (ids are the
    /// backends' names).
    pub fn serve(&self, port: u16, host: &str, cluster_id: &str, backends: &[&backend::Backend]) {
        self.add_cluster(cluster(cluster_id));
        self.add_frontend(frontend(port, host, Some(cluster_id)));
        for one in backends {
            self.add_backend(backend(cluster_id, &one.name, one.address));
        }
    }

    /// The merged metrics of every worker.
    pub fn metrics(&self) -> sozu_command::proto::command::AggregatedMetrics {
        use sozu_command::proto::command::response_content::ContentType;
        let answer = self.ok(RequestType::QueryMetrics(Default::default()));
        match answer.content.and_then(|c| c.content_type) {
            Some(ContentType::Metrics(metrics)) => metrics,
            other => panic!("unexpected metrics content: {other:?}"),
        }
    }

    /// A connection subscribed to events, past its EVENTS_SUBSCRIBED.
    pub fn subscribe(&self) -> Events {
        let mut channel = CommandChannel::connect(&self.socket).unwrap();
        channel
            .write_message(&RequestType::SubscribeEvents(Default::default()).into())
            .unwrap();
        let first = channel
            .read_message(Some(Duration::from_secs(10)))
            .unwrap()
            .unwrap();
        assert_eq!(
            first.status,
            sozu_command::proto::command::ResponseStatus::Processing as i32
        );
        Events {
            channel,
            seen: Vec::new(),
        }
    }

    /// The resident set peak (VmHWM) of a process, in bytes.
    pub fn peak_rss(pid: i32) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|value| {
                value
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .map(|kb| kb * 1024)
            .unwrap()
    }
}

/// A count metric from a metrics map, 0 when absent.
pub fn count(
    metrics: &std::collections::BTreeMap<String, sozu_command::proto::command::FilteredMetrics>,
    name: &str,
) -> i64 {
    use sozu_command::proto::command::filtered_metrics::Inner;
    match metrics.get(name).and_then(|metric| metric.inner.as_ref()) {
        Some(Inner::Count(value)) => *value,
        Some(Inner::Gauge(value)) => *value as i64,
        None => 0,
        Some(other) => panic!("{name} is not a count: {other:?}"),
    }
}

/// An event subscription.
pub struct Events {
    channel: CommandChannel,
    /// Every event read so far.
    pub seen: Vec<sozu_command::proto::command::Event>,
}

impl Events {
    /// Reads events until one satisfies `wanted` or `deadline` passes;
    /// returns it.
    pub fn wait_for(
        &mut self,
        deadline: Duration,
        mut wanted: impl FnMut(&sozu_command::proto::command::Event) -> bool,
    ) -> Option<sozu_command::proto::command::Event> {
        use sozu_command::proto::command::response_content::ContentType;
        let end = Instant::now() + deadline;
        while Instant::now() < end {
            let left = end.saturating_duration_since(Instant::now());
            let Ok(Some(response)) = self.channel.read_message(Some(left)) else {
                continue;
            };
            if let Some(ContentType::Event(event)) = response.content.and_then(|c| c.content_type) {
                self.seen.push(event.clone());
                if wanted(&event) {
                    return Some(event);
                }
            }
        }
        None
    }

    /// Reads whatever arrives within `window`.
    pub fn drain(&mut self, window: Duration) {
        let _ = self.wait_for(window, |_| false);
    }
}

/// A daemon with its HTTP port and the backends the test started, each in
/// a cluster of its own name: the shape most data-plane tests need.
pub struct Site {
    pub daemon: Daemon,
    pub port: u16,
    pub backends: Vec<backend::Backend>,
}

impl Site {
    /// A daemon with `workers` workers and extra `listener` settings.
    pub fn start(workers: u16, listener: &str) -> Site {
        let port = free_port();
        Site {
            daemon: Daemon::start(&config(port, workers, "", listener)),
            port,
            backends: Vec::new(),
        }
    }

    /// A site whose cluster `app` on `app.test` keeps sticky sessions
    /// (cookie `LB`), with two backends answering their names: `one`
    /// (sticky id `s1`) and `two` (its id); both report what they get.
    pub fn sticky() -> (
        Site,
        backend::Backend,
        backend::Backend,
        std::sync::mpsc::Receiver<backend::SeenRequest>,
    ) {
        let site = Site::start(1, "sticky_name = \"LB\"");
        site.daemon
            .add_cluster(sozu_command::proto::command::Cluster {
                sticky_session: true,
                ..cluster("app")
            });
        site.daemon
            .add_frontend(frontend(site.port, "app.test", Some("app")));
        let (seen_tx, seen) = std::sync::mpsc::channel();
        let start = |name, seen| backend::Backend::start_with(name, Duration::ZERO, Some(seen));
        let one = start("one", seen_tx.clone());
        let two = start("two", seen_tx);
        site.daemon
            .add_backend(sozu_command::proto::command::AddBackend {
                sticky_id: Some("s1".into()),
                ..backend("app", "one", one.address)
            });
        site.daemon.add_backend(backend("app", "two", two.address));
        (site, one, two, seen)
    }

    /// Adds `frontend` (its address set to the listener) leading to the
    /// cluster `name`, which is created with one backend answering `name`
    /// the first time it is named.
    pub fn route(
        &mut self,
        name: &str,
        mut frontend: sozu_command::proto::command::RequestHttpFrontend,
    ) {
        if !self.backends.iter().any(|b| b.name == name) {
            let started = backend::Backend::start(name);
            self.daemon.add_cluster(cluster(name));
            self.daemon
                .add_backend(backend(name, name, started.address));
            self.backends.push(started);
        }
        frontend.address = local(self.port);
        frontend.cluster_id = Some(name.to_owned());
        self.daemon.add_frontend(frontend);
    }

    /// Who answers `method host path`: the backend's name on a 200, else
    /// the status as text.
    pub fn who(&self, method: &str, host: &str, path: &str) -> String {
        let answer = client::request(self.port, method, host, path, &[]);
        if answer.status == 200 {
            answer.text()
        } else {
            answer.status.to_string()
        }
    }
}
