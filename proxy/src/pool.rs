//! Connections to backends, owned by one server: idle HTTP/1.1 keep-alive
//! connections waiting for their next request, and one shared HTTP/2
//! cleartext (h2c) connection per backend of the clusters that speak
//! HTTP/2, which carries every request to that backend at once.
//!
//! The HTTP/1.1 connections are [`RawConnection`]s, one kind for the whole
//! server: the relay writes and reads their bytes itself, the hyper path
//! (HTTP/2 clients, requests the relay hands over) runs hyper's HTTP/1.1
//! client over the same stream for one exchange
//! ([`RawConnection::detach`]) and gives the stream back when hyper is
//! done with it cleanly. A connection either path opened serves the next
//! request of either path.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::net::SocketAddr;
use std::rc::Rc;

use foldhash::HashMap;

use futures::future::Either;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::{TrySendError, http1, http2};
use tokio::sync::Notify;

use crate::balancer::Backend;
use crate::body::ForwardedBody;
use crate::sessions::Registration;

/// Idle connections kept per backend address; more are closed.
const MAX_IDLE_PER_BACKEND: usize = 256;

/// An HTTP/1.1 connection to a backend, driven by the relay (raw bytes)
/// or by hyper's client (after [`RawConnection::detach`]): back in the
/// pool only after a response that ended cleanly.
pub(crate) struct RawConnection {
    pub(crate) stream: tokio::net::TcpStream,
    pub(crate) backend: std::sync::Arc<Backend>,
    /// Its place among the sessions `close_sessions` can end.
    pub(crate) registration: Registration,
    on_close: OnClose,
}

/// Accounting run once when a connection closes (dropped).
struct OnClose(Option<Box<dyn FnOnce()>>);

impl Drop for OnClose {
    fn drop(&mut self) {
        if let Some(on_close) = self.0.take() {
            on_close();
        }
    }
}

/// A [`RawConnection`] whose stream someone else holds (hyper's client for
/// one exchange): still counted as open, still one of the sessions
/// `close_sessions` can end, until it is dropped or gets its stream back.
pub(crate) struct Detached {
    backend: std::sync::Arc<Backend>,
    registration: Registration,
    on_close: OnClose,
}

impl Detached {
    /// Resolves when `close_sessions` asks this connection to end.
    pub(crate) async fn closed(&self) {
        self.registration.closed().await;
    }

    /// The connection again, with its stream back.
    pub(crate) fn attach(self, stream: tokio::net::TcpStream) -> RawConnection {
        let Detached {
            backend,
            registration,
            on_close,
        } = self;
        RawConnection {
            stream,
            backend,
            registration,
            on_close,
        }
    }
}

impl RawConnection {
    pub(crate) fn new(
        stream: tokio::net::TcpStream,
        backend: std::sync::Arc<Backend>,
        registration: Registration,
        on_close: Box<dyn FnOnce()>,
    ) -> Self {
        RawConnection {
            stream,
            backend,
            registration,
            on_close: OnClose(Some(on_close)),
        }
    }

    /// Takes the stream out, for another driver; the rest stays counted.
    pub(crate) fn detach(self) -> (tokio::net::TcpStream, Detached) {
        let RawConnection {
            stream,
            backend,
            registration,
            on_close,
        } = self;
        let detached = Detached {
            backend,
            registration,
            on_close,
        };
        (stream, detached)
    }

    /// Whether an idle connection can still carry a request: the backend
    /// has neither closed it nor sent anything unasked, and no
    /// `close_sessions` asked it to end.
    fn usable(&self) -> bool {
        use futures::FutureExt;
        if self.registration.closed().now_or_never().is_some() {
            return false;
        }
        let mut probe = [0u8; 1];
        matches!(self.stream.try_read(&mut probe), Err(error) if error.kind() == std::io::ErrorKind::WouldBlock)
    }
}

/// A connection to a backend, able to carry a request.
pub(crate) enum BackendSender {
    /// hyper's client over a pooled [`RawConnection`], for one exchange:
    /// the stream goes back to the pool after it when [`BackendPool::give`]
    /// set `reusable`.
    Http1 {
        sender: http1::SendRequest<ForwardedBody>,
        reusable: Rc<Cell<bool>>,
    },
    /// A handle on the backend's shared HTTP/2 connection, and which of
    /// the backend's successive connections it is.
    Http2 {
        sender: http2::SendRequest<ForwardedBody>,
        generation: u64,
    },
}

impl BackendSender {
    /// Waits until the connection can take a request; fails when it closed.
    pub(crate) async fn ready(&mut self) -> hyper::Result<()> {
        match self {
            BackendSender::Http1 { sender, .. } => sender.ready().await,
            BackendSender::Http2 { sender, .. } => sender.ready().await,
        }
    }

