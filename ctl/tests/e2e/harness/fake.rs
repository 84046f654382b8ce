//! Fake daemons on a temporary unix socket, for tests of the command line
//! alone: [`FakeDaemon`] serves one client with chosen bytes (recorded Sozu
//! answers, silence, garbage) and records the request; [`serve`] answers
//! every request of any number of clients with a function of the request.
//! Also the recorded Sozu 2.3.3 exchanges and frame helpers.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use sozu_command::channel::{DEFAULT_MAX_BUFFER_SIZE, frame};
use sozu_command::proto::command::{Request, Response};

use super::fixtures;

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
        let received = Self::serve_one(&socket, behaviour);
        FakeDaemon {
            folder,
            socket,
            received,
        }
    }

    /// Listens on `socket` and serves one client with `behaviour`; the
    /// receiver gets the request's bytes.
    pub fn serve_one(socket: &Path, behaviour: Behaviour) -> mpsc::Receiver<Vec<u8>> {
        let listener = UnixListener::bind(socket).unwrap();
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
        received
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

    /// Runs `sozu --socket SOCKET ARGUMENTS…` in the fake daemon's folder.
    pub fn sozu(&self, arguments: &[&str]) -> std::process::Output {
        let socket = self.socket.to_str().unwrap().to_owned();
        let mut all = vec!["--socket", socket.as_str()];
        all.extend_from_slice(arguments);
        super::sozu(self.folder.path(), &all)
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
