//! Where log lines go: `log_target`, `access_logs_target` and the audit
//! targets, opened once per process.
//!
//! A target is `stdout`, `stderr`, `file:///PATH` (appended to, reopened by
//! [`reopen_all`] so that logrotate can move it away), `udp://HOST:PORT` or
//! `unix:///PATH` (a syslog server: each line becomes one RFC 5424 datagram,
//! facility `daemon`). Any other scheme is refused by name.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use sozu_proxy::access_log::rfc3339;

/// The targets this daemon writes to, as the configuration names them.
pub const SUPPORTED: &str = "stdout, stderr, file:///PATH, udp://HOST:PORT or unix:///PATH";

/// A parsed log target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Stdout,
    Stderr,
    File(PathBuf),
    /// A syslog server over UDP.
    Udp(SocketAddr),
    /// A syslog server on a datagram socket (such as `/dev/log`).
    Unix(PathBuf),
}

impl Target {
    /// The target `text` names, or an error naming it and what is
    /// supported. With `bare_path_is_file`, text without a scheme is a file
    /// (the audit targets, as Sozu's sample configuration writes them).
    pub fn parse(key: &str, text: &str, bare_path_is_file: bool) -> Result<Target, String> {
        let refuse = |why: String| Err(format!("{key} = {text:?}: {why} (supported: {SUPPORTED})"));
        match text {
            "stdout" => return Ok(Target::Stdout),
            "stderr" => return Ok(Target::Stderr),
            _ => {}
        }
        let Some((scheme, rest)) = text.split_once("://") else {
            if bare_path_is_file && !text.trim().is_empty() {
                return Ok(Target::File(PathBuf::from(text)));
            }
            return refuse("not a log target".to_owned());
        };
        match scheme {
            "file" | "unix" if rest.is_empty() => refuse(format!("{scheme}:// names no path")),
            "file" => Ok(Target::File(PathBuf::from(rest))),
            "unix" => Ok(Target::Unix(PathBuf::from(rest))),
            "udp" => match rest.to_socket_addrs().map(|mut all| all.next()) {
                Ok(Some(address)) => Ok(Target::Udp(address)),
                Ok(None) => refuse(format!("{rest} resolves to no address")),
                Err(error) => refuse(format!("{rest} is not HOST:PORT ({error})")),
            },
            other => refuse(format!("the {other}:// scheme is not supported")),
        }
    }

    /// Whether lines are syslog datagrams.
    pub fn is_syslog(&self) -> bool {
        matches!(self, Target::Udp(_) | Target::Unix(_))
    }
}

enum Output {
    Stdout,
    Stderr,
    File(File),
    Udp(UdpSocket, SocketAddr),
    /// The socket (none while the syslog daemon is away) and when it was
    /// last connected or tried.
    Unix(Option<UnixDatagram>, Instant),
}

/// How often a `unix://` target whose syslog daemon went away is tried
/// again: lines written in between are dropped.
const RECONNECT_EVERY: Duration = Duration::from_secs(1);

/// An open target, shared by the layers that write to it.
pub struct Sink {
    target: Target,
    output: Mutex<Output>,
    /// `HOSTNAME APP-NAME PROCID` of the syslog header.
    origin: String,
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sink({:?})", self.target)
    }
}

/// Every sink of this process, for [`reopen_all`].
static SINKS: Mutex<Vec<Arc<Sink>>> = Mutex::new(Vec::new());

impl Sink {
    /// Opens `target` (a file is created if missing, and appended to).
    pub fn open(target: Target) -> io::Result<Arc<Sink>> {
        let output = open_output(&target)?;
        let sink = Arc::new(Sink {
            target,
            output: Mutex::new(output),
            origin: format!("{} sozu {}", hostname(), std::process::id()),
        });
        SINKS
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(sink.clone());
        Ok(sink)
    }

