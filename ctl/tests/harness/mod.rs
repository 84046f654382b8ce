//! Shared pieces of the end-to-end tests: a real daemon in a temporary
//! folder, real backends on 127.0.0.1, and a small HTTP client.
//!
//! Nothing here sleeps to wait for readiness: every wait polls a condition
//! with a deadline.

#![allow(dead_code)]

pub mod backend;
pub mod client;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sozu_command::channel::CommandChannel;
use sozu_command::proto::command::{Request, Response, ResponseStatus, request::RequestType};

/// The `sozu` binary under test.
pub fn sozu_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_sozu"))
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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

/// A daemon started from a configuration text, in its own folder.
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

impl Daemon {
    /// Writes `config` (its `command_socket` should be `sozu.sock`) in a new
    /// folder, starts `sozu start -c` there and waits for the socket.
    pub fn start(config: &str) -> Daemon {
        let folder = tempfile::tempdir().unwrap();
        Self::start_in(folder, config)
    }

    /// Like [`Daemon::start`] in a given folder (files may be there already).
    pub fn start_in(folder: tempfile::TempDir, config: &str) -> Daemon {
        let config_path = folder.path().join("config.toml");
        std::fs::write(&config_path, config).unwrap();
        let mut daemon = Daemon {
            socket: folder.path().join("sozu.sock"),
            config: config_path,
            stdout: folder.path().join("stdout.log"),
            stderr: folder.path().join("stderr.log"),
            folder,
            child: None,
        };
        daemon.spawn();
        daemon
    }

    /// Starts the process (again) with the same configuration and waits
    /// until the command socket answers.
    pub fn spawn(&mut self) {
        let child = Command::new(sozu_binary())
            .arg("start")
            .arg("-c")
            .arg(&self.config)
            .current_dir(self.folder.path())
            .stdin(Stdio::null())
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

    /// What the daemon wrote on standard error so far.
    pub fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
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
