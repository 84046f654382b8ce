//! Helpers shared by the tests that run the real `sozu` binary: a fake
//! daemon on a temporary unix socket that records what the command line
//! sends and answers with chosen bytes, the recorded Sozu 2.3.3 fixtures,
//! and (for end-to-end tests against this project's daemon) a helper that
//! starts `sozu start` and waits for its socket.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use sozu_command::channel::{DEFAULT_MAX_BUFFER_SIZE, frame};
use sozu_command::proto::command::{Request, Response};

/// The folder of the Sozu 2.3.3 fixtures.
pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/sozu-2.3")
}

/// The bytes of a recorded exchange file, e.g. `status.client.bin`.
pub fn wire(name: &str) -> Vec<u8> {
    let path = fixtures().join("wire").join(name);
    std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// Every message of a recording.
pub fn frames<M: prost::Message + Default>(mut bytes: &[u8]) -> Vec<M> {
    let mut messages = Vec::new();
    while !bytes.is_empty() {
        let (message, len) = frame::decode::<M>(bytes, DEFAULT_MAX_BUFFER_SIZE)
            .expect("a valid frame")
            .expect("a whole frame");
        messages.push(message);
        bytes = &bytes[len..];
    }
    messages
}

/// One answer as frame bytes.
pub fn encode(response: &Response) -> Vec<u8> {
    frame::encode_to_vec(response, DEFAULT_MAX_BUFFER_SIZE).unwrap()
}

/// What the fake daemon does after reading the request.
#[derive(Clone)]
pub enum Behaviour {
    /// Writes these bytes, then closes the connection.
    Answer(Vec<u8>),
    /// Writes each chunk after its delay, then closes.
    Paced(Vec<(Duration, Vec<u8>)>),
    /// Never answers; keeps the connection open for this long.
    Silent(Duration),
}

/// A fake daemon that accepts one connection on a temporary socket.
pub struct FakeDaemon {
    /// Holds the socket's folder alive.
    pub folder: tempfile::TempDir,
    /// The socket path to give to `--socket`.
    pub socket: PathBuf,
    received: mpsc::Receiver<Vec<u8>>,
}

impl FakeDaemon {
    /// Listens and serves one client with `behaviour`.
    pub fn start(behaviour: Behaviour) -> Self {
        let folder = tempfile::tempdir().unwrap();
        let socket = folder.path().join("sozu.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        listener.set_nonblocking(true).unwrap();
        let (sender, received) = mpsc::channel();
        thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(20);
            let mut stream = loop {
                match listener.accept() {
                    Ok((stream, _)) => break stream,
                    Err(_) if Instant::now() < deadline => thread::sleep(Duration::from_millis(5)),
                    Err(_) => return,
                }
            };
            stream.set_nonblocking(false).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let request = read_frame(&mut stream);
            sender.send(request).ok();
            match behaviour {
                Behaviour::Answer(bytes) => {
                    stream.write_all(&bytes).ok();
                }
                Behaviour::Paced(chunks) => {
                    for (delay, bytes) in chunks {
                        thread::sleep(delay);
                        if stream.write_all(&bytes).is_err() {
                            break;
                        }
                    }
                }
                Behaviour::Silent(duration) => thread::sleep(duration),
            }
            // Closing: the client sees the end of the stream after the answer.
        });
        FakeDaemon {
            folder,
            socket,
            received,
        }
    }

    /// The bytes of the request the client sent (one frame).
    pub fn request_bytes(&self) -> Vec<u8> {
        self.received
            .recv_timeout(Duration::from_secs(10))
            .expect("the command line sent a request")
    }

    /// The request the client sent, decoded.
    pub fn request(&self) -> Request {
        frames::<Request>(&self.request_bytes()).remove(0)
    }

    /// Whether a request arrived (waiting a little).
    pub fn got_request(&self) -> bool {
        self.received
            .recv_timeout(Duration::from_millis(200))
            .is_ok()
    }
}

fn read_frame(stream: &mut UnixStream) -> Vec<u8> {
    let mut prefix = [0u8; 8];
    if stream.read_exact(&mut prefix).is_err() {
        return Vec::new();
    }
    let len = u64::from_le_bytes(prefix) as usize;
    let mut rest = vec![0u8; len.saturating_sub(8).min(4 << 20)];
    stream.read_exact(&mut rest).ok();
    let mut frame = prefix.to_vec();
    frame.extend(rest);
    frame
}