    /// The target this sink writes to.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Writes one text line (without its newline): as is on a stream or a
    /// file, as an RFC 5424 message with `severity` (0 to 7) and `msgid`
    /// to a syslog server.
    pub fn write_line(&self, severity: u8, msgid: &str, line: &[u8]) {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        if self.target.is_syslog() {
            let mut datagram = Vec::with_capacity(line.len() + 80);
            let _ = write!(
                datagram,
                "<{}>1 {} {} {msgid} - ",
                FACILITY_DAEMON * 8 + u32::from(severity.min(7)),
                rfc3339(SystemTime::now()),
                self.origin
            );
            datagram.extend_from_slice(line);
            self.write_raw(&datagram);
        } else {
            // The line and its end go out in one write, through a buffer
            // each thread keeps (an access line per request).
            thread_local! {
                static WHOLE: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
            }
            WHOLE.with(|whole| match whole.try_borrow_mut() {
                Ok(mut whole) => {
                    whole.clear();
                    whole.extend_from_slice(line);
                    whole.push(b'\n');
                    self.write_raw(&whole);
                }
                // Only if writing logged through this very sink.
                Err(_) => self.write_raw(&[line, b"\n"].concat()),
            });
        }
    }

    /// Writes `bytes` as they are (one datagram to a syslog server).
    pub fn write_raw(&self, bytes: &[u8]) {
        let mut output = self
            .output
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // A log line that cannot be written is dropped: there is nowhere
        // left to report it, and the proxy must go on. Syslog sockets are
        // non-blocking: a syslog daemon that stops reading costs lines,
        // never a stalled event loop.
        let _ = match &mut *output {
            Output::Stdout => io::stdout().lock().write_all(bytes),
            Output::Stderr => io::stderr().lock().write_all(bytes),
            Output::File(file) => file.write_all(bytes),
            Output::Udp(socket, address) => socket.send_to(bytes, *address).map(|_| ()),
            Output::Unix(socket, tried) => {
                if let Target::Unix(path) = &self.target {
                    send_unix(socket, tried, path, bytes)
                } else {
                    Ok(())
                }
            }
        };
    }

    /// Opens the file again by its name (after logrotate renamed it); other
    /// targets are left as they are.
    pub fn reopen(&self) -> io::Result<()> {
        if let Target::File(_) = self.target {
            let fresh = open_output(&self.target)?;
            *self
                .output
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()) = fresh;
        }
        Ok(())
    }
}

/// Reopens every file target of this process (SIGUSR1); returns the errors.
pub fn reopen_all() -> Vec<String> {
    let sinks = SINKS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .clone();
    sinks
        .iter()
        .filter_map(|sink| {
            sink.reopen()
                .err()
                .map(|error| format!("{:?}: {error}", sink.target))
        })
        .collect()
}

/// The syslog facility `daemon`.
const FACILITY_DAEMON: u32 = 3;

fn open_output(target: &Target) -> io::Result<Output> {
    let named = |path: &PathBuf, error: io::Error| {
        io::Error::new(error.kind(), format!("{}: {error}", path.display()))
    };
    Ok(match target {
        Target::Stdout => Output::Stdout,
        Target::Stderr => Output::Stderr,
        Target::File(path) => Output::File(
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|error| named(path, error))?,
        ),
        Target::Udp(address) => {
            let local: SocketAddr = if address.is_ipv4() {
                ([0, 0, 0, 0], 0).into()
            } else {
                (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
            };
            let socket = UdpSocket::bind(local)?;
            socket.set_nonblocking(true)?;
            Output::Udp(socket, *address)
        }
        Target::Unix(path) => Output::Unix(
            Some(connect_unix(path).map_err(|error| named(path, error))?),
            Instant::now(),
        ),
    })
}

