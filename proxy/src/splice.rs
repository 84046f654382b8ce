//! Moving body bytes from one TCP socket to another through a kernel pipe
//! (splice(2)): the bytes go from the source's receive queue into the pipe
//! and from the pipe into the destination's send queue without a copy to
//! this process's memory.
//!
//! A [`Pipe`] belongs to one client connection: opened the first time a
//! body of that connection is worth splicing, kept while the connection
//! lives, closed when it is dropped. It is only filled while empty: a full
//! pipe and an empty socket both answer `EAGAIN`, and only when the pipe is
//! empty does that answer surely mean the socket (whose readiness is then
//! cleared). A pipe left holding bytes (the destination failed, or the
//! operation was cancelled) is never used again ([`Splicer::pipe`]).
//!
//! Readiness comes from tokio (`readable()`/`writable()` and `try_io`), so
//! splicing shares the sockets' registrations with the copy path; every
//! wait is bounded by the connection's [`Deadline`].

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, Interest};
use tokio::net::TcpStream;

use crate::deadline::Deadline;

/// A client connection of the HTTP/1.1 relay: its TCP socket when bytes
/// reach it unchanged (plain text), `None` when they do not (TLS), and
/// then bodies are copied.
pub(crate) trait Client: AsyncRead + AsyncWrite + Unpin {
    fn tcp(&self) -> Option<&TcpStream>;
}

impl Client for TcpStream {
    fn tcp(&self) -> Option<&TcpStream> {
        Some(self)
    }
}

impl Client for tokio_rustls::server::TlsStream<TcpStream> {
    fn tcp(&self) -> Option<&TcpStream> {
        None
    }
}

/// Why bytes stopped moving.
#[derive(Debug)]
pub(crate) enum Stopped {
    /// The kernel cannot splice between these descriptors (nothing was
    /// moved, and the pipe is empty): copy instead.
    Unsupported,
    /// The source ended before the bytes asked for.
    Ended,
    /// Reading the source failed or timed out.
    Source(io::Error),
    /// Writing the destination failed or timed out.
    Destination(io::Error),
}

/// A non-blocking kernel pipe, and how many bytes it holds.
pub(crate) struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    held: usize,
    /// The most one fill asks for.
    capacity: usize,
}

impl Pipe {
    /// A new pipe, of `capacity` bytes when given (the kernel rounds it up
    /// to pages; one it refuses leaves the default, 64 KiB on Linux).
    pub(crate) fn open(capacity: Option<usize>) -> io::Result<Pipe> {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: `fds` is an array of two descriptors, as pipe2 needs.
        let result = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
        if result != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: pipe2 succeeded: both descriptors are new and ours.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        if let Some(capacity) = capacity {
            let wanted = libc::c_int::try_from(capacity).unwrap_or(libc::c_int::MAX);
            // SAFETY: fcntl on a descriptor we own, with an integer argument.
            let set = unsafe { libc::fcntl(write.as_raw_fd(), libc::F_SETPIPE_SZ, wanted) };
            if set < 0 {
                let error = io::Error::last_os_error();
                tracing::debug!(capacity, %error, "the pipe keeps its default capacity");
            }
        }
        // SAFETY: as above.
        let size = unsafe { libc::fcntl(write.as_raw_fd(), libc::F_GETPIPE_SZ) };
        let capacity = usize::try_from(size).unwrap_or(0).max(4096);
        Ok(Pipe {
            read,
            write,
            held: 0,
            capacity,
        })
    }

    /// Bytes in the pipe, not written out yet.
    #[cfg(test)]
    pub(crate) fn held(&self) -> usize {
        self.held
    }

