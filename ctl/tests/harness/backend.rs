//! Real HTTP backends on 127.0.0.1 for the tests: each answers with its own
//! name, keeps connections alive, and can be told to be slow.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// A running backend.
pub struct Backend {
    pub address: SocketAddr,
    pub name: String,
    /// Requests served.
    pub served: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
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
}

fn read_request(reader: &mut BufReader<TcpStream>) -> Option<SeenRequest> {
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
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (key, value) = header.split_once(':')?;
        headers.push((key.trim().to_owned(), value.trim().to_owned()));
    }
    let mut request = SeenRequest {
        method,
        target,
        headers,
        body: Vec::new(),
    };
    if let Some(length) = request
        .header("content-length")
        .and_then(|v| v.parse::<usize>().ok())
    {
        let mut body = vec![0; length];
        reader.read_exact(&mut body).ok()?;
        request.body = body;
    } else if request
        .header("transfer-encoding")
        .is_some_and(|v| v.contains("chunked"))
    {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).ok()?;
            let size = usize::from_str_radix(size.trim(), 16).ok()?;
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).ok()?;
            if size == 0 {
                break;
            }
            request.body.extend_from_slice(&chunk[..size]);
        }
    }
    Some(request)
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
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let served = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (thread_served, thread_stop, thread_name) =
            (served.clone(), stop.clone(), name.to_owned());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if thread_stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
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
                        let body = name.as_bytes();
                        let answer = format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nX-Backend: {name}\r\n\r\n",
                            body.len()
                        );
                        if writer.write_all(answer.as_bytes()).is_err()
                            || writer.write_all(body).is_err()
                        {
                            break;
                        }
                    }
                });
            }
        });
        Backend {
            address,
            name: name.to_owned(),
            served,
            stop,
        }
    }

    /// A backend that answers at once.
    pub fn start(name: &str) -> Backend {
        Self::start_with(name, Duration::ZERO, None)
    }

    /// Stops accepting and answering (open connections close on their
    /// next request).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect(self.address);
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop();
    }
}
