//! The server's "stopping" flag, as connection tasks wait on it.
//!
//! An idle keep-alive connection of the HTTP/1.1 relay waits for its next
//! request and, at the same time, for the server to start stopping (it
//! then closes at once). A `tokio::sync::watch` channel would do, but each
//! wait on it registers a waiter under a lock and removes it afterwards,
//! at every request. Here a connection takes a place once ([`Stopping::
//! watch`]) and keeps it while it lives: waiting again only stores the
//! task's waker in that place, without a lock (the server and its
//! connections share one thread).
//!
//! The hyper paths, which wait once per connection, still subscribe to a
//! watch channel ([`Stopping::subscribe`]); [`Stopping::stop`] tells both.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use tokio::sync::watch;

/// Whether the server is stopping, and who waits for it to.
pub(crate) struct Stopping {
    stopped: Cell<bool>,
    /// The places of the connections watching: their task's waker, once
    /// they waited.
    places: RefCell<Places>,
    channel: watch::Sender<bool>,
}

#[derive(Default)]
struct Places {
    wakers: Vec<Option<Waker>>,
    /// Places given back, taken again first.
    free: Vec<usize>,
}

impl Default for Stopping {
    fn default() -> Self {
        Stopping {
            stopped: Cell::new(false),
            places: RefCell::default(),
            channel: watch::channel(false).0,
        }
    }
}

impl Stopping {
    /// Whether the server has started stopping.
    pub(crate) fn is_stopping(&self) -> bool {
        self.stopped.get()
    }

    /// The server starts stopping: every watcher and subscriber is told.
    /// Later calls do nothing more.
    pub(crate) fn stop(&self) {
        if self.stopped.replace(true) {
            return;
        }
        // Taken out first: waking runs no task now, but the borrow is
        // released before anything else happens all the same.
        let wakers: Vec<Waker> = self
            .places
            .borrow_mut()
            .wakers
            .iter_mut()
            .filter_map(Option::take)
            .collect();
        for waker in wakers {
            waker.wake();
        }
        let _ = self.channel.send(true);
    }

    /// A receiver of the flag, for tasks that wait on it once.
    pub(crate) fn subscribe(&self) -> watch::Receiver<bool> {
        self.channel.subscribe()
    }

    /// A place to wait from, for as long as the returned [`StopWatch`]
    /// lives.
    pub(crate) fn watch(self: &Rc<Self>) -> StopWatch {
        let mut places = self.places.borrow_mut();
        let place = match places.free.pop() {
            Some(place) => place,
            None => {
                places.wakers.push(None);
                places.wakers.len() - 1
            }
        };
        StopWatch {
            stopping: self.clone(),
            place,
        }
    }
}

/// One connection's place among the watchers; dropping it gives the place
/// back.
pub(crate) struct StopWatch {
    stopping: Rc<Stopping>,
    place: usize,
}

impl StopWatch {
    /// Whether the server has started stopping.
    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.is_stopping()
    }

    /// Resolves once the server is stopping. Given up before, it leaves the
    /// task's waker in the place: the task is woken once, for nothing, if
    /// the server stops while it does something else.
    pub(crate) fn stopped(&mut self) -> Stopped<'_> {
        Stopped { watch: self }
    }
}

impl Drop for StopWatch {
    fn drop(&mut self) {
        let mut places = self.stopping.places.borrow_mut();
        places.wakers[self.place] = None;
        places.free.push(self.place);
    }
}

/// The future of [`StopWatch::stopped`].
pub(crate) struct Stopped<'a> {
    watch: &'a mut StopWatch,
}

impl Future for Stopped<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let watch = &*self.watch;
        if watch.is_stopping() {
            return Poll::Ready(());
        }
        let mut places = watch.stopping.places.borrow_mut();
        let slot = &mut places.wakers[watch.place];
        match slot {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => *slot = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::pin;
    use std::rc::Rc;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Context, Poll, Wake, Waker};

    use super::Stopping;

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counting() -> (Arc<Count>, Waker) {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        (count.clone(), Waker::from(count))
    }

    #[test]
    fn a_waiting_watcher_is_woken_once_and_then_sees_the_stop() {
        let stopping = Rc::new(Stopping::default());
        let mut watch = stopping.watch();
        let (count, waker) = counting();
        let mut cx = Context::from_waker(&waker);
        {
            let mut stopped = pin!(watch.stopped());
            assert_eq!(stopped.as_mut().poll(&mut cx), Poll::Pending);
            assert_eq!(stopped.as_mut().poll(&mut cx), Poll::Pending);
            stopping.stop();
            stopping.stop();
            assert_eq!(count.0.load(Ordering::SeqCst), 1);
            assert_eq!(stopped.as_mut().poll(&mut cx), Poll::Ready(()));
        }
        assert!(watch.is_stopping());
        // A wait that starts after the stop ends at once.
        assert_eq!(pin!(watch.stopped()).poll(&mut cx), Poll::Ready(()));
    }

    #[test]
    fn subscribers_see_the_stop_too() {
        let stopping = Rc::new(Stopping::default());
        let receiver = stopping.subscribe();
        assert!(!*receiver.borrow());
        stopping.stop();
        assert!(*receiver.borrow());
        assert!(stopping.is_stopping());
    }

    #[test]
    fn places_given_back_are_taken_again_and_never_woken_for_another() {
        let stopping = Rc::new(Stopping::default());
        let (first_count, first_waker) = counting();
        {
            let mut gone = stopping.watch();
            let mut cx = Context::from_waker(&first_waker);
            assert_eq!(pin!(gone.stopped()).poll(&mut cx), Poll::Pending);
        }
        let mut again = stopping.watch();
        assert_eq!(again.place, 0, "the place given back is taken again");
        let (second_count, second_waker) = counting();
        let mut cx = Context::from_waker(&second_waker);
        assert_eq!(pin!(again.stopped()).poll(&mut cx), Poll::Pending);
        stopping.stop();
        assert_eq!(first_count.0.load(Ordering::SeqCst), 0);
        assert_eq!(second_count.0.load(Ordering::SeqCst), 1);
    }
}
