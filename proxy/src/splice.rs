//! Moving body bytes from one TCP socket to another through a kernel pipe
//! (splice(2)): the bytes go from the source's receive queue into the pipe
//! and from the pipe into the destination's send queue without a copy to
//! this process's memory.
//!
//! A client connection takes a [`Pipe`] when a body is worth splicing and
//! gives it back when that piece of the body has gone ([`Splicer`]): each
//! worker thread keeps a few empty pipes for the next ones, and closes
//! the rest, so that pipes (counted against the user's
//! `/proc/sys/fs/pipe-user-pages-soft` by their size, not by what they
//! hold) are only held while bodies move. A pipe left holding bytes (the
//! destination failed, or the operation was cancelled) is closed, never
//! used again for another body.
//!
//! A full pipe and an empty socket both answer `EAGAIN` to a fill (a
//! pipe is full in its slots, one per piece of a socket buffer, before it
//! is full in bytes). When the pipe is empty, that answer surely means the
//! socket, whose readiness is then cleared; when it holds bytes, a peek at
//! the socket (`MSG_PEEK`) tells which: a byte or the socket's end waiting
//! means the pipe is full, and the readiness is kept.
//!
//! Readiness comes from tokio (`readable()`/`writable()` and `try_io`), so
//! splicing shares the sockets' registrations with the copy path; every
//! wait is bounded by the connection's [`Deadline`].

use std::cell::RefCell;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::OnceLock;
use std::time::Duration;

use bytes::BufMut;
use bytes::buf::Limit;
use tokio::io::{AsyncRead, AsyncWrite, Interest};
use tokio::net::TcpStream;
use tokio::time::Instant;

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

/// The capacity asked for a pipe when `splice_pipe_capacity_bytes` is
/// not set: 1 MiB (or `/proc/sys/fs/pipe-max-size` when lower, the most an
/// unprivileged process may ask). The kernel's own default, 64 KiB, makes
/// sixteen times more fills and drains per body.
pub(crate) const DEFAULT_CAPACITY: usize = 1 << 20;

/// The most taken by each read that follows a chunk's spliced data until
/// one brings data: its CRLF and the next size line (and a few bytes of
/// data), the rest of the next chunk's data left in the socket for the
/// pipe.
pub(crate) const FRAMING_READ: usize = 64;

/// Where the next read of a body goes: `buffer`, at most
/// [`FRAMING_READ`] bytes of it when `framing` (after a chunk's spliced
/// data).
pub(crate) fn read_into(buffer: &mut Vec<u8>, framing: bool) -> Limit<&mut Vec<u8>> {
    buffer.limit(if framing { FRAMING_READ } else { usize::MAX })
}

/// Empty pipes a worker thread keeps for the next bodies.
const KEPT: usize = 8;

thread_local! {
    /// This thread's empty pipes, for the next body worth splicing.
    static POOL: RefCell<Vec<Pipe>> = const { RefCell::new(Vec::new()) };
}

/// The capacity to ask for when none is configured.
fn default_capacity() -> usize {
    static MAX: OnceLock<usize> = OnceLock::new();
    *MAX.get_or_init(|| within_max(std::fs::read_to_string("/proc/sys/fs/pipe-max-size").ok()))
}

/// [`DEFAULT_CAPACITY`], or the pipe-max-size read when lower.
fn within_max(max: Option<String>) -> usize {
    let max = max.and_then(|text| text.trim().parse().ok());
    DEFAULT_CAPACITY.min(max.unwrap_or(DEFAULT_CAPACITY))
}

/// A non-blocking kernel pipe, and how many bytes it holds.
pub(crate) struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    held: usize,
    /// The most one fill asks for.
    capacity: usize,
    /// The capacity asked for when it was opened (`None`: the default).
    asked: Option<usize>,
}

