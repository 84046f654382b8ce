//! A client socket that hyper drives while the connection task keeps a
//! handle on it.
//!
//! hyper owns the I/O object it serves and, when a client is too slow to
//! send its first request head, only closes the connection. Sozu answers
//! 408 in that case; to write that answer after hyper gave up, the task
//! keeps its own `Arc` on the socket (hyper wants upgradable I/O to be `Send`). Reads and writes go through the
//! `&TcpStream` readiness API, which is what `TcpStream`'s own
//! `AsyncRead`/`AsyncWrite` do underneath.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// One handle on a client socket; clones share it.
#[derive(Clone)]
pub(crate) struct SharedStream(pub(crate) Arc<TcpStream>);

impl AsyncRead for SharedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        use std::os::fd::AsRawFd;
        loop {
            ready!(self.0.poll_read_ready(cx))?;
            // hyper hands over a fresh, uninitialized read buffer (8 KiB or
            // more) each time: zeroing it first, as `try_read` on an
            // initialized slice would need, cost 3% of a request's CPU time.
            // SAFETY: only bytes the kernel wrote are marked initialized.
            let unfilled = unsafe { buf.unfilled_mut() };
            let fd = self.0.as_raw_fd();
            let capacity = unfilled.len();
            let mut received = None;
            // A false readiness ends in WouldBlock, which `try_io` clears;
            // the next poll then waits for the socket for real. A read
            // shorter than the buffer has drained the socket: its readiness
            // is cleared too (reported as WouldBlock to `try_io`, which
            // clears only what it saw before the read), so that the next
            // read waits for new bytes instead of failing with EAGAIN, as
            // tokio's own TcpStream does.
            let result = self.0.try_io(tokio::io::Interest::READABLE, || {
                // SAFETY: `unfilled` is valid for writes of its length, and
                // recv writes at most that many bytes.
                let read = unsafe { libc::recv(fd, unfilled.as_mut_ptr().cast(), capacity, 0) };
                let read = usize::try_from(read).map_err(|_| io::Error::last_os_error())?;
                received = Some(read);
                if read > 0 && read < capacity {
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                Ok(read)
            });
            let outcome = match received {
                Some(read) => Ok(read),
                None => result,
            };
            match outcome {
                Ok(read) => {
                    // SAFETY: recv initialized the first `read` bytes.
                    unsafe { buf.assume_init(read) };
                    buf.advance(read);
                    return Poll::Ready(Ok(()));
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return Poll::Ready(Err(error)),
            }
        }
    }
}

impl AsyncWrite for SharedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.0.poll_write_ready(cx))?;
            match self.0.try_write(buf) {
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
                result => return Poll::Ready(result),
            }
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.0.poll_write_ready(cx))?;
            match self.0.try_write_vectored(bufs) {
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
                result => return Poll::Ready(result),
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Writes go straight to the socket.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let result = socket2::SockRef::from(&*self.0).shutdown(std::net::Shutdown::Write);
        match result {
            // Already closed by the peer: nothing left to shut.
            Err(error) if error.kind() == io::ErrorKind::NotConnected => Poll::Ready(Ok(())),
            result => Poll::Ready(result),
        }
    }
}

/// An I/O object lent to hyper that comes back to the connection task when
/// hyper drops it.
///
/// A TLS session cannot be shared the way a socket is (its state moves
/// with every record), so for HTTPS the task lends the whole stream and,
/// once hyper gave up on a slow first request head, takes it back from
/// `home` to write the 408 through the same session. Nothing is locked
/// while hyper reads and writes: `home` is only touched when the stream
/// comes back.
pub(crate) struct Lent<S> {
    inner: Option<S>,
    home: Arc<std::sync::Mutex<Option<S>>>,
}

impl<S> Lent<S> {
    /// Lends `stream`; the returned slot holds it again once the loan is
    /// dropped.
    pub(crate) fn new(stream: S) -> (Self, Arc<std::sync::Mutex<Option<S>>>) {
        let home = Arc::new(std::sync::Mutex::new(None));
        (
            Lent {
                inner: Some(stream),
                home: home.clone(),
            },
            home,
        )
    }

    fn stream(&mut self) -> Pin<&mut S>
    where
        S: Unpin,
    {
        // Only `drop` takes the stream out.
        Pin::new(
            self.inner
                .as_mut()
                .expect("a lent stream is there until dropped"),
        )
    }
}

impl<S> Drop for Lent<S> {
    fn drop(&mut self) {
        if let (Some(stream), Ok(mut home)) = (self.inner.take(), self.home.lock()) {
            *home = Some(stream);
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Lent<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.get_mut().stream().poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Lent<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().stream().poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().stream().poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.as_ref().is_some_and(S::is_write_vectored)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().stream().poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().stream().poll_shutdown(cx)
    }
}
