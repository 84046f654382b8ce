//! The live backend sessions of a server, so that `close_sessions` can end
//! those of a cluster or of one backend.
//!
//! A session here is a connection to a backend: a TCP session (client and
//! backend tied together), or an HTTP keep-alive connection to a backend
//! (closing it fails the request in flight on it, if any, and the client
//! connection is closed; idle ones just go).

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::task::{Poll, Waker};

use foldhash::HashMap;

struct Entry {
    cluster_id: String,
    backend_id: String,
    address: SocketAddr,
    close: Rc<CloseSignal>,
}

/// Every live backend session of one server.
#[derive(Default)]
pub(crate) struct SessionRegistry {
    next: Cell<u64>,
    entries: RefCell<HashMap<u64, Entry>>,
}

/// A session's place in the registry; leaving it (drop) unregisters it.
pub(crate) struct Registration {
    id: u64,
    registry: Rc<SessionRegistry>,
    close: Rc<CloseSignal>,
}

/// A request to close one session: once asked, it stays asked. The one
/// task that uses the session at a time waits on it (a session's
/// connection moves between tasks, never shared by two); waiting takes no
/// lock, which matters as the relay waits on it at every response.
#[derive(Default)]
struct CloseSignal {
    asked: Cell<bool>,
    waiter: Cell<Option<Waker>>,
}

impl CloseSignal {
    fn ask(&self) {
        self.asked.set(true);
        if let Some(waker) = self.waiter.take() {
            waker.wake();
        }
    }
}

impl Registration {
    /// Resolves when `close_sessions` asks this session to end.
    pub(crate) async fn closed(&self) {
        Asked {
            signal: &self.close,
        }
        .await;
    }
}

/// Waiting for a close request; a wait given up leaves no waker behind
/// (it would keep the task that waited alive, and wake it for nothing).
struct Asked<'a> {
    signal: &'a CloseSignal,
}

impl Future for Asked<'_> {
    type Output = ();

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<()> {
        let signal = self.signal;
        if signal.asked.get() {
            return Poll::Ready(());
        }
        let waiter = match signal.waiter.take() {
            Some(waker) if waker.will_wake(cx.waker()) => waker,
            _ => cx.waker().clone(),
        };
        signal.waiter.set(Some(waiter));
        Poll::Pending
    }
}

impl Drop for Asked<'_> {
    fn drop(&mut self) {
        self.signal.waiter.take();
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.entries.borrow_mut().remove(&self.id);
    }
}

impl SessionRegistry {
    /// Registers a session with a backend of a cluster.
    pub(crate) fn register(
        self: &Rc<Self>,
        cluster_id: &str,
        backend_id: &str,
        address: SocketAddr,
    ) -> Registration {
        let id = self.next.get();
        self.next.set(id + 1);
        let close = Rc::new(CloseSignal::default());
        self.entries.borrow_mut().insert(
            id,
            Entry {
                cluster_id: cluster_id.to_owned(),
                backend_id: backend_id.to_owned(),
                address,
                close: close.clone(),
            },
        );
        Registration {
            id,
            registry: self.clone(),
            close,
        }
    }

    /// Asks every session of `cluster_id` (of one backend when
    /// `backend_id` or `address` is given) to close; returns how many.
    pub(crate) fn close(
        &self,
        cluster_id: &str,
        backend_id: Option<&str>,
        address: Option<SocketAddr>,
    ) -> u64 {
        let mut closed = 0;
        for entry in self.entries.borrow().values() {
            let matches = entry.cluster_id == cluster_id
                && backend_id.is_none_or(|id| id == entry.backend_id)
                && address.is_none_or(|address| address == entry.address);
            if matches {
                // Kept asked: the session ends even if it is not waiting
                // on it at this very moment.
                entry.close.ask();
                closed += 1;
            }
        }
        closed
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::rc::Rc;

    use futures::FutureExt;

    use super::SessionRegistry;

    #[test]
    fn a_wait_given_up_leaves_no_waker() {
        let registry = Rc::new(SessionRegistry::default());
        let address: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let web = registry.register("web", "web-0", address);
        assert!(web.closed().now_or_never().is_none());
        let left = web.close.waiter.take();
        assert!(left.is_none(), "the dropped wait took its waker away");
    }

    #[tokio::test]
    async fn a_close_wakes_the_waiting_session_and_stays_asked() {
        let registry = Rc::new(SessionRegistry::default());
        let address: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let web = registry.register("web", "web-0", address);
        let api = registry.register("api", "api-0", address);
        assert!(web.closed().now_or_never().is_none(), "not asked yet");
        let local = tokio::task::LocalSet::new();
        let waiting = local.spawn_local(async move {
            web.closed().await;
            // Asked once, closed for good.
            assert!(web.closed().now_or_never().is_some());
        });
        local
            .run_until(async {
                tokio::task::yield_now().await;
                assert_eq!(registry.close("web", None, None), 1);
                waiting.await.unwrap();
            })
            .await;
        assert!(api.closed().now_or_never().is_none(), "another cluster's");
        assert_eq!(registry.close("api", Some("api-0"), Some(address)), 1);
        assert!(
            api.closed().now_or_never().is_some(),
            "asked before waiting"
        );
    }
}
