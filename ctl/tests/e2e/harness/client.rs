//! A minimal HTTP/1.1 client for the tests, on raw sockets so that tests
//! control exactly what is sent.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// A response as the client received it.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends raw bytes and reads the whole answer until the server closes.
pub fn raw(port: u16, request: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(20)))?;
    stream.write_all(request)?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    Ok(answer)
}

/// Parses one HTTP/1.1 response (Content-Length or read-to-end bodies).
pub fn parse(bytes: &[u8]) -> Option<Answer> {
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&bytes[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let rest = &bytes[end + 4..];
    let body = match headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
    {
        Some(length) => rest[..length.min(rest.len())].to_vec(),
        None => rest.to_vec(),
    };
    Some(Answer {
        status,
        headers,
        body,
    })
}

/// `GET path` with a Host header, connection closed after.
pub fn get(port: u16, host: &str, path: &str) -> Answer {
    get_with(port, host, path, &[])
}

/// `GET path` with a Host header and extra headers.
pub fn get_with(port: u16, host: &str, path: &str, headers: &[(&str, &str)]) -> Answer {
    request(port, "GET", host, path, headers)
}

/// A request without body, connection closed after.
pub fn request(
    port: u16,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Answer {
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    let bytes = raw(port, request.as_bytes()).unwrap();
    parse(&bytes)
        .unwrap_or_else(|| panic!("unparsable answer: {:?}", String::from_utf8_lossy(&bytes)))
}

/// The status of a `GET`, or `None` if the connection failed or closed
/// without an answer (for tests that count failures).
pub fn try_get(port: u16, host: &str, path: &str) -> Option<u16> {
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    let bytes = raw(port, request.as_bytes()).ok()?;
    parse(&bytes).map(|answer| answer.status)
}

/// A response head.
#[derive(Debug, Clone)]
pub struct Head {
    pub status: u16,
    pub headers: Vec<(String, String)>,
}

impl Head {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// One client connection kept open across requests, reading answers one
/// at a time by their framing (Content-Length, chunked, or until close).
pub struct Connection {
    pub reader: BufReader<TcpStream>,
    pub writer: TcpStream,
}

impl Connection {
    pub fn open(port: u16) -> Connection {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        Connection {
            writer: stream.try_clone().unwrap(),
            reader: BufReader::new(stream),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.writer.write_all(bytes)
    }

    /// A keep-alive `GET` and its answer.
    pub fn get(&mut self, host: &str, path: &str) -> Answer {
        self.send(format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes())
            .unwrap();
        self.answer().unwrap()
    }

    /// Reads one response head (a 1xx one included).
    pub fn head(&mut self) -> std::io::Result<Head> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|status| status.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
        let mut headers = Vec::new();
        loop {
            let mut header = String::new();
            if self.reader.read_line(&mut header)? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((key, value)) = header.split_once(':') {
                headers.push((key.trim().to_owned(), value.trim().to_owned()));
            }
        }
        Ok(Head { status, headers })
    }

    /// Reads the body that follows `head`, handing each piece to `sink`;
    /// returns how many bytes came.
    pub fn body(&mut self, head: &Head, mut sink: impl FnMut(&[u8])) -> std::io::Result<u64> {
        let mut total = 0u64;
        if head.status < 200 || head.status == 204 || head.status == 304 {
            return Ok(0);
        }
        let mut buffer = vec![0; 64 * 1024];
        if head
            .header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
        {
            loop {
                let mut size = String::new();
                self.reader.read_line(&mut size)?;
                let size = size.trim().split(';').next().unwrap_or_default();
                let mut left = usize::from_str_radix(size.trim(), 16)
                    .map_err(|_| std::io::Error::other(format!("bad chunk size {size:?}")))?;
                if left == 0 {
                    loop {
                        let mut line = String::new();
                        if self.reader.read_line(&mut line)? == 0 || line.trim_end().is_empty() {
                            return Ok(total);
                        }
                    }
                }
                while left > 0 {
                    let wanted = left.min(buffer.len());
                    self.reader.read_exact(&mut buffer[..wanted])?;
                    sink(&buffer[..wanted]);
                    total += wanted as u64;
                    left -= wanted;
                }
                let mut crlf = [0; 2];
                self.reader.read_exact(&mut crlf)?;
            }
        }
        match head
            .header("content-length")
            .and_then(|v| v.parse::<u64>().ok())
        {
            Some(mut left) => {
                while left > 0 {
                    let wanted = (left as usize).min(buffer.len());
                    let read = self.reader.read(&mut buffer[..wanted])?;
                    if read == 0 {
                        return Err(std::io::ErrorKind::UnexpectedEof.into());
                    }
                    sink(&buffer[..read]);
                    total += read as u64;
                    left -= read as u64;
                }
            }
            None => loop {
                let read = self.reader.read(&mut buffer)?;
                if read == 0 {
                    break;
                }
                sink(&buffer[..read]);
                total += read as u64;
            },
        }
        Ok(total)
    }

    /// Reads one whole answer.
    pub fn answer(&mut self) -> std::io::Result<Answer> {
        let head = self.head()?;
        let mut body = Vec::new();
        self.body(&head, |piece| body.extend_from_slice(piece))?;
        Ok(Answer {
            status: head.status,
            headers: head.headers,
            body,
        })
    }

    /// Whether the server closed the connection (reads until end of file,
    /// an error, or the read timeout).
    pub fn closed_within(&mut self, timeout: Duration) -> bool {
        self.reader
            .get_ref()
            .set_read_timeout(Some(timeout))
            .unwrap();
        let mut rest = Vec::new();
        let closed = match self.reader.read_to_end(&mut rest) {
            Ok(_) => true,
            Err(error) => !matches!(
                error.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
        };
        self.reader
            .get_ref()
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        closed
    }
}