/// Runs the `sozu` binary with `arguments`, in `folder`, with a clean
/// environment (no configuration or socket from the caller, no colour).
pub fn sozu(folder: &Path, arguments: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sozu"))
        .args(arguments)
        .current_dir(folder)
        .env_remove("SOZU_CONFIG")
        .env_remove("SOZU_SOCKET")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Runs `sozu --socket SOCKET ARGUMENTS…`.
pub fn sozu_at(daemon: &FakeDaemon, arguments: &[&str]) -> Output {
    let socket = daemon.socket.to_str().unwrap().to_owned();
    let mut all = vec!["--socket", socket.as_str()];
    all.extend_from_slice(arguments);
    sozu(daemon.folder.path(), &all)
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

/// A copy of the fixture configuration in a fresh folder, with its socket
/// in that folder and every listener port replaced by a free one.
pub struct TestConfig {
    /// Holds the folder alive.
    pub folder: tempfile::TempDir,
    /// The configuration file.
    pub path: PathBuf,
    /// The command socket it names.
    pub socket: PathBuf,
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl TestConfig {
    /// Copies `config.toml`, `cert.pem` and `key.pem` and rewrites ports.
    pub fn from_fixture() -> Self {
        let folder = tempfile::tempdir().unwrap();
        for file in ["cert.pem", "key.pem"] {
            std::fs::copy(fixtures().join(file), folder.path().join(file)).unwrap();
        }
        let mut text = std::fs::read_to_string(fixtures().join("config.toml")).unwrap();
        for port in ["28080", "28443", "28081"] {
            text = text.replace(port, &free_port().to_string());
        }
        let socket = folder.path().join("sozu.sock");
        text = text.replace(
            "command_socket = \"sozu.sock\"",
            &format!("command_socket = {:?}", socket.to_str().unwrap()),
        );
        let path = folder.path().join("config.toml");
        std::fs::write(&path, text).unwrap();
        TestConfig {
            folder,
            path,
            socket,
        }
    }
}

/// A daemon started with `sozu start -c CONFIG`, stopped when dropped.
pub struct Daemon {
    child: Child,
}

impl Daemon {
    /// Starts the daemon and waits (at most `deadline`) for its socket to
    /// accept connections.
    pub fn start(config: &TestConfig, deadline: Duration) -> Result<Self, String> {
        let child = Command::new(env!("CARGO_BIN_EXE_sozu"))
            .args(["start", "-c", config.path.to_str().unwrap()])
            .current_dir(config.folder.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|error| error.to_string())?;
        let mut daemon = Daemon { child };
        let until = Instant::now() + deadline;
        while Instant::now() < until {
            if UnixStream::connect(&config.socket).is_ok() {
                return Ok(daemon);
            }
            if let Ok(Some(status)) = daemon.child.try_wait() {
                return Err(format!("the daemon exited early: {status}"));
            }
            thread::sleep(Duration::from_millis(20));
        }
        Err(format!(
            "no socket at {} after {deadline:?}",
            config.socket.display()
        ))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// The requests a [`serve`]d daemon received, in order.
pub type Received = std::sync::Arc<std::sync::Mutex<Vec<Request>>>;

/// A daemon on `socket` that answers every request with the responses
/// `respond` gives (PROCESSING ones first, the final one last), on any
/// number of connections, until the test ends.
pub fn serve(
    socket: &Path,
    respond: impl Fn(&Request) -> Vec<Response> + Send + Sync + 'static,
) -> Received {
    use sozu_command::channel::Channel;
    use std::sync::{Arc, Mutex};

    let listener = UnixListener::bind(socket).unwrap();
    let received: Received = Arc::new(Mutex::new(Vec::new()));
    let respond = Arc::new(respond);
    let log = Arc::clone(&received);
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let respond = Arc::clone(&respond);
            let log = Arc::clone(&log);
            thread::spawn(move || {
                let mut channel: Channel<Response, Request> = Channel::new(stream);
                while let Ok(Some(request)) = channel.read_message(None) {
                    log.lock().unwrap().push(request.clone());
                    for response in respond(&request) {
                        if channel.write_message(&response).is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    received
}