    /// Its capacity in bytes.
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Reads up to `max` bytes (and at most the pipe's capacity) of `from`
    /// into the pipe, which must be empty, waiting at most `timeout` for
    /// them: how many (0 at the end of the stream).
    pub(crate) async fn fill(
        &mut self,
        from: &TcpStream,
        max: usize,
        (deadline, timeout): (&mut Deadline, Duration),
    ) -> Result<usize, Stopped> {
        debug_assert_eq!(self.held, 0, "a pipe is filled only when empty");
        let want = max.min(self.capacity);
        let (source, pipe) = (from.as_raw_fd(), self.write.as_raw_fd());
        loop {
            match from.try_io(Interest::READABLE, || splice(source, pipe, want)) {
                Ok(moved) => {
                    self.held += moved;
                    return Ok(moved);
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                Err(error) if unsupported(&error) => return Err(Stopped::Unsupported),
                Err(error) => return Err(Stopped::Source(error)),
            }
            match deadline.within(timeout, from.readable()).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => return Err(Stopped::Source(error)),
                Err(_) => return Err(Stopped::Source(io::ErrorKind::TimedOut.into())),
            }
        }
    }

    /// Writes everything the pipe holds to `to`, each wait for room at
    /// most `timeout`; `written` counts the bytes as they go.
    pub(crate) async fn drain(
        &mut self,
        to: &TcpStream,
        (deadline, timeout): (&mut Deadline, Duration),
        written: &mut u64,
    ) -> Result<(), Stopped> {
        let (pipe, destination) = (self.read.as_raw_fd(), to.as_raw_fd());
        while self.held > 0 {
            let held = self.held;
            match to.try_io(Interest::WRITABLE, || splice(pipe, destination, held)) {
                Ok(0) => return Err(Stopped::Destination(io::ErrorKind::WriteZero.into())),
                Ok(moved) => {
                    self.held -= moved;
                    *written += moved as u64;
                    continue;
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                Err(error) => return Err(Stopped::Destination(error)),
            }
            writable(to, (deadline, timeout)).await?;
        }
        Ok(())
    }

    /// Moves exactly `length` bytes from `from` to `to`: reads within
    /// `timeouts.0`, writes within `timeouts.1`. `moved` counts the bytes
    /// written to `to`, also when this fails or is cancelled.
    pub(crate) async fn relay(
        &mut self,
        (from, to): (&TcpStream, &TcpStream),
        length: u64,
        deadline: &mut Deadline,
        (read_timeout, write_timeout): (Duration, Duration),
        moved: &mut u64,
    ) -> Result<(), Stopped> {
        let mut left = length;
        while left > 0 {
            let want = usize::try_from(left).unwrap_or(usize::MAX);
            let filled = self.fill(from, want, (deadline, read_timeout)).await?;
            if filled == 0 {
                return Err(Stopped::Ended);
            }
            left -= filled as u64;
            self.drain(to, (deadline, write_timeout), moved).await?;
        }
        Ok(())
    }
}

/// Writes all of `bytes` to `to` (a chunk's framing between spliced data),
/// each wait for room at most `timeout`.
pub(crate) async fn write_all(
    to: &TcpStream,
    mut bytes: &[u8],
    (deadline, timeout): (&mut Deadline, Duration),
) -> Result<(), Stopped> {
    while !bytes.is_empty() {
        match to.try_write(bytes) {
            Ok(0) => return Err(Stopped::Destination(io::ErrorKind::WriteZero.into())),
            Ok(written) => {
                bytes = &bytes[written..];
                continue;
            }
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
            Err(error) => return Err(Stopped::Destination(error)),
        }
        writable(to, (deadline, timeout)).await?;
    }
    Ok(())
}

/// Waits until `to` takes bytes again, at most `timeout`.
async fn writable(
    to: &TcpStream,
    (deadline, timeout): (&mut Deadline, Duration),
) -> Result<(), Stopped> {
    match deadline.within(timeout, to.writable()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(Stopped::Destination(error)),
        Err(_) => Err(Stopped::Destination(io::ErrorKind::TimedOut.into())),
    }
}

/// One splice(2) call, non-blocking.
fn splice(from: RawFd, to: RawFd, length: usize) -> io::Result<usize> {
    let flags = libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK;
    // SAFETY: both descriptors are open for the call's length (borrowed
    // from a live socket and a live pipe); no offsets are passed.
    let moved = unsafe {
        libc::splice(
            from,
            std::ptr::null_mut(),
            to,
            std::ptr::null_mut(),
            length,
            flags,
        )
    };
    if moved < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(moved as usize)
}

/// Errors that say splice cannot work here, rather than that a socket
/// failed.
fn unsupported(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP | libc::EPERM)
    )
}

/// A client connection's splicing: its pipe once opened, and whether
/// splicing was found not to work on it.
pub(crate) struct Splicer {
    pipe: Option<Pipe>,
    capacity: Option<usize>,
    disabled: bool,
}

impl Splicer {
    /// Nothing opened yet; pipes of `capacity` bytes when given.
    pub(crate) fn new(capacity: Option<usize>) -> Splicer {
        Splicer {
            pipe: None,
            capacity,
            disabled: false,
        }
    }

    /// The connection's pipe, empty: opened now if there was none, opened
    /// anew if the last one was left holding bytes (they belong to a body
    /// that broke off, and must not reach the next one). `None` when
    /// splicing does not work on this connection.
    pub(crate) fn pipe(&mut self) -> Option<&mut Pipe> {
        if self.disabled {
            return None;
        }
        if self.pipe.as_ref().is_some_and(|pipe| pipe.held > 0) {
            self.pipe = None;
        }
        if self.pipe.is_none() {
            match Pipe::open(self.capacity) {
                Ok(pipe) => self.pipe = Some(pipe),
                Err(error) => {
                    tracing::debug!(%error, "no pipe for splicing: bodies are copied");
                    self.disabled = true;
                    return None;
                }
            }
        }
        self.pipe.as_mut()
    }

    /// Splicing failed as unsupported: this connection copies from now on.
    pub(crate) fn disable(&mut self) {
        tracing::debug!("splice is not supported here: bodies are copied");
        self.disabled = true;
        self.pipe = None;
    }
}

#[cfg(test)]
mod tests;
