//! A real etcd server (Debian's `etcd-server`) on free loopback ports with
//! a temporary data folder, for the fleet tests. When no `etcd` binary is
//! found, [`Etcd::start`] says so and returns `None`, and the test skips.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::Duration;

use super::{free_port, wait_until};

/// A running etcd.
pub struct Etcd {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    folder: tempfile::TempDir,
    client_port: u16,
    peer_port: u16,
    child: Option<Child>,
}

/// The etcd binary: `$SOZU_TEST_ETCD`, else `etcd` on the PATH, else
/// `/usr/bin/etcd`.
pub fn binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("SOZU_TEST_ETCD") {
        return Some(PathBuf::from(path));
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|folder| folder.join("etcd"))
            .find(|candidate| candidate.is_file())
    });
    on_path.or_else(|| {
        let path = PathBuf::from("/usr/bin/etcd");
        path.is_file().then_some(path)
    })
}

fn healthy(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.contains("\"health\":\"true\"")
}

impl Etcd {
    /// Starts etcd, or says why not and returns `None` (the caller skips).
    pub fn start() -> Option<Etcd> {
        let Some(_) = binary() else {
            eprintln!(
                "skipped: no etcd binary (install Debian's etcd-server, as .ci/run does as root, or set SOZU_TEST_ETCD)"
            );
            return None;
        };
        let mut etcd = Etcd {
            url: String::new(),
            folder: tempfile::tempdir().unwrap(),
            client_port: free_port(),
            peer_port: free_port(),
            child: None,
        };
        etcd.url = format!("http://127.0.0.1:{}", etcd.client_port);
        etcd.spawn();
        Some(etcd)
    }

    /// Starts the process (again, on the same data and ports) and waits
    /// until it answers its health check.
    pub fn spawn(&mut self) {
        let client = format!("http://127.0.0.1:{}", self.client_port);
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.folder.path().join("etcd.log"))
            .unwrap();
        let child = std::process::Command::new(binary().unwrap())
            .arg("--name=fleet-test")
            .arg(format!(
                "--data-dir={}",
                self.folder.path().join("data").display()
            ))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster=fleet-test={peer}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let port = self.client_port;
        assert!(
            wait_until(Duration::from_secs(30), || healthy(port)),
            "etcd did not become healthy: {}",
            std::fs::read_to_string(self.folder.path().join("etcd.log")).unwrap_or_default()
        );
    }

    /// Stops etcd (SIGTERM) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = child.wait();
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
