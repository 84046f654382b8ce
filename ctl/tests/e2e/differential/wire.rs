//! The wire side of the differential suite: an independent reader of
//! HTTP/1.1 message streams (httparse for heads, RFC 9112 §6.3 and §7.1 for
//! bodies, written here and not shared with the proxy's codec), the raw
//! recording backend, and the client that sends a case's bytes.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One message read from a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The request line or status line, as received.
    pub line: String,
    /// The status (responses), 0 for requests.
    pub status: u16,
    /// The request target (requests).
    pub target: String,
    /// The header lines (names as received).
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body's data (chunked bodies decoded).
    pub body: Vec<u8>,
    /// Both Transfer-Encoding and Content-Length, or differing lengths: a
    /// framing that two readers could read two ways.
    pub ambiguous: bool,
}

impl Message {
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_slice())
    }
}

/// How a body is delimited, as this reader sees it.
enum Body {
    Length(usize),
    Chunked,
    UntilClose,
}

/// Decodes a chunked body at the start of `bytes`: its length on the wire
/// and its data, or `None` when it is incomplete or malformed.
pub fn dechunk(bytes: &[u8]) -> Option<(usize, Vec<u8>)> {
    let line_end = |from: usize| {
        bytes
            .get(from..)?
            .windows(2)
            .position(|w| w == b"\r\n")
            .map(|i| from + i)
    };
    let mut at = 0;
    let mut data = Vec::new();
    loop {
        let end = line_end(at)?;
        let line = &bytes[at..end];
        let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
        let size = usize::from_str_radix(std::str::from_utf8(&line[..digits]).ok()?, 16).ok()?;
        at = end + 2;
        if size == 0 {
            loop {
                let end = line_end(at)?;
                let empty = end == at;
                at = end + 2;
                if empty {
                    return Some((at, data));
                }
            }
        }
        let chunk = bytes.get(at..at.checked_add(size)?)?;
        data.extend_from_slice(chunk);
        at += size;
        if bytes.get(at..at + 2)? != b"\r\n" {
            return None;
        }
        at += 2;
    }
}

