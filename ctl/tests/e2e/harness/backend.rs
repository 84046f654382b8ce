//! Real HTTP backends on 127.0.0.1 for the tests: each answers with its own
//! name, keeps connections alive, and can be told to be slow.
//!
//! [`Backend`] is the ordinary one; [`RawBackend`] hands every accepted
//! connection to a test's own function, for backends that misbehave on
//! purpose (close mid-answer, stream huge bodies, send odd headers).

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A running backend.
pub struct Backend {
    pub address: SocketAddr,
    pub name: String,
    /// Requests served.
    pub served: Arc<AtomicUsize>,
    /// Connections accepted.
    pub connections: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

/// A parsed request as a backend saw it.
#[derive(Debug, Clone)]
pub struct SeenRequest {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl SeenRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// Every value of a header, in order.
    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
            .collect()
    }
}

/// Reads a request head (request line and headers); `None` at a clean end
/// of the connection or on anything unparsable.
pub fn read_head(reader: &mut impl BufRead) -> Option<SeenRequest> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let target = parts.next()?.to_owned();
    let mut headers = Vec::new();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).ok()? == 0 {
            return None;
        }
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (key, value) = header.split_once(':')?;
        headers.push((key.trim().to_owned(), value.trim().to_owned()));
    }
    Some(SeenRequest {
        method,
        target,
        headers,
        body: Vec::new(),
    })
}

/// Reads a request body as its head announces it, handing each piece to
/// `sink`; returns `None` if the connection ends first.
pub fn read_body(
    reader: &mut impl BufRead,
    head: &SeenRequest,
    mut sink: impl FnMut(&[u8]),
) -> Option<()> {
    let mut buffer = vec![0; 64 * 1024];
    if head
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).ok()?;
            let size = size.trim().split(';').next()?;
            let mut left = usize::from_str_radix(size.trim(), 16).ok()?;
            if left == 0 {
                // Trailers, then the blank line.
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).ok()?;
                    if line.trim_end().is_empty() {
                        return Some(());
                    }
                }
            }
            while left > 0 {
                let wanted = left.min(buffer.len());
                reader.read_exact(&mut buffer[..wanted]).ok()?;
                sink(&buffer[..wanted]);
                left -= wanted;
            }
            let mut crlf = [0; 2];
            reader.read_exact(&mut crlf).ok()?;
        }
    }
    let mut left = head
        .header("content-length")
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    while left > 0 {
        let wanted = (left as usize).min(buffer.len());
        reader.read_exact(&mut buffer[..wanted]).ok()?;
        sink(&buffer[..wanted]);
        left -= wanted as u64;
    }
    Some(())
}

/// Reads a whole request, body included.
pub fn read_request(reader: &mut impl BufRead) -> Option<SeenRequest> {
    let mut request = read_head(reader)?;
    let mut body = Vec::new();
    read_body(reader, &request, |piece| body.extend_from_slice(piece))?;
    request.body = body;
    Some(request)
}

fn bind(address: SocketAddr) -> TcpListener {
    TcpListener::bind(address).unwrap_or_else(|error| panic!("could not bind {address}: {error}"))
}

impl Backend {
    /// Starts a backend that answers `200` with `name` as body, after
    /// `delay`, and reports each request to `seen` (if given) as soon as it
    /// has read it, before the delay.
    pub fn start_with(
        name: &str,
        delay: Duration,
        seen: Option<std::sync::mpsc::Sender<SeenRequest>>,
    ) -> Backend {
        Self::start_at(SocketAddr::from(([127, 0, 0, 1], 0)), name, delay, seen)
    }

    /// Like [`Backend::start_with`] on a given address (a port that was
    /// refusing connections until now, for example).
    pub fn start_at(
        address: SocketAddr,
        name: &str,
        delay: Duration,
        seen: Option<std::sync::mpsc::Sender<SeenRequest>>,
    ) -> Backend {
        let listener = bind(address);
        let address = listener.local_addr().unwrap();
        let served = Arc::new(AtomicUsize::new(0));
        let connections = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let open = Arc::new(Mutex::new(Vec::new()));
        let (thread_served, thread_connections, thread_stop, thread_open, thread_name) = (
            served.clone(),
            connections.clone(),
            stop.clone(),
            open.clone(),
            name.to_owned(),
        );
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if thread_stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let _ = stream.set_nodelay(true);
                thread_connections.fetch_add(1, Ordering::SeqCst);
                if let Ok(clone) = stream.try_clone() {
                    thread_open.lock().unwrap().push(clone);
                }
                let (served, name, seen, stop) = (
                    thread_served.clone(),
                    thread_name.clone(),
                    seen.clone(),
                    thread_stop.clone(),
                );
                std::thread::spawn(move || {
                    let mut writer = stream.try_clone().unwrap();
                    let mut reader = BufReader::new(stream);
                    while let Some(request) = read_request(&mut reader) {
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                        if let Some(seen) = &seen {
                            let _ = seen.send(request);
                        }
                        if !delay.is_zero() {
                            std::thread::sleep(delay);
                        }
                        served.fetch_add(1, Ordering::SeqCst);
                        let answer = format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nX-Backend: {name}\r\n\r\n{name}",
                            name.len()
                        );
                        if writer.write_all(answer.as_bytes()).is_err() {
                            break;
                        }
                    }
                });
            }
            // Dropping the listener here refuses every later connection.
        });
        Backend {
            address,
            name: name.to_owned(),
            served,
            connections,
            stop,
            open,
        }
    }

    /// A backend that answers at once.
    pub fn start(name: &str) -> Backend {
        Self::start_with(name, Duration::ZERO, None)
    }

    /// Requests served so far.
    pub fn served(&self) -> usize {
        self.served.load(Ordering::SeqCst)
    }

    /// Stops accepting and answering (open connections close on their
    /// next request).
    pub fn stop(&self) {
        if !self.stop.swap(true, Ordering::SeqCst) {
            // Wake the accept loop, which then closes the listening socket.
            let _ = TcpStream::connect(self.address);
        }
    }

    /// Dies like a killed process: the listening socket closes and every
    /// open connection is shut down at once, whatever it was doing.
    pub fn kill(&self) {
        self.stop();
        for stream in self.open.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A backend whose connections are each handed to a function of the test,
/// on a thread of their own.
pub struct RawBackend {
    pub address: SocketAddr,
    /// Connections accepted.
    pub connections: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl RawBackend {
    /// As [`RawBackend::start`], the handler given each connection as a
    /// buffered reader and a writer on the same socket.
    pub fn conversing(
        handler: impl Fn(BufReader<TcpStream>, TcpStream) + Send + Sync + 'static,
    ) -> RawBackend {
        RawBackend::start(move |stream| {
            let writer = stream.try_clone().unwrap();
            handler(BufReader::new(stream), writer)
        })
    }

    pub fn start(handler: impl Fn(TcpStream) + Send + Sync + 'static) -> RawBackend {
        let listener = bind(SocketAddr::from(([127, 0, 0, 1], 0)));
        let address = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(AtomicUsize::new(0));
        let handler = Arc::new(handler);
        let (thread_stop, thread_connections) = (stop.clone(), connections.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if thread_stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let _ = stream.set_nodelay(true);
                thread_connections.fetch_add(1, Ordering::SeqCst);
                let handler = handler.clone();
                std::thread::spawn(move || handler(stream));
            }
        });
        RawBackend {
            address,
            connections,
            stop,
        }
    }
}

impl Drop for RawBackend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.address);
    }
}
