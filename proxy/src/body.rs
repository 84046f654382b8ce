//! Bodies that flow through the proxy: streamed, never collected.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::Sleep;

/// The error type of every body here.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Called once when a response body ends or is dropped, with the number of
/// body bytes that went through and whether the body ended normally.
pub(crate) trait Completion {
    fn complete(self: Box<Self>, bytes: u64, finished: bool);
}

/// A response body: an answer made here, or the backend's body streamed.
pub enum ProxyBody {
    /// A complete body made by the proxy (answers, redirects).
    Full(Option<Bytes>),
    /// A backend's body, relayed frame by frame.
    Relayed(RelayedBody),
}

/// A backend body being relayed, with its byte count and what to do when it
/// ends (return the connection to the pool, log, count).
///
/// A backend that goes silent in the middle of its body for longer than
/// the idle timeout (the listener's back_timeout) ends the body with an
/// error, which closes the client connection: the client learns the answer
/// is cut instead of waiting forever. Only time spent waiting for the
/// backend counts, not time the client takes to read.
pub struct RelayedBody {
    inner: Incoming,
    bytes: u64,
    completion: Option<Box<dyn Completion>>,
    idle_timeout: Duration,
    /// Allocated the first time the backend keeps the body waiting.
    idle: Option<Pin<Box<Sleep>>>,
    /// Whether `idle` runs for the current wait.
    waiting: bool,
}

impl RelayedBody {
    pub(crate) fn new(
        inner: Incoming,
        completion: Box<dyn Completion>,
        idle_timeout: Duration,
    ) -> Self {
        RelayedBody {
            inner,
            bytes: 0,
            completion: Some(completion),
            idle_timeout,
            idle: None,
            waiting: false,
        }
    }

    /// Whether the backend has kept the body waiting for too long; arms
    /// the timer at the start of a wait.
    fn idle_expired(&mut self, cx: &mut Context<'_>) -> bool {
        let deadline = tokio::time::Instant::now() + self.idle_timeout;
        let sleep = self
            .idle
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if !self.waiting {
            sleep.as_mut().reset(deadline);
            self.waiting = true;
        }
        sleep.as_mut().poll(cx).is_ready()
    }

    fn finish(&mut self, finished: bool) {
        if let Some(completion) = self.completion.take() {
            completion.complete(self.bytes, finished);
        }
    }
}

impl Drop for RelayedBody {
    fn drop(&mut self) {
        // hyper stops polling a body that says it is over (a Content-Length
        // body after its last byte, an empty body): that is a normal end.
        // Otherwise the client went away or the body failed.
        let finished = self.inner.is_end_stream();
        self.finish(finished);
    }
}

impl ProxyBody {
    /// A complete body.
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        if bytes.is_empty() {
            ProxyBody::Full(None)
        } else {
            ProxyBody::Full(Some(bytes))
        }
    }

    /// No body.
    pub fn empty() -> Self {
        ProxyBody::Full(None)
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            ProxyBody::Full(bytes) => Poll::Ready(bytes.take().map(|bytes| Ok(Frame::data(bytes)))),
            ProxyBody::Relayed(relayed) => {
                let polled = Pin::new(&mut relayed.inner).poll_frame(cx);
                match polled {
                    Poll::Ready(Some(Ok(frame))) => {
                        relayed.waiting = false;
                        if let Some(data) = frame.data_ref() {
                            relayed.bytes += data.len() as u64;
                        }
                        if relayed.inner.is_end_stream() {
                            // The last frame of a sized body: hyper will not
                            // poll again, so the exchange ends here.
                            relayed.finish(true);
                        }
                        Poll::Ready(Some(Ok(frame)))
                    }
                    Poll::Ready(Some(Err(error))) => {
                        relayed.finish(false);
                        Poll::Ready(Some(Err(error.into())))
                    }
                    Poll::Ready(None) => {
                        relayed.finish(true);
                        Poll::Ready(None)
                    }
                    Poll::Pending if relayed.idle_expired(cx) => {
                        relayed.finish(false);
                        let error = std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            "the backend sent nothing within back_timeout",
                        );
                        Poll::Ready(Some(Err(error.into())))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Full(bytes) => bytes.is_none(),
            ProxyBody::Relayed(relayed) => relayed.inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Full(Some(bytes)) => SizeHint::with_exact(bytes.len() as u64),
            ProxyBody::Full(None) => SizeHint::with_exact(0),
            ProxyBody::Relayed(relayed) => relayed.inner.size_hint(),
        }
    }
}

/// What a client's request body did on its way to the backend, shared
/// with the exchange that answers for it.
#[derive(Debug, Default)]
pub struct Upload {
    /// Body bytes received from the client.
    pub bytes: Cell<u64>,
    /// The client's body broke (malformed chunk, connection lost): a
    /// failure of the client, not of the backend it was going to.
    pub failed: Cell<bool>,
    /// When the last body bytes arrived, if any did.
    pub progressed_at: Cell<Option<Instant>>,
}

/// A client's request body on its way to a backend, counted.
pub struct ForwardedBody {
    inner: Option<Incoming>,
    upload: Rc<Upload>,
}

impl ForwardedBody {
    pub(crate) fn new(inner: Incoming, upload: Rc<Upload>) -> Self {
        ForwardedBody {
            inner: Some(inner),
            upload,
        }
    }

    /// A body with nothing in it (health checks, generated requests).
    pub fn empty() -> Self {
        ForwardedBody {
            inner: None,
            upload: Rc::default(),
        }
    }
}

impl Body for ForwardedBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let upload = &this.upload;
                    upload.bytes.set(upload.bytes.get() + data.len() as u64);
                    upload.progressed_at.set(Some(Instant::now()));
                }
            }
            Poll::Ready(Some(Err(_))) => this.upload.failed.set(true),
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Some(inner) => inner.size_hint(),
            None => SizeHint::with_exact(0),
        }
    }
}