/// Reads one message at the start of `bytes`: the message and its length,
/// or `None` when it is incomplete or unreadable. `closed`: no more bytes
/// will come (a response without length then ends with the bytes).
pub fn read_message(bytes: &[u8], response: bool, closed: bool) -> Option<(Message, usize)> {
    let mut slots = [httparse::EMPTY_HEADER; 256];
    let (len, status, target, headers) = if response {
        let mut parsed = httparse::Response::new(&mut slots);
        let httparse::Status::Complete(len) = parsed.parse(bytes).ok()? else {
            return None;
        };
        let status = parsed.code?;
        (len, status, String::new(), parsed.headers.to_vec())
    } else {
        let mut parsed = httparse::Request::new(&mut slots);
        let httparse::Status::Complete(len) = parsed.parse(bytes).ok()? else {
            return None;
        };
        let target = parsed.path?.to_owned();
        (len, 0, target, parsed.headers.to_vec())
    };
    let start = bytes.iter().position(|&b| b != b'\r' && b != b'\n')?;
    let line_end = bytes[start..]
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')?;
    let line = String::from_utf8_lossy(&bytes[start..start + line_end]).into_owned();
    let list = |name: &str| -> Vec<String> {
        headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .flat_map(|h| {
                String::from_utf8_lossy(h.value)
                    .split(',')
                    .map(|v| v.trim().to_ascii_lowercase())
                    .filter(|v| !v.is_empty())
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    let codings = list("transfer-encoding");
    let lengths = list("content-length");
    let ambiguous =
        (!codings.is_empty() && !lengths.is_empty()) || lengths.iter().any(|l| l != &lengths[0]);
    let no_body = response && ((100..200).contains(&status) || status == 204 || status == 304);
    let body = if no_body {
        Body::Length(0)
    } else if let Some(last) = codings.last() {
        if last == "chunked" {
            Body::Chunked
        } else if response {
            Body::UntilClose
        } else {
            return None;
        }
    } else if let Some(length) = lengths.first() {
        Body::Length(length.parse().ok()?)
    } else if response {
        Body::UntilClose
    } else {
        Body::Length(0)
    };
    let rest = &bytes[len..];
    let (body_len, body) = match body {
        Body::Length(length) => (length, rest.get(..length)?.to_vec()),
        Body::Chunked => dechunk(rest)?,
        Body::UntilClose if closed => (rest.len(), rest.to_vec()),
        Body::UntilClose => return None,
    };
    let message = Message {
        line,
        status,
        target,
        headers: headers
            .iter()
            .map(|h| (h.name.to_owned(), h.value.to_vec()))
            .collect(),
        body,
        ambiguous,
    };
    Some((message, len + body_len))
}

/// Reads every message of a stream, interim (1xx) responses left out;
/// the second value is the count of bytes left unread at the end.
pub fn read_all(bytes: &[u8], response: bool) -> (Vec<Message>, usize) {
    let mut messages = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let Some((message, len)) = read_message(&bytes[at..], response, true) else {
            break;
        };
        at += len;
        let interim = response && (100..200).contains(&message.status) && message.status != 101;
        if !interim {
            messages.push(message);
        }
    }
    (messages, bytes.len() - at)
}

/// What the recording backend received: every read, tagged with its
/// connection and the case running then.
#[derive(Default)]
pub struct Recording {
    /// (connection, case, bytes)
    reads: Vec<(usize, usize, Vec<u8>)>,
}

/// The raw recording backend: it records exactly the bytes it receives,
/// answers every request `200 ok` (with Content-Length), and answers a
/// request for `/r/N` with the corpus's raw response N, then closes.
pub struct Recorder {
    pub address: SocketAddr,
    recording: Arc<Mutex<Recording>>,
    case: Arc<AtomicUsize>,
}

impl Recorder {
    /// Listens on `address` (port 0 for any) and serves `responses`.
    pub fn start(address: SocketAddr, responses: Arc<Vec<Vec<u8>>>) -> Recorder {
        let listener = TcpListener::bind(address).expect("the recording backend's port is free");
        let address = listener.local_addr().unwrap();
        let recording = Arc::new(Mutex::new(Recording::default()));
        let case = Arc::new(AtomicUsize::new(0));
        let (thread_recording, thread_case) = (recording.clone(), case.clone());
        std::thread::spawn(move || {
            for (id, stream) in listener.incoming().enumerate() {
                let Ok(stream) = stream else { continue };
                let (recording, case, responses) = (
                    thread_recording.clone(),
                    thread_case.clone(),
                    responses.clone(),
                );
                std::thread::spawn(move || serve(id, stream, &recording, &case, &responses));
            }
        });
        Recorder {
            address,
            recording,
            case,
        }
    }

    /// Starts recording for case `case`.
    pub fn begin(&self, case: usize) {
        self.case.store(case, Ordering::SeqCst);
    }

    /// The requests received during `case`, read per connection, and the
    /// count of bytes left unreadable at the end of the connections.
    pub fn requests(&self, case: usize) -> (Vec<Message>, usize) {
        let recording = self.recording.lock().unwrap();
        let mut connections: Vec<(usize, Vec<u8>)> = Vec::new();
        for (connection, tagged, bytes) in &recording.reads {
            if *tagged != case {
                continue;
            }
            match connections.iter_mut().find(|(id, _)| id == connection) {
                Some((_, all)) => all.extend_from_slice(bytes),
                None => connections.push((*connection, bytes.clone())),
            }
        }
        let mut requests = Vec::new();
        let mut unreadable = 0;
        for (_, bytes) in &connections {
            let (read, left) = read_all(bytes, false);
            requests.extend(read);
            unreadable += left;
        }
        (requests, unreadable)
    }

    /// Whether a request for `target` arrived during `case`.
    pub fn saw(&self, case: usize, target: &str) -> bool {
        self.requests(case).0.iter().any(|r| r.target == target)
    }
}

fn serve(
    id: usize,
    mut stream: TcpStream,
    recording: &Mutex<Recording>,
    case: &AtomicUsize,
    responses: &[Vec<u8>],
) {
    let _ = stream.set_nodelay(true);
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let read = match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(read) => read,
        };
        let tag = case.load(Ordering::SeqCst);
        recording
            .lock()
            .unwrap()
            .reads
            .push((id, tag, chunk[..read].to_vec()));
        buffer.extend_from_slice(&chunk[..read]);
        while let Some((request, len)) = read_message(&buffer, false, false) {
            buffer.drain(..len);
            let canned = request
                .target
                .strip_prefix("/r/")
                .and_then(|n| n.parse::<usize>().ok())
                .and_then(|n| responses.get(n));
            if let Some(canned) = canned {
                let _ = stream.write_all(canned);
                let _ = stream.shutdown(std::net::Shutdown::Both);
                return;
            }
            let close = request
                .header("connection")
                .is_some_and(|v| v.eq_ignore_ascii_case(b"close"));
            // A response to HEAD has no body: Content-Length 0 keeps
            // every reader of it on the same reading.
            let answer: &[u8] = if request.line.starts_with("HEAD ") {
                b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
            } else {
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
            };
            if stream.write_all(answer).is_err() || close {
                return;
            }
        }
    }
}

/// What a client got for a case: every byte until the proxy closed (or
/// the deadline passed).
pub struct Received {
    pub bytes: Vec<u8>,
    pub timed_out: bool,
}

/// Sends `bytes` on a new connection to `port` and reads until the proxy
/// closes; a proxy still silent after `deadline` counts as timed out.
pub fn exchange(port: u16, bytes: &[u8], deadline: Duration) -> Received {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("the proxy listens");
    stream.set_read_timeout(Some(deadline)).unwrap();
    // A proxy may answer and close before reading everything: a failed
    // write is not the case's failure, what was answered is.
    let _ = stream.write_all(bytes);
    let mut received = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(read) => received.extend_from_slice(&chunk[..read]),
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Received {
                    bytes: received,
                    timed_out: true,
                };
            }
            // A reset after the answer (the proxy closed with unread bytes).
            Err(_) => break,
        }
    }
    Received {
        bytes: received,
        timed_out: false,
    }
}