    /// Sends a request; a request that never left is handed back in the
    /// error. The future does not borrow the sender.
    pub(crate) fn try_send_request(
        &mut self,
        request: Request<ForwardedBody>,
    ) -> impl Future<Output = Result<Response<Incoming>, TrySendError<Request<ForwardedBody>>>> + use<>
    {
        match self {
            BackendSender::Http1 { sender, .. } => Either::Left(sender.try_send_request(request)),
            BackendSender::Http2 { sender, .. } => Either::Right(sender.try_send_request(request)),
        }
    }
}

/// What a request gets from the pool for a backend's HTTP/2 connection.
pub(crate) enum Checkout {
    /// A connection that is open (it may still turn out closed when used).
    Open(BackendSender),
    /// Nothing to reuse: the caller opens the connection. The ticket makes
    /// the caller the only one connecting; the others wait for its result.
    Connect(H2Connecting),
    /// Another request was opening the HTTP/2 connection this one waited
    /// for, and failed: the backend is not reachable right now.
    Failed,
}

/// The HTTP/2 connection of one backend: the live one, or the one being
/// opened.
#[derive(Default)]
struct H2Slot {
    sender: RefCell<Option<http2::SendRequest<ForwardedBody>>>,
    connecting: Cell<bool>,
    /// Counts the connections opened, to tell the current one.
    generation: Cell<u64>,
    /// Counts failed connection attempts, so that a waiter can tell.
    failures: Cell<u64>,
    /// Woken when an attempt ends, whichever way.
    settled: Notify,
}

/// The right to open a backend's HTTP/2 connection. Its holder says how
/// the attempt went ([`H2Connecting::connected`], [`H2Connecting::failed`]);
/// the requests waiting for it then share the connection or learn of the
/// failure. Dropped without a word (its request was abandoned), it lets
/// one of the waiting requests connect instead.
pub(crate) struct H2Connecting {
    slot: Rc<H2Slot>,
}

impl H2Connecting {
    /// Shares the connection that was opened with every later request;
    /// returns the handle the caller uses.
    pub(crate) fn connected(self, sender: http2::SendRequest<ForwardedBody>) -> BackendSender {
        let generation = self.slot.generation.get() + 1;
        self.slot.generation.set(generation);
        *self.slot.sender.borrow_mut() = Some(sender.clone());
        BackendSender::Http2 { sender, generation }
    }

    /// The backend could not be reached: the requests waiting for this
    /// attempt give up on it too.
    pub(crate) fn failed(self) {
        self.slot.failures.set(self.slot.failures.get() + 1);
    }
}

impl Drop for H2Connecting {
    fn drop(&mut self) {
        self.slot.connecting.set(false);
        self.slot.settled.notify_waiters();
    }
}

/// Connections to backends of one server.
#[derive(Default)]
pub(crate) struct BackendPool {
    /// Idle HTTP/1.1 connections, of the relay and the hyper path alike.
    raw: RefCell<HashMap<SocketAddr, Vec<RawConnection>>>,
    h2: RefCell<HashMap<SocketAddr, Rc<H2Slot>>>,
    /// Set when the server stops: nothing is kept for later any more.
    closed: Cell<bool>,
}

impl BackendPool {
    /// The shared HTTP/2 connection to `address` for one request, else the
    /// word to connect. When another request is already opening it, waits
    /// for it rather than opening a second one. (HTTP/1.1 connections come
    /// from [`BackendPool::take_raw`].)
    pub(crate) async fn checkout(&self, address: SocketAddr) -> Checkout {
        let slot = self.h2.borrow_mut().entry(address).or_default().clone();
        let failures_before = slot.failures.get();
        loop {
            {
                let mut sender = slot.sender.borrow_mut();
                match sender.as_ref() {
                    Some(open) if !open.is_closed() => {
                        return Checkout::Open(BackendSender::Http2 {
                            sender: open.clone(),
                            generation: slot.generation.get(),
                        });
                    }
                    // Closed by the backend, by a GOAWAY or an error: the
                    // next request reconnects.
                    Some(_) => *sender = None,
                    None => {}
                }
            }
            if slot.failures.get() != failures_before {
                return Checkout::Failed;
            }
            if !slot.connecting.get() {
                slot.connecting.set(true);
                return Checkout::Connect(H2Connecting { slot: slot.clone() });
            }
            // Nothing happens between this check and the wait on this
            // thread, and `notify_waiters` wakes waits created before it.
            slot.settled.notified().await;
        }
    }

