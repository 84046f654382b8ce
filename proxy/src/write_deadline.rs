//! A bound on how long a client may leave the proxy's writes waiting.
//!
//! The front timeout covers clients that send nothing. A client that sends
//! its request and then stops reading the answer looks busy to a read
//! timeout: the proxy is the one waiting, to write. Without a bound such a
//! client would hold its connection, and the backend connection feeding
//! it, for as long as it likes. [`WriteDeadline`] fails a write (or flush,
//! or shutdown) that could not move a byte for the whole limit; any
//! progress starts the count again, so a slow reader that keeps reading is
//! never cut.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// An I/O object whose writes fail with [`io::ErrorKind::TimedOut`] once
/// they have waited `limit` in a row; reads pass through unchanged.
pub(crate) struct WriteDeadline<S> {
    inner: S,
    limit: Duration,
    /// Armed when a write first waits, dropped when one makes progress.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<S> WriteDeadline<S> {
    pub(crate) fn new(inner: S, limit: Duration) -> Self {
        WriteDeadline {
            inner,
            limit,
            stalled: None,
        }
    }

    /// Passes on a write-side outcome; a wait longer than the limit
    /// becomes an error.
    fn bound<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if polled.is_ready() {
            self.stalled = None;
            return polled;
        }
        let limit = self.limit;
        let stalled = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match stalled.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.stalled = None;
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "the client read nothing for {}s (front timeout)",
                        limit.as_secs()
                    ),
                )))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteDeadline<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.bound(cx, polled)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.bound(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_flush(cx);
        this.bound(cx, polled)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.bound(cx, polled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap()
    }

    #[test]
    fn a_write_that_waits_past_the_limit_fails() {
        runtime().block_on(async {
            // A pipe of 64 bytes whose far end is never read.
            let (near, _far) = tokio::io::duplex(64);
            let mut stream = WriteDeadline::new(near, Duration::from_secs(5));
            let started = tokio::time::Instant::now();
            let error = stream.write_all(&[0; 1024]).await.unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::TimedOut);
            assert_eq!(started.elapsed(), Duration::from_secs(5));
        });
    }

    #[test]
    fn a_slow_reader_that_keeps_reading_is_not_cut() {
        runtime().block_on(async {
            let (near, mut far) = tokio::io::duplex(64);
            let mut stream = WriteDeadline::new(near, Duration::from_secs(5));
            // The reader takes 64 bytes every 3 s: slower than the writer,
            // never idle for the limit.
            let reader = tokio::spawn(async move {
                use tokio::io::AsyncReadExt;
                let mut total = 0;
                let mut piece = [0; 64];
                loop {
                    tokio::time::sleep(Duration::from_secs(3)).await;
                    match far.read(&mut piece).await {
                        Ok(0) | Err(_) => return total,
                        Ok(read) => total += read,
                    }
                }
            });
            stream.write_all(&[1; 1024]).await.unwrap();
            stream.shutdown().await.unwrap();
            drop(stream);
            assert_eq!(reader.await.unwrap(), 1024);
        });
    }
}
