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
    /// `http://127.0.0.1:PORT` (`https://` once [`Etcd::restart_with_tls`]).
    pub url: String,
    folder: tempfile::TempDir,
    client_port: u16,
    peer_port: u16,
    child: Option<Child>,
    tls: Option<Tls>,
}

/// The files of an etcd that requires TLS and client certificates.
#[derive(Clone, Debug)]
pub struct Tls {
    /// The test authority's certificate.
    pub ca: PathBuf,
    /// etcd's certificate for 127.0.0.1, and its key.
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// A client certificate without a CommonName (etcd's gateway refuses
    /// one with a CommonName when authentication is on), and its key.
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn post(port: u16, path: &str, body: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
}

fn write_tls(folder: &std::path::Path) -> Tls {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "fleet test authority");
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let issuer =
        rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().unwrap()).unwrap();
    let mut leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    leaf.distinguished_name
        .push(rcgen::DnType::CommonName, "127.0.0.1");
    leaf.extended_key_usages = vec![
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let key = rcgen::KeyPair::generate().unwrap();
    let certificate = leaf.signed_by(&key, &issuer).unwrap();
    let mut client = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    client.distinguished_name = rcgen::DistinguishedName::new();
    client.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let client_key = rcgen::KeyPair::generate().unwrap();
    let client_certificate = client.signed_by(&client_key, &issuer).unwrap();
    let tls = Tls {
        ca: folder.join("ca.pem"),
        server_cert: folder.join("etcd.pem"),
        server_key: folder.join("etcd-key.pem"),
        cert: folder.join("client.pem"),
        key: folder.join("client-key.pem"),
    };
    std::fs::write(&tls.ca, issuer.pem()).unwrap();
    std::fs::write(&tls.server_cert, certificate.pem()).unwrap();
    std::fs::write(&tls.server_key, key.serialize_pem()).unwrap();
    std::fs::write(&tls.cert, client_certificate.pem()).unwrap();
    std::fs::write(&tls.key, client_key.serialize_pem()).unwrap();
    tls
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
            tls: None,
        };
        etcd.url = format!("http://127.0.0.1:{}", etcd.client_port);
        etcd.spawn();
        Some(etcd)
    }

    /// Starts the process (again, on the same data and ports) and waits
    /// until it answers its health check.
    pub fn spawn(&mut self) {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let client = format!("{scheme}://127.0.0.1:{}", self.client_port);
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.folder.path().join("etcd.log"))
            .unwrap();
        let mut command = std::process::Command::new(binary().unwrap());
        if let Some(tls) = &self.tls {
            command
                .arg(format!("--cert-file={}", tls.server_cert.display()))
                .arg(format!("--key-file={}", tls.server_key.display()))
                .arg(format!("--trusted-ca-file={}", tls.ca.display()))
                .arg("--client-cert-auth");
        }
        let child = command
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
        let tls = self.tls.is_some();
        // Over TLS, the listening port is enough here: the test's own
        // commands then wait for etcd to answer.
        assert!(
            wait_until(Duration::from_secs(30), || if tls {
                TcpStream::connect(("127.0.0.1", port)).is_ok()
            } else {
                healthy(port)
            }),
            "etcd did not become healthy: {}",
            std::fs::read_to_string(self.folder.path().join("etcd.log")).unwrap_or_default()
        );
    }

    /// Turns authentication on with a `root` user of this password (over
    /// the plain gateway, before any TLS).
    pub fn enable_auth(&self, password: &str) {
        let port = self.client_port;
        for (path, body) in [
            ("/v3/auth/role/add", r#"{"name":"root"}"#.to_owned()),
            (
                "/v3/auth/user/add",
                format!(r#"{{"name":"root","password":"{password}"}}"#),
            ),
            (
                "/v3/auth/user/grant",
                r#"{"user":"root","role":"root"}"#.to_owned(),
            ),
            ("/v3/auth/enable", "{}".to_owned()),
        ] {
            let answer = post(port, path, &body);
            assert!(answer.starts_with("HTTP/1.0 200"), "{path}: {answer}");
        }
    }

    /// Restarts etcd on the same data requiring TLS with client
    /// certificates; returns the files a client needs.
    pub fn restart_with_tls(&mut self) -> Tls {
        self.stop();
        let tls = write_tls(self.folder.path());
        self.tls = Some(tls.clone());
        self.url = format!("https://127.0.0.1:{}", self.client_port);
        self.spawn();
        tls
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