/// A non-blocking datagram socket connected to a syslog daemon's socket.
fn connect_unix(path: &PathBuf) -> io::Result<UnixDatagram> {
    let socket = UnixDatagram::unbound()?;
    socket.connect(path)?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// Sends one datagram to a `unix://` target. A full queue drops it; a
/// syslog daemon that went away (restarted, say) drops the socket, which
/// is connected again at most every [`RECONNECT_EVERY`].
fn send_unix(
    socket: &mut Option<UnixDatagram>,
    tried: &mut Instant,
    path: &PathBuf,
    bytes: &[u8],
) -> io::Result<()> {
    if socket.is_none() && tried.elapsed() >= RECONNECT_EVERY {
        *tried = Instant::now();
        *socket = connect_unix(path).ok();
    }
    let Some(connected) = socket else {
        return Ok(());
    };
    match connected.send(bytes) {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == io::ErrorKind::WouldBlock => Err(error),
        Err(error) => {
            *socket = None;
            *tried = Instant::now();
            Err(error)
        }
    }
}

/// This machine's name, for the syslog header (`-` when unknown).
fn hostname() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|name| name.trim().to_owned())
            .filter(|name| !name.is_empty() && name.is_ascii() && !name.contains(' '))
            .unwrap_or_else(|| "-".to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_parsed_and_other_schemes_refused_by_name() {
        assert_eq!(
            Target::parse("log_target", "stdout", false),
            Ok(Target::Stdout)
        );
        assert_eq!(
            Target::parse("log_target", "stderr", false),
            Ok(Target::Stderr)
        );
        assert_eq!(
            Target::parse("log_target", "file:///var/log/sozu.log", false),
            Ok(Target::File("/var/log/sozu.log".into()))
        );
        assert_eq!(
            Target::parse("log_target", "unix:///dev/log", false),
            Ok(Target::Unix("/dev/log".into()))
        );
        assert_eq!(
            Target::parse("log_target", "udp://127.0.0.1:514", false),
            Ok(Target::Udp("127.0.0.1:514".parse().unwrap()))
        );
        let error = Target::parse("log_target", "tcp://127.0.0.1:514", false).unwrap_err();
        assert!(
            error.contains("tcp://") && error.contains("log_target"),
            "{error}"
        );
        let error = Target::parse("log_target", "sozu.log", false).unwrap_err();
        assert!(error.contains("sozu.log"), "{error}");
        assert!(Target::parse("log_target", "file://", false).is_err());
        assert!(Target::parse("log_target", "udp://nowhere", false).is_err());
        assert_eq!(
            Target::parse("audit_logs_target", "audit.log", true),
            Ok(Target::File("audit.log".into()))
        );
    }

    #[test]
    fn a_unix_syslog_that_stops_reading_or_goes_away_never_blocks_and_is_found_again() {
        let path = std::env::temp_dir().join(format!(
            "sozu-log-sink-{}-{:?}.sock",
            std::process::id(),
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos()
        ));
        let receiver = UnixDatagram::bind(&path).unwrap();
        let sink = Sink::open(Target::Unix(path.clone())).unwrap();
        sink.write_raw(b"first");
        let mut buffer = [0; 64];
        let read = receiver.recv(&mut buffer).unwrap();
        assert_eq!(&buffer[..read], b"first");

        // Nobody reads: the queue fills and lines are dropped, the writer
        // goes on (a blocking socket would stop this thread for good).
        let (done, finished) = std::sync::mpsc::channel();
        let writer = Arc::clone(&sink);
        std::thread::spawn(move || {
            for _ in 0..5_000 {
                writer.write_raw(&[b'x'; 512]);
            }
            let _ = done.send(());
        });
        finished
            .recv_timeout(Duration::from_secs(20))
            .expect("writing to a full syslog queue blocked");

        // The syslog daemon restarts on the same path: the sink connects
        // to the new socket within its reconnection period.
        drop(receiver);
        std::fs::remove_file(&path).unwrap();
        sink.write_raw(b"lost");
        let restarted = UnixDatagram::bind(&path).unwrap();
        restarted.set_nonblocking(true).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let received = loop {
            sink.write_raw(b"again");
            match restarted.recv(&mut buffer) {
                Ok(read) => break buffer[..read].to_vec(),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    assert!(Instant::now() < deadline, "the sink never reconnected");
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(error) => panic!("{error}"),
            }
        };
        assert_eq!(received, b"again");
        let _ = std::fs::remove_file(&path);
    }
}