    /// An idle HTTP/1.1 connection opened for `backend` itself that is still
    /// usable, if any. Connections are kept by address, which two clusters'
    /// backends may share: only one opened for this very backend is handed
    /// out, so that its requests and closing are counted where they belong;
    /// those of removed backends are dropped on the way.
    pub(crate) fn take_raw(&self, backend: &std::sync::Arc<Backend>) -> Option<RawConnection> {
        let mut raw = self.raw.borrow_mut();
        let connections = raw.get_mut(&backend.address())?;
        connections.retain(|connection| !connection.backend.is_removed());
        while let Some(index) = connections
            .iter()
            .rposition(|connection| std::sync::Arc::ptr_eq(&connection.backend, backend))
        {
            let connection = connections.remove(index);
            if connection.usable() {
                return Some(connection);
            }
        }
        None
    }

    /// Keeps an HTTP/1.1 connection whose last response ended cleanly, for
    /// the next request to its backend.
    pub(crate) fn give_raw(&self, connection: RawConnection) {
        if self.closed.get() || connection.backend.is_removed() {
            return;
        }
        let mut raw = self.raw.borrow_mut();
        let connections = raw.entry(connection.backend.address()).or_default();
        if connections.len() < MAX_IDLE_PER_BACKEND {
            connections.push(connection);
        }
    }

    /// Stops handing out the HTTP/2 connection `sender` belongs to, after a
    /// request failed on it (a GOAWAY, a reset, a broken connection): the
    /// next request opens a new one, and this one closes once the requests
    /// it still carries are over. Without this, a connection that refuses
    /// new streams while finishing old ones would be offered again and
    /// again.
    pub(crate) fn retire(&self, address: SocketAddr, sender: &BackendSender) {
        let BackendSender::Http2 { generation, .. } = sender else {
            return;
        };
        if let Some(slot) = self.h2.borrow().get(&address)
            && slot.generation.get() == *generation
        {
            slot.sender.borrow_mut().take();
        }
    }

    /// Ends the hyper path's use of a connection after an exchange that
    /// ended cleanly on a connection the backend keeps alive: an HTTP/1.1
    /// stream goes back to the pool (by [`BackendPool::give_raw`]) once
    /// hyper lets go of it with nothing unread. An HTTP/2 handle is just
    /// dropped: the pool keeps its own.
    pub(crate) fn give(&self, sender: BackendSender) {
        if let BackendSender::Http1 { reusable, .. } = &sender
            && !self.closed.get()
        {
            reusable.set(true);
        }
    }

    /// Idle connections held, all backends together (a shared HTTP/2
    /// connection counts as one).
    pub(crate) fn idle_count(&self) -> usize {
        let http1: usize = self.raw.borrow().values().map(Vec::len).sum();
        let http2 = self
            .h2
            .borrow()
            .values()
            .filter(|slot| {
                slot.sender
                    .borrow()
                    .as_ref()
                    .is_some_and(|s| !s.is_closed())
            })
            .count();
        http1 + http2
    }

    /// Closes every idle connection and keeps none from now on (the server
    /// is stopping): a backend that keeps idle connections open must not
    /// keep the stopping process alive. Shared HTTP/2 connections close
    /// once the requests they carry are over.
    pub(crate) fn close(&self) {
        self.closed.set(true);
        // Taken out first: closing runs accounting that may look at the pool.
        let raw = std::mem::take(&mut *self.raw.borrow_mut());
        drop(raw);
        for slot in self.h2.borrow_mut().drain().map(|(_, slot)| slot) {
            slot.sender.borrow_mut().take();
        }
    }