impl Pipe {
    /// A new pipe, of `capacity` bytes when given, else
    /// [`DEFAULT_CAPACITY`] (the kernel rounds it up to pages; one it
    /// refuses leaves the kernel's default, 64 KiB on Linux, or less for a
    /// user past its `pipe-user-pages-soft`).
    pub(crate) fn open(capacity: Option<usize>) -> io::Result<Pipe> {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: `fds` is an array of two descriptors, as pipe2 needs.
        let result = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
        if result != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: pipe2 succeeded: both descriptors are new and ours.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let wanted = capacity.unwrap_or_else(default_capacity);
        let wanted = libc::c_int::try_from(wanted).unwrap_or(libc::c_int::MAX);
        // SAFETY: fcntl on a descriptor we own, with an integer argument.
        let set = unsafe { libc::fcntl(write.as_raw_fd(), libc::F_SETPIPE_SZ, wanted) };
        if set < 0 {
            let error = io::Error::last_os_error();
            tracing::debug!(capacity = wanted, %error, "the pipe keeps the kernel's capacity");
        }
        // SAFETY: as above.
        let size = unsafe { libc::fcntl(write.as_raw_fd(), libc::F_GETPIPE_SZ) };
        let size = usize::try_from(size).unwrap_or(0).max(4096);
        Ok(Pipe {
            read,
            write,
            held: 0,
            capacity: size,
            asked: capacity,
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
        loop {
            // The pipe is empty: EAGAIN means the socket (`Empty`).
            if let Filled::Moved(moved) = self.try_fill(from, want)? {
                return Ok(moved);
            }
            readable(from, (&mut *deadline, timeout)).await?;
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
        while self.held > 0 {
            if !self.try_drain(to, written)? {
                writable(to, (&mut *deadline, timeout)).await?;
            }
        }
        Ok(())
    }

    /// Moves exactly `length` bytes from `from` to `to`: reads within
    /// `timeouts.0`, writes within `timeouts.1`. `moved` counts the bytes
    /// written to `to`, also when this fails or is cancelled.
    ///
    /// Both sockets move bytes at once: the pipe is filled while it has
    /// room and drained while it holds bytes, each as far as its socket
    /// allows, and the relay only waits when neither can go on. A fill
    /// that meets `EAGAIN` while the pipe holds bytes peeks at the source
    /// (see the module's documentation): bytes there mean the pipe is
    /// full, and the fill waits for a drain to make room. A destination
    /// that takes nothing fails `timeouts.1` after it last took bytes,
    /// however many the source brings meanwhile.
    pub(crate) async fn relay(
        &mut self,
        (from, to): (&TcpStream, &TcpStream),
        length: u64,
        deadline: &mut Deadline,
        (read_timeout, write_timeout): (Duration, Duration),
        moved: &mut u64,
    ) -> Result<(), Stopped> {
        let mut unread = length;
        let mut ended = false;
        // The last fill found the pipe full in its slots.
        let mut full = false;
        // When the destination's wait ends, from when it last took
        // nothing: bytes still coming from the source do not extend it.
        let mut stuck: Option<Instant> = None;
        loop {
            let mut progress = false;
            let room = self.capacity.saturating_sub(self.held);
            if unread > 0 && !ended && !full && room > 0 {
                let want = usize::try_from(unread).unwrap_or(usize::MAX).min(room);
                match self.try_fill(from, want)? {
                    Filled::Moved(0) => ended = true,
                    Filled::Moved(filled) => {
                        unread -= filled as u64;
                        progress = true;
                    }
                    Filled::Full => full = true,
                    Filled::Empty => {}
                }
            }
            if self.held > 0 && self.try_drain(to, moved)? {
                progress = true;
                full = false;
                stuck = None;
            }
            if self.held == 0 {
                if unread == 0 {
                    return Ok(());
                }
                if ended {
                    return Err(Stopped::Ended);
                }
            }
            if progress {
                continue;
            }
            if self.held == 0 {
                readable(from, (deadline, read_timeout)).await?;
                continue;
            }
            // The destination is full; the source may bring more.
            let end = *stuck.get_or_insert_with(|| Instant::now() + write_timeout);
            let more = unread > 0 && !ended && !full && self.held < self.capacity;
            either(from, to, more, (deadline, end)).await?;
        }
    }

    /// One non-blocking fill of at most `want` bytes.
    fn try_fill(&mut self, from: &TcpStream, want: usize) -> Result<Filled, Stopped> {
        let (source, pipe) = (from.as_raw_fd(), self.write.as_raw_fd());
        let held = self.held;
        // EAGAIN with an empty pipe surely means the socket: tokio clears
        // its readiness. With bytes in the pipe, a peek at the socket
        // tells: bytes (or its end) waiting there mean the pipe is full,
        // and the readiness stays.
        let filled = from.try_io(Interest::READABLE, || match splice(source, pipe, want) {
            Err(error) if error.kind() == io::ErrorKind::WouldBlock && held > 0 => {
                peek(source).map(|_| None)
            }
            other => other.map(Some),
        });
        match filled {
            Ok(Some(moved)) => {
                self.held += moved;
                Ok(Filled::Moved(moved))
            }
            Ok(None) => Ok(Filled::Full),
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => Ok(Filled::Empty),
            Err(error) if unsupported(&error) && held == 0 => Err(Stopped::Unsupported),
            Err(error) => Err(Stopped::Source(error)),
        }
    }

    /// One non-blocking drain of what the pipe holds (it holds bytes, so
    /// `EAGAIN` means the destination); whether bytes went.
    fn try_drain(&mut self, to: &TcpStream, written: &mut u64) -> Result<bool, Stopped> {
        let (pipe, destination) = (self.read.as_raw_fd(), to.as_raw_fd());
        let held = self.held;
        match to.try_io(Interest::WRITABLE, || splice(pipe, destination, held)) {
            Ok(0) => Err(Stopped::Destination(io::ErrorKind::WriteZero.into())),
            Ok(moved) => {
                self.held -= moved;
                *written += moved as u64;
                Ok(true)
            }
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(error) => Err(Stopped::Destination(error)),
        }
    }
}

/// What one non-blocking fill found.
enum Filled {
    /// Bytes went into the pipe (0: the source ended).
    Moved(usize),
    /// The source has nothing now (its readiness is cleared).
    Empty,
    /// The pipe is full (in bytes or in slots): bytes wait in the source.
    Full,
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

/// Waits until `from` has bytes (or its end) again, at most `timeout`.
async fn readable(
    from: &TcpStream,
    (deadline, timeout): (&mut Deadline, Duration),
) -> Result<(), Stopped> {
    match deadline.within(timeout, from.readable()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(Stopped::Source(error)),
        Err(_) => Err(Stopped::Source(io::ErrorKind::TimedOut.into())),
    }
}

/// Waits until `to` takes bytes or, when `more`, `from` has bytes, until
/// `end` (the destination's: the pipe holds bytes it has not taken).
async fn either(
    from: &TcpStream,
    to: &TcpStream,
    more: bool,
    (deadline, end): (&mut Deadline, Instant),
) -> Result<(), Stopped> {
    let ready = async {
        tokio::select! {
            read = from.readable(), if more => read.map_err(Stopped::Source),
            write = to.writable() => write.map_err(Stopped::Destination),
        }
    };
    match deadline.until(end, ready).await {
        Ok(ready) => ready,
        Err(_) => Err(Stopped::Destination(io::ErrorKind::TimedOut.into())),
    }
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

/// Looks at whether a socket has a byte (or its end) to read, without
/// taking it.
fn peek(socket: RawFd) -> io::Result<usize> {
    let mut byte = 0u8;
    let flags = libc::MSG_PEEK | libc::MSG_DONTWAIT;
    // SAFETY: a one-byte read into a local byte, from a live socket.
    let read = unsafe { libc::recv(socket, (&raw mut byte).cast(), 1, flags) };
    if read < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(read as usize)
}

/// Errors that say splice cannot work here, rather than that a socket
/// failed.
fn unsupported(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP | libc::EPERM)
    )
}

/// A client connection's splicing: the pipe it holds while a body moves,
/// and whether splicing was found not to work on it.
pub(crate) struct Splicer {
    pipe: Option<Pipe>,
    capacity: Option<usize>,
    disabled: bool,
}

impl Splicer {
    /// No pipe held yet; pipes of `capacity` bytes when given, else
    /// [`DEFAULT_CAPACITY`].
    pub(crate) fn new(capacity: Option<usize>) -> Splicer {
        Splicer {
            pipe: None,
            capacity,
            disabled: false,
        }
    }

    /// An empty pipe for this connection: the one it holds, else one the
    /// thread kept, else a new one. One left holding bytes is closed
    /// first (they belong to a body that broke off, and must not reach
    /// the next one). `None` when splicing does not work on this
    /// connection.
    pub(crate) fn pipe(&mut self) -> Option<&mut Pipe> {
        if self.disabled {
            return None;
        }
        if self.pipe.as_ref().is_some_and(|pipe| pipe.held > 0) {
            self.pipe = None;
        }
        if self.pipe.is_none() {
            self.pipe = take_kept(self.capacity);
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

    /// The piece of body that needed the pipe has gone (or broke off):
    /// an empty pipe goes back to the thread's few, one holding bytes is
    /// closed.
    pub(crate) fn release(&mut self) {
        let Some(pipe) = self.pipe.take() else {
            return;
        };
        if pipe.held > 0 {
            return;
        }
        POOL.with(|pool| {
            let mut pool = pool.borrow_mut();
            if pool.len() < KEPT {
                pool.push(pipe);
            }
        });
    }

    /// Splicing failed as unsupported: this connection copies from now on.
    pub(crate) fn disable(&mut self) {
        tracing::debug!("splice is not supported here: bodies are copied");
        self.disabled = true;
        self.pipe = None;
    }
}

/// How many empty pipes this thread keeps.
#[cfg(test)]
fn kept() -> usize {
    POOL.with(|pool| pool.borrow().len())
}

/// A pipe this thread kept, of the capacity asked for.
fn take_kept(capacity: Option<usize>) -> Option<Pipe> {
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        let index = pool.iter().position(|pipe| pipe.asked == capacity)?;
        Some(pool.swap_remove(index))
    })
}

impl Drop for Splicer {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests;