    /// Closes the idle connections of a backend that is gone; its HTTP/2
    /// connection closes once the requests it carries are over.
    pub(crate) fn forget(&self, address: SocketAddr) {
        let raw = self.raw.borrow_mut().remove(&address);
        drop(raw);
        if let Some(slot) = self.h2.borrow_mut().remove(&address) {
            slot.sender.borrow_mut().take();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 9))
    }

    #[tokio::test(flavor = "current_thread")]
    async fn one_request_connects_while_the_others_wait_and_learn_of_a_failure() {
        let local = tokio::task::LocalSet::new();
        local
            .run_until(async {
                let pool = Rc::new(BackendPool::default());
                let Checkout::Connect(ticket) = pool.checkout(address()).await else {
                    panic!("the first request should connect");
                };
                let waiters: Vec<_> = (0..3)
                    .map(|_| {
                        let pool = pool.clone();
                        tokio::task::spawn_local(async move {
                            matches!(pool.checkout(address()).await, Checkout::Failed)
                        })
                    })
                    .collect();
                tokio::task::yield_now().await;
                assert!(waiters.iter().all(|waiter| !waiter.is_finished()));
                // The attempt fails: every waiter hears of it, none connects.
                ticket.failed();
                for waiter in waiters {
                    assert!(waiter.await.unwrap());
                }
                // A later request tries again.
                assert!(matches!(
                    pool.checkout(address()).await,
                    Checkout::Connect(_)
                ));
            })
            .await;
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_abandoned_attempt_hands_the_connection_to_a_waiting_request() {
        let local = tokio::task::LocalSet::new();
        local
            .run_until(async {
                let pool = Rc::new(BackendPool::default());
                let Checkout::Connect(ticket) = pool.checkout(address()).await else {
                    panic!("the first request should connect");
                };
                let waiter = {
                    let pool = pool.clone();
                    tokio::task::spawn_local(async move {
                        matches!(pool.checkout(address()).await, Checkout::Connect(_))
                    })
                };
                tokio::task::yield_now().await;
                // The client of the first request went away mid-connect.
                drop(ticket);
                assert!(waiter.await.unwrap());
            })
            .await;
    }

    /// A connection to a listener on loopback, counted as `backend`'s,
    /// that adds one to `closes` when it closes; and the listener's end.
    async fn raw_connection(
        backend: &std::sync::Arc<Backend>,
        sessions: &Rc<crate::sessions::SessionRegistry>,
        closes: &Rc<Cell<u32>>,
    ) -> (RawConnection, tokio::net::TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let stream = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        let registration = sessions.register("cluster", backend.id(), backend.address());
        let closes = closes.clone();
        let on_close = Box::new(move || closes.set(closes.get() + 1));
        let raw = RawConnection::new(stream, backend.clone(), registration, on_close);
        (raw, accepted)
    }

    fn backend() -> std::sync::Arc<Backend> {
        let settings = crate::balancer::BackendSettings {
            sticky_value: "b".into(),
            weight: 100,
            backup: false,
            unix_path: None,
        };
        std::sync::Arc::new(Backend::new("cluster", "b", address(), settings))
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_detached_connection_stays_counted_and_comes_back_whole() {
        let pool = BackendPool::default();
        let sessions = Rc::new(crate::sessions::SessionRegistry::default());
        let closes = Rc::new(Cell::new(0));
        let backend = backend();
        let (raw, _far_end) = raw_connection(&backend, &sessions, &closes).await;
        let (stream, detached) = raw.detach();
        assert_eq!(closes.get(), 0, "detaching is not closing");
        pool.give_raw(detached.attach(stream));
        assert_eq!(pool.idle_count(), 1);
        let again = pool.take_raw(&backend).expect("the connection is usable");
        assert_eq!(pool.idle_count(), 0);
        drop(again);
        assert_eq!(closes.get(), 1, "closed once, when dropped");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_closed_pool_drops_its_idle_connections_and_keeps_no_new_one() {
        let pool = BackendPool::default();
        let sessions = Rc::new(crate::sessions::SessionRegistry::default());
        let closes = Rc::new(Cell::new(0));
        let backend = backend();
        let (first, _first_end) = raw_connection(&backend, &sessions, &closes).await;
        pool.give_raw(first);
        assert_eq!(pool.idle_count(), 1);
        pool.close();
        assert_eq!(pool.idle_count(), 0);
        assert_eq!(closes.get(), 1);
        // A request that finishes during the stop gives its connection
        // back: it is closed, not kept.
        let (second, _second_end) = raw_connection(&backend, &sessions, &closes).await;
        pool.give_raw(second);
        assert_eq!(pool.idle_count(), 0);
        assert_eq!(closes.get(), 2);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_http1_exchange_is_marked_reusable_unless_the_pool_is_closed() {
        async fn sender() -> (http1::SendRequest<ForwardedBody>, impl Sized) {
            let (client, server) = tokio::io::duplex(1024);
            let (sender, connection) =
                http1::handshake::<_, ForwardedBody>(hyper_util::rt::TokioIo::new(client))
                    .await
                    .unwrap();
            (sender, (connection, server))
        }
        let pool = BackendPool::default();
        let (first, _first_end) = sender().await;
        let reusable = Rc::new(Cell::new(false));
        pool.give(BackendSender::Http1 {
            sender: first,
            reusable: reusable.clone(),
        });
        assert!(reusable.get());
        pool.close();
        let (second, _second_end) = sender().await;
        let after_close = Rc::new(Cell::new(false));
        pool.give(BackendSender::Http1 {
            sender: second,
            reusable: after_close.clone(),
        });
        assert!(!after_close.get());
    }
}
